using System.IO.Hashing;
using CudaFinetune.Backends;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// A checkpoint directory opened for reading. <see cref="Open"/> checks everything that can be
/// checked without reading the tensors (manifest integrity and fields, shard files present with the
/// recorded lengths and headers, a consistent tensor index); <see cref="Verify"/> and
/// <see cref="Load"/> then read every tensor through a memory map, in parallel, hashing each as it
/// is copied into place. Any problem is a <see cref="CheckpointCorruptException"/> that names the
/// checkpoint, the file and the tensor.
/// </summary>
public sealed class Checkpoint
{
    private const long MaxManifestBytes = 256 << 20;

    private readonly CheckpointPresence _presence;

    private Checkpoint(CheckpointPresence presence, CheckpointManifest manifest)
    {
        _presence = presence;
        Directory = presence.Directory;
        Manifest = manifest;
    }

    public string Directory { get; }

    public string Name => Path.GetFileName(Directory);

    public CheckpointManifest Manifest { get; }

    /// <summary>
    /// Reads the manifest and checks the checkpoint's structure (not yet the tensor bytes). A checkpoint removed or
    /// replaced while this reads it is a <see cref="CheckpointRemovedException"/>, not damage.
    /// </summary>
    public static Checkpoint Open(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var presence = CheckpointPresence.Of(dir);
        try
        {
            CheckpointFiles.CheckTree(dir);
            byte[] bytes = CheckpointFiles.ReadAll(dir, CheckpointFormat.ManifestFileName, MaxManifestBytes, "any manifest has", "is missing (an incomplete or foreign directory)");
            var manifest = ManifestJson.Read(bytes, dir);
            CheckStructure(dir, manifest);
            presence.ThrowIfGone();
            return new Checkpoint(presence, manifest);
        }
        catch (CheckpointCorruptException e)
        {
            throw presence.Explain(e);
        }
    }

    private static void CheckStructure(string dir, CheckpointManifest m)
    {
        CheckpointCorruptException Bad(string? file, string? tensor, string problem) => new(dir, file, tensor, problem);
        if (m.WorldSize < 1)
        {
            throw Bad(CheckpointFormat.ManifestFileName, null, $"world_size is {m.WorldSize}");
        }
        var shards = new Dictionary<string, CheckpointShard>(StringComparer.Ordinal);
        foreach (var shard in m.Shards)
        {
            if (!shards.TryAdd(shard.File, shard))
            {
                throw Bad(CheckpointFormat.ManifestFileName, null, $"shard '{shard.File}' is listed twice");
            }
            if (shard.Rank >= m.WorldSize)
            {
                throw Bad(shard.File, null, $"rank {shard.Rank} is outside world size {m.WorldSize}");
            }
            using var handle = OpenShard(dir, shard);
            byte[] header = new byte[ShardHeader.Length];
            int read = RandomAccess.Read(handle, header, 0);
            if (ShardHeader.Check(header.AsSpan(0, read), m.CheckpointId, shard.Group, shard.Rank, m.FormatVersion) is { } problem)
            {
                throw Bad(shard.File, null, problem);
            }
        }
        foreach (var group in m.Tensors.GroupBy(t => t.File))
        {
            if (!shards.TryGetValue(group.Key, out var shard))
            {
                throw Bad(CheckpointFormat.ManifestFileName, group.First().Name, $"refers to shard '{group.Key}', which the manifest does not list");
            }
            long end = ShardHeader.Length;
            foreach (var t in group.OrderBy(t => t.Offset))
            {
                if (t.Group != shard.Group)
                {
                    throw Bad(t.File, t.Name, $"is in group '{t.Group}' but its shard holds group '{shard.Group}'");
                }
                long elements;
                try
                {
                    elements = checked(t.Shape.Aggregate(1L, (a, d) => a * d));
                    _ = checked(elements * t.DType.SizeInBytes());
                }
                catch (OverflowException)
                {
                    throw Bad(t.File, t.Name, "has a shape too large for any file");
                }
                if (t.Slice is { } slice && (m.FormatVersion < 2 || slice.Count < 1 || slice.Start > elements - slice.Count))
                {
                    throw Bad(t.File, t.Name, $"has the slice [{slice.Start}, +{slice.Count}), which is empty or lies outside its {elements} elements (or the format version, {m.FormatVersion}, has no slices)");
                }
                long expected = (t.Slice?.Count ?? elements) * t.DType.SizeInBytes();
                if (t.Length != expected)
                {
                    throw Bad(t.File, t.Name, $"is recorded as {t.Length} bytes but {(t.Slice is null ? "a" : $"{t.Slice.Value.Count} elements of a")} {t.DType.SafetensorsName()} tensor of shape [{string.Join(", ", t.Shape)}] {(t.Slice is null ? "has" : "have")} {expected}");
                }
                if (t.Offset % CheckpointFormat.Alignment != 0 || t.Offset < end || t.Offset > shard.Length - t.Length)
                {
                    throw Bad(t.File, t.Name, $"has offset {t.Offset}, which is unaligned, overlaps the header or another tensor, or lies beyond the shard's {shard.Length} bytes");
                }
                end = t.Offset + t.Length;
            }
            if (end != shard.Length)
            {
                throw Bad(shard.File, null, $"has {shard.Length - end} bytes after its last tensor");
            }
        }
        foreach (var pieces in m.Tensors.GroupBy(t => (t.Group, t.Name)))
        {
            CheckPiecesCover(pieces.ToList(), Bad);
        }
        foreach (var file in m.Files)
        {
            using var handle = CheckpointFiles.Open(dir, file.Path);
            long actual = CheckpointFiles.LengthOf(dir, file.Path, handle);
            if (actual != file.Length)
            {
                throw Bad(file.Path, null, $"is {actual} bytes but the manifest records {file.Length}");
            }
        }
    }

