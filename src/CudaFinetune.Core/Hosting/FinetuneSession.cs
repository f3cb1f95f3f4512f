using System.Text.Json;
using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Reporting;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>
/// One fine-tuning run from options to files, the engine API the CLI's <c>finetune</c> is built on:
/// <see cref="Open"/> loads and checks everything (model, tokenizer, data, output directory) before
/// any training; <see cref="Train"/> runs the loop and writes <c>run.json</c>, <c>metrics.jsonl</c>,
/// <c>loss.png</c>, checkpoints (<c>checkpoints/step-N</c>, written in the background) and the trained
/// adapter (<c>adapter/</c>, PEFT layout) or model (<c>model/</c>). Opened with a <see cref="ResumeRequest"/>
/// it continues a run from a checkpoint exactly where it stopped.
/// </summary>
/// <remarks>
/// With <see cref="FinetuneOptions.WorldSize"/> ranks (or a launcher's environment, <see cref="JobTopology"/>) the
/// session runs this process's ranks on threads, each with its own backend and model replica, data-parallel with a
/// ZeRO-sharded optimizer (<see cref="Trainer"/>); every rank writes its shards of each checkpoint and the first
/// process writes the run's files. A checkpoint of any world size resumes at any other.
/// <para>
/// This class composes the run and drives it; the parts live beside it: <see cref="OutputDirectory"/> (claiming and
/// checking the directory), <see cref="TrainingModel"/> (the model and its adapters), <see cref="ResumePlanner"/> (which
/// checkpoint to continue from, what changed, which history to record), <see cref="CheckpointDescription"/> (what each
/// checkpoint says about the run), <see cref="RunFiles"/> (run.json and the trained adapter or model) and
/// <see cref="RunEnvironment"/>.
/// </para>
/// </remarks>
public sealed class FinetuneSession : IDisposable
{
    private readonly TrainingRank[] _ranks;
    private readonly byte[] _runId;
    private readonly CheckpointFingerprints _fingerprints;
    private readonly CancellationTokenSource _abandon = new();
    private RunLock? _runLock;
    private MetricsWriter? _metrics;

    // The history a fresh run's checkpoints record: a new branch from step 0. A resumed run records its plan's.
    private readonly CheckpointLineage _freshLineage;
    private ResumePlan? _resume;

    private FinetuneSession(FinetuneOptions options, JobTopology job, ITokenizer? tokenizer, LoadedDataset data, BatchPlan train, BatchPlan? validation,
        IReadOnlyList<(IBackend Backend, LlamaModel Model, IDisposable? LayerWeights)> replicas, ProcessGroups groups)
    {
        Options = options;
        Job = job;
        Tokenizer = tokenizer;
        Data = data;
        TrainBatches = train;
        ValidationBatches = validation;
        _runId = groups.RunId;
        _fingerprints = new CheckpointFingerprints(Fingerprints.Model(options.Model!), Fingerprints.Data(data.Train), Fingerprints.Data(data.Validation));
        _freshLineage = new CheckpointLineage([new HistorySegment(NewBranchId(0), 0)], null);
        _ranks = [.. replicas.Select((r, local) => new TrainingRank(job.FirstRank + local, r.Backend, r.Model, r.LayerWeights, groups.Groups?[local], train, validation, options,
            (rank, state, reason) => CheckpointDescription.Describe(this, rank, state, reason, _fingerprints, _resume?.Lineage ?? _freshLineage), () => ExtraFiles(local)))];
        _ranks[0].Trainer.Progress += e => Progress?.Invoke(e);
    }

    /// <summary>The id of a branch starting at <paramref name="step"/>: the same in every process of the job, new for each run.</summary>
    private string NewBranchId(long step) => CheckpointFormat.Hash([.. _runId, .. "branch"u8, .. BitConverter.GetBytes(step)]);

    /// <summary>Every step, evaluation and epoch end of <see cref="Train"/>.</summary>
    public event Action<TrainingEvent>? Progress;

    public FinetuneOptions Options { get; }

    /// <summary>The job's ranks and this process's share of them.</summary>
    public JobTopology Job { get; }

    /// <summary>This process's first rank's model (every rank holds the same weights).</summary>
    public LlamaModel Model => _ranks[0].Model;

    public ITokenizer? Tokenizer { get; }
    public LoadedDataset Data { get; }
    public BatchPlan TrainBatches { get; }
    public BatchPlan? ValidationBatches { get; }

    /// <summary>This process's first rank's trainer (it reports the job's progress).</summary>
    public Trainer Trainer => _ranks[0].Trainer;

