using System.Globalization;
using System.IO.Hashing;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// The fixed names and numbers of the checkpoint format (docs/checkpoint-format.md). A change to
/// anything a reader depends on raises <see cref="Version"/>; readers refuse versions they do not know.
/// </summary>
public static class CheckpointFormat
{
    /// <summary>
    /// The format version written into every manifest and shard header (2: tensors may be stored in slices, one per rank
    /// that owns a part; 3: the run's history — branches and parent — and a schedule's continuation after a changed plan,
    /// which an older reader would ignore and so resume on another schedule or branch).
    /// </summary>
    public const int Version = 3;

    /// <summary>The oldest version this engine still reads (1: whole tensors only).</summary>
    public const int OldestReadableVersion = 1;

    /// <summary>Every tensor starts at a multiple of this many bytes in its shard (and the header fills the first block).</summary>
    public const int Alignment = 4096;

    /// <summary>Bytes copied and hashed at a time when saving or loading: small enough that a chunk is still in cache when the second pass over it runs.</summary>
    internal const int CopyChunkBytes = 256 << 10;

    /// <summary>Sub-directory of an output directory that holds the checkpoints.</summary>
    public const string DirectoryName = "checkpoints";

    public const string ManifestFileName = "manifest.json";

    /// <summary>File in the checkpoints directory naming the newest committed checkpoint.</summary>
    public const string LatestFileName = "latest";

    public const string ModelGroup = "model";
    public const string OptimizerGroup = "optimizer";

    /// <summary>AdamW's moments of parameter P are the optimizer tensors P + these suffixes (PyTorch's state names).</summary>
    public const string FirstMomentSuffix = ".exp_avg";
    public const string SecondMomentSuffix = ".exp_avg_sq";

    /// <summary>The training metrics up to the checkpoint's step, restored into the output directory on resume.</summary>
    public const string MetricsFileName = "metrics.jsonl";

    /// <summary>The model's config.json, so that a checkpoint describes its model on its own.</summary>
    public const string ModelConfigFileName = "config/model-config.json";

    private const string StepPrefix = "step-";

    /// <summary>Prefixes of directories that are never checkpoints: in-progress writes and half-deleted ones.</summary>
    internal const string TemporaryPrefix = ".tmp-";
    internal const string DeletingPrefix = ".deleting-";

    /// <summary>The directory name of the checkpoint at <paramref name="step"/> ("step-00000120": sorts by step).</summary>
    public static string DirectoryNameFor(long step) => StepPrefix + step.ToString("D8", CultureInfo.InvariantCulture);

    /// <summary>The step of a checkpoint directory name, or false for any other name.</summary>
    public static bool TryParseStep(string name, out long step)
    {
        step = -1;
        return name.StartsWith(StepPrefix, StringComparison.Ordinal)
            && long.TryParse(name.AsSpan(StepPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out step);
    }

    /// <summary>The shard file of <paramref name="group"/> written by <paramref name="rank"/>, relative to the checkpoint.</summary>
    public static string ShardFileName(string group, int rank) => $"{group}/rank-{rank.ToString("D5", CultureInfo.InvariantCulture)}.bin";

    /// <summary>Rounds up to the next multiple of <see cref="Alignment"/>.</summary>
    public static long Align(long offset) => (offset + Alignment - 1) / Alignment * Alignment;

    /// <summary>XxHash128 of the bytes as 32 lowercase hex digits (the canonical big-endian form).</summary>
    public static string Hash(ReadOnlySpan<byte> bytes) => HashText(XxHash128.Hash(bytes));

    /// <summary>XxHash128 of native memory of any length.</summary>
    internal static unsafe string Hash(byte* bytes, long length)
    {
        var hash = new XxHash128();
        for (long offset = 0; offset < length; offset += 1 << 30)
        {
            hash.Append(new ReadOnlySpan<byte>(bytes + offset, (int)Math.Min(1 << 30, length - offset)));
        }
        return HashText(hash.GetCurrentHash());
    }

    /// <summary>
    /// What is wrong with the content of a checkpoint's file that the engine parses after loading it (null: nothing, or a
    /// file it does not parse): metrics.jsonl, restored into the output directory and read back for the loss chart, must be
    /// whole JSON lines each an object with an integer "step". Checked when the checkpoint is read, so that a damaged or
    /// interleaved file makes the checkpoint invalid (and a resume fall back) instead of failing the resumed run.
    /// </summary>
    public static string? CheckContent(string relativePath, ReadOnlySpan<byte> content)
        => relativePath == MetricsFileName ? Reporting.MetricsFile.ProblemIn(content) : null;

    /// <summary>How the manifest spells why a checkpoint was written.</summary>
    public static string ReasonName(CheckpointReason reason) => reason switch
    {
        CheckpointReason.Periodic => "periodic",
        CheckpointReason.EpochEnd => "epoch-end",
        CheckpointReason.End => "end",
        CheckpointReason.Interrupted => "interrupted",
        CheckpointReason.NonFinite => "non-finite",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    internal static string HashText(ReadOnlySpan<byte> digest) => Convert.ToHexStringLower(digest);

    internal static bool IsHashText(string? text) => text is { Length: 32 } && text.All(char.IsAsciiHexDigitLower);
}
