using System.Runtime.InteropServices;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Zeroed, 4 KiB-aligned native memory of any size (a shard image can exceed a managed array's
/// 2 GiB), with its capacity rounded up to 4 KiB so that it can be written with O_DIRECT.
/// </summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private byte* _pointer;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        Capacity = Math.Max(CheckpointFormat.Align(length), CheckpointFormat.Alignment);
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Capacity, CheckpointFormat.Alignment);
        NativeMemory.Clear(_pointer, (nuint)Capacity);
    }

    public long Length { get; }

    /// <summary><see cref="Length"/> rounded up to 4 KiB; the bytes past Length stay zero.</summary>
    public long Capacity { get; }

    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(nameof(NativeBuffer));

    /// <summary>Bytes [offset, offset + length); length must fit an int.</summary>
    public Span<byte> Slice(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) outside a buffer of {Length} bytes");
        }
        return new Span<byte>(Pointer + offset, length);
    }

    public void Dispose()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
