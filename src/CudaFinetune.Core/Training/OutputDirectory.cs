using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.IO;

namespace CudaFinetune.Training;

/// <summary>
/// A run's output directory before the run writes to it: taken for this run alone (<see cref="RunLock"/>), free of an
/// earlier run unless continued or overwritten, and its own names checked — each must be missing or of the kind the run
/// makes (a file or a directory), never a symbolic link, FIFO or device someone planted, since writing through it would
/// put the run's bytes (or an --overwrite's deletions) outside the directory.
/// </summary>
internal static class OutputDirectory
{
    private static readonly string[] OwnEntries =
    [
        RunFileNames.RunFileName, RunFileNames.MetricsFileName, RunFileNames.LossChartFileName,
        RunFileNames.AdapterDirectoryName, RunFileNames.ModelDirectoryName,
        CheckpointFormat.DirectoryName, Path.Combine(CheckpointFormat.DirectoryName, CheckpointFormat.LatestFileName), RunBranching.DirectoryName,
    ];

    /// <summary>
    /// Takes the output directory for this run (<see cref="RunLock"/>), then checks and tidies what is there: the run's
    /// own names must not be links or special files, and temporary files killed writes left are removed.
    /// </summary>
    public static RunLock Claim(string outputDir)
    {
        if (File.Exists(outputDir))
        {
            throw new UserErrorException($"--output-dir '{outputDir}' is a file; give a directory");
        }
        var runLock = RunLock.Acquire(outputDir);
        try
        {
            CheckOwnEntries(outputDir);
            RemoveTemporaryFiles(outputDir);
            return runLock;
        }
        catch
        {
            runLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses a directory that holds an earlier run (run.json, metrics.jsonl or checkpoints/), unless it is the run being
    /// continued (<paramref name="resumedRunDir"/>) or <paramref name="overwrite"/> replaces it.
    /// </summary>
    public static void CheckFree(string outputDir, bool overwrite, string? resumedRunDir)
    {
        if (resumedRunDir is not null && Path.GetFullPath(outputDir) == Path.GetFullPath(resumedRunDir))
        {
            return; // continuing the run in its own directory
        }
        bool earlierRun = File.Exists(Path.Combine(outputDir, RunFileNames.RunFileName)) || File.Exists(Path.Combine(outputDir, RunFileNames.MetricsFileName))
            || Directory.Exists(Path.Combine(outputDir, CheckpointFormat.DirectoryName));
        if (earlierRun && !overwrite)
        {
            throw new UserErrorException($"--output-dir '{outputDir}' already holds a run (run.json, metrics.jsonl or checkpoints/); continue it with --resume '{outputDir}', choose another directory, or pass --overwrite to replace it");
        }
    }

    /// <summary>
    /// <see cref="UserErrorException"/> naming the first of the run's own names that is a link or a special file. (A file
    /// where a directory belongs, or the reverse, is not refused here: writing there fails with its own message.)
    /// </summary>
    public static void CheckOwnEntries(string outputDir)
    {
        foreach (string name in OwnEntries)
        {
            string path = Path.Combine(outputDir, name);
            var kind = RegularFiles.KindOf(path);
            if (kind is not (FileKind.Missing or FileKind.Regular or FileKind.Directory))
            {
                throw new UserErrorException($"'{path}' is {RegularFiles.Describe(kind)}, where the run writes a file or directory of its own; "
                    + "nothing is written through it: remove it, or choose another --output-dir");
            }
        }
    }

    /// <summary>Deletes the temporary files killed writes left in the directory and its checkpoints/ (the run's lock is held).</summary>
    public static void RemoveTemporaryFiles(string outputDir)
    {
        AtomicFile.RemoveLeftovers(outputDir);
        AtomicFile.RemoveLeftovers(CheckpointStore.CheckpointsDirectory(outputDir));
    }
}
