using System.Diagnostics.CodeAnalysis;
using CudaFinetune.Cuda.Interop;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// A CUDA stream: work queued on it runs in order, and concurrently with other streams' work.
/// Created non-blocking, so it does not wait on the legacy default stream. Destroyed by
/// <see cref="Dispose"/> (never by a finalizer: the context may already be gone then).
/// </summary>
[SuppressMessage("Naming", "CA1711", Justification = "CUDA calls it a stream; it is no System.IO.Stream.")]
public sealed class CudaStream : IDisposable
{
    private const uint NonBlocking = 1; // CU_STREAM_NON_BLOCKING
    private bool _disposed;

    private CudaStream(CuStream handle) => Handle = handle;

    internal CuStream Handle { get; }

    public static unsafe CudaStream Create()
    {
        CuStream stream;
        CudaException.ThrowIfFailed(CudaDriver.StreamCreate(&stream, NonBlocking));
        return new CudaStream(stream);
    }

    /// <summary>Blocks until everything queued so far has run; a kernel fault surfaces here.</summary>
    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CudaException.ThrowIfFailed(CudaDriver.StreamSynchronize(Handle));
    }

    /// <summary>Makes work queued on this stream after now wait until <paramref name="event"/> has happened (on any stream).</summary>
    public void Wait(CudaEvent @event)
    {
        ArgumentNullException.ThrowIfNull(@event);
        ObjectDisposedException.ThrowIf(_disposed, this);
        CudaException.ThrowIfFailed(CudaDriver.StreamWaitEvent(Handle, @event.Handle, 0));
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _ = CudaDriver.StreamDestroy(Handle); // teardown: nothing useful to do with a failure
        }
    }
}

/// <summary>
/// A CUDA event: a point in a stream's work, to wait for from the host or another stream, and to
/// time work between two of them (<see cref="ElapsedMilliseconds"/>).
/// </summary>
public sealed class CudaEvent : IDisposable
{
    private const uint DisableTiming = 2; // CU_EVENT_DISABLE_TIMING
    private bool _disposed;

    private CudaEvent(CuEvent handle) => Handle = handle;

    internal CuEvent Handle { get; }

    /// <summary>An event; with <paramref name="timing"/> false it is cheaper and cannot be timed.</summary>
    public static unsafe CudaEvent Create(bool timing = true)
    {
        CuEvent handle;
        CudaException.ThrowIfFailed(CudaDriver.EventCreate(&handle, timing ? 0 : DisableTiming));
        return new CudaEvent(handle);
    }

    /// <summary>Marks the point in <paramref name="stream"/>'s work reached once everything queued before now has run.</summary>
    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(_disposed, this);
        CudaException.ThrowIfFailed(CudaDriver.EventRecord(Handle, stream.Handle));
    }

    /// <summary>True once the recorded point has been reached.</summary>
    public bool HasHappened
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var result = CudaDriver.EventQuery(Handle);
            if (result == CuResult.NotReady)
            {
                return false;
            }
            CudaException.ThrowIfFailed(result);
            return true;
        }
    }

    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CudaException.ThrowIfFailed(CudaDriver.EventSynchronize(Handle));
    }

    /// <summary>GPU time between two recorded events, in milliseconds (resolution about half a microsecond).</summary>
    public static unsafe float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        float milliseconds;
        CudaException.ThrowIfFailed(CudaDriver.EventElapsedTime(&milliseconds, start.Handle, end.Handle));
        return milliseconds;
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _ = CudaDriver.EventDestroy(Handle); // teardown: nothing useful to do with a failure
        }
    }
}
