using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Cuda.Verification;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Verification;

/// <summary>
/// Every kernel check (the ones <c>verify-kernels</c> prints) on the emulator and, where there is one,
/// on a GPU: each kernel family against the CPU backend and each primitive against its scalar reference,
/// on fresh random inputs with outputs poisoned first. Two seeds, so a layout error that only some
/// values hide cannot pass by luck.
/// </summary>
[TestFixture(KernelDevice.Emulator)]
[TestFixture(KernelDevice.Gpu)]
public sealed class KernelCheckTests(KernelDevice kind)
{
    private IDevice _device = null!;

    [OneTimeSetUp]
    public void Open() => _device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void Close() => _device?.Dispose();

    private static IEnumerable<TestCaseData> Checks()
        => from check in KernelChecks.All from seed in new[] { 1, 2 } select new TestCaseData(check.Name, seed).SetName($"{check.Name}(seed {seed})");

    [TestCaseSource(nameof(Checks))]
    public void Passes(string check, int seed)
    {
        var results = KernelChecks.Find(check).Run(_device, new Random(seed));
        Assert.That(results, Is.Not.Empty);
        Assert.That(results.Where(r => !r.Passed).Select(r => $"{r.Kernel} {r.Case}: {r.Mismatch}"), Is.Empty);
        Assert.That(_device.Memory.Stats.InUseBytes, Is.Zero, "every buffer of the check was freed");
    }
}
