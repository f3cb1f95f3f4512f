using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>A checkpoint directory as <c>checkpoint list</c> reports it.</summary>
public sealed record CheckpointListing(string Name, string Directory, long Step, long Bytes, CheckpointManifest? Manifest, string? Problem)
{
    public bool Valid => Problem is null;
}

/// <summary>What <c>--resume PATH</c> points at: the run's output directory and the checkpoints to try, newest first.</summary>
public sealed record ResumeCandidates(string? OutputDir, IReadOnlyList<string> Checkpoints, bool Explicit);

/// <summary>
/// The checkpoints of an output directory (<c>OUT/checkpoints/step-N</c>): listing, the <c>latest</c>
/// pointer, retention, clean-up of interrupted writes, and what a resume path means.
/// </summary>
public static class CheckpointStore
{
    public static string CheckpointsDirectory(string outputDir) => Path.Combine(Path.GetFullPath(outputDir), CheckpointFormat.DirectoryName);

    /// <summary>Committed checkpoint directories (named step-N), newest first. Validity is not checked.</summary>
    public static IReadOnlyList<string> Directories(string checkpointsDir)
    {
        if (!Directory.Exists(checkpointsDir))
        {
            return [];
        }
        return [.. Directory.EnumerateDirectories(checkpointsDir)
            .Select(d => (Dir: d, Ok: CheckpointFormat.TryParseStep(Path.GetFileName(d), out long step), Step: step))
            .Where(x => x.Ok)
            .OrderByDescending(x => x.Step)
            .Select(x => x.Dir)];
    }

    /// <summary>Each checkpoint of <paramref name="outputDir"/>, oldest first, fully verified.</summary>
    public static IReadOnlyList<CheckpointListing> List(string outputDir)
    {
        var result = new List<CheckpointListing>();
        foreach (string dir in Directories(CheckpointsDirectory(outputDir)).Reverse())
        {
            string name = Path.GetFileName(dir);
            long step = CheckpointFormat.TryParseStep(name, out long parsed) ? parsed : -1;
            long bytes = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            try
            {
                var checkpoint = Checkpoint.Open(dir);
                checkpoint.Verify();
                result.Add(new CheckpointListing(name, dir, step, bytes, checkpoint.Manifest, null));
            }
            catch (CheckpointCorruptException e)
            {
                result.Add(new CheckpointListing(name, dir, step, bytes, null, e.Message));
            }
        }
        return result;
    }

    /// <summary>Points <c>latest</c> at <paramref name="name"/>, atomically and durably.</summary>
    public static void WriteLatest(string checkpointsDir, string name)
    {
        AtomicFile.Write(Path.Combine(checkpointsDir, CheckpointFormat.LatestFileName), s => s.Write(System.Text.Encoding.UTF8.GetBytes(name + "\n")));
        Posix.FlushDirectory(checkpointsDir);
    }

    /// <summary>The directory name <c>latest</c> points at, or null.</summary>
    public static string? ReadLatest(string checkpointsDir)
    {
        string path = Path.Combine(checkpointsDir, CheckpointFormat.LatestFileName);
        if (!File.Exists(path))
        {
            return null;
        }
        string name = File.ReadAllText(path).Trim();
        return CheckpointFormat.TryParseStep(name, out _) ? name : null;
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
    /// Keeps the newest <paramref name="keepLast"/> checkpoints, the one with the lowest eval loss at
    /// its own step, and the one <c>latest</c> names; deletes the others (0 keeps all).
    /// </summary>
    public static IReadOnlyList<string> ApplyRetention(string checkpointsDir, int keepLast)
    {
        if (keepLast <= 0)
        {
            return [];
        }
        var all = Directories(checkpointsDir);
        var keep = new HashSet<string>(all.Take(keepLast), StringComparer.Ordinal);
        if (ReadLatest(checkpointsDir) is { } latest)
        {
            keep.Add(Path.Combine(checkpointsDir, latest));
        }
        string? best = null;
        double bestLoss = double.PositiveInfinity;
        foreach (string dir in all)
        {
            try
            {
                if (Checkpoint.Open(dir).Manifest.EvalLossAtStep is { } loss && loss < bestLoss)
                {
                    (best, bestLoss) = (dir, loss);
                }
            }
            catch (CheckpointCorruptException)
            {
                // a damaged checkpoint is never "best"
            }
        }
        if (best is not null)
        {
            keep.Add(best);
        }
        var deleted = all.Where(d => !keep.Contains(d)).ToList();
        foreach (string dir in deleted)
        {
            // Renamed first, so that a crash part-way never leaves a half-deleted step-N behind.
            string doomed = Path.Combine(checkpointsDir, $"{CheckpointFormat.DeletingPrefix}{Path.GetFileName(dir)}-{Guid.NewGuid():N}");
            Directory.Move(dir, doomed);
            TryDeleteDirectory(doomed);
        }
        return deleted;
    }

    /// <summary>Interprets a <c>--resume</c> path: one checkpoint directory, or an output directory (all its checkpoints, newest first).</summary>
    public static ResumeCandidates Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
        {
            throw new UserErrorException($"--resume '{path}': no such directory; give an output directory or one of its checkpoints/step-N directories");
        }
        if (File.Exists(Path.Combine(full, CheckpointFormat.ManifestFileName)) || CheckpointFormat.TryParseStep(Path.GetFileName(full), out _))
        {
            string? parent = Path.GetDirectoryName(full);
            string? outputDir = parent is not null && Path.GetFileName(parent) == CheckpointFormat.DirectoryName ? Path.GetDirectoryName(parent) : null;
            return new ResumeCandidates(outputDir, [full], Explicit: true);
        }
        string checkpointsDir = Path.GetFileName(full) == CheckpointFormat.DirectoryName ? full : Path.Combine(full, CheckpointFormat.DirectoryName);
        var dirs = Directories(checkpointsDir);
        if (dirs.Count == 0)
        {
            throw new UserErrorException($"--resume '{path}': no checkpoints there (looked for {Path.Combine(checkpointsDir, "step-*")})");
        }
        return new ResumeCandidates(Path.GetDirectoryName(checkpointsDir), dirs, Explicit: false);
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
