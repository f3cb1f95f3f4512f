using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>
/// The files a run leaves in its output directory besides checkpoints and metrics: run.json at the start, the trained
/// adapter (PEFT layout) or model at the end. A write that fails names the checkpoint that still holds the weights.
/// </summary>
internal static class RunFiles
{
    /// <summary>The options with every path absolute, so that a resume from another working directory finds the same files.</summary>
    public static FinetuneOptions WithAbsolutePaths(FinetuneOptions options)
    {
        static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
        return options with
        {
            Model = Full(options.Model), Dataset = Full(options.Dataset), ValidationDataset = Full(options.ValidationDataset),
            OutputDir = Full(options.OutputDir)!, FromPeft = Full(options.FromPeft),
        };
    }

    /// <summary>run.json: the resolved configuration, the model, the data and the environment.</summary>
    public static void WriteRunFile(string path, FinetuneSession session)
    {
        var (options, job, model) = (session.Options, session.Job, session.Model);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WritePropertyName("config");
        // What the run really is: absolute paths, and the world and ranks per process the launch gave it.
        FinetuneOptionsJson.Write(w, WithAbsolutePaths(options) with { WorldSize = job.WorldSize, NprocPerNode = job.LocalRanks });
        w.WriteStartObject("model");
        w.WriteString("path", Path.GetFullPath(options.Model!));
        w.WriteNumber("vocab_size", model.Config.VocabSize);
        w.WriteNumber("hidden_size", model.Config.HiddenSize);
        w.WriteNumber("num_hidden_layers", model.Config.NumHiddenLayers);
        w.WriteNumber("trainable_parameters", model.TrainableParameters.Sum(p => p.Value.ElementCount));
        w.WriteString("tokenizer", session.Tokenizer?.Name);
        w.WriteEndObject();
        w.WriteStartObject("data");
        w.WriteString("format", session.Data.Format);
        w.WriteNumber("train_examples", session.Data.Train.Count);
        w.WriteNumber("validation_examples", session.Data.Validation.Count);
        w.WriteNumber("train_batches", session.TrainBatches.Count);
        w.WriteNumber("validation_batches", session.ValidationBatches?.Count ?? 0);
        w.WriteNumber("total_steps", session.Trainer.TotalSteps);
        w.WriteEndObject();
        w.WriteStartObject("environment");
        w.WriteString("engine_version", RunEnvironment.EngineVersion);
        foreach (var (key, value) in RunEnvironment.Describe(model.Backend.Name))
        {
            w.WriteString(key, value);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>
    /// Writes what a finished run trained into <paramref name="dir"/>: the adapter of a LoRA run, else the model (with the
    /// tokenizer files). Returns (adapter directory, model directory), one of them null.
    /// </summary>
    public static (string? AdapterDir, string? ModelDir) WriteTrained(FinetuneSession session, string dir, string? lastCheckpoint)
    {
        var model = session.Model;
        string baseModel = Path.GetFullPath(session.Options.Model!);
        if (model.Lora is not null)
        {
            string adapterDir = Path.Combine(dir, RunFileNames.AdapterDirectoryName);
            Write($"the adapter into '{adapterDir}'", lastCheckpoint, () => PeftAdapterDirectory.Save(adapterDir, model, baseModel));
            return (adapterDir, null);
        }
        string modelDir = Path.Combine(dir, RunFileNames.ModelDirectoryName);
        Write($"the model into '{modelDir}'", lastCheckpoint, () =>
        {
            HfModelDirectory.Save(modelDir, model.Config, model.Parameters, Tensors.DType.F32, model.Backend);
            if (session.Tokenizer is not null)
            {
                TokenizerCatalog.SaveForModel(modelDir, session.Tokenizer, session.Options.Model!);
            }
        });
        return (null, modelDir);
    }

    /// <summary>The result of a resumed run that was already complete: what is on disk, untouched.</summary>
    public static FinetuneResult Unchanged(string dir, ResumeInfo finished, TrainingState state)
    {
        string? Existing(string name) => Directory.Exists(Path.Combine(dir, name)) ? Path.Combine(dir, name) : null;
        var outcome = new TrainingOutcome(state.Step, state.Epoch, state.LastLoss, state.LastEvalLoss, Cancelled: false, state.SkippedSteps);
        return new FinetuneResult(dir, outcome, Path.Combine(dir, RunFileNames.MetricsFileName), Existing(RunFileNames.AdapterDirectoryName),
            Existing(RunFileNames.ModelDirectoryName), Path.Combine(dir, RunFileNames.LossChartFileName), finished.Checkpoint);
    }

    /// <summary>Writes one of the run's outputs; a file-system failure names the checkpoint that still holds everything.</summary>
    public static void Write(string what, string? checkpoint, Action write)
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
}
