using System.Runtime.ExceptionServices;
using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>
/// One rank of a fine-tuning session: its backend, its replica of the model, its trainer (with the rank's process group
/// and optimizer shard) and, while training, its checkpoint saver, which writes this rank's pieces of every checkpoint.
/// </summary>
internal sealed class TrainingRank : IDisposable, ITrainingCheckpoints
{
    private readonly Func<TrainingRank, TrainingState, CheckpointReason, CheckpointManifest> _describe;
    private readonly Func<IReadOnlyList<CheckpointExtraFile>> _extraFiles;
    private readonly RankSums? _flag;

    private readonly IDisposable? _layerWeights;

    public TrainingRank(int rank, IBackend backend, LlamaModel model, IDisposable? layerWeights, IProcessGroup? group, BatchPlan train, BatchPlan? validation, FinetuneOptions options,
        Func<TrainingRank, TrainingState, CheckpointReason, CheckpointManifest> describe, Func<IReadOnlyList<CheckpointExtraFile>> extraFiles)
    {
        Rank = rank;
        Backend = backend;
        Model = model;
        _layerWeights = layerWeights;
        Group = group;
        _describe = describe;
        _extraFiles = extraFiles;
        Trainer = new Trainer(model, train, validation, options, group) { Checkpoints = this };
        _flag = group is null ? null : new RankSums(backend, group, 1);
    }

    /// <summary>The global rank.</summary>
    public int Rank { get; }

    public IBackend Backend { get; }

    public LlamaModel Model { get; }

    public IProcessGroup? Group { get; }

    public Trainer Trainer { get; }

    /// <summary>Set by the session for the duration of training.</summary>
    public CheckpointSaver? Saver { get; set; }

    /// <summary>The names of every tensor a checkpoint of this run holds (whatever part of them this rank keeps).</summary>
    public IEnumerable<(string Group, string Name)> CheckpointTensorNames()
    {
        foreach (var p in Model.TrainableParameters)
        {
            yield return (CheckpointFormat.ModelGroup, p.Name);
            yield return (CheckpointFormat.OptimizerGroup, p.Name + CheckpointFormat.FirstMomentSuffix);
            yield return (CheckpointFormat.OptimizerGroup, p.Name + CheckpointFormat.SecondMomentSuffix);
        }
    }

    /// <summary>Whether <paramref name="mine"/> holds on any rank of the job (a collective: every rank calls it).</summary>
    public bool OnAnyRank(bool mine)
    {
        if (_flag is null)
        {
            return mine;
        }
        _flag.Values[0] = mine ? 1 : 0;
        _flag.AllReduce();
        return _flag.Values[0] > 0;
    }

    void ITrainingCheckpoints.Save(TrainingState state, CheckpointReason reason)
    {
        var saver = Saver ?? throw new InvalidOperationException("checkpoints are saved only during Train");
        saver.Save(_describe(this, state, reason), _extraFiles());
    }

    public void Dispose()
    {
        Trainer.Dispose();
        _flag?.Dispose();
        Model.Dispose();
        _layerWeights?.Dispose();
        Group?.Dispose();
        Backend.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="work"/> on every rank of this process at once (the first on this thread), as collectives
    /// need. When a rank fails the others' groups are aborted (and <paramref name="abandon"/> cancelled), so none waits for it; the first failure that is not
    /// such an abort is rethrown.
    /// </summary>
    public static T[] OnEach<T>(IReadOnlyList<TrainingRank> ranks, CancellationTokenSource abandon, Func<TrainingRank, T> work)
    {
        var results = new T[ranks.Count];
        var errors = new Exception?[ranks.Count];
        void Run(int local)
        {
            try
            {
                results[local] = work(ranks[local]);
            }
            catch (Exception e)
            {
                errors[local] = e;
                abandon.Cancel();
                foreach (var rank in ranks)
                {
                    rank.Group?.Abort();
                }
            }
        }
        var threads = Enumerable.Range(1, ranks.Count - 1)
            .Select(local => new Thread(() => Run(local)) { IsBackground = true, Name = $"rank {ranks[local].Rank}" }).ToList();
        threads.ForEach(t => t.Start());
        Run(0);
        threads.ForEach(t => t.Join());
        if ((errors.FirstOrDefault(e => e is not null and not RankAbortedException) ?? errors.FirstOrDefault(e => e is not null)) is { } cause)
        {
            ExceptionDispatchInfo.Throw(cause);
        }
        return results;
    }

    /// <summary>
    /// A rank of another process stopped (killed, crashed, its node gone) or stopped answering: this one cannot go on
    /// alone, and says so in one line with what to do, instead of a collective's exception.
    /// </summary>
    public static UserErrorException Lost(Exception e, string? lastCheckpoint, string outputDir)
    {
        string saved = lastCheckpoint is null ? "no checkpoint of this run was written yet" : $"the last checkpoint is '{lastCheckpoint}'";
        return new UserErrorException($"{e.Message}: the job cannot go on without every rank; {saved}; "
            + $"once every rank can run, start the whole job again with --resume '{outputDir}'", e);
    }
}
