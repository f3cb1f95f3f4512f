using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using CudaFinetune.Backends;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;

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

    private Checkpoint(string directory, CheckpointManifest manifest)
    {
        Directory = directory;
        Manifest = manifest;
    }

    public string Directory { get; }

    public string Name => Path.GetFileName(Directory);

    public CheckpointManifest Manifest { get; }

    /// <summary>Reads the manifest and checks the checkpoint's structure (not yet the tensor bytes).</summary>
    public static Checkpoint Open(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string dir = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(dir))
        {
            throw new CheckpointCorruptException(dir, null, null, "no such directory");
        }
        string manifestPath = Path.Combine(dir, CheckpointFormat.ManifestFileName);
        if (!File.Exists(manifestPath))
        {
            throw new CheckpointCorruptException(dir, CheckpointFormat.ManifestFileName, null, "is missing (an incomplete or foreign directory)");
        }
        long manifestLength = new FileInfo(manifestPath).Length;
        if (manifestLength > MaxManifestBytes)
        {
            throw new CheckpointCorruptException(dir, CheckpointFormat.ManifestFileName, null, $"is {manifestLength} bytes, more than any manifest");
        }
        var manifest = ManifestJson.Read(File.ReadAllBytes(manifestPath), dir);
        CheckStructure(dir, manifest);
        return new Checkpoint(dir, manifest);
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
            string path = Path.Combine(dir, shard.File);
            if (!File.Exists(path))
            {
                throw Bad(shard.File, null, "is missing");
            }
            long actual = new FileInfo(path).Length;
            if (actual != shard.Length)
            {
                throw Bad(shard.File, null, actual < shard.Length
                    ? $"is {actual} bytes but the manifest records {shard.Length} (truncated)"
                    : $"is {actual} bytes but the manifest records {shard.Length} (bytes were appended)");
            }
            byte[] header = new byte[ShardHeader.Length];
            using (var handle = File.OpenHandle(path))
            {
                int read = RandomAccess.Read(handle, header, 0);
                if (ShardHeader.Check(header.AsSpan(0, read), m.CheckpointId, shard.Group, shard.Rank) is { } problem)
                {
                    throw Bad(shard.File, null, problem);
                }
            }
        }
        var names = new HashSet<(string, string)>();
        foreach (var group in m.Tensors.GroupBy(t => t.File))
        {
            if (!shards.TryGetValue(group.Key, out var shard))
            {
                throw Bad(CheckpointFormat.ManifestFileName, group.First().Name, $"refers to shard '{group.Key}', which the manifest does not list");
            }
            long end = ShardHeader.Length;
            foreach (var t in group.OrderBy(t => t.Offset))
            {
                if (!names.Add((t.Group, t.Name)))
                {
                    throw Bad(CheckpointFormat.ManifestFileName, t.Name, "is listed twice");
                }
                if (t.Group != shard.Group)
                {
                    throw Bad(t.File, t.Name, $"is in group '{t.Group}' but its shard holds group '{shard.Group}'");
                }
                long expected;
                try
                {
                    expected = checked(t.Shape.Aggregate(1L, (a, d) => a * d) * t.DType.SizeInBytes());
                }
                catch (OverflowException)
                {
                    throw Bad(t.File, t.Name, "has a shape too large for any file");
                }
                if (t.Length != expected)
                {
                    throw Bad(t.File, t.Name, $"is recorded as {t.Length} bytes but a {t.DType.SafetensorsName()} tensor of shape [{string.Join(", ", t.Shape)}] has {expected}");
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
        foreach (var file in m.Files)
        {
            string path = Path.Combine(dir, file.Path);
            if (!File.Exists(path))
            {
                throw Bad(file.Path, null, "is missing");
            }
            long actual = new FileInfo(path).Length;
            if (actual != file.Length)
            {
                throw Bad(file.Path, null, $"is {actual} bytes but the manifest records {file.Length}");
            }
        }
    }

    /// <summary>Hashes every tensor and file; throws on the first (in manifest order) that does not match.</summary>
    public void Verify() => Scan(destinations: null, backend: null);

    /// <summary>
    /// Copies every tensor of the checkpoint into its destination, verifying hashes on the way. The
    /// destinations must match the checkpoint one to one (same names, dtypes and shapes); a mismatch is
    /// a <see cref="UserErrorException"/> saying what differs. When verification fails part-way some
    /// destinations hold new bytes: the caller must load another checkpoint or give up.
    /// </summary>
    public void Load(IReadOnlyDictionary<(string Group, string Name), Tensor> destinations, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(destinations);
        ArgumentNullException.ThrowIfNull(backend);
        foreach (var t in Manifest.Tensors)
        {
            if (!destinations.TryGetValue((t.Group, t.Name), out var target))
            {
                throw new UserErrorException($"checkpoint '{Directory}' holds {t.Group} tensor '{t.Name}', which this run does not have: the model, PEFT method or LoRA targets differ from the checkpoint's");
            }
            var shape = target.Shape.Dimensions.Select(d => (long)d);
            if (target.DType != t.DType || !shape.SequenceEqual(t.Shape))
            {
                throw new UserErrorException($"checkpoint '{Directory}': {t.Group} tensor '{t.Name}' is {t.DType.SafetensorsName()} [{string.Join(", ", t.Shape)}] but this run's is {target.DType.SafetensorsName()} [{string.Join(", ", shape)}]: the model or LoRA rank differs from the checkpoint's");
            }
        }
        var missing = destinations.Keys.Except(Manifest.Tensors.Select(t => (t.Group, t.Name))).FirstOrDefault();
        if (missing != default)
        {
            throw new UserErrorException($"checkpoint '{Directory}' has no {missing.Group} tensor '{missing.Name}', which this run needs: the model, PEFT method or LoRA targets differ from the checkpoint's");
        }
        Scan(destinations, backend);
    }

    /// <summary>The bytes of a listed non-tensor file, hash-checked.</summary>
    public byte[] ReadFile(string relativePath)
    {
        var entry = Manifest.Files.FirstOrDefault(f => f.Path == relativePath)
            ?? throw new CheckpointCorruptException(Directory, relativePath, null, "is not listed in the manifest");
        byte[] bytes = File.ReadAllBytes(Path.Combine(Directory, entry.Path));
        return CheckpointFormat.Hash(bytes) == entry.Hash
            ? bytes
            : throw new CheckpointCorruptException(Directory, entry.Path, null, "its content does not match the hash in the manifest");
    }

    private unsafe void Scan(IReadOnlyDictionary<(string Group, string Name), Tensor>? destinations, IBackend? backend)
    {
        var maps = new Dictionary<string, MappedShard>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in Manifest.Shards)
            {
                maps[shard.File] = new MappedShard(Path.Combine(Directory, shard.File));
            }
            // Each job hashes (and copies) one tensor and checks that the padding before it is zero.
            var jobs = new List<(CheckpointTensor Tensor, long GapStart)>();
            foreach (var group in Manifest.Tensors.GroupBy(t => t.File))
            {
                long end = ShardHeader.Length;
                foreach (var t in group.OrderBy(t => t.Offset))
                {
                    jobs.Add((t, end));
                    end = t.Offset + t.Length;
                }
            }
            var order = Enumerable.Range(0, jobs.Count).OrderByDescending(i => jobs[i].Tensor.Length).ToArray();
            var errors = new string?[jobs.Count];
            Parallel.For(0, order.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, k =>
            {
                int i = order[k];
                var (t, gapStart) = jobs[i];
                var target = destinations?[(t.Group, t.Name)];
                errors[i] = ScanTensor(maps[t.File].Pointer, t, gapStart, target, backend);
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
            _ = ReadFile(file.Path);
        }
    }

    private static unsafe string? ScanTensor(byte* shard, CheckpointTensor t, long gapStart, Tensor? target, IBackend? backend)
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
        bool hostTarget = target?.Storage is HostStorage;
        for (long offset = 0; offset < t.Length; offset += CheckpointFormat.CopyChunkBytes)
        {
            var chunk = new ReadOnlySpan<byte>(start + offset, (int)Math.Min(CheckpointFormat.CopyChunkBytes, t.Length - offset));
            hash.Append(chunk);
            if (hostTarget)
            {
                TensorBytes.CopyIn(backend!, chunk, target!, offset); // while the chunk is still in cache
            }
        }
        if (CheckpointFormat.HashText(hash.GetCurrentHash()) != t.Hash)
        {
            return "its bytes do not match the hash in the manifest (damaged or modified)";
        }
        if (target is not null && !hostTarget)
        {
            TensorBytes.CopyIn(backend!, new ReadOnlySpan<byte>(start, checked((int)t.Length)), target, 0);
        }
        return null;
    }

    /// <summary>A read-only memory map of a whole shard file.</summary>
    private sealed unsafe class MappedShard : IDisposable
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;

        public MappedShard(string path)
        {
            _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            Pointer = pointer + _view.PointerOffset;
        }

        public byte* Pointer { get; }

        public void Dispose()
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }
}
