using BenchmarkDotNet.Running;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using CudaFinetune.Benchmarks;
using CudaFinetune.Cuda.Runtime;

// Runs the benchmarks (the GPU kernel ones only where there is a GPU); pass BenchmarkDotNet arguments, e.g. --filter '*Gemm*' or --job short.
// Results (Markdown and CSV) land in BenchmarkDotNet.Artifacts/results; docs/perf.md holds the table.
// `profile [lora|full] [cpu|cuda-emulated]` instead prints where one bench-tiny training step spends its time, op by op.
// `checkpoint-paired [rounds]` runs the checkpoint benchmarks interleaved in one process (see CheckpointPaired).
if (args.Length > 0 && args[0] == "profile")
{
    StepProfile.Run(args.Length > 1 ? args[1] : "lora", args.Length > 2 ? args[2] : "cpu");
    return;
}
if (args.Length > 0 && args[0] == "checkpoint-paired")
{
    CheckpointPaired.Run(CheckpointPaired.ParseRounds(args));
    return;
}
IConfig config = BenchmarkConfig.Create();
var environment = CudaEnvironment.Probe();
if (environment.Gpus.Count == 0)
{
    // The GPU kernel benchmarks need GPU 0; without one they are left out (and say why) instead of failing.
    Console.WriteLine($"GPU benchmarks ({nameof(GpuKernelBenchmarks)}) skipped: no GPU here ({(environment.Driver.Found ? environment.DriverError ?? "the driver lists no devices" : "no CUDA driver found")})");
    config = ManualConfig.Union(config, ManualConfig.CreateEmpty().AddFilter(new SimpleFilter(benchmark => !benchmark.Descriptor.Categories.Contains(GpuKernelBenchmarks.Category))));
}
BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly).Run(args, config);
