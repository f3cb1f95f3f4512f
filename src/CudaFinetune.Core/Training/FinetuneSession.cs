using System.Runtime.InteropServices;
using System.Text.Json;
using CudaFinetune.Backends;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Lora;
using CudaFinetune.Model;
using CudaFinetune.Reporting;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Training;

/// <summary>Where a finished run left its results.</summary>
public sealed record FinetuneResult(string OutputDir, TrainingOutcome Outcome, string MetricsPath, string? AdapterDir, string? ModelDir, string? LossChartPath);

/// <summary>
/// One fine-tuning run from options to files, the engine API the CLI's <c>finetune</c> is built on:
/// <see cref="Open"/> loads and checks everything (model, tokenizer, data, output directory) before
/// any training; <see cref="Train"/> runs the loop and writes <c>run.json</c>, <c>metrics.jsonl</c>,
/// <c>loss.png</c> and the trained adapter (<c>adapter/</c>, PEFT layout) or model (<c>model/</c>).
/// </summary>
public sealed class FinetuneSession : IDisposable
{
    public const string RunFileName = "run.json";
    public const string MetricsFileName = "metrics.jsonl";
    public const string LossChartFileName = "loss.png";

    private readonly IBackend _backend;
    private readonly Trainer _trainer;

    private FinetuneSession(FinetuneOptions options, IBackend backend, LlamaModel model, ITokenizer? tokenizer, LoadedDataset data, BatchPlan train, BatchPlan? validation)
    {
        Options = options;
        _backend = backend;
        Model = model;
        Tokenizer = tokenizer;
        Data = data;
        TrainBatches = train;
        ValidationBatches = validation;
        _trainer = new Trainer(model, train, validation, options);
        _trainer.Progress += e => Progress?.Invoke(e);
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

    /// <summary>Validates the options and loads model, tokenizer and data; throws <see cref="UserErrorException"/> on any problem.</summary>
    public static FinetuneSession Open(FinetuneOptions options)
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
        CheckOutputDir(options);
        var backend = BackendFactory.Create(options.Device);
        ParameterSet? weights = null;
        LlamaModel? model = null;
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
            return new FinetuneSession(options, backend, model, tokenizer, data, train, validation);
        }
        catch
        {
            model?.Dispose();
            weights?.Dispose();
            backend.Dispose();
            throw;
        }
    }

    private static void CheckOutputDir(FinetuneOptions options)
    {
        string dir = options.OutputDir;
        if (File.Exists(dir))
        {
            throw new UserErrorException($"--output-dir '{dir}' is a file; give a directory");
        }
        bool earlierRun = File.Exists(Path.Combine(dir, RunFileName)) || File.Exists(Path.Combine(dir, MetricsFileName));
        if (earlierRun && !options.Overwrite)
        {
            throw new UserErrorException($"--output-dir '{dir}' already holds a run (run.json / metrics.jsonl); choose another directory or pass --overwrite to replace it");
        }
    }

    /// <summary>Text from the model for a prompt (greedy unless told otherwise); needs a tokenizer.</summary>
    public string Generate(string prompt, GenerationOptions? options = null)
    {
        var tokenizer = Tokenizer ?? throw new UserErrorException("the model directory records no tokenizer, so text cannot be generated");
        var output = new TextGenerator(Model).Generate(tokenizer.EncodePrompt(prompt), options ?? new GenerationOptions { MaxNewTokens = 16 }, tokenizer.EosId);
        return tokenizer.Decode(output.Where(id => id != tokenizer.EosId));
    }

    /// <summary>Trains, then writes the outputs. Cancelling stops after the current step and still writes them.</summary>
    public FinetuneResult Train(CancellationToken cancellationToken = default)
    {
        string dir = Path.GetFullPath(Options.OutputDir);
        Directory.CreateDirectory(dir);
        WriteRunFile(Path.Combine(dir, RunFileName));
        string metricsPath = Path.Combine(dir, MetricsFileName);
        TrainingOutcome outcome;
        using (var metrics = new MetricsWriter(metricsPath))
        {
            void Record(TrainingEvent e) => metrics.Write(e);
            _trainer.Progress += Record;
            try
            {
                outcome = _trainer.Run(cancellationToken);
            }
            finally
            {
                _trainer.Progress -= Record;
            }
            string chart = Path.Combine(dir, LossChartFileName);
            LossChart.Write(chart, metrics.TrainLoss, metrics.EvalLoss, $"{Path.GetFileName(dir)}: loss");
        }
        string? adapterDir = null, modelDir = null;
        if (Model.Lora is not null)
        {
            adapterDir = Path.Combine(dir, "adapter");
            PeftAdapterDirectory.Save(adapterDir, Model, Path.GetFullPath(Options.Model!));
        }
        else
        {
            modelDir = Path.Combine(dir, "model");
            HfModelDirectory.Save(modelDir, Model.Config, Model.Parameters, Tensors.DType.F32);
            if (Tokenizer is not null)
            {
                TokenizerCatalog.WriteRecord(modelDir, Tokenizer);
            }
        }
        return new FinetuneResult(dir, outcome, metricsPath, adapterDir, modelDir, Path.Combine(dir, LossChartFileName));
    }

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
        w.WriteString("engine_version", typeof(FinetuneSession).Assembly.GetName().Version?.ToString());
        w.WriteString("dotnet", RuntimeInformation.FrameworkDescription);
        w.WriteString("os", RuntimeInformation.OSDescription);
        w.WriteString("backend", _backend.Name);
        w.WriteNumber("processors", Environment.ProcessorCount);
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
