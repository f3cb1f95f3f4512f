using System.Runtime.InteropServices;
using System.Text.Json;
using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
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
public sealed class FinetuneSession : IDisposable, ITrainingCheckpoints
{
    public const string RunFileName = "run.json";
    public const string MetricsFileName = "metrics.jsonl";
    public const string LossChartFileName = "loss.png";

    private readonly IBackend _backend;
    private readonly Trainer _trainer;
    private readonly CheckpointFingerprints _fingerprints;
    private TrainingState? _resumeState;
    private byte[]? _resumeMetrics;
    private MetricsWriter? _metrics;
    private CheckpointSaver? _saver;

    private FinetuneSession(FinetuneOptions options, IBackend backend, LlamaModel model, ITokenizer? tokenizer, LoadedDataset data, BatchPlan train, BatchPlan? validation)
    {
        Options = options;
        _backend = backend;
        Model = model;
        Tokenizer = tokenizer;
        Data = data;
        TrainBatches = train;
        ValidationBatches = validation;
        _trainer = new Trainer(model, train, validation, options) { Checkpoints = this };
        _trainer.Progress += e => Progress?.Invoke(e);
        _fingerprints = new CheckpointFingerprints(Fingerprints.Model(options.Model!), Fingerprints.Data(data.Train), Fingerprints.Data(data.Validation));
    }

    /// <summary>Every step, evaluation and epoch end of <see cref="Train"/>.</summary>
    public event Action<TrainingEvent>? Progress;

    public FinetuneOptions Options { get; }
    public LlamaModel Model { get; }
    public ITokenizer? Tokenizer { get; }
    public LoadedDataset Data { get; }
    public BatchPlan TrainBatches { get; }
    public BatchPlan? ValidationBatches { get; }
    public Trainer Trainer => _trainer;

    /// <summary>Set when the session continues from a checkpoint.</summary>
    public ResumeInfo? Resumed { get; private set; }

