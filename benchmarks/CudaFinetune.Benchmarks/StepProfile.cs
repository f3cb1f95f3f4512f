using System.Diagnostics;
using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Lora;
using CudaFinetune.Model;

namespace CudaFinetune.Benchmarks;

/// <summary>Op-by-op time of the bench-tiny training step (batch 8 × seq 256), through <see cref="ProfilingBackend"/>.</summary>
internal static class StepProfile
{
    public static void Run(string mode)
    {
        var config = LlamaPresets.BenchTiny;
        using var backend = new ProfilingBackend(new CpuBackend());
        var weights = LlamaWeights.Allocate(backend, config);
        LlamaInitializer.Initialize(backend, weights, config, seed: 1);
        var lora = mode == "full" ? null : new LoraConfig { TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        using var model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora });
        var rng = new Random(2);
        var batch = new TokenBatch(8, 256, [.. Enumerable.Range(0, 8 * 256).Select(_ => rng.Next(config.VocabSize))]);
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
        Console.WriteLine($"bench-tiny {mode} step: {seconds * 1000:F1} ms, {batch.Tokens / seconds:F0} tokens/s ({steps} steps)");
        Console.Write(backend.Report());
    }
}
