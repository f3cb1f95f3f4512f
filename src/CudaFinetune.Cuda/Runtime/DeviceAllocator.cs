using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Errors;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>A block of device memory from <see cref="DeviceAllocator"/>: <see cref="Bytes"/> asked for, <see cref="Capacity"/> held.</summary>
public readonly record struct DeviceBuffer(DevicePtr Start, long Bytes, long Capacity)
{
    public bool IsEmpty => Capacity == 0;
}

/// <summary>What the allocator holds: in use by buffers, kept for reuse, and the most ever in use at once.</summary>
public readonly record struct AllocatorStats(long InUseBytes, long CachedBytes, long PeakInUseBytes, long DeviceAllocations, long CacheHits)
{
    public long ReservedBytes => InUseBytes + CachedBytes;
}

/// <summary>
/// A caching allocator over raw device memory, as PyTorch's is: <c>cuMemAlloc</c>/<c>cuMemFree</c>
/// synchronize the device and cost tens of microseconds, so a freed block is kept, by rounded size,
/// and handed out again. Sizes round up to 512 bytes below 1 MiB and to 2 MiB above, so that the
/// varying shapes of a training step reuse the same few blocks. When the device is out of memory
/// the cache is released and the allocation tried once more; if it still fails, the error says how
/// much was asked for, how much is in use, and what to change.
/// Blocks are reused in stream order: every launch and copy goes to the device's one compute stream,
/// so work queued after a free cannot overtake work queued before it. Thread-safe; after warm-up
/// <see cref="Allocate"/> and <see cref="Free"/> allocate nothing on the managed heap.
/// </summary>
public sealed class DeviceAllocator
{
    internal const long SmallLimit = 1 << 20;
    internal const long SmallRounding = 512;
    internal const long LargeRounding = 2 << 20;

    private readonly IRawDeviceMemory _raw;
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Stack<DevicePtr>> _cached = [];
    private readonly Dictionary<ulong, long> _inUse = [];
    private long _inUseBytes;
    private long _cachedBytes;
    private long _peakBytes;
    private long _deviceAllocations;
    private long _cacheHits;

    public DeviceAllocator(IRawDeviceMemory raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        _raw = raw;
    }

    public AllocatorStats Stats
    {
        get
        {
            lock (_gate)
            {
                return new AllocatorStats(_inUseBytes, _cachedBytes, _peakBytes, _deviceAllocations, _cacheHits);
            }
        }
    }

    /// <summary>The capacity a request of <paramref name="bytes"/> is served with.</summary>
    public static long RoundedSize(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        long unit = bytes < SmallLimit ? SmallRounding : LargeRounding;
        return (bytes + unit - 1) / unit * unit;
    }

    /// <summary>A buffer of at least <paramref name="bytes"/>; its contents are whatever the block held before.</summary>
    public DeviceBuffer Allocate(long bytes)
    {
        long capacity = RoundedSize(bytes);
        if (capacity == 0)
        {
            return new DeviceBuffer(DevicePtr.Null, 0, 0);
        }
        lock (_gate)
        {
            if (_cached.TryGetValue(capacity, out var blocks) && blocks.TryPop(out var reused))
            {
                _cachedBytes -= capacity;
                _cacheHits++;
                return Track(reused, bytes, capacity);
            }
            if (!_raw.TryAllocate((nuint)capacity, out var pointer))
            {
                ReleaseCachedLocked();
                if (!_raw.TryAllocate((nuint)capacity, out pointer))
                {
                    throw new DeviceOutOfMemoryException(_raw.Name, bytes, _inUseBytes, _peakBytes);
                }
            }
            _deviceAllocations++;
            return Track(pointer, bytes, capacity);
        }
    }

    /// <summary>Returns a buffer to the cache. Freeing a buffer twice, or one this allocator did not hand out, is a bug and throws.</summary>
    public void Free(DeviceBuffer buffer)
    {
        if (buffer.IsEmpty)
        {
            return;
        }
        lock (_gate)
        {
            if (!_inUse.Remove(buffer.Start.Address, out long capacity) || capacity != buffer.Capacity)
            {
                throw new InvalidOperationException($"device buffer at 0x{buffer.Start.Address:x} ({buffer.Capacity} bytes) is not in use from this allocator: freed twice?");
            }
            _inUseBytes -= capacity;
            _cachedBytes += capacity;
            if (!_cached.TryGetValue(capacity, out var blocks))
            {
                blocks = new Stack<DevicePtr>();
                _cached[capacity] = blocks;
            }
            blocks.Push(buffer.Start);
        }
    }

    /// <summary>Gives every cached block back to the device (buffers in use stay).</summary>
    public void ReleaseCached()
    {
        lock (_gate)
        {
            ReleaseCachedLocked();
        }
    }

    /// <summary>Gives everything back, in use or not; for the device's Dispose.</summary>
    internal void ReleaseAll()
    {
        lock (_gate)
        {
            ReleaseCachedLocked();
            foreach (ulong address in _inUse.Keys)
            {
                _raw.Free(new DevicePtr(address));
            }
            _inUse.Clear();
            _inUseBytes = 0;
        }
    }

    private DeviceBuffer Track(DevicePtr pointer, long bytes, long capacity)
    {
        _inUse.Add(pointer.Address, capacity);
        _inUseBytes += capacity;
        _peakBytes = Math.Max(_peakBytes, _inUseBytes);
        return new DeviceBuffer(pointer, bytes, capacity);
    }

    private void ReleaseCachedLocked()
    {
        foreach (var blocks in _cached.Values)
        {
            while (blocks.TryPop(out var pointer))
            {
                _raw.Free(pointer);
            }
        }
        _cachedBytes = 0;
    }
}

/// <summary>The device has no room for an allocation even after the cache was released: a user error (the run is too big for the GPU).</summary>
public sealed class DeviceOutOfMemoryException : UserErrorException
{
    public DeviceOutOfMemoryException(string device, long requestedBytes, long inUseBytes, long peakBytes)
        : base($"out of memory on {device}: {Mib(requestedBytes)} were requested with {Mib(inUseBytes)} already in use (peak {Mib(peakBytes)}). "
            + "Lower --batch-size or --context-length, or train LoRA (--peft lora) instead of every weight, and run again.")
    {
    }

    public DeviceOutOfMemoryException()
    {
    }

    public DeviceOutOfMemoryException(string message)
        : base(message)
    {
    }

    public DeviceOutOfMemoryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    private static string Mib(long bytes) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):F1} MiB");
}
