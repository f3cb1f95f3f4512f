using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using NUnit.Framework;

namespace CudaFinetune.Tests.Ops;

/// <summary>The emulator's own semantics (native/cuemu/selftest.cu) against scalar references: shuffles, the barrier with shared memory, block sums.</summary>
[TestFixture]
public sealed unsafe class EmulatorSelfTests
{
    private EmulatedDevice _emulator = null!;

    [OneTimeSetUp]
    public void Open() => _emulator = EmulatedDevice.Open();

    [OneTimeTearDown]
    public void Close() => _emulator.Dispose();

    private float[] Run(string entry, int blocks, int threads, int? extra = null)
    {
        var output = new float[blocks * threads];
        Array.Fill(output, float.NaN);
        fixed (float* p = output)
        {
            var pointer = new DevicePtr((ulong)p);
            int value = extra ?? 0;
            void** args = stackalloc void*[2];
            args[0] = &pointer;
            args[1] = &value;
            _emulator.Launch("selftest", entry, new LaunchShape(blocks, threads), args);
        }
        return output;
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(16)]
    [TestCase(31)]
    public void Shuffle_xor_reads_the_partner_lane(int laneMask)
    {
        float[] output = Run("selftest_shuffle_xor", 1, 128, laneMask);
        Assert.That(output, Is.EqualTo(Enumerable.Range(0, 128).Select(t => (float)(t ^ laneMask))));
    }

    [TestCase(1, 32)]
    [TestCase(3, 256)]
    [TestCase(2, 1024)]
    public void The_barrier_makes_every_shared_write_visible(int blocks, int threads)
    {
        float[] output = Run("selftest_barrier", blocks, threads);
        var expected = Enumerable.Range(0, blocks * threads).Select(i => 2.0f * ((i % threads + 1) % threads) + 1000.0f * (i / threads));
        Assert.That(output, Is.EqualTo(expected));
    }

    [TestCase(32)]
    [TestCase(96)]
    [TestCase(1024)]
    public void Block_sum_gives_every_thread_the_total_and_can_be_repeated(int threads)
    {
        float[] output = Run("selftest_block_sum", 1, threads);
        float expected = threads * (threads - 1) / 2.0f + 1e6f * threads;
        Assert.That(output, Is.All.EqualTo(expected));
    }
}
