using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Lora;
using CudaFinetune.Model;
using CudaFinetune.Reporting;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Training;

/// <summary>Where a finished (or interrupted) run left its results. Adapter or model are written only when the run finished.</summary>
public sealed record FinetuneResult(string OutputDir, TrainingOutcome Outcome, string MetricsPath, string? AdapterDir, string? ModelDir, string? LossChartPath, string? LastCheckpoint);

/// <summary>Continue a run from <see cref="Path"/>: an output directory (its newest valid checkpoint) or one checkpoint directory.</summary>
/// <param name="Path">output directory or checkpoint directory</param>
/// <param name="Force">accept training data that differs from the checkpoint's</param>
/// <param name="Strict">refuse to fall back to an older checkpoint when the newest is damaged</param>
public sealed record ResumeRequest(string Path, bool Force = false, bool Strict = false);

/// <summary>
/// What a resumed session continues from, the changes it accepted, and damaged checkpoints it passed over.
/// <see cref="Schedule"/> says what the learning rate does from here; <see cref="Branch"/>, when the run leaves a later
/// branch behind, where that branch goes; <see cref="NothingToDo"/>, when the run is already complete, why (then
/// <see cref="FinetuneSession.Train"/> returns at once and changes nothing on disk).
/// </summary>
public sealed record ResumeInfo(string Checkpoint, long Step, int Epoch, IReadOnlyList<string> Warnings, IReadOnlyList<string> Skipped,
    string Schedule = "", string? Branch = null, string? NothingToDo = null);

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
/// </remarks>
public sealed class FinetuneSession : IDisposable
{
    public const string RunFileName = "run.json";
    public const string MetricsFileName = "metrics.jsonl";
    public const string LossChartFileName = "loss.png";

    /// <summary>Where a finished LoRA run writes its adapter (PEFT layout), and a full fine-tune its model.</summary>
    public const string AdapterDirectoryName = "adapter";
    public const string ModelDirectoryName = "model";

    private readonly TrainingRank[] _ranks;
    private readonly byte[] _runId;
    private readonly CheckpointFingerprints _fingerprints;
    private readonly CancellationTokenSource _abandon = new();
    private RunLock? _runLock;
    private TrainingState? _resumeState;
    private byte[]? _resumeMetrics;
    private MetricsWriter? _metrics;

    // The history the run's checkpoints record (a fresh run: a new branch from step 0), the checkpoint it continues
    // from, and what Train sets aside first when the run leaves checkpoints of another branch behind.
    private CheckpointLineage _lineage;
    private CheckpointParent? _parent;
    private (IReadOnlyList<CheckpointEntry> Entries, string Archive, string LiveHead, string? OldHead)? _setAside;

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
        _ranks = [.. replicas.Select((r, local) => new TrainingRank(job.FirstRank + local, r.Backend, r.Model, r.LayerWeights, groups.Groups?[local], train, validation, options,
            DescribeCheckpoint, () => ExtraFiles(local)))];
        _ranks[0].Trainer.Progress += e => Progress?.Invoke(e);
        _fingerprints = new CheckpointFingerprints(Fingerprints.Model(options.Model!), Fingerprints.Data(data.Train), Fingerprints.Data(data.Validation));
        _lineage = new CheckpointLineage([new HistorySegment(NewBranchId(0), 0)], null);
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
    public ResumeInfo? Resumed { get; private set; }

    /// <summary>
    /// The options a run was saved with, read from the newest checkpoint under <paramref name="path"/>
    /// that opens, with its output directory set to the run's; the starting point for a resume's
    /// options, which flags then override.
    /// </summary>
    /// <param name="launch">where a launcher put this process: only the job's first process refuses a directory a run
    /// holds (when the others read it, the first may already hold it for this very job)</param>
    public static FinetuneOptions ReadResumeOptions(string path, LaunchEnvironment? launch = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (launch is null || launch.Rank == 0)
        {
            if (CheckpointStore.OutputDirOf(path) is { } outputDir)
            {
                RunLock.ThrowIfHeld(outputDir, "resume from");
            }
        }
        return OpenNewestSaved(path, "resume from", "--resume", verify: false).Options;
    }

