using BenchmarkDotNet.Running;
using CudaFinetune.Benchmarks;

// Runs the CPU benchmarks; pass BenchmarkDotNet arguments, e.g. --filter '*Gemm*' or --job short.
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
BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly).Run(args, BenchmarkConfig.Create());
