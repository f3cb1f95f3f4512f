using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cli;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary><c>devices</c> and the library search behind it.</summary>
[TestFixture]
public sealed class DevicesCommandTests
{
    [Test]
    public void Devices_exits_0_and_says_what_it_found_or_everywhere_it_looked()
    {
        var (code, text, error) = CliRuns.Run(["devices"]);
        Assert.That(code, Is.Zero, error);
        TestContext.Out.WriteLine(text);
        var report = CudaEnvironment.Probe();
        Assert.That(text, Does.Contain("CUDA driver:").And.Contain("cublasLt").And.Contain("nccl"));
        Assert.That(text, Does.StartWith($"CPU: {SimdLevels.Cpu.Describe()}; this process runs {SimdLevels.Running.Describe()} code (compiled by the JIT"));
        if (report.Driver.Found)
        {
            Assert.That(text, Does.Contain(report.Driver.Where));
        }
        else
        {
            Assert.That(text, Does.Contain("libcuda.so.1 (system loader"), "the soname tried is listed");
            Assert.That(text, Does.Contain("not found"));
        }
        if (!report.CublasLt.Found)
        {
            Assert.That(text, Does.Contain("libcublasLt.so.13").And.Contain("libcublasLt.so.12"));
        }
    }

    [Test]
    public void A_missing_library_is_reported_with_every_path_tried()
    {
        using var temp = new TempDirectory();
        string dir = temp.Path;
        File.WriteAllText(Path.Combine(dir, "libnotreal.so.2"), "not an ELF file");
        var probe = CudaFinetune.Cuda.Interop.LibraryResolver.Search("notreal", ["libnotreal.so.3", "libnotreal.so.2"], [dir, "/nonexistent"]);
        Assert.That(probe.Found, Is.False);
        Assert.That(probe.Tried, Has.Count.EqualTo(6), string.Join("\n", probe.Tried));
        Assert.That(probe.Describe(), Does.Contain("libnotreal.so.3 (system loader").And.Contain(Path.Combine(dir, "libnotreal.so.3") + " (no such file)")
            .And.Contain(Path.Combine(dir, "libnotreal.so.2") + " (exists but does not load").And.Contain("/nonexistent/libnotreal.so.2 (no such file)"));
    }
}
