using CudaFinetune.Checkpoints;
using CudaFinetune.Hosting;
using CudaFinetune.IO;

namespace CudaFinetune.Training;

/// <summary>
/// Keeps one live history in an output directory. A run resumed from an earlier checkpoint than its newest starts a new
/// branch there (as "adjust the learning rate and continue" does); the checkpoints of the branch it leaves — those not on
/// the new branch's history — are moved, with that branch's run files, into <c>OUT/branches/NAME/</c>, which is an output
/// directory of its own (<c>--resume</c>, <c>export</c> and <c>checkpoint list</c> take it). So <c>checkpoints/</c>
/// holds only the live history: its step-N names never collide, retention never deletes the other branch's work, and
/// <c>metrics.jsonl</c> shows the live branch's steps while the old branch's are kept beside its checkpoints.
/// </summary>
/// <remarks>
/// Crash-safe in this order: the old branch's run files are copied (or, for the final adapter or model, moved) first;
/// then <c>latest</c> names the branch point, which makes the old checkpoints off-chain for every reader; then each is
/// moved by one rename. Checkpoints a crash left behind are off the live chain, which ignores them, and are moved by the
/// next run that starts here.
/// </remarks>
public static class RunBranching
{
    /// <summary>The sub-directory of an output directory that holds the branches set aside.</summary>
    public const string DirectoryName = "branches";

    /// <summary>The files of a run's output directory that describe its live branch (copied along with a branch set aside).</summary>
    private static readonly string[] RunFiles = [RunFileNames.RunFileName, RunFileNames.MetricsFileName, RunFileNames.LossChartFileName];

    /// <summary>The final outputs of a finished branch (moved along with it: the live branch writes its own).</summary>
    private static readonly string[] FinalOutputs = [RunFileNames.AdapterDirectoryName, RunFileNames.ModelDirectoryName];

    /// <summary>The branches set aside in <paramref name="outputDir"/> (each an output directory of its own), oldest first.</summary>
    public static IReadOnlyList<string> SetAsideBranches(string outputDir)
    {
        string root = Path.Combine(Path.GetFullPath(outputDir), DirectoryName);
        return Directory.Exists(root)
            ? [.. Directory.EnumerateDirectories(root).Where(d => Directory.Exists(Path.Combine(d, CheckpointFormat.DirectoryName))).Order(StringComparer.Ordinal)]
            : [];
    }

    /// <summary>Where <see cref="SetAside"/> would put <paramref name="entries"/> (a new directory under <c>OUT/branches</c>).</summary>
    internal static string ArchiveFor(string outputDir, IReadOnlyList<CheckpointEntry> entries)
    {
        string name = $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{entries.MaxBy(e => e.Step)!.Name}";
        string path = Path.Combine(Path.GetFullPath(outputDir), DirectoryName, name);
        for (int n = 2; Directory.Exists(path); n++)
        {
            path = Path.Combine(Path.GetFullPath(outputDir), DirectoryName, $"{name}-{n}");
        }
        return path;
    }

    /// <summary>
    /// Moves <paramref name="entries"/> (checkpoints of <c>OUT/checkpoints</c> off the history of <paramref name="liveHead"/>)
    /// into <paramref name="archive"/> and points <c>latest</c> at <paramref name="liveHead"/>. When the branch left behind
    /// was the live one (<paramref name="oldHead"/> is among them), its run files go with it.
    /// </summary>
    internal static void SetAside(string outputDir, string archive, IReadOnlyList<CheckpointEntry> entries, string liveHead, string? oldHead)
    {
        string checkpointsDir = CheckpointStore.CheckpointsDirectory(outputDir);
        string archivedCheckpoints = Path.Combine(archive, CheckpointFormat.DirectoryName);
        Directory.CreateDirectory(archivedCheckpoints);
        bool leavesLiveBranch = oldHead is not null && entries.Any(e => e.Name == oldHead);
        if (leavesLiveBranch)
        {
            foreach (string file in RunFiles.Where(f => File.Exists(Path.Combine(outputDir, f))))
            {
                byte[] bytes = File.ReadAllBytes(Path.Combine(outputDir, file));
                AtomicFile.Write(Path.Combine(archive, file), s => s.Write(bytes));
            }
            foreach (string dir in FinalOutputs.Where(d => Directory.Exists(Path.Combine(outputDir, d))))
            {
                Directory.Move(Path.Combine(outputDir, dir), Path.Combine(archive, dir));
            }
        }
        string archivedHead = leavesLiveBranch ? oldHead! : entries.MaxBy(e => e.Step)!.Name;
        CheckpointStore.WriteLatest(archivedCheckpoints, archivedHead);
        CheckpointStore.WriteLatest(checkpointsDir, liveHead);
        foreach (var entry in entries)
        {
            Directory.Move(entry.Directory, Path.Combine(archivedCheckpoints, entry.Name));
        }
        Posix.FlushDirectory(checkpointsDir);
        Posix.FlushDirectory(archivedCheckpoints);
    }
}
