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

/// <summary>What a resumed session continues from, the changes it accepted, and damaged checkpoints it passed over.</summary>
public sealed record ResumeInfo(string Checkpoint, long Step, int Epoch, IReadOnlyList<string> Warnings, IReadOnlyList<string> Skipped);

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

    private readonly TrainingRank[] _ranks;
    private readonly byte[] _runId;
    private readonly CheckpointFingerprints _fingerprints;
    private readonly CancellationTokenSource _abandon = new();
    private TrainingState? _resumeState;
    private byte[]? _resumeMetrics;
    private MetricsWriter? _metrics;

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
    }

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

    /// <summary>Set when the session continues from a checkpoint.</summary>
    public ResumeInfo? Resumed { get; private set; }

    /// <summary>
    /// The options a run was saved with, read from the newest checkpoint under <paramref name="path"/>
    /// that opens, with its output directory set to the run's; the starting point for a resume's
    /// options, which flags then override.
    /// </summary>
    public static FinetuneOptions ReadResumeOptions(string path) => OpenNewestSaved(path, "resume from").Options;

    /// <summary>
    /// The newest checkpoint under <paramref name="path"/> (an output directory or one checkpoint) that opens, and the
    /// options its run was saved with, output directory set to the run's; <see cref="UserErrorException"/> listing every
    /// damaged one when none opens. <paramref name="purpose"/> completes "no valid checkpoint to …".
    /// </summary>
    internal static (Checkpoint Checkpoint, FinetuneOptions Options) OpenNewestSaved(string path, string purpose)
    {
        var candidates = CheckpointStore.Resolve(path);
        var problems = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            try
            {
                var checkpoint = Checkpoint.Open(dir);
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
            throw new UserErrorException("--dataset is required: a .json or .jsonl file");
        }
        var job = JobTopology.Resolve(options.WorldSize, options.NprocPerNode, launch);
        var candidates = resume is null ? null : CheckpointStore.Resolve(resume.Path);
        if (job.IsFirstProcess)
        {
            CheckOutputDir(options, candidates?.OutputDir);
        }
        var modelConfig = HfModelDirectory.TryReadConfig(options.Model);
        var backends = new List<IBackend>();
        var replicas = new List<(IBackend Backend, LlamaModel Model, IDisposable? LayerWeights)>();
        ProcessGroups? groups = null;
        FinetuneSession? session = null;
        try
        {
            int cpuThreads = Math.Max(1, Environment.ProcessorCount / job.LocalRanks);
            for (int local = 0; local < job.LocalRanks; local++)
            {
                backends.Add(BackendFactory.Create(options.Device, modelConfig, job.DeviceOrdinal(local), cpuThreads));
            }
            groups = ProcessGroups.Open(job, backends);
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
            var validation = data.Validation.Count > 0 ? BatchPlan.Create(data.Validation, options.Batching, options.BatchSize, options.ContextLength, padId) : null;
            session = new FinetuneSession(options, job, tokenizer, data, train, validation, replicas, groups);
            if (resume is not null)
            {
                session.RestoreFrom(candidates!, resume);
            }
            return session;
        }
        catch
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
            }
            throw;
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
        if (File.Exists(dir))
        {
            throw new UserErrorException($"--output-dir '{dir}' is a file; give a directory");
        }
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
    /// world size wrote it. The ranks read their pieces in parallel and agree before going on: when any finds its part
    /// damaged, all pass on to the next checkpoint together.
    /// </summary>
    private void RestoreFrom(ResumeCandidates candidates, ResumeRequest request)
    {
        var skipped = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            string? problem;
            Checkpoint checkpoint;
            try
            {
                checkpoint = Checkpoint.Open(dir);
            }
            catch (CheckpointCorruptException e) when (!request.Strict && !candidates.Explicit)
            {
                skipped.Add(e.Message);
                continue;
            }
            var manifest = checkpoint.Manifest;
            var warnings = ResumeCompatibility.Check(checkpoint.Directory, SavedOptions(checkpoint), Options, manifest, _fingerprints, Trainer.TotalSteps, request.Force)
                .Concat(EnvironmentChanges(manifest)).ToList();
            CheckSampler(checkpoint, request.Force);
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
                rank.Trainer.Optimizer.RestoreStepCount(manifest.Optimizer.StepCount);
                return null;
            });
            problem = problems.FirstOrDefault(p => p is not null);
            if (problem is not null)
            {
                if (request.Strict || candidates.Explicit)
                {
                    throw new CheckpointCorruptException(checkpoint.Directory, null, null, problem);
                }
                skipped.Add(problem);
                continue;
            }
            if (manifest.WorldSize != Job.WorldSize)
            {
                warnings.Add($"the checkpoint was written by {manifest.WorldSize} rank(s) and this run has {Job.WorldSize}: its optimizer state was resharded; each step now takes {Trainer.BatchesPerStep} micro-batch(es) (set --gradient-accumulation-steps to keep the global batch)");
            }
            _resumeMetrics = checkpoint.ReadFile(CheckpointFormat.MetricsFileName);
            _resumeState = manifest.Training;
            Resumed = new ResumeInfo(checkpoint.Directory, manifest.Training.Step, manifest.Training.Epoch, warnings, skipped);
            return;
        }
        throw NoValidCheckpoint(request.Path, skipped);
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
        Directory.CreateDirectory(dir);
        string checkpointsDir = CheckpointStore.CheckpointsDirectory(dir);
        string metricsPath = Path.Combine(dir, MetricsFileName);
        bool first = Job.IsFirstProcess;
        using var runLock = first ? RunLock.Acquire(dir) : null; // a second run on this directory is refused
        if (first)
        {
            if (Resumed is null && Options.Overwrite)
            {
                CheckpointStore.TryDeleteDirectory(checkpointsDir); // --overwrite: the earlier run's checkpoints go with it
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
                Options.KeepLast, new CheckpointRanks(rank.Rank, Job.WorldSize, ProcessGroups.Timeout, _abandon.Token), _runId)).ToArray();
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
            adapterDir = Path.Combine(dir, "adapter");
            WriteOutput($"the adapter into '{adapterDir}'", lastCheckpoint, () => PeftAdapterDirectory.Save(adapterDir, Model, Path.GetFullPath(Options.Model!)));
        }
        else
        {
            modelDir = Path.Combine(dir, "model");
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
            new CheckpointExtraFile(CheckpointFormat.ModelConfigFileName, modelConfig, new FileInfo(modelConfig).Length),
        ];
    }

    private CheckpointManifest DescribeCheckpoint(TrainingRank rank, TrainingState state, CheckpointReason reason)
    {
        var optimizer = rank.Trainer.Optimizer;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            // Absolute paths, so that a resume from another working directory finds the same files.
            static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
            FinetuneOptionsJson.Write(w, Options with { Model = Full(Options.Model), Dataset = Full(Options.Dataset), ValidationDataset = Full(Options.ValidationDataset), OutputDir = Full(Options.OutputDir)! });
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
            Scheduler = new SchedulerRecord(Options.Scheduler, Options.Lr, Options.WarmupSteps, rank.Trainer.TotalSteps, Options.Gamma),
            Optimizer = new OptimizerRecord(optimizer.Beta1, optimizer.Beta2, optimizer.Epsilon, optimizer.WeightDecay, optimizer.StepCount),
            Fingerprints = _fingerprints,
            ConfigJson = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan),
            Shards = [],
            Tensors = [],
            Files = [],
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
    ];

    /// <summary>run.json: the resolved configuration, the model, the data and the environment.</summary>
    private void WriteRunFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WritePropertyName("config");
        FinetuneOptionsJson.Write(w, Options);
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
    }
}
