using BenchmarkDotNet.Attributes;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// One forward + backward of bench-tiny (vocab 8192, hidden 256, 4 layers) on batch 8 × seq 256:
/// LoRA r=8 on q/k/v/o (the reference step), and full fine-tuning. The optimizer step is
/// not part of this yet.
/// </summary>
[MemoryDiagnoser]
public class TrainingStepBenchmarks : IThroughputBenchmark
{
    private BenchTinyStep _step = null!;

    [Params("lora-qkvo-r8", "full")]
    public string Mode { get; set; } = "lora-qkvo-r8";

    public string Unit => "tokens/s";

    public double UnitScale => 1;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => BenchTinyStep.Batch * BenchTinyStep.SeqLen;

    [GlobalSetup]
    public void Setup() => _step = new BenchTinyStep(fullFineTuning: Mode == "full");

    [Benchmark]
    public double ForwardBackward() => _step.Run();

    [GlobalCleanup]
    public void Cleanup() => _step.Dispose();
}
