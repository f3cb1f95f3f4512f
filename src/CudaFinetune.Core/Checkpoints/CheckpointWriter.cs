using System.Diagnostics;
using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>A non-tensor file to put into a checkpoint: the first <see cref="Length"/> bytes of <see cref="Source"/>.</summary>
public sealed record CheckpointExtraFile(string RelativePath, string Source, long Length);

/// <summary>A checkpoint that is on disk and committed.</summary>
public sealed record CommittedCheckpoint(string Directory, long Step, long Bytes, TimeSpan WriteTime);

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
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(extraFiles);
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(checkpointsDir);
        string name = CheckpointFormat.DirectoryNameFor(manifest.Training.Step);
        string temporary = Path.Combine(checkpointsDir, $"{CheckpointFormat.TemporaryPrefix}{name}-{Guid.NewGuid():N}");
        string id = Guid.NewGuid().ToString("N");
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
            return new CommittedCheckpoint(final, manifest.Training.Step, complete.TotalBytes + manifestBytes.Length, clock.Elapsed);
        }
        catch
        {
            CheckpointStore.TryDeleteDirectory(temporary);
            throw;
        }
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
            slot.Name, shard.Group, slot.Source.DType, [.. slot.Source.Shape.Dimensions.Select(d => (long)d)], shard.File, slot.Offset, slot.Length, slot.Hash))];
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
                Posix.Flush(direct, path);
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
        using (var source = new FileStream(file.Source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
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