    /// <summary>
    /// The options a run was saved with, read from the newest checkpoint under <paramref name="path"/>
    /// that opens, with its output directory set to the run's; the starting point for a resume's
    /// options, which flags then override.
    /// </summary>
    public static FinetuneOptions ReadResumeOptions(string path)
    {
        var candidates = CheckpointStore.Resolve(path);
        var problems = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            try
            {
                var saved = SavedOptions(Checkpoint.Open(dir));
                return candidates.OutputDir is { } outputDir ? saved with { OutputDir = outputDir } : saved;
            }
            catch (CheckpointCorruptException e)
            {
                problems.Add(e.Message);
            }
        }
        throw NoValidCheckpoint(path, problems);
    }

    private static UserErrorException NoValidCheckpoint(string path, IEnumerable<string> problems)
        => new($"no valid checkpoint to resume from at '{path}':{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", problems)}");

    private static FinetuneOptions SavedOptions(Checkpoint checkpoint)
        => RunConfigFile.ApplyText(new FinetuneOptions(), checkpoint.Manifest.ConfigJson, $"{checkpoint.Directory}/{CheckpointFormat.ManifestFileName} (config)", yaml: false);

    /// <summary>
    /// Validates the options and loads model, tokenizer and data — and, with <paramref name="resume"/>,
    /// the checkpoint to continue from; throws <see cref="UserErrorException"/> on any problem.
    /// </summary>
    public static FinetuneSession Open(FinetuneOptions options, ResumeRequest? resume = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (string.IsNullOrEmpty(options.Model))
        {
            throw new UserErrorException("--model is required: a model directory in Hugging Face layout (make one with 'CudaFinetune init-model')");
        }
        if (string.IsNullOrEmpty(options.Dataset))
        {
            throw new UserErrorException("--dataset is required: a .json or .jsonl file");
        }
        var candidates = resume is null ? null : CheckpointStore.Resolve(resume.Path);
        CheckOutputDir(options, candidates?.OutputDir);
        var backend = BackendFactory.Create(options.Device, HfModelDirectory.TryReadConfig(options.Model));
        ParameterSet? weights = null;
        LlamaModel? model = null;
        FinetuneSession? session = null;
        try
        {
            (var config, weights) = HfModelDirectory.Load(options.Model, backend);
            options.CheckFits(config);
            var tokenizer = TokenizerCatalog.TryLoadForModel(options.Model);
            var data = DatasetLoader.Load(options, tokenizer, config.VocabSize);
            int padId = tokenizer?.EosId ?? 0;
            var train = BatchPlan.Create(data.Train, options.Batching, options.BatchSize, options.ContextLength, padId);
            var validation = data.Validation.Count > 0 ? BatchPlan.Create(data.Validation, options.Batching, options.BatchSize, options.ContextLength, padId) : null;
            var lora = options.Peft == "lora"
                ? new LoraConfig { Rank = options.LoraR, Alpha = options.LoraAlpha, Dropout = options.LoraDropout, TargetModules = LoraConfig.ParseTargets(options.LoraTargets) }
                : null;
            model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = options.Seed });
            weights = null; // the model owns them now
            HfModelDirectory.LoadMasters(options.Model, model); // full fine-tuning under mixed precision: masters from the file, not from bf16
            session = new FinetuneSession(options, backend, model, tokenizer, data, train, validation);
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
                session.Dispose(); // owns the model and the backend
            }
            else
            {
                model?.Dispose();
                weights?.Dispose();
                backend.Dispose();
            }
            throw;
        }
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

    /// <summary>Loads the newest usable checkpoint of <paramref name="candidates"/> into the model and optimizer.</summary>
    private void RestoreFrom(ResumeCandidates candidates, ResumeRequest request)
    {
        var skipped = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            try
            {
                var checkpoint = Checkpoint.Open(dir);
                var manifest = checkpoint.Manifest;
                var warnings = ResumeCompatibility.Check(checkpoint.Directory, SavedOptions(checkpoint), Options, manifest, _fingerprints, _trainer.TotalSteps, request.Force)
                    .Concat(EnvironmentChanges(manifest)).ToList();
                CheckSampler(checkpoint, request.Force);
                checkpoint.Load(CheckpointTensors().ToDictionary(t => (t.Group, t.Name), t => t.Source), _backend);
                Model.RefreshWorkingWeights();
                _trainer.Optimizer.RestoreStepCount(manifest.Optimizer.StepCount);
                _resumeMetrics = checkpoint.ReadFile(CheckpointFormat.MetricsFileName);
                _resumeState = manifest.Training;
                Resumed = new ResumeInfo(checkpoint.Directory, manifest.Training.Step, manifest.Training.Epoch, warnings, skipped);
                return;
            }
            catch (CheckpointCorruptException e) when (!request.Strict && !candidates.Explicit)
            {
                skipped.Add(e.Message);
            }
        }
        throw NoValidCheckpoint(request.Path, skipped);
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

    /// <summary>What a checkpoint holds: the trainable weights (group model) and AdamW's moments (group optimizer).</summary>
    private IEnumerable<(string Name, string Group, Tensors.Tensor Source)> CheckpointTensors()
    {
        foreach (var p in Model.TrainableParameters)
        {
            yield return (p.Name, CheckpointFormat.ModelGroup, p.FullPrecision);
        }
        foreach (var (p, m, v) in _trainer.Optimizer.State)
        {
            yield return (p.Name + ".exp_avg", CheckpointFormat.OptimizerGroup, m);
            yield return (p.Name + ".exp_avg_sq", CheckpointFormat.OptimizerGroup, v);
        }
    }

    /// <summary>Text from the model for a prompt (greedy unless told otherwise); needs a tokenizer.</summary>
    public string Generate(string prompt, GenerationOptions? options = null)
    {
        var tokenizer = Tokenizer ?? throw new UserErrorException("the model directory records no tokenizer, so text cannot be generated");
        var output = new TextGenerator(Model).Generate(tokenizer.EncodePrompt(prompt), options ?? new GenerationOptions { MaxNewTokens = 16 }, tokenizer.EosId);
        return tokenizer.Decode(output.Where(id => id != tokenizer.EosId));
    }

    /// <summary>
    /// Trains (from the checkpoint when resumed), saving checkpoints on the way, then writes the outputs.
    /// Cancelling stops after the current step and writes a checkpoint; the adapter/model are written
    /// only when the run finished. Returns once the last checkpoint is on disk.
    /// </summary>
    public FinetuneResult Train(CancellationToken cancellationToken = default)
    {
        string dir = Path.GetFullPath(Options.OutputDir);
        Directory.CreateDirectory(dir);
        string checkpointsDir = CheckpointStore.CheckpointsDirectory(dir);
        if (Resumed is null && Options.Overwrite)
        {
            CheckpointStore.TryDeleteDirectory(checkpointsDir); // --overwrite: the earlier run's checkpoints go with it
        }
        CheckpointStore.RemoveIncomplete(checkpointsDir);
        WriteRunFile(Path.Combine(dir, RunFileName));
        string metricsPath = Path.Combine(dir, MetricsFileName);
        if (_resumeMetrics is not null)
        {
            AtomicFile.Write(metricsPath, s => s.Write(_resumeMetrics)); // the steps after the checkpoint are run again
        }
        TrainingOutcome outcome;
        string? lastCheckpoint;
        using (var metrics = new MetricsWriter(metricsPath, append: _resumeMetrics is not null))
        using (var saver = new CheckpointSaver(checkpointsDir, CheckpointImage.Create(CheckpointTensors()), _backend, Options.KeepLast))
        {
            void Record(TrainingEvent e)
            {
                metrics.Write(e);
                if (e is StepCompleted)
                {
                    saver.ReportCompleted();
                }
            }
            void Report(CheckpointSaved e) => Progress?.Invoke(e);
            _trainer.Progress += Record;
            saver.Saved += Report;
            (_metrics, _saver) = (metrics, saver);
            try
            {
                outcome = _trainer.Run(_resumeState, cancellationToken);
                saver.WaitForPending();
            }
            finally
            {
                _trainer.Progress -= Record;
                saver.Saved -= Report;
                (_metrics, _saver) = (null, null);
            }
            lastCheckpoint = saver.LastCommitted?.Directory;
            string chart = Path.Combine(dir, LossChartFileName);
            LossChart.Write(chart, metrics.TrainLoss, metrics.EvalLoss, $"{Path.GetFileName(dir)}: loss");
        }
        string? adapterDir = null, modelDir = null;
        if (outcome.Cancelled)
        {
            // An unfinished run leaves a checkpoint to resume from, not a final adapter or model.
        }
        else if (Model.Lora is not null)
        {
            adapterDir = Path.Combine(dir, "adapter");
            PeftAdapterDirectory.Save(adapterDir, Model, Path.GetFullPath(Options.Model!));
        }
        else
        {
            modelDir = Path.Combine(dir, "model");
            HfModelDirectory.Save(modelDir, Model.Config, Model.Parameters, Tensors.DType.F32, Model.Backend);
            if (Tokenizer is not null)
            {
                TokenizerCatalog.WriteRecord(modelDir, Tokenizer);
            }
        }
        return new FinetuneResult(dir, outcome, metricsPath, adapterDir, modelDir, Path.Combine(dir, LossChartFileName), lastCheckpoint);
    }

    /// <summary>Called by the trainer between steps: describes the state and hands it to the background saver.</summary>
    void ITrainingCheckpoints.Save(TrainingState state, CheckpointReason reason)
    {
        var saver = _saver ?? throw new InvalidOperationException("checkpoints are saved only during Train");
        string modelConfig = Path.Combine(Options.Model!, "config.json");
        saver.Save(DescribeCheckpoint(state, reason),
        [
            new CheckpointExtraFile(CheckpointFormat.MetricsFileName, _metrics!.Path, _metrics.Length),
            new CheckpointExtraFile(CheckpointFormat.ModelConfigFileName, modelConfig, new FileInfo(modelConfig).Length),
        ]);
    }

    private CheckpointManifest DescribeCheckpoint(TrainingState state, CheckpointReason reason)
    {
        var optimizer = _trainer.Optimizer;
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
            Backend = _backend.Name,
            WeightDType = Model.TrainableParameters[0].Value.DType,
            MasterDType = Model.TrainableParameters[0].Master?.DType,
            OptimizerDType = optimizer.State[0].M.DType,
            WorldSize = 1,
            Reason = reason,
            Training = state,
            Sampler = new SamplerRecord(Options.Shuffle, TrainBatches.Count, Fingerprints.Order(BatchSampler.Order(TrainBatches.Count, state.Sampler.Seed, state.Epoch, Options.Shuffle))),
            Scheduler = new SchedulerRecord(Options.Scheduler, Options.Lr, Options.WarmupSteps, _trainer.TotalSteps, Options.Gamma),
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
        new("backend", _backend.Name),
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
        w.WriteNumber("total_steps", _trainer.TotalSteps);
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
        _trainer.Dispose();
        Model.Dispose();
        _backend.Dispose();
    }
}