    /// <summary>
    /// The newest checkpoint of the live history under <paramref name="path"/> (an output directory, or one checkpoint)
    /// that opens — and, with <paramref name="verify"/>, whose every hash checks — and the options its run was saved with,
    /// output directory set to the run's; <see cref="UserErrorException"/> listing every damaged one when none is good.
    /// <paramref name="purpose"/> completes "no valid checkpoint to …"; <paramref name="flag"/> is how the user gave the path.
    /// </summary>
    internal static (Checkpoint Checkpoint, FinetuneOptions Options) OpenNewestSaved(string path, string purpose, string flag, bool verify)
    {
        var candidates = CheckpointStore.Resolve(path, flag);
        var problems = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            try
            {
                var checkpoint = Checkpoint.Open(dir);
                if (verify)
                {
                    checkpoint.Verify();
                }
                var saved = SavedOptions(checkpoint);
                return (checkpoint, candidates.OutputDir is { } outputDir ? saved with { OutputDir = outputDir } : saved);
            }
            catch (CheckpointCorruptException e)
            {
                problems.Add(e.Message);
            }
        }
        throw NoValidCheckpoint(path, problems, purpose);
    }

    private static UserErrorException NoValidCheckpoint(string path, IEnumerable<string> problems, string purpose = "resume from")
        => new($"no valid checkpoint to {purpose} at '{path}':{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", problems)}");

    private static FinetuneOptions SavedOptions(Checkpoint checkpoint)
        => RunConfigFile.ApplyText(new FinetuneOptions(), checkpoint.Manifest.ConfigJson, $"{checkpoint.Directory}/{CheckpointFormat.ManifestFileName} (config)", yaml: false);

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
            options = WithAdapterSettings(options); // a resume takes the adapter's settings and weights from the checkpoint
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
            groups = ProcessGroups.Open(job, backends);
            // After the rendezvous, so that when the first process cannot start (the directory is in use, say) the
            // others learn it at once from its closed connection instead of waiting for it there.
            ResumeCandidates? candidates = null;
            if (job.IsFirstProcess)
            {
                runLock = ClaimOutputDir(options); // before anything reads or writes the directory
            }
            candidates = resume is null ? null : CheckpointStore.Resolve(resume.Path);
            if (job.IsFirstProcess)
            {
                CheckOutputDir(options, candidates?.OutputDir);
            }
            LlamaConfig? config = null;
            for (int local = 0; local < job.LocalRanks; local++)
            {
                var group = groups.Groups?[local];
                ShardedLayerWeights? layerWeights = null;
                config = LoadModel(options, backends[local], options.ZeroStage == 3 && group is not null
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
                session.RestoreFrom(candidates!, resume);
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
    /// Takes the output directory for this run (<see cref="RunLock"/>), then checks and tidies what is there: the run's
    /// own names must not be links or special files, and temporary files killed writes left are removed.
    /// </summary>
    private static RunLock ClaimOutputDir(FinetuneOptions options)
    {
        if (File.Exists(options.OutputDir))
        {
            throw new UserErrorException($"--output-dir '{options.OutputDir}' is a file; give a directory");
        }
        var runLock = RunLock.Acquire(options.OutputDir);
        try
        {
            OutputDirectory.CheckOwnEntries(options.OutputDir);
            OutputDirectory.RemoveTemporaryFiles(options.OutputDir);
            return runLock;
        }
        catch
        {
            runLock.Dispose();
            throw;
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

    /// <summary>The model of <see cref="FinetuneOptions.Model"/> on <paramref name="backend"/>, with LoRA adapters when asked.</summary>
    /// <param name="shardLayers">makes the sharded layer weights for the config (ZeRO stage 3), or null for whole weights</param>
    /// <param name="startFromAdapter">load <see cref="FinetuneOptions.FromPeft"/>'s weights (not when resuming: the checkpoint has them)</param>
    private static LlamaConfig LoadModel(FinetuneOptions options, IBackend backend, Func<LlamaConfig, ShardedLayerWeights>? shardLayers, bool startFromAdapter, out LlamaModel model)
    {
        ShardedLayerWeights? layerWeights = null;
        ParameterSet? weights = null;
        LlamaModel? made = null;
        try
        {
            (var config, weights) = HfModelDirectory.Load(options.Model!, backend, shardLayers is null ? null : c => layerWeights = shardLayers(c));
            options.CheckFits(config);
            made = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = options.LoraSettings(), Seed = options.Seed, LayerWeights = layerWeights });
            if (startFromAdapter && options.FromPeft is { } adapter)
            {
                PeftAdapterDirectory.LoadWeights(adapter, made);
            }
            HfModelDirectory.LoadMasters(options.Model!, made); // full fine-tuning under mixed precision: masters from the file, not from bf16
            model = made;
            return config;
        }
        catch
        {
            if (made is not null)
            {
                made.Dispose(); // owns the weights
            }
            else
            {
                weights?.Dispose();
            }
            layerWeights?.Dispose();
            throw;
        }
    }

    /// <summary>With <see cref="FinetuneOptions.FromPeft"/>: the adapter's rank, alpha and target modules replace the options'.</summary>
    private static FinetuneOptions WithAdapterSettings(FinetuneOptions options)
    {
        if (options.FromPeft is not { } dir)
        {
            return options;
        }
        var adapter = PeftAdapterDirectory.ReadConfig(dir);
        return options with { LoraR = adapter.Rank, LoraAlpha = adapter.Alpha, LoraTargets = string.Join(",", adapter.TargetModules) };
    }

    private static void CheckOutputDir(FinetuneOptions options, string? resumedRunDir)
    {
        string dir = options.OutputDir;
        if (resumedRunDir is not null && Path.GetFullPath(dir) == Path.GetFullPath(resumedRunDir))
        {
            return; // continuing the run in its own directory
        }
        bool earlierRun = File.Exists(Path.Combine(dir, RunFileName)) || File.Exists(Path.Combine(dir, MetricsFileName))
            || Directory.Exists(Path.Combine(dir, CheckpointFormat.DirectoryName));
        if (earlierRun && !options.Overwrite)
        {
            throw new UserErrorException($"--output-dir '{dir}' already holds a run (run.json, metrics.jsonl or checkpoints/); continue it with --resume '{dir}', choose another directory, or pass --overwrite to replace it");
        }
    }

    /// <summary>
    /// Loads the newest usable checkpoint of <paramref name="candidates"/> into every rank's model and optimizer, whatever
    /// world size wrote it, and plans the rest of the run from it (steps, schedule, branch). The ranks read their pieces in
    /// parallel and agree before going on: when any finds its part damaged, all pass on to the next checkpoint together.
    /// </summary>
    private void RestoreFrom(ResumeCandidates candidates, ResumeRequest request)
    {
        var skipped = new List<string>();
        var skippedDirs = new HashSet<string>(StringComparer.Ordinal);
        var notices = new List<string>();
        if (candidates.LatestProblem is { } latestProblem)
        {
            if (request.Strict)
            {
                throw new UserErrorException($"cannot resume from '{request.Path}' with --strict: {latestProblem}; name the checkpoint to continue from (--resume {Path.Combine(request.Path, CheckpointFormat.DirectoryName, "step-N")})");
            }
            notices.Add(latestProblem);
        }
        foreach (string dir in candidates.Checkpoints)
        {
            Checkpoint checkpoint;
            try
            {
                checkpoint = Checkpoint.Open(dir);
            }
            catch (CheckpointCorruptException e) when (!request.Strict && !candidates.Explicit)
            {
                skipped.Add(e.Message);
                skippedDirs.Add(dir);
                continue;
            }
            var manifest = checkpoint.Manifest;
            var state = SamplerWithin(manifest.Training, request.Force, notices);
            var savedSchedule = manifest.Scheduler.ToSchedule();
            string? scheduleChange = null;
            foreach (var rank in _ranks)
            {
                scheduleChange = rank.Trainer.ContinueFrom(state, savedSchedule);
            }
            var warnings = ResumeCompatibility.Check(checkpoint.Directory, SavedOptions(checkpoint), Options, manifest, _fingerprints, Trainer.TotalSteps, request.Force)
                .Concat(EnvironmentChanges(manifest)).ToList();
            CheckSampler(checkpoint, request.Force);
            string? problem = LoadOnEveryRank(checkpoint);
            if (problem is not null)
            {
                if (request.Strict || candidates.Explicit)
                {
                    string insist = request.Strict ? " (--strict: no fallback to an older checkpoint)" : "";
                    throw new CheckpointCorruptException(problem + insist);
                }
                skipped.Add(problem);
                skippedDirs.Add(dir);
                continue;
            }
            if (manifest.WorldSize != Job.WorldSize)
            {
                warnings.Add($"the checkpoint was written by {manifest.WorldSize} rank(s) and this run has {Job.WorldSize}: its optimizer state was resharded; each step now takes {Trainer.BatchesPerStep} micro-batch(es) (set --gradient-accumulation-steps to keep the global batch)");
            }
            if (scheduleChange is not null)
            {
                warnings.Add(ScheduleWarning(savedSchedule, state, scheduleChange));
            }
            _resumeMetrics = checkpoint.ReadFile(CheckpointFormat.MetricsFileName);
            _resumeState = state;
            string? branch = PlanHistory(checkpoint, candidates, skippedDirs);
            Resumed = new ResumeInfo(checkpoint.Directory, state.Step, state.Epoch, [.. notices, .. warnings], skipped,
                Trainer.Schedule.DescribeFrom(state.Step, state.Epoch), branch, NothingLeft(manifest, checkpoint.Directory));
            return;
        }
        throw NoValidCheckpoint(request.Path, skipped);
    }

    /// <summary>Loads the checkpoint on every rank; the first rank's problem (or that another rank had one), or null.</summary>
    private string? LoadOnEveryRank(Checkpoint checkpoint)
    {
        var problems = OnEveryRank(rank =>
        {
            string? mine = null;
            try
            {
                checkpoint.Load(rank.Trainer.Optimizer.CheckpointPieces, rank.Backend, rank.CheckpointTensorNames());
            }
            catch (CheckpointCorruptException e)
            {
                mine = e.Message;
            }
            if (rank.OnAnyRank(mine is not null))
            {
                return mine ?? $"checkpoint '{checkpoint.Directory}': another rank found its part damaged";
            }
            rank.Trainer.Optimizer.PublishRestoredState();
            rank.Trainer.Optimizer.RestoreStepCount(checkpoint.Manifest.Optimizer.StepCount);
            return null;
        });
        return problems.FirstOrDefault(p => p is not null);
    }

    /// <summary>
    /// The saved state, its sampler moved to the end of the epoch when the data changed (--force) and the epoch now has
    /// fewer batches than it had reached.
    /// </summary>
    private TrainingState SamplerWithin(TrainingState saved, bool force, List<string> notices)
    {
        int batches = TrainBatches.Count;
        if (!force || saved.Sampler.Cursor <= batches)
        {
            return saved;
        }
        notices.Add($"epoch {saved.Epoch + 1} had reached batch {saved.Sampler.Cursor}, and the new data has {batches} batches per epoch: that epoch ends here");
        return saved with { Sampler = saved.Sampler with { Cursor = batches } };
    }

    /// <summary>The warning for a schedule that differs from the checkpoint's: the rate of the next step before and after, and why.</summary>
    private string ScheduleWarning(LearningRateSchedule saved, TrainingState state, string change)
    {
        double before = saved.At(state.Step, state.Epoch), after = Trainer.Schedule.At(state.Step, state.Epoch);
        string rates = before == after
            ? $"the learning rate of step {state.Step + 1} stays {LearningRateSchedule.Rate(after)}"
            : $"the learning rate of step {state.Step + 1} changes from {LearningRateSchedule.Rate(before)} to {LearningRateSchedule.Rate(after)}";
        string length = Trainer.TotalSteps == saved.TotalSteps ? "" : $"the run now ends at step {Trainer.TotalSteps} (it was planned to end at step {saved.TotalSteps}); ";
        return $"{length}{change}: {rates}";
    }

    /// <summary>
    /// Decides the history the run's checkpoints record: the checkpoint's own branch when it is the live head of this
    /// output directory (or everything newer on the live chain is damaged), else a new branch from its step — and what
    /// <see cref="Train"/> sets aside first. Returns the line that tells the user about a branch, or null.
    /// </summary>
    private string? PlanHistory(Checkpoint checkpoint, ResumeCandidates candidates, HashSet<string> skippedDirs)
    {
        var manifest = checkpoint.Manifest;
        _parent = new CheckpointParent(checkpoint.Name, manifest.CheckpointId);
        var history = candidates.History;
        bool ownDirectory = candidates.OutputDir is { } runDir && Path.GetFullPath(runDir) == Path.GetFullPath(Options.OutputDir) && history is not null;
        var newer = history?.Chain.TakeWhile(e => e.Directory != checkpoint.Directory).ToList() ?? [];
        bool isLive = ownDirectory && history!.Chain.Any(e => e.Directory == checkpoint.Directory) && newer.All(e => !e.Opens || skippedDirs.Contains(e.Directory));
        _lineage = isLive ? manifest.Lineage : manifest.Lineage.BranchedAt(manifest.Training.Step, NewBranchId(manifest.Training.Step));
        if (!ownDirectory)
        {
            return null;
        }
        // Damaged checkpoints passed over stay: the run writes their steps again on the same branch, replacing them.
        var offHistory = history!.Entries.Where(e => e.Opens && !skippedDirs.Contains(e.Directory) && !manifest.HasInHistory(e.Checkpoint!.Manifest)).ToList();
        if (offHistory.Count == 0)
        {
            return null;
        }
        string archive = RunBranching.ArchiveFor(Options.OutputDir, offHistory);
        _setAside = (offHistory, archive, checkpoint.Name, history.Head?.Name);
        string moved = offHistory.Count == 1 ? offHistory[0].Name : $"{offHistory.Count} checkpoints ({offHistory[^1].Name} … {offHistory[0].Name})";
        return isLive
            ? $"{moved} of another branch will be moved to {archive} (they are not on this run's history)"
            : $"this run branches from {checkpoint.Name}: the later branch's {moved}{(offHistory.Any(e => e == history.Head) ? ", its metrics and outputs" : "")} will be moved to {archive}, where it can still be resumed or exported";
    }

    /// <summary>Why a resumed run that already finished has nothing to do (null when it has steps left, or its end to write).</summary>
    private string? NothingLeft(CheckpointManifest manifest, string checkpoint)
    {
        long step = manifest.Training.Step;
        if (manifest.Reason != CheckpointReason.End || Trainer.TotalSteps > step)
        {
            return null;
        }
        string why = Options.MaxSteps > 0 && Options.MaxSteps <= step
            ? $"--max-steps {Options.MaxSteps} is reached"
            : $"its {Options.NumEpochs} epoch(s) are done" + (Options.MaxSteps > step ? $" (--max-steps {Options.MaxSteps} only caps the epochs; it does not add any)" : "");
        return $"nothing to do: the run finished at step {step} ('{checkpoint}') and {why}; raise --num-epochs or --max-steps to train further. Nothing was changed.";
    }

    /// <summary>
    /// Runs <paramref name="work"/> on every rank of this process at once (the first on this thread), as collectives
    /// need. When a rank fails the others' groups are aborted, so none waits for it; the first failure that is not
    /// such an abort is rethrown.
    /// </summary>
    private T[] OnEveryRank<T>(Func<TrainingRank, T> work)
    {
        var results = new T[_ranks.Length];
        var errors = new Exception?[_ranks.Length];
        void Run(int local)
        {
            try
            {
                results[local] = work(_ranks[local]);
            }
            catch (Exception e)
            {
                errors[local] = e;
                _abandon.Cancel();
                foreach (var rank in _ranks)
                {
                    rank.Group?.Abort();
                }
            }
        }
        var threads = Enumerable.Range(1, _ranks.Length - 1)
            .Select(local => new Thread(() => Run(local)) { IsBackground = true, Name = $"rank {_ranks[local].Rank}" }).ToList();
        threads.ForEach(t => t.Start());
        Run(0);
        threads.ForEach(t => t.Join());
        if ((errors.FirstOrDefault(e => e is not null and not RankAbortedException) ?? errors.FirstOrDefault(e => e is not null)) is { } cause)
        {
            ExceptionDispatchInfo.Throw(cause);
        }
        return results;
    }

    /// <summary>Differences between the environment that wrote the checkpoint and this one (the thread count does not change results).</summary>
    private IEnumerable<string> EnvironmentChanges(CheckpointManifest manifest)
    {
        const string consequence = "the run continues correctly, but not necessarily bitwise as it would have there";
        if (manifest.EngineVersion != EngineVersion)
        {
            yield return $"the checkpoint was written by engine {manifest.EngineVersion}, this is {EngineVersion}: {consequence}";
        }
        var now = EnvironmentDescription().ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (key, then) in manifest.Environment)
        {
            if (key != "processors" && now.TryGetValue(key, out string? value) && value != then)
            {
                yield return $"environment: {key} was '{then}' and is '{value}': {consequence}";
            }
        }
    }

    private void CheckSampler(Checkpoint checkpoint, bool force)
    {
        var m = checkpoint.Manifest;
        if (force)
        {
            return; // the data changed on purpose: the order is the new data's
        }
        if (m.Sampler.BatchesPerEpoch != TrainBatches.Count)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint.Directory}': an epoch had {m.Sampler.BatchesPerEpoch} batches and now has {TrainBatches.Count}");
        }
        if (Fingerprints.Order(BatchSampler.Order(TrainBatches.Count, m.Training.Sampler.Seed, m.Training.Epoch, m.Sampler.Shuffle)) != m.Sampler.OrderHash)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint.Directory}': this engine orders the batches of epoch {m.Training.Epoch} differently from the one that wrote it ({m.EngineVersion}), so the run would not continue exactly");
        }
    }

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
        string metricsPath = Path.Combine(dir, MetricsFileName);
        bool first = Job.IsFirstProcess;
        if (Resumed is { NothingToDo: not null } finished)
        {
            return Unchanged(dir, finished);
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
            if (_setAside is { } aside)
            {
                RunBranching.SetAside(dir, aside.Archive, aside.Entries, aside.LiveHead, aside.OldHead);
            }
            CheckpointStore.RemoveIncomplete(checkpointsDir);
            WriteRunFile(Path.Combine(dir, RunFileName));
            if (_resumeMetrics is not null)
            {
                AtomicFile.Write(metricsPath, s => s.Write(_resumeMetrics)); // the steps after the checkpoint are run again
            }
        }
        TrainingOutcome outcome;
        string? lastCheckpoint;
        using (var metrics = first ? new MetricsWriter(metricsPath, append: _resumeMetrics is not null) : null)
        {
            var savers = _ranks.Select(rank => new CheckpointSaver(checkpointsDir, CheckpointImage.Create(rank.Trainer.Optimizer.CheckpointPieces, rank.Rank), rank.Backend,
                Options.KeepLast, new CheckpointRanks(rank.Rank, Job.WorldSize, ProcessGroups.Timeout, rank.Group is { } group ? () => group.PeerStopped : null, _abandon.Token), _runId, _parent)).ToArray();
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
                    var reached = rank.Trainer.Run(_resumeState, cancellationToken);
                    rank.Saver!.WaitForLast();
                    return reached;
                })[0];
                lastCheckpoint = savers[0].LastCommitted?.Directory;
            }
            catch (Exception e) when (Job.ProcessCount > 1 && e is RankAbortedException or TimeoutException)
            {
                throw LostRank(e, savers[0].LastGood, dir);
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
                WriteOutput("the loss chart", lastCheckpoint, () => LossChart.Write(Path.Combine(dir, LossChartFileName), metrics.TrainLoss, metrics.EvalLoss, $"{Path.GetFileName(dir)}: loss"));
            }
        }
        if (outcome.NonFinite is { } stop)
        {
            string saved = lastCheckpoint is null ? "no checkpoint could be written" : $"the last good state is saved in '{lastCheckpoint}'";
            throw new UserErrorException($"{stop.Describe()}; {saved} (continue it with --resume)");
        }
        string? adapterDir = null, modelDir = null;
        if (outcome.Cancelled || !first)
        {
            // An unfinished run leaves a checkpoint to resume from, not a final adapter or model; the first process writes those.
        }
        else if (Model.Lora is not null)
        {
            adapterDir = Path.Combine(dir, AdapterDirectoryName);
            WriteOutput($"the adapter into '{adapterDir}'", lastCheckpoint, () => PeftAdapterDirectory.Save(adapterDir, Model, Path.GetFullPath(Options.Model!)));
        }
        else
        {
            modelDir = Path.Combine(dir, ModelDirectoryName);
            WriteOutput($"the model into '{modelDir}'", lastCheckpoint, () =>
            {
                HfModelDirectory.Save(modelDir, Model.Config, Model.Parameters, Tensors.DType.F32, Model.Backend);
                if (Tokenizer is not null)
                {
                    TokenizerCatalog.SaveForModel(modelDir, Tokenizer, Options.Model!);
                }
            });
        }
        return new FinetuneResult(dir, outcome, metricsPath, adapterDir, modelDir, first ? Path.Combine(dir, LossChartFileName) : null, lastCheckpoint);
    }

    /// <summary>
    /// A rank of another process stopped (killed, crashed, its node gone) or stopped answering: this one cannot go on
    /// alone, and says so in one line with what to do, instead of a collective's exception.
    /// </summary>
    private static UserErrorException LostRank(Exception e, string? lastCheckpoint, string outputDir)
    {
        string saved = lastCheckpoint is null ? "no checkpoint of this run was written yet" : $"the last checkpoint is '{lastCheckpoint}'";
        return new UserErrorException($"{e.Message}: the job cannot go on without every rank; {saved}; "
            + $"once every rank can run, start the whole job again with --resume '{outputDir}'", e);
    }

    /// <summary>The result of a resumed run that was already complete: what is on disk, untouched.</summary>
    private FinetuneResult Unchanged(string dir, ResumeInfo finished)
    {
        string? Existing(string name) => Directory.Exists(Path.Combine(dir, name)) ? Path.Combine(dir, name) : null;
        var state = _resumeState!;
        var outcome = new TrainingOutcome(state.Step, state.Epoch, state.LastLoss, state.LastEvalLoss, Cancelled: false, state.SkippedSteps);
        return new FinetuneResult(dir, outcome, Path.Combine(dir, MetricsFileName), Existing(AdapterDirectoryName), Existing(ModelDirectoryName),
            Path.Combine(dir, LossChartFileName), finished.Checkpoint);
    }

    /// <summary>Writes one of the run's outputs; a file-system failure names the checkpoint that still holds everything.</summary>
    private static void WriteOutput(string what, string? checkpoint, Action write)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string safe = checkpoint is null ? "" : $"; the trained weights are safe in checkpoint '{checkpoint}': free space, then write them with 'CudaFinetune export --checkpoint {checkpoint}'";
            throw new UserErrorException($"could not write {what}: {e.Message}{safe}", e);
        }
    }

    /// <summary>The files beside the tensors in a checkpoint: written by the rank that writes the manifest.</summary>
    private IReadOnlyList<CheckpointExtraFile> ExtraFiles(int local)
    {
        if (!Job.IsFirstProcess || local != 0)
        {
            return [];
        }
        string modelConfig = Path.Combine(Options.Model!, "config.json");
        _metrics!.TryWriteHeld(); // lines a full disk held back belong to this checkpoint's steps
        return
        [
            new CheckpointExtraFile(CheckpointFormat.MetricsFileName, _metrics!.Path, _metrics.Length),
            new CheckpointExtraFile(CheckpointFormat.ModelConfigFileName, modelConfig, new FileInfo(modelConfig).Length, FollowLinks: true),
        ];
    }

    private CheckpointManifest DescribeCheckpoint(TrainingRank rank, TrainingState state, CheckpointReason reason)
    {
        var optimizer = rank.Trainer.Optimizer;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            FinetuneOptionsJson.Write(w, WithAbsolutePaths(Options));
        }
        return new CheckpointManifest
        {
            FormatVersion = CheckpointFormat.Version,
            CheckpointId = "",
            EngineVersion = EngineVersion,
            Created = DateTimeOffset.UtcNow,
            Environment = EnvironmentDescription(),
            Backend = rank.Backend.Name,
            WeightDType = rank.Model.TrainableParameters[0].Value.DType,
            MasterDType = rank.Model.TrainableParameters[0].Master?.DType,
            OptimizerDType = optimizer.StateDType,
            WorldSize = Job.WorldSize,
            Reason = reason,
            Training = state,
            Sampler = new SamplerRecord(Options.Shuffle, TrainBatches.Count, Fingerprints.Order(BatchSampler.Order(TrainBatches.Count, state.Sampler.Seed, state.Epoch, Options.Shuffle))),
            Scheduler = SchedulerRecord.Of(rank.Trainer.Schedule),
            Optimizer = new OptimizerRecord(optimizer.Beta1, optimizer.Beta2, optimizer.Epsilon, optimizer.WeightDecay, optimizer.StepCount),
            Fingerprints = _fingerprints,
            ConfigJson = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan),
            Shards = [],
            Tensors = [],
            Files = [],
            Lineage = _lineage, // the saver fills in the parent
        };
    }

    /// <summary>The options with every path absolute, so that a resume from another working directory finds the same files.</summary>
    private static FinetuneOptions WithAbsolutePaths(FinetuneOptions options)
    {
        static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
        return options with
        {
            Model = Full(options.Model), Dataset = Full(options.Dataset), ValidationDataset = Full(options.ValidationDataset),
            OutputDir = Full(options.OutputDir)!, FromPeft = Full(options.FromPeft),
        };
    }

    private static string EngineVersion => typeof(FinetuneSession).Assembly.GetName().Version?.ToString() ?? "unknown";

    private KeyValuePair<string, string>[] EnvironmentDescription() =>
    [
        new("os", RuntimeInformation.OSDescription),
        new("dotnet", RuntimeInformation.FrameworkDescription),
        new("architecture", RuntimeInformation.ProcessArchitecture.ToString()),
        new("processors", Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("backend", _ranks[0].Backend.Name),
        // The vector width changes how the CPU's reductions are split, so results across levels agree only closely.
        new("simd", Backends.Cpu.SimdLevels.Name(Backends.Cpu.SimdLevels.Running)),
    ];

    /// <summary>run.json: the resolved configuration, the model, the data and the environment.</summary>
    private void WriteRunFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WritePropertyName("config");
        // What the run really is: absolute paths, and the world and ranks per process the launch gave it.
        FinetuneOptionsJson.Write(w, WithAbsolutePaths(Options) with { WorldSize = Job.WorldSize, NprocPerNode = Job.LocalRanks });
        w.WriteStartObject("model");
        w.WriteString("path", Path.GetFullPath(Options.Model!));
        w.WriteNumber("vocab_size", Model.Config.VocabSize);
        w.WriteNumber("hidden_size", Model.Config.HiddenSize);
        w.WriteNumber("num_hidden_layers", Model.Config.NumHiddenLayers);
        w.WriteNumber("trainable_parameters", Model.TrainableParameters.Sum(p => p.Value.ElementCount));
        w.WriteString("tokenizer", Tokenizer?.Name);
        w.WriteEndObject();
        w.WriteStartObject("data");
        w.WriteString("format", Data.Format);
        w.WriteNumber("train_examples", Data.Train.Count);
        w.WriteNumber("validation_examples", Data.Validation.Count);
        w.WriteNumber("train_batches", TrainBatches.Count);
        w.WriteNumber("validation_batches", ValidationBatches?.Count ?? 0);
        w.WriteNumber("total_steps", Trainer.TotalSteps);
        w.WriteEndObject();
        w.WriteStartObject("environment");
        w.WriteString("engine_version", EngineVersion);
        foreach (var (key, value) in EnvironmentDescription())
        {
            w.WriteString(key, value);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

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
