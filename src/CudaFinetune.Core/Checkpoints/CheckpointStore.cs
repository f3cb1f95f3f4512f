using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// A checkpoint directory as <c>checkpoint list</c> reports it: <see cref="Latest"/> is the live head, <see cref="OnChain"/>
/// whether it lies on the live history (false: another branch's, or a damaged one above the head).
/// </summary>
public sealed record CheckpointListing(string Name, string Directory, long Step, long Bytes, CheckpointManifest? Manifest, string? Problem, bool Latest = false, bool OnChain = true)
{
    public bool Valid => Problem is null;
}

/// <summary>
/// What a path to continue or read from points at: the run's output directory, the checkpoints to try (newest first:
/// the live chain, or the one named), and the run's history when the path is an output directory.
/// </summary>
public sealed record ResumeCandidates(string? OutputDir, IReadOnlyList<string> Checkpoints, bool Explicit, RunHistory? History = null)
{
    /// <summary>What is wrong with the run's <c>latest</c> pointer and what was taken instead (null: nothing).</summary>
    public string? LatestProblem => Explicit ? null : History?.LatestProblem;
}

/// <summary>
/// The checkpoints of an output directory (<c>OUT/checkpoints/step-N</c>): listing, the <c>latest</c>
/// pointer, retention, clean-up of interrupted writes, and what a resume path means.
/// </summary>
public static class CheckpointStore
{
    public static string CheckpointsDirectory(string outputDir) => Path.Combine(Path.GetFullPath(outputDir), CheckpointFormat.DirectoryName);

    /// <summary>
    /// Committed checkpoint directories (named step-N), newest first. Validity is not checked. Checkpoints being written
    /// (<c>.tmp-</c>) or retired (<c>.deleting-</c>) have other names and are never listed.
    /// </summary>
    public static IReadOnlyList<string> Directories(string checkpointsDir)
    {
        try
        {
            return [.. Directory.EnumerateDirectories(checkpointsDir)
                .Select(d => (Dir: d, Ok: CheckpointFormat.TryParseStep(Path.GetFileName(d), out long step), Step: step))
                .Where(x => x.Ok)
                .OrderByDescending(x => x.Step)
                .Select(x => x.Dir)];
        }
        catch (DirectoryNotFoundException)
        {
            return []; // none yet, or removed while listed (--overwrite)
        }
    }

    /// <summary>Each checkpoint of <paramref name="outputDir"/>, oldest first, fully verified, placed in the run's history.</summary>
    public static IReadOnlyList<CheckpointListing> List(string outputDir) => List(RunHistory.Read(CheckpointsDirectory(outputDir)));

    /// <summary>
    /// Each checkpoint of <paramref name="history"/>, oldest first, fully verified. One removed while this reads it (a run
    /// saving into the directory retires old checkpoints) is left out, not reported invalid.
    /// </summary>
    public static IReadOnlyList<CheckpointListing> List(RunHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var result = new List<CheckpointListing>();
        foreach (var entry in history.Entries.Reverse())
        {
            string? problem = entry.Problem;
            try
            {
                entry.Checkpoint?.Verify();
            }
            catch (CheckpointRemovedException)
            {
                continue;
            }
            catch (CheckpointCorruptException e)
            {
                problem = e.Message;
            }
            if (SizeOf(entry.Directory) is not { } bytes)
            {
                continue;
            }
            result.Add(new CheckpointListing(entry.Name, entry.Directory, entry.Step, bytes, problem is null ? entry.Checkpoint?.Manifest : null, problem,
                Latest: entry == history.Head, OnChain: history.IsOnChain(entry)));
        }
        return result;
    }

