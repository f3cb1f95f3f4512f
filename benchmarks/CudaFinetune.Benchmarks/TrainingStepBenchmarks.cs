using BenchmarkDotNet.Attributes;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// bench-tiny (vocab 8192, hidden 256, 4 layers) on batch 8 × seq 256: LoRA r=8 on q/k/v/o with dropout 0.05 (the
/// reference step) and full fine-tuning; <see cref="ForwardBackward"/> alone, and <see cref="Step"/> — the whole
/// optimizer step (gradients zeroed, forward, backward, gradient norm, AdamW) as the trainer takes it.
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

    [Benchmark]
    public double Step() => _step.RunStep();

    [GlobalCleanup]
    public void Cleanup() => _step.Dispose();
}