    /// <summary>This process's ranks (one, or one per thread rank).</summary>
    internal IReadOnlyList<TrainingRank> Ranks => _ranks;

    /// <summary>What preparing the data left out that a user should know (batches with every label masked).</summary>
    public IReadOnlyList<string> DataWarnings { get; private set; } = [];

    /// <summary>Set when the session continues from a checkpoint.</summary>
    public ResumeInfo? Resumed => _resume?.Info;

    /// <inheritdoc cref="ResumePlanner.ReadResumeOptions"/>
    public static FinetuneOptions ReadResumeOptions(string path, LaunchEnvironment? launch = null) => ResumePlanner.ReadResumeOptions(path, launch);


    /// <summary>
    /// Validates the options and loads model, tokenizer and data — and, with <paramref name="resume"/>,
    /// the checkpoint to continue from; throws <see cref="UserErrorException"/> on any problem.
    /// </summary>
    /// <param name="launch">where a launcher (torchrun, srun, mpirun) put this process; null: a job of this process alone</param>
    public static FinetuneSession Open(FinetuneOptions options, ResumeRequest? resume = null, LaunchEnvironment? launch = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (resume is null)
        {
            options = TrainingModel.WithAdapterSettings(options); // a resume takes the adapter's settings and weights from the checkpoint
        }
        if (string.IsNullOrEmpty(options.Model))
        {
            throw new UserErrorException("--model is required: a model directory in Hugging Face layout (make one with 'CudaFinetune init-model')");
        }
        if (string.IsNullOrEmpty(options.Dataset))
        {
            throw new UserErrorException("--dataset is required: a .json, .jsonl or .csv file");
        }
        var job = JobTopology.Resolve(options.WorldSize, options.NprocPerNode, launch);
        var modelConfig = HfModelDirectory.TryReadConfig(options.Model);
        var backends = new List<IBackend>();
        var replicas = new List<(IBackend Backend, LlamaModel Model, IDisposable? LayerWeights)>();
        ProcessGroups? groups = null;
        RunLock? runLock = null;
        FinetuneSession? session = null;
        try
        {
            int cpuThreads = Math.Max(1, Environment.ProcessorCount / job.LocalRanks);
            for (int local = 0; local < job.LocalRanks; local++)
            {
                backends.Add(BackendFactory.Create(options.Device, modelConfig, job.DeviceOrdinal(local), cpuThreads));
            }
            groups = ProcessGroups.Open(job, backends, TimeSpan.FromSeconds(options.DistTimeout));
            // After the rendezvous, so that when the first process cannot start (the directory is in use, say) the
            // others learn it at once from its closed connection instead of waiting for it there.
            ResumeCandidates? candidates = null;
            if (job.IsFirstProcess)
            {
                runLock = OutputDirectory.Claim(options.OutputDir); // before anything reads or writes the directory
            }
            candidates = resume is null ? null : CheckpointStore.Resolve(resume.Path);
            if (job.IsFirstProcess)
            {
                OutputDirectory.CheckFree(options.OutputDir, options.Overwrite, candidates?.OutputDir);
            }
            LlamaConfig? config = null;
            for (int local = 0; local < job.LocalRanks; local++)
            {
                var group = groups.Groups?[local];
                ShardedLayerWeights? layerWeights = null;
                config = TrainingModel.Load(options, backends[local], options.ZeroStage == 3 && group is not null
                    ? c => layerWeights = new ShardedLayerWeights(backends[local], group, c)
                    : null, startFromAdapter: resume is null, out var model);
                replicas.Add((backends[local], model, layerWeights));
            }
            var tokenizer = TokenizerCatalog.TryLoadForModel(options.Model);
            var data = DatasetLoader.Load(options, tokenizer, config!.VocabSize);
            int padId = tokenizer?.EosId ?? 0;
            var train = BatchPlan.Create(data.Train, options.Batching, options.BatchSize, options.ContextLength, padId);
            var (validationRole, moreValidation) = options.ValidationDataset is null
                ? ($"the validation split (--validation-fraction {options.ValidationFraction.ToString(System.Globalization.CultureInfo.InvariantCulture)})", "a larger --validation-fraction")
                : ($"the validation dataset '{options.ValidationDataset}'", "a longer --validation-dataset");
            var validation = data.Validation.Count > 0
                ? BatchPlan.Create(data.Validation, options.Batching, options.BatchSize, options.ContextLength, padId, validationRole, moreValidation)
                : null;
            session = new FinetuneSession(options, job, tokenizer, data, train, validation, replicas, groups) { _runLock = runLock };
            session.DataWarnings = [.. new[] { train.EmptyBatchesWarning("the training data"), validation?.EmptyBatchesWarning(validationRole) }.OfType<string>()];
            if (resume is not null)
            {
                session._resume = new ResumePlanner(session, session._fingerprints, session.NewBranchId, session.OnEveryRank).Plan(candidates!, resume);
                if (session.Resumed is { NothingToDo: not null })
                {
                    // Nothing will be written: the directory is left exactly as it was, lock file included.
                    session._runLock?.Dispose();
                    session._runLock = null;
                }
            }
            session.AgreeToStart();
            return session;
        }
        catch (Exception e) when (job.ProcessCount > 1 && e is RankAbortedException or TimeoutException)
        {
            DisposeOpened(session, replicas, groups, backends, runLock);
            throw new UserErrorException($"{e.Message}, before training began: another process of the job could not start (its own output says why); "
                + "fix that, then start the whole job again", e);
        }
        catch
        {
            DisposeOpened(session, replicas, groups, backends, runLock);
            throw;
        }
    }

