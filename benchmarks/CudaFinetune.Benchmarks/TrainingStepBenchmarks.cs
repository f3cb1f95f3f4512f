using BenchmarkDotNet.Attributes;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Lora;
using CudaFinetune.Model;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// One forward + backward of bench-tiny (vocab 8192, hidden 256, 4 layers) on batch 8 × seq 256:
/// LoRA r=8 on q/k/v/o (the reference step), and full fine-tuning. The optimizer step is
/// not part of this yet.
/// </summary>
[MemoryDiagnoser]
public class TrainingStepBenchmarks : IThroughputBenchmark
{
    private const int Batch = 8, SeqLen = 256;
    private CpuBackend _backend = null!;
    private LlamaModel _model = null!;
    private TokenBatch _batch = null!;
    private long _step;

    [Params("lora-qkvo-r8", "full")]
    public string Mode { get; set; } = "lora-qkvo-r8";

    public string Unit => "tokens/s";

    public double UnitScale => 1;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => Batch * SeqLen;

    [GlobalSetup]
    public void Setup()
    {
        var config = LlamaPresets.BenchTiny;
        _backend = new CpuBackend();
        var weights = LlamaWeights.Allocate(_backend, config);
        LlamaInitializer.Initialize(_backend, weights, config, seed: 1);
        var lora = Mode == "full" ? null : new LoraConfig { Rank = 8, Alpha = 32, Dropout = 0.05, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        _model = new LlamaModel(_backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = 1 });
        var rng = new Random(2);
        _batch = new TokenBatch(Batch, SeqLen, [.. Enumerable.Range(0, Batch * SeqLen).Select(_ => rng.Next(config.VocabSize))]);
        _model.ForwardBackward(_batch, 0);
    }

    [Benchmark]
    public double ForwardBackward()
    {
        _model.ZeroGradients();
        return _model.ForwardBackward(_batch, ++_step).Mean;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _backend.Dispose();
    }
}
