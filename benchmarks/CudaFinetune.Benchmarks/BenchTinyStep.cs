using CudaFinetune.Backends.Cpu;
using CudaFinetune.Lora;
using CudaFinetune.Model;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// The benchmarks' reference training step: bench-tiny (vocab 8192, hidden 256, 4 layers), batch
/// 8 × seq 256, LoRA r=8 on q/k/v/o or full fine-tuning; warmed up by one step on construction.
/// </summary>
internal sealed class BenchTinyStep : IDisposable
{
    public const int Batch = 8, SeqLen = 256;
    private readonly TokenBatch _batch;
    private long _step;

    public BenchTinyStep(bool fullFineTuning)
    {
        var config = LlamaPresets.BenchTiny;
        Backend = new CpuBackend();
        Weights = LlamaWeights.Allocate(Backend, config);
        LlamaInitializer.Initialize(Backend, Weights, config, seed: 1);
        var lora = fullFineTuning ? null : new LoraConfig { Rank = 8, Alpha = 32, Dropout = 0.05, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        Model = new LlamaModel(Backend, config, Weights, new LlamaModelOptions { Lora = lora, Seed = 1 });
        var rng = new Random(2);
        _batch = new TokenBatch(Batch, SeqLen, [.. Enumerable.Range(0, Batch * SeqLen).Select(_ => rng.Next(config.VocabSize))]);
        Model.ForwardBackward(_batch, 0);
    }

    public CpuBackend Backend { get; }

    /// <summary>The base weights (owned by <see cref="Model"/>).</summary>
    public ParameterSet Weights { get; }

    public LlamaModel Model { get; }

    /// <summary>One forward and backward pass; returns the mean loss.</summary>
    public double Run()
    {
        Model.ZeroGradients();
        return Model.ForwardBackward(_batch, ++_step).Mean;
    }

    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
    }
}