    /// <summary>Frees what a failed <see cref="Open"/> had made: the session when it exists (it owns the rest), else each part.</summary>
    private static void DisposeOpened(FinetuneSession? session, List<(IBackend Backend, LlamaModel Model, IDisposable? LayerWeights)> replicas,
        ProcessGroups? groups, List<IBackend> backends, RunLock? runLock)
    {
        if (session is not null)
        {
            session.Dispose(); // owns the models, the groups and the backends
        }
        else
        {
            foreach (var (_, model, layerWeights) in replicas)
            {
                model.Dispose();
                layerWeights?.Dispose();
            }
            foreach (var group in groups?.Groups ?? [])
            {
                group.Dispose();
            }
            foreach (var backend in backends)
            {
                backend.Dispose();
            }
            runLock?.Dispose();
        }
    }

    /// <summary>
    /// In a job of several processes, every rank waits here until all have opened their session, so that one that could
    /// not start (a missing file on its node, a directory in use) stops the others now, not at their first collective.
    /// </summary>
    private void AgreeToStart()
    {
        if (Job.ProcessCount > 1)
        {
            OnEveryRank(rank =>
            {
                rank.Group!.Barrier();
                return true;
            });
        }
    }

    /// <summary>Runs <paramref name="work"/> on every rank of this process at once (<see cref="TrainingRank.OnEach"/>).</summary>
    private T[] OnEveryRank<T>(Func<TrainingRank, T> work) => TrainingRank.OnEach(_ranks, _abandon, work);

    /// <summary>Text from the model for a prompt (greedy unless told otherwise); needs a tokenizer.</summary>
    public string Generate(string prompt, GenerationOptions? options = null)
    {
        var tokenizer = Tokenizer ?? throw new UserErrorException("the model directory records no tokenizer, so text cannot be generated");
        if (Model.LayerWeights is not null)
        {
            throw new UserErrorException("this session's layer weights are sharded over its ranks (--zero-stage 3); generate from the saved adapter with 'CudaFinetune generate --adapter'");
        }
        var output = new TextGenerator(Model).Generate(tokenizer.EncodePrompt(prompt), options ?? new GenerationOptions { MaxNewTokens = 16 }, tokenizer.EosId);
        return tokenizer.Decode(output.Where(id => id != tokenizer.EosId));
    }

