using System.CommandLine;
using System.Globalization;
using CudaFinetune.Cuda.Runtime;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>devices</c>: the CPU's x86-64 level and the build running, the CUDA driver version and each GPU (name, memory, compute capability), and
/// which cuBLASLt and NCCL were found — or what is missing and every place it was looked for.
/// Always exits 0: a machine without a GPU is a valid answer, not an error.
/// </summary>
internal static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "Show the CPU's instruction-set level and the build running, the CUDA driver, GPUs, cuBLASLt and NCCL this machine offers (or what is missing and where it was looked for)");
        command.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.WriteLine(SimdBuilds.Describe());
            Print(CudaEnvironment.Probe(), parse.InvocationConfiguration.Output);
            return Program.ExitSuccess;
        });
        return command;
    }

    internal static void Print(CudaEnvironmentReport report, TextWriter output)
    {
        if (!report.Driver.Found)
        {
            output.WriteLine("CUDA driver: not found (no NVIDIA driver on this machine?); looked for:");
            WriteIndented(output, report.Driver.Where);
        }
        else
        {
            output.WriteLine($"CUDA driver: {report.DriverVersion ?? "version unknown"} ({report.Driver.Where})");
            if (report.DriverError is not null)
            {
                output.WriteLine($"  no usable GPU: {report.DriverError}");
            }
            foreach (var gpu in report.Gpus)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  GPU {gpu.Ordinal}: {gpu.Name}, {gpu.TotalMemoryBytes / (double)(1L << 30):F1} GiB, compute capability {gpu.ComputeMajor}.{gpu.ComputeMinor}, {gpu.Multiprocessors} SMs"));
            }
            if (report.DriverError is null && report.Gpus.Count == 0)
            {
                output.WriteLine("  no GPUs");
            }
        }
        foreach (var library in new[] { report.CublasLt, report.Nccl })
        {
            if (library.Found)
            {
                output.WriteLine($"{library.Name}: {library.Version} ({library.Where})");
            }
            else
            {
                output.WriteLine($"{library.Name}: not found; looked for:");
                WriteIndented(output, library.Where);
            }
        }
        output.WriteLine(report.Gpus.Count > 0
            ? "--device auto uses the cuda backend on GPU 0 (the cpu backend for a model the kernels cannot run, such as an unsupported head size)"
            : "--device auto uses the cpu backend");
    }

    private static void WriteIndented(TextWriter output, string lines)
    {
        foreach (string line in lines.Split(Environment.NewLine))
        {
            output.WriteLine($"  {line}");
        }
    }
}
