using System.Runtime.InteropServices;

namespace CudaFinetune.Checkpoints;

/// <summary>Zeroed, 4 KiB-aligned native memory of any size (a shard image can exceed a managed array's 2 GiB).</summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private byte* _pointer;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), CheckpointFormat.Alignment);
        NativeMemory.Clear(_pointer, (nuint)length);
    }

    public long Length { get; }

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
