using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Config;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Benchmarking;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>bench attention</c> and <c>bench step</c>: how fast this machine runs flash attention (forward and backward,
/// TFLOP/s) and a whole training step of a randomly initialised model (tokens/s, peak memory). The GPU check
/// (scripts/gpu-check.sh) runs them beside PyTorch on the same card. Timings are wall-clock over several
/// repetitions after a warm-up, each waited for on the device. Every result is also printed as one
/// "result NAME VALUE" line for scripts.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure attention TFLOP/s and training-step tokens/s on this machine");
        command.Subcommands.Add(CreateAttention());
        command.Subcommands.Add(CreateStep());
        return command;
    }

    private static Option<int> Positive(string name, int value, string description)
    {
        var option = new Option<int>(name) { Description = description, DefaultValueFactory = _ => value };
        option.Validators.Add(result =>
        {
            // Validators run even when the value did not parse (the parser reports that itself); reading it would throw.
            if (result.Tokens is [var token] && int.TryParse(token.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int given) && given < 1)
            {
                result.AddError($"{name} must be at least 1");
            }
        });
        return option;
    }

    private static Command CreateAttention()
    {
        var device = new Option<string>("--device") { Description = "auto (GPU 0, else the emulator), cuda or cuda-emulated", DefaultValueFactory = _ => "auto" };
        device.AcceptOnlyFromAmong([.. DeviceChoice.Names]);
        var batch = Positive("--batch", 4, "Sequences");
        var seqLen = Positive("--seq-len", 2048, "Sequence length");
        var heads = Positive("--heads", 32, "Query heads");
        var kvHeads = Positive("--kv-heads", 8, "Key/value heads");
        var headDim = Positive("--head-dim", 128, "Head size: 32, 64 or 128");
        var repeat = Positive("--repeat", 10, "Timed repetitions (after one warm-up)");
        var command = new Command("attention", "Causal flash attention, bf16: forward, backward and both in TFLOP/s")
        {
            device, batch, seqLen, heads, kvHeads, headDim, repeat,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            int h = parse.GetValue(heads), kv = parse.GetValue(kvHeads), d = parse.GetValue(headDim), n = parse.GetValue(repeat);
            if (h % kv != 0 || !Cuda.Kernels.AttentionKernels.Supports(d))
            {
                throw new UserErrorException($"--heads ({h}) must be a multiple of --kv-heads ({kv}) and --head-dim 32, 64 or 128 (got {d})");
            }
            using IDevice target = DeviceChoice.Open(parse.GetValue(device)!);
            using var workload = new AttentionWorkload(target, parse.GetValue(batch), parse.GetValue(seqLen), h, kv, d);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bench attention on {target.Name}: batch {workload.Batch}, seq {workload.SeqLen}, heads {h}/{kv}, head dim {d}, causal, bf16, {n} repetitions"));
            double forward = workload.SecondsPerCall(workload.Forward, n);
            double backward = workload.SecondsPerCall(workload.Backward, n);
            Report(output, "attention_forward", forward, workload.ForwardFlops);
            Report(output, "attention_backward", backward, workload.BackwardFlops);
            Report(output, "attention_forward_backward", forward + backward, workload.ForwardFlops + workload.BackwardFlops);
            return Program.ExitSuccess;
        });
        return command;
    }

    private static Command CreateStep()
    {
        var device = new OptionFlags([RunConfigKeys.Device]).Flag(RunConfigKeys.Device);
        var preset = new Option<string>("--preset") { Description = $"Model shape, randomly initialised: {string.Join(", ", LlamaPresets.Names)}", DefaultValueFactory = _ => "llama-3.2-1b-shape" };
        preset.AcceptOnlyFromAmong([.. LlamaPresets.Names]);
        var batch = Positive("--batch-size", 1, "Sequences per step");
        var context = Positive("--context-length", 2048, "Tokens per sequence");
        var peft = new Option<string>("--peft") { Description = "lora or none (full fine-tuning)", DefaultValueFactory = _ => "lora" };
        peft.AcceptOnlyFromAmong("lora", "none");
        var rank = Positive("--lora-r", 16, "LoRA rank");
        var targets = new Option<string>("--lora-targets") { Description = "LoRA target modules (comma-separated or all-linear)", DefaultValueFactory = _ => "all-linear" };
        var dropout = new Option<double>("--lora-dropout") { Description = "Dropout on the LoRA input", DefaultValueFactory = _ => 0 };
        var steps = Positive("--steps", 5, "Timed steps (after one warm-up step)");
        var command = new Command("step", "A whole training step (forward, backward, AdamW) of a random model: tokens/s and peak memory")
        {
            device, preset, batch, context, peft, rank, targets, dropout, steps,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var config = LlamaPresets.Get(parse.GetValue(preset)!);
            int r = parse.GetValue(rank);
            var lora = parse.GetValue(peft) == "lora"
                ? new LoraConfig { Rank = r, Alpha = 2 * r, Dropout = parse.GetValue(dropout), TargetModules = LoraConfig.ParseTargets(parse.GetValue(targets)!) }
                : null;
            using var backend = BackendFactory.Create(parse.GetValue(device) ?? RunConfigKeys.Device.DefaultText!, config);
            string simd = backend.Name == "cpu" ? $" ({SimdLevels.Running.Describe()})" : "";
            output.WriteLine($"bench step on {backend.Name}{simd}: {parse.GetValue(preset)} ({(lora is null ? "full fine-tuning" : $"LoRA r={r} on {parse.GetValue(targets)}")}), "
                + $"batch {parse.GetValue(batch)} × {parse.GetValue(context)} tokens, {backend.ComputeType} compute");
            using var workload = new TrainingStepWorkload(backend, config, parse.GetValue(batch), parse.GetValue(context), lora);
            double perStep = workload.SecondsPerStep(parse.GetValue(steps));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step               {perStep * 1000,9:F1} ms   {workload.TokensPerStep / perStep,12:N0} tokens/s"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"result step_tokens_per_s {workload.TokensPerStep / perStep:F1}"));
            output.WriteLine($"result simd {SimdLevels.Running.Name()}");
            long peak = backend is CudaBackend cuda ? cuda.MemoryStats.PeakInUseBytes : Process.GetCurrentProcess().PeakWorkingSet64;
            string what = backend is CudaBackend ? "peak device memory in use (tensors and scratch)" : "peak resident memory of the process";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: {peak / (1024.0 * 1024 * 1024):F2} GiB"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"result step_peak_memory_bytes {peak}"));
            return Program.ExitSuccess;
        });
        return command;
    }

    private static void Report(TextWriter output, string name, double seconds, double flops)
    {
        double tflops = flops / seconds / 1e12;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-28} {seconds * 1000,9:F3} ms   {tflops,8:F2} TFLOP/s"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"result {name}_tflops {tflops:F3}"));
    }
}
