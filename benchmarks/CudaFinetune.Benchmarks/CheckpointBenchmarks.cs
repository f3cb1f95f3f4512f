using System.Diagnostics;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// Save and load+verify of a 1 GiB checkpoint (64 F32 tensors of 16 MiB, half "model", half
/// "optimizer"), each beside the plain sequential write or read of the same bytes to the same disk
/// in the same run. Categories pair each of ours with its raw baseline, so the Ratio column is our
/// time over the raw time (throughput ratio = 1 / Ratio).
/// <list type="bullet">
/// <item>write: <see cref="RawWrite"/> (one file, FileStream without buffering, 8 MiB writes, fsync)
/// vs <see cref="Save"/> (Capture + CheckpointWriter.Write: shard writes with fsync, hashing,
/// manifest, directory fsyncs, rename, latest pointer). <see cref="WriteOnly"/> is the write alone
/// (what runs in the background), <see cref="Capture"/> the snapshot alone (what a training step
/// waits for). Each iteration's files are deleted, and the deletion committed, before the next.</item>
/// <item>read-cached: the files were written in the global setup and are re-read every iteration,
/// so both read from the page cache (as long as the kernel keeps them there).</item>
/// <item>read-cold: both files are evicted from the page cache (posix_fadvise DONTNEED) before every
/// iteration. On a VM the host may still cache the virtual disk.</item>
/// </list>
/// Every iteration is one operation (Monitoring; IterationSetup/Cleanup are outside the timing).
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 8, invocationCount: 1)]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class CheckpointBenchmarks : IThroughputBenchmark
{
    private const string Write = "write", ReadCached = "read-cached", ReadCold = "read-cold";
    private CpuBackend _backend = null!;
    private List<(string Name, string Group, Tensor Source)> _tensors = null!;
    private CheckpointImage _image = null!;
    private string _root = null!;

    // read benchmarks only
    private NativeBuffer _readBuffer = null!;
    private List<CheckpointPiece> _destinations = null!;
    private string _rawReadFile = null!, _loadCheckpoint = null!;

    public string Unit => "GB/s";

    public double UnitScale => 1e9;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => CheckpointData.ShardBytes;

    private string RawWriteFile => Path.Combine(_root, "raw-write.bin");

    private string SaveDir => Path.Combine(_root, "save", CheckpointFormat.DirectoryName);

    [GlobalSetup(Targets = [nameof(RawWrite), nameof(Save), nameof(WriteOnly), nameof(Capture)])]
    public void SetupWrite()
    {
        _root = CheckpointData.CreateRoot();
        _backend = new CpuBackend();
        _tensors = CheckpointData.Tensors(_backend);
        _image = CheckpointData.Image(_tensors, _backend);
    }

    [GlobalSetup(Targets = [nameof(RawRead), nameof(LoadVerify), nameof(RawReadCold), nameof(LoadVerifyCold)])]
    public void SetupRead()
    {
        SetupWrite();
        _rawReadFile = Path.Combine(_root, "raw-read.bin");
        CheckpointData.RawWrite(_image, _rawReadFile);
        _loadCheckpoint = CheckpointWriter.Write(Path.Combine(_root, "load", CheckpointFormat.DirectoryName), _image, CheckpointData.Manifest(1), []).Directory;
        _readBuffer = new NativeBuffer(_image.TotalBytes);
        _destinations = [];
        foreach (var (name, group, source) in _tensors)
        {
            var destination = _backend.Allocate(source.DType, source.Shape);
            destination.HostSpan<float>().Clear(); // fault the pages in before the first measurement
            _destinations.Add(CheckpointPiece.Whole(name, group, destination));
        }
    }

    [IterationCleanup(Target = nameof(RawWrite))]
    public void DeleteRawWrite()
    {
        File.Delete(RawWriteFile);
        PageCache.Settle();
    }

    [IterationCleanup(Targets = [nameof(Save), nameof(WriteOnly)])]
    public void DeleteSave()
    {
        Directory.Delete(SaveDir, recursive: true);
        PageCache.Settle();
    }

    [IterationSetup(Target = nameof(RawReadCold))]
    public void EvictRawRead() => PageCache.Evict(_rawReadFile);

    [IterationSetup(Target = nameof(LoadVerifyCold))]
    public void EvictCheckpoint()
    {
        foreach (string file in Directory.EnumerateFiles(_loadCheckpoint, "*", SearchOption.AllDirectories))
        {
            PageCache.Evict(file);
        }
    }

    [Benchmark(Baseline = true), BenchmarkCategory(Write)]
    public void RawWrite() => CheckpointData.RawWrite(_image, RawWriteFile);

    [Benchmark, BenchmarkCategory(Write)]
    public long Save()
    {
        _image.Capture(_backend);
        return CheckpointWriter.Write(SaveDir, _image, CheckpointData.Manifest(1), []).Bytes;
    }

    [Benchmark, BenchmarkCategory(Write)]
    public long WriteOnly() => CheckpointWriter.Write(SaveDir, _image, CheckpointData.Manifest(1), []).Bytes;

    [Benchmark, BenchmarkCategory(Write)]
    public void Capture() => _image.Capture(_backend);

    [Benchmark(Baseline = true), BenchmarkCategory(ReadCached)]
    public long RawRead() => CheckpointData.RawRead(_rawReadFile, _readBuffer);

    [Benchmark, BenchmarkCategory(ReadCached)]
    public void LoadVerify() => Checkpoint.Open(_loadCheckpoint).Load(_destinations, _backend);

    [Benchmark(Baseline = true), BenchmarkCategory(ReadCold)]
    public long RawReadCold() => CheckpointData.RawRead(_rawReadFile, _readBuffer);

    [Benchmark, BenchmarkCategory(ReadCold)]
    public void LoadVerifyCold() => Checkpoint.Open(_loadCheckpoint).Load(_destinations, _backend);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_destinations is not null)
        {
            CheckpointData.Dispose(_destinations.Select(d => d.Data));
        }
        _readBuffer?.Dispose();
        _image.Dispose();
        CheckpointData.Dispose(_tensors.Select(t => t.Source));
        _backend.Dispose();
        Directory.Delete(_root, recursive: true);
    }
}

