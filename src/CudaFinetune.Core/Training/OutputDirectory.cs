using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Training;

/// <summary>
/// The names a run writes in its output directory, checked before it writes any: each must be missing or of the kind the
/// run makes (a file or a directory), never a symbolic link, FIFO or device someone planted, since writing through it
/// would put the run's bytes (or an --overwrite's deletions) outside the directory.
/// </summary>
internal static class OutputDirectory
{
    private static readonly string[] OwnEntries =
    [
        FinetuneSession.RunFileName, FinetuneSession.MetricsFileName, FinetuneSession.LossChartFileName,
        FinetuneSession.AdapterDirectoryName, FinetuneSession.ModelDirectoryName,
        CheckpointFormat.DirectoryName, Path.Combine(CheckpointFormat.DirectoryName, CheckpointFormat.LatestFileName), RunBranching.DirectoryName,
    ];

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
