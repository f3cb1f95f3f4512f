namespace CudaFinetune.Checkpoints;

/// <summary>A <c>step-N</c> directory of a run: its checkpoint when it opens, or why it does not.</summary>
public sealed record CheckpointEntry(string Name, string Directory, long Step, Checkpoint? Checkpoint, string? Problem)
{
    public bool Opens => Checkpoint is not null;
}

/// <summary>
/// The checkpoints of one output directory read as a history rather than sorted by step: the live head (the one
/// <c>latest</c> names), the chain of checkpoints that led to it (<see cref="CheckpointLineage"/>: branches and the steps
/// they started at), and those of other branches. Resume, export, <c>checkpoint list/inspect/verify</c> and retention all
/// read the directory through this one class, so a missing or dangling <c>latest</c> is reported and handled the same
/// way everywhere (<see cref="LatestProblem"/>):
/// <list type="bullet">
/// <item><c>latest</c> names a checkpoint that is there: that is the head (damaged or not);</item>
/// <item>otherwise the head is the one checkpoint that no other continues (said in <see cref="LatestProblem"/>);</item>
/// <item>when several branches end without one being named, there is no head (<see cref="Ambiguous"/>): the user names one.</item>
/// </list>
/// </summary>
public sealed class RunHistory
{
    private RunHistory(string checkpointsDirectory, IReadOnlyList<CheckpointEntry> entries, CheckpointEntry? head, IReadOnlyList<CheckpointEntry> chain, string? latestProblem, bool ambiguous)
    {
        CheckpointsDirectory = checkpointsDirectory;
        Entries = entries;
        Head = head;
        Chain = chain;
        LatestProblem = latestProblem;
        Ambiguous = ambiguous;
    }

    public string CheckpointsDirectory { get; }

    /// <summary>Every committed <c>step-N</c> directory, highest step first.</summary>
    public IReadOnlyList<CheckpointEntry> Entries { get; }

    /// <summary>The live branch's newest checkpoint (null: none, or <see cref="Ambiguous"/>).</summary>
    public CheckpointEntry? Head { get; }

    /// <summary>
    /// The head and the checkpoints on its history, newest first: the ones resume and export try in turn. Damaged
    /// checkpoints below the head are included (their branch cannot be read; they are reported, never used).
    /// </summary>
    public IReadOnlyList<CheckpointEntry> Chain { get; }

    /// <summary>What is wrong with <c>latest</c> (missing, or naming a checkpoint that is not there) and what was taken instead; null when nothing is.</summary>
    public string? LatestProblem { get; }

    /// <summary>Several branches end here and <c>latest</c> does not say which is live.</summary>
    public bool Ambiguous { get; }

    /// <summary>
    /// Reads the checkpoints of <c>OUT/checkpoints</c> (their manifests and structure; the tensors are not read). A run may
    /// be saving there: checkpoints removed while they are read are left out, and when <c>latest</c> moves while the
    /// directory is read, it is read again (a few times at most) so that <c>latest</c> and the entries describe one moment.
    /// </summary>
    public static RunHistory Read(string checkpointsDirectory)
    {
        const int Attempts = 4;
        for (int attempt = 1; ; attempt++)
        {
            string? before = CheckpointStore.ReadLatestText(checkpointsDirectory);
            var entries = CheckpointStore.Directories(checkpointsDirectory).Select(OpenEntry).OfType<CheckpointEntry>().ToList();
            string? after = CheckpointStore.ReadLatestText(checkpointsDirectory);
            bool seen = after is null || entries.Any(e => e.Name == after);
            if ((before == after && seen) || attempt == Attempts)
            {
                // Still moving: the newest name read that the entries hold (a checkpoint is committed before latest names it).
                return Build(checkpointsDirectory, entries, seen || !entries.Any(e => e.Name == before) ? after : before);
            }
        }
    }

    private static RunHistory Build(string checkpointsDirectory, List<CheckpointEntry> entries, string? latestName)
    {
        var named = latestName is null ? null : entries.FirstOrDefault(e => e.Name == latestName);
        if (entries.Count == 0)
        {
            return new RunHistory(checkpointsDirectory, entries, null, [], null, false);
        }
        if (named is not null)
        {
            return new RunHistory(checkpointsDirectory, entries, named, ChainOf(named, entries), null, false);
        }
        string problem = latestName switch
        {
            null => $"{CheckpointFormat.DirectoryName}/{CheckpointFormat.LatestFileName} is missing",
            "" => $"{CheckpointFormat.DirectoryName}/{CheckpointFormat.LatestFileName} is empty or not a regular file",
            _ => $"{CheckpointFormat.DirectoryName}/{CheckpointFormat.LatestFileName} names '{latestName}', which is not there",
        };
        var opening = entries.Where(e => e.Opens).ToList();
        var heads = opening.Where(e => !opening.Any(other => other != e && other.Checkpoint!.Manifest.HasInHistory(e.Checkpoint!.Manifest))).ToList();
        if (heads.Count > 1)
        {
            return new RunHistory(checkpointsDirectory, entries, null, [], $"{problem}, and the checkpoints end in {heads.Count} branches "
                + $"({string.Join(", ", heads.Select(h => h.Name))}): name the one to use", ambiguous: true);
        }
        var head = heads.Count == 1 ? heads[0] : entries[0];
        return new RunHistory(checkpointsDirectory, entries, head, ChainOf(head, entries), $"{problem}; taking {head.Name}, the newest checkpoint of the run's history", false);
    }

    /// <summary>Whether the entry lies on the live history (the head's chain).</summary>
    public bool IsOnChain(CheckpointEntry entry) => Chain.Contains(entry);

    /// <summary>
    /// The head and its history, newest first. A damaged head's own history cannot be read: the newest checkpoint below it
    /// that opens stands in for it (checkpoints of other branches are moved out of the directory when a run branches, so
    /// this is its parent unless the directory was changed by hand).
    /// </summary>
    private static List<CheckpointEntry> ChainOf(CheckpointEntry head, List<CheckpointEntry> entries)
    {
        var known = head.Opens ? head : entries.FirstOrDefault(e => e.Opens && e.Step < head.Step);
        return [.. entries.Where(e => e == head
            || (e.Step <= head.Step && (e.Opens ? known is not null && known.Checkpoint!.Manifest.HasInHistory(e.Checkpoint!.Manifest) : e.Step < head.Step)))];
    }

    /// <summary>The entry of a listed directory; null when it was removed (retired by retention, replaced by a newer save) before it could be read.</summary>
    private static CheckpointEntry? OpenEntry(string directory)
    {
        string name = Path.GetFileName(directory);
        long step = CheckpointFormat.TryParseStep(name, out long parsed) ? parsed : -1;
        try
        {
            return new CheckpointEntry(name, directory, step, Checkpoint.Open(directory), null);
        }
        catch (CheckpointRemovedException)
        {
            return null;
        }
        catch (CheckpointCorruptException e)
        {
            return new CheckpointEntry(name, directory, step, null, e.Message);
        }
    }
}
