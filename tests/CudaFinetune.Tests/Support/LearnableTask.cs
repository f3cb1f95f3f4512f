using CudaFinetune.Backends.Cpu;
using CudaFinetune.Config;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// A small model directory and a pretokenized dataset with an obvious rule (each token is the
/// previous one plus one, modulo the vocabulary), so that a few seconds of training visibly lower
/// the loss from ln(32) ≈ 3.47.
/// </summary>
internal static class LearnableTask
{
    public static LlamaConfig Config { get; } = new()
    {
        VocabSize = 32,
        HiddenSize = 32,
        IntermediateSize = 64,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 64,
        RmsNormEps = 1e-5,
        InitializerRange = 0.15,
        TieWordEmbeddings = false,
    };

    /// <summary>
    /// The task's model with 64-wide heads (2 query heads, 1 key/value head), the smallest head size the
    /// attention kernels take: what the cuda backends train.
    /// </summary>
    public static LlamaConfig KernelSizedConfig { get; } = Config with { HiddenSize = 128, IntermediateSize = 128, NumAttentionHeads = 2, NumKeyValueHeads = 1 };

    /// <summary>
    /// Writes the model (<see cref="Config"/> unless told otherwise) into <paramref name="directory"/>/model and the
    /// data into data.jsonl; returns both paths.
    /// </summary>
    public static (string Model, string Dataset) Write(string directory, LlamaConfig? config = null)
    {
        config ??= Config;
        string model = Path.Combine(directory, "model");
        using (var backend = new CpuBackend(threads: 1))
        using (var weights = LlamaWeights.Allocate(backend, config))
        {
            LlamaInitializer.Initialize(backend, weights, config, seed: 3);
            HfModelDirectory.Save(model, config, weights, Tensors.DType.F32);
        }
        string data = Path.Combine(directory, "data.jsonl");
        var rng = new Random(4);
        File.WriteAllLines(data, Enumerable.Range(0, 48).Select(_ =>
        {
            int start = rng.Next(32);
            return "{\"input_ids\": [" + string.Join(", ", Enumerable.Range(0, 17).Select(i => (start + i) % 32)) + "]}";
        }));
        return (model, data);
    }

    /// <summary>Options that learn the task in a few seconds with LoRA.</summary>
    public static FinetuneOptions Options(string model, string dataset, string outputDir) => new()
    {
        Model = model,
        Dataset = dataset,
        OutputDir = outputDir,
        Peft = "lora",
        LoraR = 8,
        LoraAlpha = 16,
        LoraDropout = 0.1,
        LoraTargets = "all-linear",
        BatchSize = 4,
        ContextLength = 16,
        NumEpochs = 8,
        Lr = 1e-2,
        Scheduler = SchedulerKind.Constant,
        ValidationFraction = 0.25,
        EvalEvery = 5,
        Seed = 7,
        Device = "cpu",
    };
}
