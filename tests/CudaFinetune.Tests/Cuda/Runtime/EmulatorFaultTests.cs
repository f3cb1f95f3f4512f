using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Cuda.Verification;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Runtime;

/// <summary>
/// Kernels that break CUDA's rules (native/cuemu/fault_kernels.cpp, emulator only: on a GPU they
/// would hang) end with an error that names the block, the threads and what they wait at — and the
/// emulator runs the next launch normally.
/// </summary>
[TestFixture]
public sealed unsafe class EmulatorFaultTests
{
    private EmulatedDevice _emulator = null!;

    [OneTimeSetUp]
    public void Open() => _emulator = EmulatedDevice.Open();

    [OneTimeTearDown]
    public void Close() => _emulator.Dispose();

    private void Run(string entry, int blocks = 1, int threads = 64)
    {
        int unused = 0;
        void** args = stackalloc void*[1];
        args[0] = &unused;
        _emulator.Launch("faults", entry, new LaunchShape(blocks, threads), args);
    }

    [Test]
    public void A_barrier_that_half_the_block_never_reaches_is_reported_as_a_deadlock()
    {
        var error = Assert.Throws<EmulatedKernelException>(() => Run("fault_divergent_barrier"));
        Assert.That(error!.Message, Does.Contain("deadlocked").And.Contain("32 thread(s) wait at sync_threads").And.Contain("32 at warp collectives"));
        Assert.That(error.Message, Does.Contain("faults/fault_divergent_barrier"));
        AssertStillWorks();
    }

    [Test]
    public void Lanes_meeting_at_different_collectives_are_reported()
    {
        var error = Assert.Throws<EmulatedKernelException>(() => Run("fault_mismatched_collectives", threads: 32));
        Assert.That(error!.Message, Does.Contain("different collectives").And.Contain("shuffle_xor").And.Contain("ballot"));
        AssertStillWorks();
    }

    [Test]
    public void A_mask_that_leaves_out_the_calling_lane_is_reported()
    {
        var error = Assert.Throws<EmulatedKernelException>(() => Run("fault_mask_without_self", threads: 32));
        Assert.That(error!.Message, Does.Contain("leaves out the calling lane 1"));
        AssertStillWorks();
    }

    [Test]
    public void An_impossible_launch_shape_is_refused_before_it_runs()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _emulator.Launch("faults", "fault_divergent_barrier", new LaunchShape(1, 2048), null));
        Assert.Throws<ArgumentOutOfRangeException>(() => _emulator.Launch("faults", "fault_divergent_barrier", new LaunchShape(1, 32, 300 << 10), null));
    }

    private void AssertStillWorks()
    {
        var results = KernelChecks.Find("selftest_barrier").Run(_emulator, new Random(1));
        Assert.That(results.Where(r => !r.Passed).Select(r => r.Mismatch), Is.Empty, "normal launches after the failure");
    }
}
