using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.Training;

namespace CudaFinetune.Tests.Support;

/// <summary>Runs a fine-tune in-process, optionally cancelled (as Ctrl-C would) right after a given step.</summary>
internal static class TrainingRuns
{
    /// <param name="setUp">called with the opened session before it trains: to watch its events or inject faults</param>
    public static FinetuneResult Train(FinetuneOptions options, ResumeRequest? resume = null, long cancelAfter = -1, Action<FinetuneSession>? setUp = null)
    {
        using var cancel = new CancellationTokenSource();
        using var session = FinetuneSession.Open(options, resume);
        setUp?.Invoke(session);
        session.Progress += e =>
        {
            if (e is StepCompleted s && s.Step == cancelAfter)
            {
                cancel.Cancel();
            }
        };
        return session.Train(cancel.Token);
    }
}
