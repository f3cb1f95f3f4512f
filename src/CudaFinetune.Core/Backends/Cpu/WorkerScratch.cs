using System.Runtime.CompilerServices;

namespace CudaFinetune.Backends.Cpu;

/// <summary>The independent scratch buffers one worker may hold at once.</summary>
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
/// Pinned scratch owned by one participant of a <see cref="CpuWorkerPool"/>. An op reserves what its
/// tasks will need on the calling thread before it starts them (<see cref="CpuWorkerPool.Reserve"/>),
/// so buffers grow at a known point — the first call of each size — and never inside a task: a
/// warmed-up training step allocates nothing, whichever thread runs which task.
/// </summary>
internal sealed unsafe class WorkerScratch
{
    private const int Slots = 5;
    private readonly byte[]?[] _buffers = new byte[]?[Slots];

    [ThreadStatic]
    private static WorkerScratch? t_current;

    /// <summary>The scratch of the pool participant running on this thread.</summary>
    public static WorkerScratch Current => t_current ?? throw new InvalidOperationException("scratch is only available inside a CPU backend task");

    internal static WorkerScratch? Enter(WorkerScratch scratch)
    {
        var previous = t_current;
        t_current = scratch;
        return previous;
    }

    internal static void Leave(WorkerScratch? previous) => t_current = previous;

    /// <summary>Grows <paramref name="slot"/> to at least <paramref name="bytes"/>.</summary>
    public void Reserve(ScratchSlot slot, long bytes)
    {
        ref byte[]? buffer = ref _buffers[(int)slot];
        if (buffer is null || buffer.LongLength < bytes)
        {
            buffer = GC.AllocateArray<byte>(checked((int)Math.Max(bytes, 4096)), pinned: true);
        }
    }

    /// <summary>The reserved buffer of <paramref name="slot"/> as <paramref name="count"/> elements (contents undefined).</summary>
    public T* Get<T>(ScratchSlot slot, long count) where T : unmanaged
    {
        byte[]? buffer = _buffers[(int)slot];
        if (buffer is null || buffer.LongLength < count * sizeof(T))
        {
            throw new InvalidOperationException($"scratch slot {slot} holds {buffer?.LongLength ?? 0} bytes, {count * sizeof(T)} needed: the op must reserve it first");
        }
        return (T*)Unsafe.AsPointer(ref buffer[0]);
    }

    /// <summary>A row of <paramref name="count"/> elements from the <see cref="ScratchSlot.Row"/> slot.</summary>
    public Span<T> Row<T>(int count) where T : unmanaged => new(Get<T>(ScratchSlot.Row, count), count);
}
