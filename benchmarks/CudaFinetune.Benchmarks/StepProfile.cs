using System.Diagnostics;
using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// Op-by-op time of the bench-tiny training step (batch 8 × seq 256), through <see cref="ProfilingBackend"/>; with
/// device cuda-emulated, of a small step (batch 2 × seq 64, 64-wide heads) on the kernel emulator, whose launches are synchronous.
/// </summary>
internal static class StepProfile
{
    public static void Run(string mode, string device = "cpu")
    {
        bool emulated = device == "cuda-emulated";
        var config = emulated ? LlamaPresets.BenchTiny with { NumAttentionHeads = 4, NumKeyValueHeads = 2, VocabSize = 512 } : LlamaPresets.BenchTiny;
        var (batchSize, seqLen) = emulated ? (2, 64) : (8, 256);
        using var backend = new ProfilingBackend(emulated ? CudaBackend.OpenEmulated() : new CpuBackend());
        var lora = mode == "full" ? null : new LoraConfig { TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        using var workload = new TrainingStepWorkload(backend, config, batchSize, seqLen, lora);
        backend.Reset();
        const int steps = 5;
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= steps; step++)
        {
            workload.ForwardBackward();
        }
        double seconds = clock.Elapsed.TotalSeconds / steps;
        Console.WriteLine($"bench-tiny {mode} step on {device}: {seconds * 1000:F1} ms, {workload.TokensPerStep / seconds:F0} tokens/s ({steps} steps)");
        Console.Write(backend.Report());
    }
}
