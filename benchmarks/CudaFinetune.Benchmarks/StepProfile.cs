using System.Diagnostics;
using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Lora;
using CudaFinetune.Model;

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
        var weights = LlamaWeights.Allocate(backend, config);
        LlamaInitializer.Initialize(backend, weights, config, seed: 1);
        var lora = mode == "full" ? null : new LoraConfig { TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        using var model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora });
        var rng = new Random(2);
        var batch = new TokenBatch(batchSize, seqLen, [.. Enumerable.Range(0, batchSize * seqLen).Select(_ => rng.Next(config.VocabSize))]);
        model.ForwardBackward(batch, 0);
        backend.Reset();
        const int steps = 5;
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= steps; step++)
        {
            model.ZeroGradients();
            model.ForwardBackward(batch, step);
        }
        double seconds = clock.Elapsed.TotalSeconds / steps;
        Console.WriteLine($"bench-tiny {mode} step on {device}: {seconds * 1000:F1} ms, {batch.Tokens / seconds:F0} tokens/s ({steps} steps)");
        Console.Write(backend.Report());
    }
}
