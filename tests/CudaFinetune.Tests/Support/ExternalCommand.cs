using System.Diagnostics;
using System.Text;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// Runs a program (the dotnet CLI, an installed tool) to completion with a time limit: a hang fails the test with the
/// output so far instead of stalling CI. Each run is announced on <see cref="TestContext.Progress"/> with its duration.
/// </summary>
internal static class ExternalCommand
{
    /// <summary>
    /// <c>dotnet</c> with <paramref name="args"/>. Builds and packs should pass <c>--disable-build-servers</c>: a compiler
    /// or MSBuild server started here would outlive the command holding its output pipe open.
    /// </summary>
    public static string Dotnet(string workingDirectory, TimeSpan timeout, params string[] args) => Run("dotnet", workingDirectory, timeout, args);

    /// <summary>Runs <paramref name="program"/>; asserts it exits 0 and returns its standard output and error, interleaved.</summary>
    public static string Run(string program, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var (code, output) = TryRun(program, workingDirectory, timeout, args);
        Assert.That(code, Is.Zero, $"{Describe(program, args)} exited {code}:{Environment.NewLine}{output}");
        return output;
    }

    /// <summary>Runs <paramref name="program"/>; its exit code and output. Fails the test if it runs past <paramref name="timeout"/>.</summary>
    public static (int Code, string Output) TryRun(string program, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        // `dotnet test` leaves MSBuild's variables (MSBuildExtensionsPath, MSBuildSDKsPath, ...) in the test host's
        // environment; a nested build must find its SDK the ordinary way, as a user's would.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";

        var output = new StringBuilder();
        var clock = Stopwatch.StartNew();
        TestContext.Progress.WriteLine($"  {Describe(program, args)}");
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{Describe(program, args)} ran past {timeout.TotalSeconds:F0} s and was killed; its output:{Environment.NewLine}{Snapshot(output)}");
        }
        // The process has exited; give the readers a moment to drain the pipes (bounded, in case something it started holds them).
        using (var drained = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                process.WaitForExitAsync(drained.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
            }
        }
        TestContext.Progress.WriteLine($"    exit {process.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        return (process.ExitCode, Snapshot(output));
    }

    private static string Describe(string program, string[] args) => $"{Path.GetFileName(program)} {string.Join(' ', args)}";

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }
}
