using System.Globalization;
using CudaFinetune.Training;

namespace CudaFinetune.Cli;

/// <summary>
/// Shows training progress: on a terminal one live line (step/total, loss, lr, tokens/s, ETA)
/// rewritten in place, with evaluations on lines of their own; when output is redirected, plain
/// log lines (about a hundred step lines per run, every evaluation).
/// </summary>
internal sealed class ProgressDisplay : IDisposable
{
    private readonly TextWriter _output;
    private readonly bool _live;
    private int _lineLength;
    private long _startStep;

    public ProgressDisplay(TextWriter output)
    {
        _output = output;
        _live = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
    }

    public void OnEvent(TrainingEvent e)
    {
        switch (e)
        {
            case TrainingStarted started:
                _startStep = started.StartStep;
                break;
            case CheckpointSaved c:
                EndLiveLine();
                _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"checkpoint  step {c.Step}  {c.Bytes / 1e6:F1} MB in {c.WriteTime.TotalSeconds:F2} s  -> {c.Directory}"));
                break;
            case CheckpointSaveFailed f:
                EndLiveLine();
                _output.WriteLine($"warning: {f.Reason}; training goes on and the next save tries again ({(f.LastGood is null ? "no checkpoint written yet" : $"last good checkpoint: {f.LastGood}")})");
                break;
            case StepCompleted { Skipped: true } s:
                EndLiveLine();
                _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"warning: step {s.Step} skipped, not applied: loss {s.Loss}, grad-norm {s.GradNorm} ({s.SkippedSteps} skipped in this run)"));
                break;
            case StepCompleted s:
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"step {s.Step}/{s.TotalSteps}  epoch {s.Epoch}  loss {s.Loss:F4}  lr {s.LearningRate:0.00e+0}  grad-norm {s.GradNorm:F3}  {s.TokensPerSecond:N0} tok/s  ETA {Eta(s)}");
                if (_live)
                {
                    _output.Write("\r" + line.PadRight(_lineLength));
                    _lineLength = line.Length;
                }
                else if (s.Step == _startStep + 1 || s.Step == s.TotalSteps || s.Step % Math.Max(1, s.TotalSteps / 100) == 0)
                {
                    _output.WriteLine(line);
                }
                break;
            case EvaluationCompleted ev:
                EndLiveLine();
                _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"eval  step {ev.Step}  epoch {ev.Epoch}  eval loss {ev.EvalLoss:F4}  perplexity {ev.EvalPerplexity:F2}  ({ev.Tokens:N0} tokens)"));
                break;
            default:
                break;
        }
    }

    private string Eta(StepCompleted s)
    {
        long done = s.Step - _startStep;
        if (done <= 0)
        {
            return "-";
        }
        var remaining = TimeSpan.FromSeconds(s.Elapsed.TotalSeconds / done * (s.TotalSteps - s.Step));
        return remaining.TotalHours >= 1 ? remaining.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : remaining.ToString(@"m\:ss", CultureInfo.InvariantCulture);
    }

    private void EndLiveLine()
    {
        if (_live && _lineLength > 0)
        {
            _output.WriteLine();
            _lineLength = 0;
        }
    }

    public void Finish() => EndLiveLine();

    public void Dispose() => EndLiveLine();
}
