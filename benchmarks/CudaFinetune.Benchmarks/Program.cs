using BenchmarkDotNet.Running;
using CudaFinetune.Benchmarks;

// Runs the CPU benchmarks; pass BenchmarkDotNet arguments, e.g. --filter '*Gemm*' or --job short.
// Results (Markdown and CSV) land in BenchmarkDotNet.Artifacts/results; docs/perf.md holds the table.
BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly).Run(args, BenchmarkConfig.Create());
