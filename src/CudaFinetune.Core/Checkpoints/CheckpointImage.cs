using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Host buffers laid out exactly as the shard files will be on disk (a 4 KiB header, then every
/// tensor 4 KiB-aligned). <see cref="Capture"/> snapshots the live tensors into them on the training
/// thread; the background writer then writes each buffer with one sequential pass while training
/// goes on. The layout is fixed when the image is made, so the buffers are reused by every save.
/// </summary>
public sealed unsafe class CheckpointImage : IDisposable
{
    private CheckpointImage(IReadOnlyList<ShardImage> shards) => Shards = shards;

    public IReadOnlyList<ShardImage> Shards { get; }

    /// <summary>Bytes of all shard files.</summary>
    public long TotalBytes => Shards.Sum(s => s.Length);

    /// <summary>Lays out the tensors, grouped by their group (one shard per group for rank 0).</summary>
    public static CheckpointImage Create(IEnumerable<(string Name, string Group, Tensor Source)> tensors, int rank = 0)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var shards = new List<ShardImage>();
        foreach (var group in tensors.GroupBy(t => t.Group))
        {
            long offset = ShardHeader.Length;
            var slots = new List<TensorSlot>();
            foreach (var (name, _, source) in group)
            {
                long length = TensorBytes.Length(source);
                slots.Add(new TensorSlot(name, source, offset, length));
                offset = CheckpointFormat.Align(offset + length);
            }
            long end = slots.Count == 0 ? ShardHeader.Length : slots[^1].Offset + slots[^1].Length;
            shards.Add(new ShardImage(group.Key, rank, CheckpointFormat.ShardFileName(group.Key, rank), slots, new NativeBuffer(end)));
        }
        return new CheckpointImage(shards);
    }

    /// <summary>
    /// Copies every tensor's current bytes into the buffers: the only part of a save that training
    /// waits for. Host tensors are copied on all cores (one copy thread reaches only part of the
    /// memory bandwidth); other tensors go through the backend one by one.
    /// </summary>
    public void Capture(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        var slots = Shards.SelectMany(shard => shard.Tensors.Select(slot => (shard, slot))).ToArray();
        if (slots.All(x => x.slot.Source.Storage is HostStorage))
        {
            Parallel.For(0, slots.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
                i => TensorBytes.CopyOut(backend, slots[i].slot.Source, slots[i].shard.Buffer.Pointer + slots[i].slot.Offset));
            return;
        }
        foreach (var (shard, slot) in slots)
        {
            TensorBytes.CopyOut(backend, slot.Source, shard.Buffer.Pointer + slot.Offset);
        }
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

/// <summary>Where one tensor sits in its shard.</summary>
public sealed record TensorSlot(string Name, Tensor Source, long Offset, long Length);
