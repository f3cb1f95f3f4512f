using System.Diagnostics;
using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// A non-tensor file to put into a checkpoint: the first <see cref="Length"/> bytes of <see cref="Source"/>, which must be a
/// regular file. <see cref="FollowLinks"/> only for a file the user pointed us at outside the output directory (the model's
/// config.json, which Hugging Face's cache links to a blob); one in the output directory is never read through a link.
/// </summary>
public sealed record CheckpointExtraFile(string RelativePath, string Source, long Length, bool FollowLinks = false);

/// <summary>A checkpoint that is on disk and committed.</summary>
public sealed record CommittedCheckpoint(string Directory, long Step, long Bytes, TimeSpan WriteTime, string Id);

/// <summary>
/// One rank's place in a checkpoint that <see cref="WorldSize"/> ranks write together (on a file system they all see):
/// each writes its shards into the same temporary directory, ranks other than 0 then leave a description of their part
/// there, and rank 0 — which waits up to <see cref="Timeout"/> for the parts, or until <see cref="Abandoned"/> — merges
/// them into the one manifest and commits. All ranks derive the same checkpoint id, so they agree on the directory.
/// </summary>
/// <param name="PeerStopped">tells, without waiting, that another rank's process has ended (its part will never come)</param>
public sealed record CheckpointRanks(int Rank, int WorldSize, TimeSpan Timeout, Func<bool>? PeerStopped = null, CancellationToken Abandoned = default)
{
    /// <summary>A checkpoint written by one rank alone.</summary>
    public static CheckpointRanks Alone { get; } = new(0, 1, TimeSpan.Zero);
}

/// <summary>
/// Writes one checkpoint so that it either exists complete or not at all. Everything goes into
/// <c>checkpoints/.tmp-step-N-…</c>: each shard with one sequential write of its image (hashed when
/// it was captured; unbuffered where the system allows), the extra files, and the manifest last; every file and directory is
/// fsynced; then the directory is renamed to <c>step-N</c>, and finally the <c>latest</c> pointer is
/// replaced atomically. A crash at any instant leaves at most a <c>.tmp-</c> directory, which no
/// reader takes for a checkpoint and the next run deletes.
/// </summary>
public static class CheckpointWriter
{
    private const int WriteChunk = 8 << 20;

    /// <param name="checkpointsDir">the output directory's checkpoints/ directory</param>
    /// <param name="image">captured (and hashed) tensor bytes; shard headers are filled in here</param>
    /// <param name="manifest">the manifest without shards, tensors, files and id (filled in here)</param>
    /// <param name="extraFiles">files copied into the checkpoint</param>
    public static CommittedCheckpoint Write(string checkpointsDir, CheckpointImage image, CheckpointManifest manifest, IReadOnlyList<CheckpointExtraFile> extraFiles)
        => Write(checkpointsDir, image, manifest, extraFiles, Guid.NewGuid().ToString("N"), CheckpointRanks.Alone)!;