    /// <summary>A shard opened (a regular file, not through a link) and checked to have its recorded length: what is then read or mapped is what was checked.</summary>
    private static SafeFileHandle OpenShard(string dir, CheckpointShard shard)
    {
        var handle = CheckpointFiles.Open(dir, shard.File);
        long actual = CheckpointFiles.LengthOf(dir, shard.File, handle);
        if (actual != shard.Length)
        {
            handle.Dispose();
            throw new CheckpointCorruptException(dir, shard.File, null, actual < shard.Length
                ? $"is {actual} bytes but the manifest records {shard.Length} (truncated)"
                : $"is {actual} bytes but the manifest records {shard.Length} (bytes were appended)");
        }
        return handle;
    }

    /// <summary>The entries of one tensor (its slices, or one whole entry) must agree on dtype and shape and cover it exactly once.</summary>
    private static void CheckPiecesCover(List<CheckpointTensor> pieces, Func<string?, string?, string, CheckpointCorruptException> bad)
    {
        var first = pieces[0];
        if (pieces.Any(p => p.DType != first.DType || !p.Shape.SequenceEqual(first.Shape)))
        {
            throw bad(CheckpointFormat.ManifestFileName, first.Name, "is listed with different dtypes or shapes");
        }
        long covered = 0;
        foreach (var piece in pieces.OrderBy(p => p.Elements.Start))
        {
            if (piece.Elements.Start != covered)
            {
                throw bad(CheckpointFormat.ManifestFileName, first.Name, piece.Elements.Start < covered
                    ? "is listed twice (or in overlapping slices)"
                    : $"has no bytes for elements [{covered}, {piece.Elements.Start}) (a rank's slice is missing)");
            }
            covered = piece.Elements.End;
        }
        if (covered != first.TotalElements)
        {
            throw bad(CheckpointFormat.ManifestFileName, first.Name, $"has no bytes for elements [{covered}, {first.TotalElements}) (a rank's slice is missing)");
        }
    }

    /// <summary>Hashes every tensor and file; throws on the first (in manifest order) that does not match.</summary>
    public void Verify() => Guarded(() => Scan(destinations: null, backend: null));

