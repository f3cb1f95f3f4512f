using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Cuda.Verification;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Runtime;

/// <summary>
/// Kernels that break CUDA's rules (native/cuemu/fault_kernels.cpp, emulator only: on a GPU they
/// would hang or fault) end with an error that names the kernel, the block, the threads and what they
/// wait at or what the hardware would reject (a misaligned or non-shared cp.async or ldmatrix address)
/// — and the emulator runs the next launch normally.
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

    /// <summary>Runs a fault kernel on 64 bytes of 16-byte-aligned global memory; returns the error, or null when it ran.</summary>
    private string? RunOnGlobal(string entry, Func<DevicePtr, DevicePtr>? pointer = null, int threads = 32, int dynamicSharedBytes = 0, Action<DevicePtr>? inspect = null)
    {
        Assert.That(_emulator.TryAllocate(64, out DevicePtr global), Is.True);
        try
        {
            _emulator.Fill(global, 0, 64);
            DevicePtr argument = pointer?.Invoke(global) ?? global;
            void** args = stackalloc void*[1];
            args[0] = &argument;
            _emulator.Launch("faults", entry, new LaunchShape(1, threads, dynamicSharedBytes), args);
            inspect?.Invoke(global);
            return null;
        }
        catch (EmulatedKernelException error)
        {
            TestContext.Out.WriteLine(error.Message);
            return error.Message;
        }
        finally
        {
            _emulator.Free(global);
        }
    }

    private static string Hex(DevicePtr pointer) => $"0x{pointer.Address:x}";

    [Test]
    public void A_cp_async_from_a_misaligned_global_source_is_a_trap_that_names_the_kernel_thread_and_address()
    {
        DevicePtr global = default;
        string? message = RunOnGlobal("fault_cp_async_misaligned_source", p => global = p);
        Assert.That(message, Does.StartWith("faults/fault_cp_async_misaligned_source failed on the emulator: block (0,0,0), thread 3: cp_async_16:"));
        Assert.That(message, Does.Contain($"the global source {Hex(global.Offset(8))} is not 16-byte aligned"));
        AssertStillWorks();
    }

    /// <summary>A copy lands when a wait covers its group, not before: reading too early shows the stale bytes.</summary>
    [Test]
    public void A_cp_async_lands_when_a_wait_covers_its_group()
    {
        byte[] seen = [];
        Assert.That(RunOnGlobal("fault_cp_async_read_before_wait", inspect: global => seen = _emulator.Download<byte>(global.Offset(32), 6)), Is.Null);
        Assert.That(seen, Is.EqualTo(new byte[] { 0, 0, 1, 0, 1, 17 }), "before any wait, after wait_group 1, after wait_all: (first slot, second slot)");
    }

    [Test]
    public void A_cp_async_to_a_misaligned_shared_destination_is_a_trap()
    {
        string? message = RunOnGlobal("fault_cp_async_misaligned_destination");
        Assert.That(message, Does.Contain("faults/fault_cp_async_misaligned_destination").And.Contain("thread 5: cp_async_16: the shared destination 0x"));
        Assert.That(message, Does.Match("destination 0x[0-9a-f]*4 is not 16-byte aligned"));
        AssertStillWorks();
    }

    [Test]
    public void A_cp_async_to_local_memory_is_a_trap()
    {
        string? message = RunOnGlobal("fault_cp_async_local_destination");
        Assert.That(message, Does.Contain("faults/fault_cp_async_local_destination").And.Contain("thread 0: cp_async_16: the destination 0x")
            .And.Contain("is in local memory (the thread's stack), not in the block's shared memory"));
        AssertStillWorks();
    }

    [Test]
    public void A_cp_async_past_the_end_of_dynamic_shared_memory_is_a_trap()
    {
        string? message = RunOnGlobal("fault_cp_async_past_dynamic_shared", dynamicSharedBytes: 32);
        Assert.That(message, Does.Contain("thread 2: cp_async_16:").And.Contain("is in global memory, not in the block's shared memory")
            .And.Contain("32 bytes of dynamic shared memory"));
        AssertStillWorks();
    }

    [Test]
    public void An_ldmatrix_of_global_memory_is_a_trap_that_names_the_lane_and_address()
    {
        DevicePtr global = default;
        string? message = RunOnGlobal("fault_ldmatrix_global_rows", p => global = p);
        Assert.That(message, Does.StartWith("faults/fault_ldmatrix_global_rows failed on the emulator: block (0,0,0), thread 0: ldmatrix_x4:"));
        Assert.That(message, Does.Contain($"lane 0's row address {Hex(global)} is in global memory, not in the block's shared memory"));
        AssertStillWorks();
    }

    [Test]
    public void An_ldmatrix_row_off_a_16_byte_boundary_is_a_trap()
    {
        string? message = RunOnGlobal("fault_ldmatrix_misaligned_row");
        Assert.That(message, Does.Contain("thread 9: ldmatrix_x2_trans: lane 9's row address 0x").And.Contain("is not 16-byte aligned"));
        AssertStillWorks();
    }

    [Test]
    public void Ldmatrix_x1_ignores_the_addresses_of_lanes_8_to_31_and_aligned_copies_into_dynamic_shared_memory_pass()
    {
        Assert.That(RunOnGlobal("fault_none_ldmatrix_x1_ignores_upper_lanes", dynamicSharedBytes: 128), Is.Null);
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