    /// <summary>The bytes of the files under <paramref name="directory"/>; null when it was removed while counted.</summary>
    private static long? SizeOf(string directory)
    {
        try
        {
            long bytes = 0;
            foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*", SearchOption.AllDirectories))
            {
                try
                {
                    bytes += file.Length;
                }
                catch (FileNotFoundException)
                {
                    // A file deleted meanwhile, or a dangling link (which the listing reports): it counts nothing.
                }
            }
            return bytes;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Points <c>latest</c> at <paramref name="name"/>, atomically and durably.</summary>
    public static void WriteLatest(string checkpointsDir, string name)
    {
        AtomicFile.Write(Path.Combine(checkpointsDir, CheckpointFormat.LatestFileName), s => s.Write(System.Text.Encoding.UTF8.GetBytes(name + "\n")));
        Posix.FlushDirectory(checkpointsDir);
    }

    /// <summary>The directory name <c>latest</c> points at, or null.</summary>
    public static string? ReadLatest(string checkpointsDir)
        => ReadLatestText(checkpointsDir) is { } name && CheckpointFormat.TryParseStep(name, out _) ? name : null;

    /// <summary>What <c>latest</c> says, trimmed, whether or not it is a checkpoint name ("" if unreadable); null when there is no such file.</summary>
    internal static string? ReadLatestText(string checkpointsDir)
    {
        string path = Path.Combine(checkpointsDir, CheckpointFormat.LatestFileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            using var stream = RegularFiles.OpenRead(path); // a link, FIFO or device planted there is unreadable, never followed or waited on
            var buffer = new byte[256]; // a name is ~14 bytes; a huge file is not read whole
            int read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            return System.Text.Encoding.UTF8.GetString(buffer, 0, read).Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>Deletes what interrupted writes and deletions left behind (never a committed checkpoint).</summary>
    public static void RemoveIncomplete(string checkpointsDir)
    {
        if (!Directory.Exists(checkpointsDir))
        {
            return;
        }
        foreach (string dir in Directory.EnumerateDirectories(checkpointsDir))
        {
            string name = Path.GetFileName(dir);
            if (name.StartsWith(CheckpointFormat.TemporaryPrefix, StringComparison.Ordinal) || name.StartsWith(CheckpointFormat.DeletingPrefix, StringComparison.Ordinal))
            {
                TryDeleteDirectory(dir);
            }
        }
    }

    /// <summary>
    /// Deletes the temporary directories of writes of steps before <paramref name="committedStep"/>, which were abandoned:
    /// saves run one at a time on every rank, so once a step is committed no earlier write can still be going on. (A rank
    /// that failed removes its write, but a slower rank may still have written its shards there afterwards.)
    /// </summary>
    public static void RemoveAbandonedWrites(string checkpointsDir, long committedStep)
    {
        foreach (string dir in Directory.EnumerateDirectories(checkpointsDir, CheckpointFormat.TemporaryPrefix + "*"))
        {
            if (TemporaryStep(Path.GetFileName(dir)) is { } step && step < committedStep)
            {
                TryDeleteDirectory(dir);
            }
        }
    }

    /// <summary>The step of a temporary directory's name, <c>.tmp-step-N-ID</c>; null for another name.</summary>
    private static long? TemporaryStep(string name)
    {
        string rest = name[CheckpointFormat.TemporaryPrefix.Length..];
        int dash = rest.LastIndexOf('-');
        return dash > 0 && CheckpointFormat.TryParseStep(rest[..dash], out long step) ? step : null;
    }

    /// <summary>
    /// Keeps, of the live history (the chain that led to <c>latest</c>; <see cref="RunHistory"/>), the newest
    /// <paramref name="keepLast"/> checkpoints, the head, and the one with the lowest eval loss at its own step; deletes
    /// the chain's others (0 keeps all). Checkpoints of other branches are never deleted, nor anything while the
    /// history has no head.
    /// </summary>
    public static IReadOnlyList<string> ApplyRetention(string checkpointsDir, int keepLast)
    {
        if (keepLast <= 0)
        {
            return [];
        }
        var history = RunHistory.Read(checkpointsDir);
        if (history.Head is not { } head)
        {
            return [];
        }
        var chain = history.Chain;
        var keep = new HashSet<CheckpointEntry>(chain.Take(keepLast)) { head };
        if (chain.Where(e => e.Checkpoint?.Manifest.EvalLossAtStep is not null).MinBy(e => e.Checkpoint!.Manifest.EvalLossAtStep) is { } best)
        {
            keep.Add(best); // a damaged checkpoint is never "best"
        }
        var deleted = chain.Where(e => !keep.Contains(e)).Select(e => e.Directory).ToList();
        foreach (string dir in deleted)
        {
            // Renamed first, so that a crash part-way never leaves a half-deleted step-N behind.
            string doomed = Path.Combine(checkpointsDir, $"{CheckpointFormat.DeletingPrefix}{Path.GetFileName(dir)}-{Guid.NewGuid():N}");
            Directory.Move(dir, doomed);
            TryDeleteDirectory(doomed);
        }
        return deleted;
    }

    /// <summary>
    /// The output directory <paramref name="path"/> belongs to: the path itself for an output directory, the run's
    /// directory for its checkpoints/ or one of its checkpoints; null for a checkpoint outside any run's checkpoints/.
    /// </summary>
    public static string? OutputDirOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        if (IsOneCheckpoint(full))
        {
            string? parent = Path.GetDirectoryName(full);
            return parent is not null && Path.GetFileName(parent) == CheckpointFormat.DirectoryName ? Path.GetDirectoryName(parent) : null;
        }
        return Path.GetFileName(full) == CheckpointFormat.DirectoryName ? Path.GetDirectoryName(full) : full;
    }

    private static bool IsOneCheckpoint(string full)
        => File.Exists(Path.Combine(full, CheckpointFormat.ManifestFileName)) || CheckpointFormat.TryParseStep(Path.GetFileName(full), out _);

    /// <summary>
    /// Interprets a path given to continue or read a run (<c>--resume</c>, <c>export --checkpoint</c>, <c>checkpoint
    /// verify/inspect</c>): one checkpoint directory, or an output directory, whose live history is tried newest first
    /// (<see cref="RunHistory"/>). <paramref name="flag"/> is how the user gave the path, for messages.
    /// </summary>
    public static ResumeCandidates Resolve(string path, string flag = "--resume")
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
        {
            throw new UserErrorException($"{flag} '{path}': no such directory; give an output directory or one of its checkpoints/step-N directories");
        }
        if (IsOneCheckpoint(full))
        {
            string? outputDir = OutputDirOf(full);
            return new ResumeCandidates(outputDir, [full], Explicit: true, outputDir is null ? null : RunHistory.Read(CheckpointsDirectory(outputDir)));
        }
        string checkpointsDir = CheckpointsDirectory(OutputDirOf(full)!);
        var history = RunHistory.Read(checkpointsDir);
        if (history.Entries.Count == 0)
        {
            throw new UserErrorException($"{flag} '{path}': no checkpoints there (looked for {Path.Combine(checkpointsDir, "step-*")})");
        }
        if (history.Ambiguous)
        {
            throw new UserErrorException($"{flag} '{path}': {history.LatestProblem}, e.g. {flag} {Path.Combine(path, CheckpointFormat.DirectoryName, history.Entries.First(e => e.Opens).Name)}");
        }
        return new ResumeCandidates(Path.GetDirectoryName(checkpointsDir), [.. history.Chain.Select(e => e.Directory)], Explicit: false, history);
    }

    internal static void TryDeleteDirectory(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // Left for RemoveIncomplete: a leftover temporary directory is never read as a checkpoint.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