    /// <summary>
    /// Fills every destination piece from the checkpoint, whichever slices the checkpoint stores the tensor in (a resume
    /// at another world size), verifying the hash of every stored entry it reads from. <paramref name="runTensors"/> are
    /// all the tensors of the run (default: those the destinations name); the checkpoint must hold exactly these, with the
    /// destinations' dtypes and whole shapes — a mismatch is a <see cref="UserErrorException"/> saying what differs. When
    /// verification fails part-way some destinations hold new bytes: the caller must load another checkpoint or give up.
    /// </summary>
    public void Load(IReadOnlyList<CheckpointPiece> destinations, IBackend backend, IEnumerable<(string Group, string Name)>? runTensors = null)
    {
        ArgumentNullException.ThrowIfNull(destinations);
        ArgumentNullException.ThrowIfNull(backend);
        var stored = Manifest.Tensors.ToLookup(t => (t.Group, t.Name));
        var wanted = destinations.Select(d => (d.Group, d.Name)).Concat(runTensors ?? []).ToHashSet();
        foreach (var t in Manifest.Tensors)
        {
            if (!wanted.Contains((t.Group, t.Name)))
            {
                throw new UserErrorException($"checkpoint '{Directory}' holds {t.Group} tensor '{t.Name}', which this run does not have: the model, PEFT method or LoRA targets differ from the checkpoint's");
            }
        }
        var missing = wanted.FirstOrDefault(name => !stored.Contains(name));
        if (missing != default)
        {
            throw new UserErrorException($"checkpoint '{Directory}' has no {missing.Group} tensor '{missing.Name}', which this run needs: the model, PEFT method or LoRA targets differ from the checkpoint's");
        }
        foreach (var d in destinations)
        {
            var t = stored[(d.Group, d.Name)].First();
            var shape = d.Shape.Dimensions.Select(x => (long)x);
            if (t.DType != d.Data.DType || !shape.SequenceEqual(t.Shape))
            {
                throw new UserErrorException($"checkpoint '{Directory}': {t.Group} tensor '{t.Name}' is {t.DType.SafetensorsName()} [{string.Join(", ", t.Shape)}] but this run's is {d.Data.DType.SafetensorsName()} [{string.Join(", ", shape)}]: the model or LoRA rank differs from the checkpoint's");
            }
            if (d.Start < 0 || d.Start > d.TotalElements - d.Data.ElementCount)
            {
                throw new ArgumentException($"destination piece of '{d.Name}' lies outside the tensor", nameof(destinations));
            }
        }
        Guarded(() => Scan(destinations, backend));
    }

    /// <summary>
    /// The bytes of a listed non-tensor file, hash-checked and, where the engine later parses it (metrics.jsonl), checked
    /// to parse (<see cref="CheckpointFormat.CheckContent"/>), so that damage is found here and falls back.
    /// </summary>
    public byte[] ReadFile(string relativePath) => Guarded(() => ReadListedFile(relativePath));

    private byte[] ReadListedFile(string relativePath)
    {
        var entry = Manifest.Files.FirstOrDefault(f => f.Path == relativePath)
            ?? throw new CheckpointCorruptException(Directory, relativePath, null, "is not listed in the manifest");
        byte[] bytes = CheckpointFiles.ReadAll(Directory, entry.Path, entry.Length, $"the {entry.Length} the manifest records");
        if (bytes.Length != entry.Length)
        {
            throw new CheckpointCorruptException(Directory, entry.Path, null, $"is {bytes.Length} bytes but the manifest records {entry.Length}");
        }
        if (CheckpointFormat.Hash(bytes) != entry.Hash)
        {
            throw new CheckpointCorruptException(Directory, entry.Path, null, "its content does not match the hash in the manifest");
        }
        return CheckpointFormat.CheckContent(entry.Path, bytes) is { } problem ? throw new CheckpointCorruptException(Directory, entry.Path, null, problem) : bytes;
    }

    /// <summary>
    /// Runs a read of the checkpoint's files, trusting what it found only while the directory is still the one
    /// <see cref="Open"/> read (<see cref="CheckpointPresence"/>).
    /// </summary>
    private void Guarded(Action read) => _ = Guarded(() =>
    {
        read();
        return true;
    });

    private T Guarded<T>(Func<T> read)
    {
        try
        {
            var result = read();
            _presence.ThrowIfGone();
            return result;
        }
        catch (CheckpointCorruptException e)
        {
            throw _presence.Explain(e);
        }
    }

/// <summary>Bytes [FromByte, +Bytes) of a stored entry go to byte ToByte of Destination.</summary>
    private readonly record struct Overlap(Tensor Destination, long FromByte, long ToByte, long Bytes);

