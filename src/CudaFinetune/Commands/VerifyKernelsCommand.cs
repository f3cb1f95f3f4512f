using System.CommandLine;
using System.Globalization;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Cuda.Verification;
using CudaFinetune.Errors;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>verify-kernels</c>: runs every kernel check (each kernel family against the CPU backend, each
/// device primitive against its scalar reference) on fresh random inputs, on the emulator and on each
/// GPU asked for, and prints one row per case. Exit 0 when all pass, 1 when any fails.
/// </summary>
internal static class VerifyKernelsCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device")
        {
            Description = "auto (the emulator, and GPU 0 when there is one), cuda (GPU 0 only) or cuda-emulated (the emulator only)",
            DefaultValueFactory = _ => "auto",
        };
        device.AcceptOnlyFromAmong("auto", "cuda", "cuda-emulated");
        var seed = new Option<int?>("--seed") { Description = "Seed of the random inputs (default: a fresh one, printed so the run can be repeated)" };
        var kernel = new Option<string>("--kernel") { Description = "Only the checks whose name contains this text (e.g. rmsnorm, mma)" };
        var command = new Command("verify-kernels", "Check every CUDA kernel against the CPU reference on the emulator and the GPU; exit 0 if all pass, 1 if not")
        {
            device, seed, kernel,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            int runSeed = parse.GetValue(seed) ?? Random.Shared.Next();
            string filter = parse.GetValue(kernel) ?? "";
            var checks = KernelChecks.All.Where(c => c.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToList();
            if (checks.Count == 0)
            {
                throw new UserErrorException($"no kernel check matches '{filter}'; the checks are: {string.Join(", ", KernelChecks.All.Select(c => c.Name))}");
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"verify-kernels: {checks.Count} checks, seed {runSeed} (repeat with --seed {runSeed})"));
            var results = new List<(string Device, KernelCheckResult Result)>();
            foreach (var open in Devices(parse.GetValue(device)!, output))
            {
                using IDevice target = open();
                foreach (var check in checks)
                {
                    foreach (var result in check.Run(target, new Random(runSeed)))
                    {
                        results.Add((target.Name, result));
                    }
                }
            }
            Print(results, output);
            int failed = results.Count(r => !r.Result.Passed);
            int devices = results.Select(r => r.Device).Distinct().Count();
            output.WriteLine(failed == 0
                ? $"all {results.Count} cases passed on {devices} device(s)"
                : $"{failed} of {results.Count} cases FAILED");
            return failed == 0 ? Program.ExitSuccess : Program.ExitCheckFailed;
        });
        return command;
    }

    /// <summary>The devices to check, opened one at a time (<see cref="DeviceChoice.Each"/>); says when a GPU was not found.</summary>
    private static IReadOnlyList<Func<IDevice>> Devices(string choice, TextWriter output)
    {
        var devices = DeviceChoice.Each(choice);
        if (choice == "auto" && devices.Count == 1)
        {
            output.WriteLine("no GPU here: checking the emulator only (run 'CudaFinetune devices' for what was looked for)");
        }
        return devices;
    }

    private static void Print(List<(string Device, KernelCheckResult Result)> results, TextWriter output)
    {
        string[] header = ["device", "kernel", "case", "max abs err", "max rel err", "tolerance", "time", "result"];
        var rows = results.Select(r => new[]
        {
            r.Device, r.Result.Kernel, r.Result.Case,
            r.Result.MaxAbsError.ToString("0.0e+0", CultureInfo.InvariantCulture),
            r.Result.MaxRelError.ToString("0.0e+0", CultureInfo.InvariantCulture),
            r.Result.Tolerance,
            string.Create(CultureInfo.InvariantCulture, $"{r.Result.Elapsed.TotalMilliseconds:F1} ms"),
            r.Result.Passed ? "ok" : "FAILED",
        }).ToList();
        int[] widths = [.. Enumerable.Range(0, header.Length).Select(c => rows.Select(r => r[c].Length).Append(header[c].Length).Max())];
        string Line(string[] cells) => string.Join("  ", cells.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd();
        output.WriteLine(Line(header));
        foreach (var row in rows)
        {
            output.WriteLine(Line(row));
        }
        foreach (var (device, result) in results.Where(r => !r.Result.Passed))
        {
            output.WriteLine($"FAILED on {device}: {result.Kernel} {result.Case}: {result.Mismatch}");
        }
    }
}