    /// <summary>
    /// Trains (from the checkpoint when resumed), saving checkpoints on the way, then writes the outputs.
    /// Cancelling stops after the current step and writes a checkpoint; the adapter/model are written
    /// only when the run finished. Returns once the last checkpoint is on disk. In a job of several processes
    /// only the first writes run.json, metrics, the chart and the outputs (every one writes its checkpoint shards).
    /// </summary>
    public FinetuneResult Train(CancellationToken cancellationToken = default)
    {
        string dir = Path.GetFullPath(Options.OutputDir);
        string checkpointsDir = CheckpointStore.CheckpointsDirectory(dir);
        string metricsPath = Path.Combine(dir, RunFileNames.MetricsFileName);
        bool first = Job.IsFirstProcess;
        if (Resumed is { NothingToDo: not null } finished)
        {
            return RunFiles.Unchanged(dir, finished, _resume!.State);
        }
        Directory.CreateDirectory(dir);
        if (first)
        {
            if (Resumed is null && Options.Overwrite)
            {
                // --overwrite: the earlier run's checkpoints and branches go with it
                CheckpointStore.TryDeleteDirectory(checkpointsDir);
                CheckpointStore.TryDeleteDirectory(Path.Combine(dir, RunBranching.DirectoryName));
            }
            if (_resume?.SetAside is { } aside)
            {
                RunBranching.SetAside(dir, aside.Archive, aside.Entries, aside.LiveHead, aside.OldHead);
            }
            CheckpointStore.RemoveIncomplete(checkpointsDir);
            RunFiles.WriteRunFile(Path.Combine(dir, RunFileNames.RunFileName), this);
            if (_resume?.Metrics is { } metricsSoFar)
            {
                AtomicFile.Write(metricsPath, s => s.Write(metricsSoFar)); // the steps after the checkpoint are run again
            }
        }
        TrainingOutcome outcome;
        string? lastCheckpoint;
        using (var metrics = first ? new MetricsWriter(metricsPath, append: _resume?.Metrics is not null) : null)
        {
            var savers = _ranks.Select(rank => new CheckpointSaver(checkpointsDir, CheckpointImage.Create(rank.Trainer.Optimizer.CheckpointPieces, rank.Rank), rank.Backend,
                Options.KeepLast, new CheckpointRanks(rank.Rank, Job.WorldSize, TimeSpan.FromSeconds(Options.DistTimeout), rank.Group is { } group ? () => group.PeerStopped : null, _abandon.Token), _runId, _resume?.Parent)).ToArray();
            void Record(TrainingEvent e)
            {
                metrics?.Write(e);
                if (e is StepCompleted)
                {
                    savers[0].ReportCompleted();
                }
            }
            void Report(CheckpointSaved e) => Progress?.Invoke(e);
            var failures = new object();
            void ReportFailure(CheckpointSaveFailed e)
            {
                lock (failures) // each rank's saver reports its own failures, from that rank's thread
                {
                    Progress?.Invoke(e);
                }
            }
            Trainer.Progress += Record;
            savers[0].Saved += Report;
            foreach (var saver in savers)
            {
                saver.SaveFailed += ReportFailure;
            }
            _metrics = metrics;
            for (int local = 0; local < _ranks.Length; local++)
            {
                _ranks[local].Saver = savers[local];
            }
            try
            {
                outcome = OnEveryRank(rank =>
                {
                    var reached = rank.Trainer.Run(_resume?.State, cancellationToken);
                    rank.Saver!.WaitForLast();
                    return reached;
                })[0];
                lastCheckpoint = savers[0].LastCommitted?.Directory;
            }
            catch (Exception e) when (Job.ProcessCount > 1 && e is RankAbortedException or TimeoutException)
            {
                throw TrainingRank.Lost(e, savers[0].LastGood, dir);
            }
            finally
            {
                Trainer.Progress -= Record;
                savers[0].Saved -= Report;
                foreach (var saver in savers)
                {
                    saver.SaveFailed -= ReportFailure;
                }
                _metrics = null;
                foreach (var rank in _ranks)
                {
                    rank.Saver = null;
                }
                foreach (var saver in savers)
                {
                    saver.Dispose();
                }
            }
            if (metrics is not null)
            {
                RunFiles.Write("the loss chart", lastCheckpoint, () => LossChart.Write(Path.Combine(dir, RunFileNames.LossChartFileName), metrics.TrainLoss, metrics.EvalLoss, $"{Path.GetFileName(dir)}: loss"));
            }
        }
        if (outcome.NonFinite is { } stop)
        {
            string saved = lastCheckpoint is null ? "no checkpoint could be written" : $"the last good state is saved in '{lastCheckpoint}'";
            throw new UserErrorException($"{stop.Describe()}; {saved} (continue it with --resume)");
        }
        // An unfinished run leaves a checkpoint to resume from, not a final adapter or model; the first process writes those.
        var (adapterDir, modelDir) = outcome.Cancelled || !first ? (null, null) : RunFiles.WriteTrained(this, dir, lastCheckpoint);
        return new FinetuneResult(dir, outcome, metricsPath, adapterDir, modelDir, first ? Path.Combine(dir, RunFileNames.LossChartFileName) : null, lastCheckpoint);
    }

    /// <summary>The files beside the tensors in a checkpoint: written by the rank that writes the manifest.</summary>
    private IReadOnlyList<CheckpointExtraFile> ExtraFiles(int local)
        => Job.IsFirstProcess && local == 0 ? CheckpointDescription.ExtraFiles(Options.Model!, _metrics!) : [];

    public void Dispose()
    {
        foreach (var rank in _ranks)
        {
            rank.Dispose();
        }
        _abandon.Dispose();
        _runLock?.Dispose();
    }
}
