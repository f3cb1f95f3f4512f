using System.Diagnostics;
using System.Globalization;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// The checkpoint benchmarks again, in one process and interleaved: every round runs each case once
/// (in a shuffled order), so a drift of the disk's speed between BenchmarkDotNet's separate
/// processes cannot masquerade as a difference between ours and raw. The ratios are medians of
/// the per-round ratios. Same code paths as <see cref="CheckpointBenchmarks"/> and
/// <see cref="CheckpointStepBenchmarks"/> (their setup, benchmark and cleanup methods are called directly).
/// </summary>
internal static class CheckpointPaired
{
    private sealed record Case(string Name, Action? Before, Action Body, Action? After);

    public static void Run(int rounds)
    {
        Console.WriteLine($"checkpoint benchmarks, {rounds} interleaved rounds after one warm-up round; medians");
        var io = new CheckpointBenchmarks();
        io.SetupRead();
        try
        {
            // Writes, then reads: a write's aftermath on this VM slows whatever runs next, most of all
            // the 2-thread load, so the reads are measured in rounds of their own (as in BenchmarkDotNet).
            var times = Measure(rounds,
            [
                new("RawWrite", null, io.RawWrite, io.DeleteRawWrite),
                new("Save", null, () => io.Save(), io.DeleteSave),
                new("WriteOnly", null, () => io.WriteOnly(), io.DeleteSave),
                new("Capture", null, io.Capture, null),
            ]);
            foreach (var (name, t) in Measure(rounds,
            [
                new("RawRead", null, () => io.RawRead(), null),
                new("LoadVerify", null, io.LoadVerify, null),
                new("RawReadCold", io.EvictRawRead, () => io.RawReadCold(), null),
                new("LoadVerifyCold", io.EvictCheckpoint, io.LoadVerifyCold, null),
            ]))
            {
                times[name] = t;
            }
            double gb = CheckpointData.ShardBytes / 1e9;
            foreach (var (name, t) in times)
            {
                Console.WriteLine($"  {name,-16} {Median(t) * 1e3,8:F0} ms  {gb / Median(t),5:F2} GB/s   (min {t.Min() * 1e3:F0}, max {t.Max() * 1e3:F0} ms)");
            }
            Console.WriteLine($"  save / raw write throughput:             {Ratio(times["RawWrite"], times["Save"]):P0}");
            Console.WriteLine($"  write only / raw write throughput:       {Ratio(times["RawWrite"], times["WriteOnly"]):P0}");
            Console.WriteLine($"  load+verify / raw read (page cache):     {Ratio(times["RawRead"], times["LoadVerify"]):P0}");
            Console.WriteLine($"  load+verify / raw read (evicted):        {Ratio(times["RawReadCold"], times["LoadVerifyCold"]):P0}");
        }
        finally
        {
            io.Cleanup();
        }

        foreach (string image in new[] { "1GiB", "bench-tiny-full" })
        {
            var step = new CheckpointStepBenchmarks { Image = image };
            step.Setup();
            try
            {
                var times = Measure(rounds,
                [
                    new("StepAlone", step.CaptureOnly, () => step.StepAlone(), null),
                    new("StepDuringSave", step.StartSave, () => step.StepDuringSave(), step.FinishSave),
                    new("StepDuringRawWrite", step.StartRawWrite, () => step.StepDuringRawWrite(), step.FinishRawWrite),
                ]);
                foreach (var (name, t) in times)
                {
                    Console.WriteLine($"  {image,-16} {name,-20} {Median(t) * 1e3,6:F0} ms   (min {t.Min() * 1e3:F0}, max {t.Max() * 1e3:F0} ms)");
                }
                Console.WriteLine($"  {image,-16} slowdown during save: {Slowdown(times["StepAlone"], times["StepDuringSave"]):+0%;-0%}, during raw write: {Slowdown(times["StepAlone"], times["StepDuringRawWrite"]):+0%;-0%}");
            }
            finally
            {
                step.Cleanup();
            }
        }
    }

    /// <summary>Seconds of each case per round (the warm-up round is dropped).</summary>
    private static Dictionary<string, List<double>> Measure(int rounds, Case[] cases)
    {
        var times = cases.ToDictionary(c => c.Name, _ => new List<double>());
        var rng = new Random(1);
        for (int round = 0; round <= rounds; round++)
        {
            foreach (var c in cases.OrderBy(_ => rng.Next()))
            {
                c.Before?.Invoke();
                long start = Stopwatch.GetTimestamp();
                c.Body();
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                c.After?.Invoke();
                if (round > 0)
                {
                    times[c.Name].Add(seconds);
                }
            }
        }
        return times;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Median over rounds of baseline time / our time (our throughput as a share of the baseline's).</summary>
    private static double Ratio(List<double> baseline, List<double> ours) => Median([.. baseline.Zip(ours, (b, o) => b / o)]);

    /// <summary>Median over rounds of our time / baseline time − 1.</summary>
    private static double Slowdown(List<double> baseline, List<double> ours) => Median([.. baseline.Zip(ours, (b, o) => o / b)]) - 1;

    public static int ParseRounds(string[] args) => args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10;
}