/// <summary>
/// One bench-tiny LoRA training step (the reference step of <see cref="TrainingStepBenchmarks"/>)
/// alone, while <see cref="CheckpointSaver"/> saves a checkpoint in the background, and while the
/// plain sequential write of the same bytes (<see cref="CheckpointData.RawWrite"/>) runs in the
/// background instead. The checkpoint is the 1 GiB one of <see cref="CheckpointBenchmarks"/>, or
/// the full-fine-tuning state of bench-tiny (its weights and two AdamW moments of each, ~88 MB).
/// Every variant captures the image in IterationSetup (untimed), so each step starts with the
/// same memory traffic behind it; the background variants start their write there too, and their
/// IterationCleanup waits for it and deletes what it wrote. The step thus overlaps the start of
/// the write (the copy into the page cache and the hashing); a 1 GiB write outlasts the step, a
/// bench-tiny one ends inside it. The global cleanup prints how many writes ended before their step.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 2, iterationCount: 10, invocationCount: 1)]
public class CheckpointStepBenchmarks : IThroughputBenchmark
{
    private BenchTinyStep _step = null!;
    private CpuBackend _backend = null!;
    private List<Tensor> _owned = null!;
    private CheckpointImage _image = null!;
    private CheckpointSaver _saver = null!;
    private string _root = null!;
    private Task<double>? _rawWrite;
    private int _writes, _writesDoneBeforeStepEnd;
    private double _writeSeconds;

    [Params("1GiB", "bench-tiny-full")]
    public string Image { get; set; } = "1GiB";

    public string Unit => "tokens/s";

    public double UnitScale => 1;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => BenchTinyStep.Batch * BenchTinyStep.SeqLen;

    private string CheckpointsDir => Path.Combine(_root, CheckpointFormat.DirectoryName);

    private string RawFile => Path.Combine(_root, "raw-write.bin");

    [GlobalSetup]
    public void Setup()
    {
        _step = new BenchTinyStep(fullFineTuning: false);
        _backend = _step.Backend;
        var weights = _step.Model.Parameters;
        var rng = new Random(2);

        _root = CheckpointData.CreateRoot();
        List<(string Name, string Group, Tensor Source)> tensors;
        if (Image == "1GiB")
        {
            tensors = CheckpointData.Tensors(_backend);
            _owned = [.. tensors.Select(t => t.Source)];
        }
        else
        {
            // The model owns the weights; the moments are ours (random, like a trained run's).
            tensors = [.. weights.All.Select(p => (p.Name, CheckpointFormat.ModelGroup, p.Value))];
            _owned = [];
            foreach (var p in weights.All)
            {
                foreach (string moment in new[] { "exp_avg", "exp_avg_sq" })
                {
                    var t = _backend.Allocate(p.Value.DType, p.Value.Shape);
                    foreach (ref float x in t.HostSpan<float>())
                    {
                        x = (float)rng.NextDouble() * 1e-3f;
                    }
                    tensors.Add(($"{p.Name}.{moment}", CheckpointFormat.OptimizerGroup, t));
                    _owned.Add(t);
                }
            }
        }
        _image = CheckpointImage.Create(CheckpointData.Pieces(tensors));
        _image.Capture(_backend);
        Console.WriteLine($"// checkpoint image: {_image.TotalBytes / 1e6:F1} MB in {tensors.Count} tensors");
        _saver = new CheckpointSaver(CheckpointsDir, _image, _backend, keepLast: 0);
    }

