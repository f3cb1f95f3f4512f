using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cli;
using CudaFinetune.Cuda.Runtime;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary><c>devices</c> and the library search behind it.</summary>
[TestFixture]
public sealed class DevicesCommandTests
{
    [Test]
    public void Devices_exits_0_and_says_what_it_found_or_everywhere_it_looked()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = Program.Run(["devices"], output, error);
        Assert.That(code, Is.Zero, error.ToString());
        string text = output.ToString();
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
        string dir = Path.Combine(Path.GetTempPath(), "cudafinetune-resolver-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "libnotreal.so.2"), "not an ELF file");
            var probe = CudaFinetune.Cuda.Interop.LibraryResolver.Search("notreal", ["libnotreal.so.3", "libnotreal.so.2"], [dir, "/nonexistent"]);
            Assert.That(probe.Found, Is.False);
            Assert.That(probe.Tried, Has.Count.EqualTo(6), string.Join("\n", probe.Tried));
            Assert.That(probe.Describe(), Does.Contain("libnotreal.so.3 (system loader").And.Contain(Path.Combine(dir, "libnotreal.so.3") + " (no such file)")
                .And.Contain(Path.Combine(dir, "libnotreal.so.2") + " (exists but does not load").And.Contain("/nonexistent/libnotreal.so.2 (no such file)"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
