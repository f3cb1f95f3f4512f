using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Runtime;

/// <summary>The caching device allocator over a fake device with a fixed amount of memory.</summary>
[TestFixture]
public sealed class DeviceAllocatorTests
{
    /// <summary>Hands out addresses from a counter, up to <paramref name="capacity"/> bytes at once, and counts calls.</summary>
    private sealed class FakeMemory(long capacity) : IRawDeviceMemory
    {
        private readonly Dictionary<ulong, long> _live = [];
        private ulong _next = 0x1000_0000;

        public string Name => "fake GPU";
        public int Allocations { get; private set; }
        public int Frees { get; private set; }
        public long LiveBytes => _live.Values.Sum();

        public bool TryAllocate(nuint bytes, out DevicePtr address)
        {
            address = default;
            if (LiveBytes + (long)bytes > capacity)
            {
                return false;
            }
            address = new DevicePtr(_next);
            _live.Add(_next, (long)bytes);
            _next += (ulong)bytes + 256;
            Allocations++;
            return true;
        }

        public void Free(DevicePtr address)
        {
            Assert.That(_live.Remove(address.Address), Is.True, $"free of 0x{address.Address:x}, which is not allocated");
            Frees++;
        }
    }

    [TestCase(0, 0)]
    [TestCase(1, 512)]
    [TestCase(512, 512)]
    [TestCase(513, 1024)]
    [TestCase((1 << 20) - 1, 1 << 20)]
    [TestCase(1 << 20, 2 << 20)]
    [TestCase(3 << 20, 4 << 20)]
    public void Sizes_round_to_512_bytes_below_a_mebibyte_and_to_2_MiB_above(long bytes, long capacity)
        => Assert.That(DeviceAllocator.RoundedSize(bytes), Is.EqualTo(capacity));

    [Test]
    public void A_freed_block_is_reused_for_the_next_request_of_its_size_class()
    {
        var memory = new FakeMemory(1L << 30);
        var allocator = new DeviceAllocator(memory);
        var first = allocator.Allocate(1000);
        allocator.Free(first);
        var second = allocator.Allocate(900);
        Assert.That(second.Start, Is.EqualTo(first.Start));
        Assert.That((second.Bytes, second.Capacity), Is.EqualTo((900L, 1024L)));
        var large = allocator.Allocate(3 << 20);
        Assert.That(large.Start, Is.Not.EqualTo(first.Start));
        Assert.That(memory.Allocations, Is.EqualTo(2));
        var stats = allocator.Stats;
        Assert.That((stats.InUseBytes, stats.CachedBytes, stats.PeakInUseBytes, stats.DeviceAllocations, stats.CacheHits),
            Is.EqualTo((1024L + (4 << 20), 0L, 1024L + (4 << 20), 2L, 1L)));
    }

    [Test]
    public void Out_of_memory_releases_the_cache_and_tries_again()
    {
        var memory = new FakeMemory(8 << 20);
        var allocator = new DeviceAllocator(memory);
        allocator.Free(allocator.Allocate(6 << 20)); // 6 MiB cached, in a size class the next request cannot use
        var buffer = allocator.Allocate(4 << 20);
        Assert.That(buffer.Capacity, Is.EqualTo(4 << 20));
        Assert.That(memory.Frees, Is.EqualTo(1), "the cached block went back to the device");
        Assert.That(allocator.Stats.CachedBytes, Is.Zero);
    }

    [Test]
    public void Out_of_memory_after_releasing_the_cache_is_a_user_error_that_says_what_to_change()
    {
        var allocator = new DeviceAllocator(new FakeMemory(8 << 20));
        allocator.Allocate(6 << 20);
        var error = Assert.Throws<DeviceOutOfMemoryException>(() => allocator.Allocate(4 << 20));
        Assert.That(error, Is.InstanceOf<UserErrorException>());
        Assert.That(error!.Message, Does.Contain("out of memory on fake GPU").And.Contain("4.0 MiB were requested").And.Contain("6.0 MiB already in use")
            .And.Contain("--batch-size"));
    }

    [Test]
    public void Freeing_twice_or_a_foreign_buffer_is_refused()
    {
        var allocator = new DeviceAllocator(new FakeMemory(1 << 30));
        var buffer = allocator.Allocate(100);
        allocator.Free(buffer);
        Assert.Throws<InvalidOperationException>(() => allocator.Free(buffer));
        Assert.Throws<InvalidOperationException>(() => allocator.Free(new DeviceBuffer(new DevicePtr(42), 100, 512)));
    }

    [Test]
    public void An_empty_request_takes_no_device_memory()
    {
        var memory = new FakeMemory(1 << 30);
        var allocator = new DeviceAllocator(memory);
        var empty = allocator.Allocate(0);
        Assert.That(empty.IsEmpty, Is.True);
        allocator.Free(empty);
        Assert.That(memory.Allocations, Is.Zero);
    }

    [Test]
    public void Release_all_gives_every_block_back_to_the_device()
    {
        var memory = new FakeMemory(1 << 30);
        var allocator = new DeviceAllocator(memory);
        allocator.Allocate(10);
        allocator.Free(allocator.Allocate(5 << 20));
        allocator.ReleaseAll();
        Assert.That(memory.LiveBytes, Is.Zero);
        Assert.That(allocator.Stats.ReservedBytes, Is.Zero);
    }

    [Test]
    public void After_warm_up_allocating_and_freeing_allocates_nothing_on_the_managed_heap()
    {
        var allocator = new DeviceAllocator(new FakeMemory(1L << 32));
        long[] sizes = [100, 4096, 70_000, 3 << 20, 100];
        var held = new DeviceBuffer[sizes.Length];
        void Step()
        {
            for (int i = 0; i < sizes.Length; i++)
            {
                held[i] = allocator.Allocate(sizes[i]);
            }
            for (int i = 0; i < sizes.Length; i++)
            {
                allocator.Free(held[i]);
            }
        }
        Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int step = 0; step < 1000; step++)
        {
            Step();
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}