    [IterationSetup(Target = nameof(StepAlone))]
    public void CaptureOnly() => _image.Capture(_backend);

    [IterationSetup(Target = nameof(StepDuringSave))]
    public void StartSave() => _saver.Save(CheckpointData.Manifest(1), []); // captures, then writes in the background

    [IterationCleanup(Target = nameof(StepDuringSave))]
    public void FinishSave()
    {
        var before = _saver.LastCommitted;
        _saver.ReportCompleted(); // commits only a write that has already finished
        bool doneBeforeStepEnd = !ReferenceEquals(before, _saver.LastCommitted);
        _saver.WaitForPending();
        Count(_saver.LastCommitted!.WriteTime.TotalSeconds, doneBeforeStepEnd);
        Directory.Delete(CheckpointsDir, recursive: true);
        PageCache.Settle();
    }

    [IterationSetup(Target = nameof(StepDuringRawWrite))]
    public void StartRawWrite()
    {
        _image.Capture(_backend);
        _rawWrite = Task.Factory.StartNew(() =>
        {
            long start = Stopwatch.GetTimestamp();
            CheckpointData.RawWrite(_image, RawFile);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    [IterationCleanup(Target = nameof(StepDuringRawWrite))]
    public void FinishRawWrite()
    {
        bool doneBeforeStepEnd = _rawWrite!.IsCompleted;
        Count(_rawWrite.GetAwaiter().GetResult(), doneBeforeStepEnd);
        File.Delete(RawFile);
        PageCache.Settle();
    }

    private void Count(double writeSeconds, bool doneBeforeStepEnd)
    {
        _writes++;
        _writeSeconds += writeSeconds;
        _writesDoneBeforeStepEnd += doneBeforeStepEnd ? 1 : 0;
    }

    [Benchmark(Baseline = true)]
    public double StepAlone() => Step();

    [Benchmark]
    public double StepDuringSave() => Step();

    [Benchmark]
    public double StepDuringRawWrite() => Step();

    private double Step() => _step.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_writes > 0)
        {
            Console.WriteLine($"// {_writes} background writes of {_image.TotalBytes / 1e6:F1} MB, mean {_writeSeconds / _writes:F2} s each; "
                + $"{_writesDoneBeforeStepEnd} ended before their step did");
        }
        _saver.Dispose(); // frees the image
        CheckpointData.Dispose(_owned);
        _step.Dispose();
        Directory.Delete(_root, recursive: true);
    }
}

/// <summary>The 1 GiB checkpoint and the raw I/O it is compared with.</summary>
internal static unsafe class CheckpointData
{
    public const int TensorsPerGroup = 32;
    public const int FloatsPerTensor = 4 << 20; // 16 MiB, a multiple of the 4 KiB alignment: no padding
    private const int Chunk = 8 << 20;
    private static readonly string[] Groups = [CheckpointFormat.ModelGroup, CheckpointFormat.OptimizerGroup];

    /// <summary>Bytes of the shard files: per group a 4 KiB header and the tensors.</summary>
    public static long ShardBytes => Groups.Length * (CheckpointFormat.Alignment + TensorsPerGroup * (long)FloatsPerTensor * sizeof(float));

