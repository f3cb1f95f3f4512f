using System.IO.Hashing;
using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Host buffers laid out exactly as the shard files will be on disk (a 4 KiB header, then every
/// tensor 4 KiB-aligned). <see cref="Capture"/> snapshots the live tensors into them on the training
/// thread, hashing each chunk right after copying it (one pass over memory, while the chunk is in
/// cache); the background writer then only moves the buffers to disk while training goes on. The
/// layout is fixed when the image is made, so the buffers are reused by every save.
/// </summary>
public sealed unsafe class CheckpointImage : IDisposable
{
    private CheckpointImage(IReadOnlyList<ShardImage> shards) => Shards = shards;

    public IReadOnlyList<ShardImage> Shards { get; }

    /// <summary>Bytes of all shard files.</summary>
    public long TotalBytes => Shards.Sum(s => s.Length);

    /// <summary>Lays out <paramref name="rank"/>'s tensors (or pieces of tensors), one shard per group.</summary>
    public static CheckpointImage Create(IEnumerable<CheckpointPiece> pieces, int rank = 0)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        var shards = new List<ShardImage>();
        foreach (var group in pieces.GroupBy(t => t.Group))
        {
            long offset = ShardHeader.Length;
            var slots = new List<TensorSlot>();
            foreach (var piece in group)
            {
                long length = TensorBytes.Length(piece.Data);
                slots.Add(new TensorSlot(piece, offset, length));
                offset = CheckpointFormat.Align(offset + length);
            }
            long end = slots.Count == 0 ? ShardHeader.Length : slots[^1].Offset + slots[^1].Length;
            shards.Add(new ShardImage(group.Key, rank, CheckpointFormat.ShardFileName(group.Key, rank), slots, new NativeBuffer(end)));
        }
        return new CheckpointImage(shards);
    }

    /// <summary>
    /// Copies every tensor's current bytes into the buffers and hashes them (<see cref="TensorSlot.Hash"/>):
    /// the only part of a save that training waits for. Host tensors are done on all cores; other
    /// tensors go through the backend one by one.
    /// </summary>
    public void Capture(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        var slots = Shards.SelectMany(shard => shard.Tensors.Select(slot => (shard, slot))).ToArray();
        if (slots.All(x => x.slot.Source.Storage is HostStorage))
        {
            Parallel.For(0, slots.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
                i => slots[i].slot.Hash = CopyAndHash((byte*)slots[i].slot.Source.HostAddress, slots[i].shard.Buffer.Pointer + slots[i].slot.Offset, slots[i].slot.Length));
            return;
        }
        foreach (var (shard, slot) in slots)
        {
            byte* destination = shard.Buffer.Pointer + slot.Offset;
            TensorBytes.CopyOut(backend, slot.Source, destination);
            slot.Hash = CheckpointFormat.Hash(destination, slot.Length);
        }
    }

    private static string CopyAndHash(byte* source, byte* destination, long length)
    {
        const int chunk = CheckpointFormat.CopyChunkBytes;
        var hash = new XxHash128();
        for (long offset = 0; offset < length; offset += chunk)
        {
            int count = (int)Math.Min(chunk, length - offset);
            Buffer.MemoryCopy(source + offset, destination + offset, count, count);
            hash.Append(new ReadOnlySpan<byte>(destination + offset, count));
        }
        return CheckpointFormat.HashText(hash.GetCurrentHash());
    }

    public void Dispose()
    {
        foreach (var shard in Shards)
        {
            shard.Buffer.Dispose();
        }
    }
}

/// <summary>One shard file's bytes and the tensors in it.</summary>
public sealed class ShardImage
{
    internal ShardImage(string group, int rank, string file, IReadOnlyList<TensorSlot> tensors, NativeBuffer buffer)
    {
        Group = group;
        Rank = rank;
        File = file;
        Tensors = tensors;
        Buffer = buffer;
    }

    public string Group { get; }
    public int Rank { get; }
    public string File { get; }
    public IReadOnlyList<TensorSlot> Tensors { get; }
    public long Length => Buffer.Length;
    internal NativeBuffer Buffer { get; }
}

/// <summary>Where one tensor (or piece of one) sits in its shard, and the hash of its bytes at the last capture.</summary>
public sealed record TensorSlot(CheckpointPiece Piece, long Offset, long Length)
{
    public string Name => Piece.Name;

    public Tensor Source => Piece.Data;

    /// <summary>XxHash128 of the captured bytes (set by <see cref="CheckpointImage.Capture"/>).</summary>
    public string Hash { get; internal set; } = "";
}
