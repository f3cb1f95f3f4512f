using CudaFinetune.Backends.Cpu;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// The benchmarks' reference training step on the CPU: bench-tiny (vocab 8192, hidden 256, 4 layers), batch
/// 8 × seq 256, LoRA r=8 on q/k/v/o or full fine-tuning; warmed up by one step on construction.
/// </summary>
internal sealed class BenchTinyStep : IDisposable
{
    public const int Batch = 8, SeqLen = 256;
    private readonly TrainingStepWorkload _workload;

    public BenchTinyStep(bool fullFineTuning)
    {
        Backend = new CpuBackend();
        var lora = fullFineTuning ? null : new LoraConfig { Rank = 8, Alpha = 32, Dropout = 0.05, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        _workload = new TrainingStepWorkload(Backend, LlamaPresets.BenchTiny, Batch, SeqLen, lora);
    }

    public CpuBackend Backend { get; }

    public LlamaModel Model => _workload.Model;

    /// <summary>One forward and backward pass; returns the mean loss.</summary>
    public double Run() => _workload.ForwardBackward();

    /// <summary>One whole optimizer step (with AdamW); returns the mean loss.</summary>
    public double RunStep() => _workload.Step();

    public void Dispose()
    {
        _workload.Dispose();
        Backend.Dispose();
    }
}