    /// <summary>A fresh directory under the temporary directory (/tmp, the same disk as the repository here).</summary>
    public static string CreateRoot()
    {
        string root = Path.Combine(Path.GetTempPath(), "cudafinetune-checkpoint-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        return root;
    }

    /// <summary>64 F32 tensors of 4M values in roughly the range of trained weights, filled in parallel.</summary>
    public static List<(string Name, string Group, Tensor Source)> Tensors(CpuBackend backend)
    {
        var list = new List<(string, string, Tensor)>();
        foreach (string group in Groups)
        {
            for (int i = 0; i < TensorsPerGroup; i++)
            {
                list.Add(($"layers.{i / 4}.weight_{i % 4}", group, backend.Allocate(DType.F32, new Shape(2048, FloatsPerTensor / 2048))));
            }
        }
        Parallel.For(0, list.Count, i =>
        {
            var rng = new Random(i + 1);
            foreach (ref float x in list[i].Item3.HostSpan<float>())
            {
                x = (float)(rng.NextDouble() - 0.5) * 0.05f;
            }
        });
        return list;
    }

    public static IEnumerable<CheckpointPiece> Pieces(IEnumerable<(string Name, string Group, Tensor Source)> tensors)
        => tensors.Select(t => CheckpointPiece.Whole(t.Name, t.Group, t.Source));

    public static CheckpointImage Image(List<(string Name, string Group, Tensor Source)> tensors, CpuBackend backend)
    {
        var image = CheckpointImage.Create(Pieces(tensors));
        if (image.TotalBytes != ShardBytes)
        {
            throw new InvalidOperationException($"the image has {image.TotalBytes} bytes, expected {ShardBytes}");
        }
        image.Capture(backend);
        return image;
    }

    public static CheckpointManifest Manifest(long step) => new()
    {
        FormatVersion = CheckpointFormat.Version,
        CheckpointId = "",
        EngineVersion = "benchmark",
        Created = DateTimeOffset.UtcNow,
        Environment = [new("os", Environment.OSVersion.ToString())],
        Backend = "cpu",
        WeightDType = DType.F32,
        OptimizerDType = DType.F32,
        WorldSize = 1,
        Reason = CheckpointReason.Periodic,
        Training = new TrainingState
        {
            Step = step,
            Sampler = new SamplerState(42, 0, (int)step),
            MicroBatches = step,
            LastLoss = 1.25,
        },
        Sampler = new SamplerRecord(true, 1000, new string('a', 32)),
        Scheduler = new SchedulerRecord(SchedulerKind.Cosine, 1e-4, 10, 1000, 0.85),
        Optimizer = new OptimizerRecord(0.9, 0.999, 1e-8, 0.01, step),
        Fingerprints = new CheckpointFingerprints(new string('1', 32), new string('2', 32), new string('3', 32)),
        ConfigJson = "{\"lr\": 0.0001, \"seed\": 42}",
        Shards = [],
        Tensors = [],
        Files = [],
    };

    /// <summary>The plain sequential write: the image's bytes into one new file, 8 MiB per write, then fsync.</summary>
    public static void RawWrite(CheckpointImage image, string path)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        foreach (var shard in image.Shards)
        {
            for (long offset = 0; offset < shard.Length; offset += Chunk)
            {
                stream.Write(new ReadOnlySpan<byte>(shard.Buffer.Pointer + offset, (int)Math.Min(Chunk, shard.Length - offset)));
            }
        }
        stream.Flush(flushToDisk: true);
    }

    /// <summary>The plain sequential read: the whole file into <paramref name="destination"/>, 8 MiB per read.</summary>
    public static long RawRead(string path, NativeBuffer destination)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        long total = 0;
        int read;
        while ((read = stream.Read(new Span<byte>(destination.Pointer + total, (int)Math.Min(Chunk, destination.Length - total)))) > 0)
        {
            total += read;
        }
        return total == destination.Length ? total : throw new InvalidOperationException($"read {total} bytes of {destination.Length}");
    }

    public static void Dispose(IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            t.Dispose();
        }
    }
}

/// <summary>Page-cache control for the I/O benchmarks (Linux).</summary>
internal static partial class PageCache
{
    /// <summary>
    /// Commits what a deletion left to do (the file system's journal commit and, on a disk mounted with
    /// <c>discard</c> like this VM's, the discards of the freed blocks) before the next measurement, so
    /// that it is not charged to whatever runs next. Untimed: called from iteration cleanups.
    /// </summary>
    public static void Settle()
    {
        if (OperatingSystem.IsLinux())
        {
            SyncAll();
        }
    }

    /// <summary>Drops a file's pages from the page cache, so that the next read comes from the disk.</summary>
    private const int PosixFadvDontNeed = 4;

    public static void Evict(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the cold-cache benchmarks evict pages with posix_fadvise, which only Linux has here");
        }
        using var handle = File.OpenHandle(path);
        int error = PosixFadvise((int)handle.DangerousGetHandle(), 0, 0, PosixFadvDontNeed);
        if (error != 0)
        {
            throw new IOException($"posix_fadvise(DONTNEED) on '{path}' failed with error {error}");
        }
    }

    [LibraryImport("libc", EntryPoint = "sync")]
    private static partial void SyncAll();

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);
}
