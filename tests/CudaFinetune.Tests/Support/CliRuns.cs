// Shared fixture: the one way a test runs the command line in-process (Program.Run with its output and error
// captured). Tests that must kill, signal or race the executable use CliProcess instead.
using CudaFinetune.Cli;

namespace CudaFinetune.Tests.Support;

/// <summary>The command line run in-process through <see cref="Program.Run"/>, as the executable runs it.</summary>
internal static class CliRuns
{
    /// <summary>Runs <paramref name="args"/>; the exit code and what was written to standard output and error.</summary>
    public static (int Code, string Out, string Err) Run(string[] args, CancellationToken cancel = default)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = Program.Run(args, output, error, cancel);
        return (code, output.ToString(), error.ToString());
    }
}