    /// <summary>
    /// This rank's share of checkpoint <paramref name="id"/> (32 hex digits, the same on every rank): its shards, and on
    /// rank 0 everything else and the commit. Returns the committed checkpoint on rank 0, null on the others.
    /// </summary>
    public static CommittedCheckpoint? Write(string checkpointsDir, CheckpointImage image, CheckpointManifest manifest, IReadOnlyList<CheckpointExtraFile> extraFiles,
        string id, CheckpointRanks ranks)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(extraFiles);
        ArgumentNullException.ThrowIfNull(ranks);
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(checkpointsDir);
        string name = CheckpointFormat.DirectoryNameFor(manifest.Training.Step);
        string temporary = Path.Combine(checkpointsDir, $"{CheckpointFormat.TemporaryPrefix}{name}-{id}");
        try
        {
            Directory.CreateDirectory(temporary);
            var tensors = new List<CheckpointTensor>();
            var shards = new List<CheckpointShard>();
            foreach (var shard in image.Shards)
            {
                tensors.AddRange(WriteShard(temporary, shard, id));
                shards.Add(new CheckpointShard(shard.File, shard.Group, shard.Rank, shard.Length));
            }
            if (ranks.Rank != 0)
            {
                WritePart(temporary, id, ranks.Rank, shards, tensors);
                return null;
            }
            for (int rank = 1; rank < ranks.WorldSize; rank++)
            {
                var (rankShards, rankTensors) = ReadPart(temporary, id, rank, ranks);
                shards.AddRange(rankShards);
                tensors.AddRange(rankTensors);
            }
            var files = extraFiles.Select(f => CopyExtraFile(temporary, f)).ToList();
            var complete = manifest with { CheckpointId = id, Shards = shards, Tensors = tensors, Files = files };
            byte[] manifestBytes = ManifestJson.Write(complete);
            WriteDurably(Path.Combine(temporary, CheckpointFormat.ManifestFileName), manifestBytes);
            foreach (string directory in Directory.EnumerateDirectories(temporary, "*", SearchOption.AllDirectories))
            {
                Posix.FlushDirectory(directory);
            }
            Posix.FlushDirectory(temporary);
            string final = Path.Combine(checkpointsDir, name);
            Commit(checkpointsDir, temporary, final);
            CheckpointStore.WriteLatest(checkpointsDir, name);
            CheckpointStore.RemoveAbandonedWrites(checkpointsDir, manifest.Training.Step);
            return new CommittedCheckpoint(final, manifest.Training.Step, complete.TotalBytes + manifestBytes.Length, clock.Elapsed, id);
        }
        catch
        {
            // Whichever rank fails removes the write: the others' shards are useless without its own, and rank 0,
            // waiting for the parts, sees the directory gone and gives up at once (RemoveAbandonedWrites takes
            // what a slower rank writes into it afterwards).
            CheckpointStore.TryDeleteDirectory(temporary);
            throw;
        }
    }

    private static string PartPath(string temporary, int rank) => Path.Combine(temporary, $".rank-{rank:D5}.part");

    /// <summary>Rank r's description of its shards, made visible whole (written aside, fsynced, renamed).</summary>
    private static void WritePart(string temporary, string id, int rank, IReadOnlyList<CheckpointShard> shards, IReadOnlyList<CheckpointTensor> tensors)
    {
        foreach (string directory in Directory.EnumerateDirectories(temporary, "*", SearchOption.AllDirectories))
        {
            Posix.FlushDirectory(directory);
        }
        string path = PartPath(temporary, rank), aside = path + ".tmp";
        WriteDurably(aside, ManifestJson.WritePart(id, rank, shards, tensors));
        File.Move(aside, path);
    }

    /// <summary>Waits for rank r's part, reads it, and removes it (the committed checkpoint holds only what its manifest lists).</summary>
    private static (List<CheckpointShard>, List<CheckpointTensor>) ReadPart(string temporary, string id, int rank, CheckpointRanks ranks)
    {
        string path = PartPath(temporary, rank);
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (deadline.Elapsed > ranks.Timeout)
            {
                throw new IOException($"rank {rank} did not finish writing its shards of this checkpoint within {ranks.Timeout.TotalSeconds:0} s");
            }
            if (ranks.Abandoned.IsCancellationRequested)
            {
                throw new IOException($"the save was abandoned (a rank stopped) before rank {rank} finished writing its shards");
            }
            if (ranks.PeerStopped?.Invoke() == true && !File.Exists(path)) // a rank may write its part and then end
            {
                throw new IOException($"a rank stopped before rank {rank} finished writing its shards of this checkpoint");
            }
            if (!Directory.Exists(temporary))
            {
                throw new IOException($"another rank could not write its shards of this checkpoint and removed it");
            }
            Thread.Sleep(10);
        }
        var part = ManifestJson.ReadPart(File.ReadAllBytes(path), temporary, id, rank);
        File.Delete(path);
        return part;
    }

    /// <summary>Renames the finished directory into place; an earlier checkpoint of the same step is replaced.</summary>
    private static void Commit(string checkpointsDir, string temporary, string final)
    {
        string? replaced = null;
        if (Directory.Exists(final))
        {
            replaced = Path.Combine(checkpointsDir, $"{CheckpointFormat.DeletingPrefix}{Path.GetFileName(final)}-{Guid.NewGuid():N}");
            Directory.Move(final, replaced);
        }
        Directory.Move(temporary, final);
        Posix.FlushDirectory(checkpointsDir);
        if (replaced is not null)
        {
            CheckpointStore.TryDeleteDirectory(replaced);
        }
    }

    private static unsafe List<CheckpointTensor> WriteShard(string directory, ShardImage shard, string id)
    {
        ShardHeader.Write(shard.Buffer.Slice(0, ShardHeader.Length), id, shard.Group, shard.Rank);
        string path = Path.Combine(directory, shard.File);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WriteImage(path, shard.Buffer);
        return [.. shard.Tensors.Select(slot => new CheckpointTensor(
            slot.Name, shard.Group, slot.Source.DType, [.. slot.Piece.Shape.Dimensions.Select(d => (long)d)], shard.File, slot.Offset, slot.Length, slot.Hash, slot.Piece.Slice))];
    }

    /// <summary>
    /// Writes the buffer as the whole file and fsyncs it. Unbuffered (O_DIRECT) where the system
    /// allows: the device reads our aligned buffer directly, so the write costs the CPUs — busy
    /// training — almost nothing; the last block is written whole and the file cut to length.
    /// </summary>
    private static unsafe void WriteImage(string path, NativeBuffer buffer)
    {
        using (var direct = Posix.TryCreateUnbuffered(path))
        {
            if (direct is not null)
            {
                for (long offset = 0; offset < buffer.Capacity; offset += WriteChunk)
                {
                    RandomAccess.Write(direct, new ReadOnlySpan<byte>(buffer.Pointer + offset, (int)Math.Min(WriteChunk, buffer.Capacity - offset)), offset);
                }
                RandomAccess.SetLength(direct, buffer.Length);
                RandomAccess.FlushToDisk(direct);
                return;
            }
        }
        using var stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, BufferSize = 0, PreallocationSize = buffer.Length });
        for (long offset = 0; offset < buffer.Length; offset += WriteChunk)
        {
            stream.Write(new ReadOnlySpan<byte>(buffer.Pointer + offset, (int)Math.Min(WriteChunk, buffer.Length - offset)));
        }
        stream.Flush(flushToDisk: true);
    }

    private static CheckpointFile CopyExtraFile(string directory, CheckpointExtraFile file)
    {
        byte[] bytes = new byte[file.Length];
        using (var source = RegularFiles.OpenRead(file.Source, file.FollowLinks))
        {
            source.ReadExactly(bytes);
        }
        string path = Path.Combine(directory, file.RelativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WriteDurably(path, bytes);
        return new CheckpointFile(file.RelativePath, bytes.Length, CheckpointFormat.Hash(bytes));
    }

    private static void WriteDurably(string path, ReadOnlySpan<byte> bytes)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }
}