    /// <summary>
    /// Hashes the stored entries — all of them without destinations, else those any destination overlaps — and copies the
    /// overlapping bytes into the destinations; throws for the first entry (in manifest order) that does not match.
    /// </summary>
    private unsafe void Scan(IReadOnlyList<CheckpointPiece>? destinations, IBackend? backend)
    {
        var maps = new Dictionary<string, MappedShard>(StringComparer.Ordinal);
        try
        {
            // Each job hashes (and copies from) one stored entry and checks that the padding before it is zero.
            var jobs = new List<(CheckpointTensor Tensor, long GapStart, Overlap[] Overlaps)>();
            foreach (var group in Manifest.Tensors.GroupBy(t => t.File))
            {
                long end = ShardHeader.Length;
                foreach (var t in group.OrderBy(t => t.Offset))
                {
                    var overlaps = destinations is null ? [] : OverlapsOf(t, destinations);
                    if (destinations is null || overlaps.Length > 0)
                    {
                        jobs.Add((t, end, overlaps));
                    }
                    end = t.Offset + t.Length;
                }
            }
            var shards = Manifest.Shards.ToDictionary(s => s.File, StringComparer.Ordinal);
            foreach (var file in jobs.Select(j => j.Tensor.File).Distinct())
            {
                maps[file] = new MappedShard(OpenShard(Directory, shards[file]));
            }
            var order = Enumerable.Range(0, jobs.Count).OrderByDescending(i => jobs[i].Tensor.Length).ToArray();
            var errors = new string?[jobs.Count];
            Parallel.For(0, order.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, k =>
            {
                int i = order[k];
                var (t, gapStart, overlaps) = jobs[i];
                errors[i] = ScanTensor(maps[t.File].Pointer, t, gapStart, overlaps, backend);
            });
            int bad = Array.FindIndex(errors, e => e is not null);
            if (bad >= 0)
            {
                throw new CheckpointCorruptException(Directory, jobs[bad].Tensor.File, jobs[bad].Tensor.Name, errors[bad]!);
            }
        }
        finally
        {
            foreach (var map in maps.Values)
            {
                map.Dispose();
            }
        }
        foreach (var file in Manifest.Files)
        {
            _ = ReadListedFile(file.Path);
        }
    }

    private static Overlap[] OverlapsOf(CheckpointTensor t, IReadOnlyList<CheckpointPiece> destinations)
    {
        var overlaps = new List<Overlap>();
        long size = t.DType.SizeInBytes();
        foreach (var d in destinations)
        {
            if (d.Group != t.Group || d.Name != t.Name)
            {
                continue;
            }
            long from = Math.Max(t.Elements.Start, d.Start), to = Math.Min(t.Elements.End, d.Start + d.Data.ElementCount);
            if (from < to)
            {
                overlaps.Add(new Overlap(d.Data, (from - t.Elements.Start) * size, (from - d.Start) * size, (to - from) * size));
            }
        }
        return [.. overlaps];
    }

    private static unsafe string? ScanTensor(byte* shard, CheckpointTensor t, long gapStart, Overlap[] overlaps, IBackend? backend)
    {
        for (long at = gapStart; at < t.Offset; at += CheckpointFormat.CopyChunkBytes)
        {
            if (new ReadOnlySpan<byte>(shard + at, (int)Math.Min(CheckpointFormat.CopyChunkBytes, t.Offset - at)).ContainsAnyExcept((byte)0))
            {
                return "the padding before it is not zero (the shard was modified)";
            }
        }
        var hash = new XxHash128();
        byte* start = shard + t.Offset;
        for (long offset = 0; offset < t.Length; offset += CheckpointFormat.CopyChunkBytes)
        {
            long count = Math.Min(CheckpointFormat.CopyChunkBytes, t.Length - offset);
            hash.Append(new ReadOnlySpan<byte>(start + offset, (int)count));
            foreach (var o in overlaps)
            {
                // Host destinations take the chunk while it is still in cache.
                long from = Math.Max(offset, o.FromByte), to = Math.Min(offset + count, o.FromByte + o.Bytes);
                if (o.Destination.Storage is HostStorage && from < to)
                {
                    TensorBytes.CopyIn(backend!, new ReadOnlySpan<byte>(start + from, (int)(to - from)), o.Destination, o.ToByte + (from - o.FromByte));
                }
            }
        }
        if (CheckpointFormat.HashText(hash.GetCurrentHash()) != t.Hash)
        {
            return "its bytes do not match the hash in the manifest (damaged or modified)";
        }
        foreach (var o in overlaps.Where(o => o.Destination.Storage is not HostStorage))
        {
            TensorBytes.CopyInRange(backend!, new ReadOnlySpan<byte>(start + o.FromByte, checked((int)o.Bytes)), o.Destination, o.ToByte);
        }
        return null;
    }
}
