// Shared fixture: the one way a test runs the CudaFinetune executable as a process of its own (for kills, signals,
// launchers and locks). Tests that only need the exit code and output use CliRuns, in-process, instead.
using System.Diagnostics;
using System.Text;
using CudaFinetune.Config;
using CudaFinetune.Reporting;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>The CudaFinetune executable started as a process of its own (for kills, signals, launchers and locks), its output collected.</summary>
internal static class CliProcess
{
    private static string Executable => typeof(CudaFinetune.Cli.Program).Assembly.Location;

    /// <summary>Starts it with <paramref name="args"/> (and <paramref name="environment"/> added); stdout and stderr go to <paramref name="output"/>.</summary>
    public static Process Start(StringBuilder output, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Executable);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits for a started CLI (three minutes at most, then kills it and fails the test), disposes it, and returns its exit code.</summary>
    public static int Finish(Process process, StringBuilder output, string what)
    {
        using (process)
        {
            if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{what} did not finish:\n{output}");
            }
            process.WaitForExit();
            return process.ExitCode;
        }
    }

    /// <summary>Writes <paramref name="options"/> as a --config file at <paramref name="path"/>; returns the path.</summary>
    public static string WriteConfig(string path, FinetuneOptions options)
    {
        using var stream = File.Create(path);
        using var w = new System.Text.Json.Utf8JsonWriter(stream);
        FinetuneOptionsJson.Write(w, options);
        return path;
    }

    private static void Append(StringBuilder output, string? line)
    {
        lock (output)
        {
            output.AppendLine(line);
        }
    }

    /// <summary>Waits (three minutes at most: CI machines are slow and busy) until the run's metrics.jsonl shows a few steps past <paramref name="after"/>.</summary>
    public static void WaitForSteps(string outputDir, long after = 0)
    {
        string metrics = Path.Combine(outputDir, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(3))
        {
            try
            {
                if (File.Exists(metrics) && MetricsFile.ReadStepLosses(metrics).Count(s => s.Step > after) >= 3)
                {
                    return;
                }
            }
            catch (System.Text.Json.JsonException)
            {
                // a line being written
            }
            catch (IOException)
            {
            }
            Thread.Sleep(50);
        }
        Assert.Fail("the run did not start training within three minutes");
    }
}
