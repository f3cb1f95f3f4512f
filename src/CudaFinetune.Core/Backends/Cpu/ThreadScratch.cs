using System.Runtime.CompilerServices;

namespace CudaFinetune.Backends.Cpu;

/// <summary>The independent scratch buffers a thread may hold at once.</summary>
internal enum ScratchSlot
{
    /// <summary>A row of values (cross-entropy, SwiGLU).</summary>
    Row,
    /// <summary>The GEMM's packed panel of op(A).</summary>
    GemmPackA,
    /// <summary>The packed op(B) of a GEMM run inline inside a task.</summary>
    GemmPackB,
    /// <summary>A block of attention scores / probabilities.</summary>
    Scores,
    /// <summary>A block of attention score gradients.</summary>
    ScoreGradients,
}

/// <summary>
/// Per-thread, grow-only, pinned scratch for kernels. Each worker thread allocates its buffers once
/// and keeps them, so warmed-up steps allocate nothing; pinned so kernels can hold pointers.
/// Contents are undefined on return.
/// </summary>
internal static unsafe class ThreadScratch<T> where T : unmanaged
{
    private const int Slots = 5;

    [ThreadStatic]
    private static T[]?[]? t_buffers;

    public static T* Get(ScratchSlot slot, long length)
    {
        var buffers = t_buffers ??= new T[]?[Slots];
        ref T[]? buffer = ref buffers[(int)slot];
        if (buffer is null || buffer.Length < length)
        {
            buffer = GC.AllocateArray<T>(checked((int)Math.Max(length, 1024)), pinned: true);
        }
        return (T*)Unsafe.AsPointer(ref buffer[0]);
    }

    /// <summary>A row of at least <paramref name="length"/> elements.</summary>
    public static Span<T> Row(int length) => new(Get(ScratchSlot.Row, length), length);
}
