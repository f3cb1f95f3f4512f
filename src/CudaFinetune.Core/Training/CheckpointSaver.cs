using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;

namespace CudaFinetune.Training;

/// <summary>
/// Saves checkpoints in the background. <see cref="Save"/> waits for the previous write, snapshots
/// the tensors into the (reused) host image on the caller's thread — the only part training waits
/// for — and hands the rest to a background task: shard files, hashes, manifest, fsync, atomic
/// commit, the <c>latest</c> pointer and retention. <see cref="WaitForPending"/> waits for the last
/// write; events and write errors surface on the caller's thread. With several ranks each has its own saver, which
/// writes that rank's shards of the same checkpoint (<see cref="CheckpointRanks"/>); only rank 0's commits and reports.
/// <para>
/// A write that fails (disk full, directory gone or unwritable) leaves no trace and the earlier checkpoints intact. While
/// training goes on it is reported (<see cref="SaveFailed"/>) and the next save tries again; <see cref="MaxFailedInARow"/>
/// failures in a row, or a failed last save (<see cref="WaitForLast"/>), stop the run with a <see cref="UserErrorException"/>
/// that names the last good checkpoint.
/// </para>
/// </summary>
public sealed class CheckpointSaver : IDisposable
{
    private readonly string _checkpointsDir;
    private readonly CheckpointImage _image;
    private readonly IBackend _backend;
    private readonly int _keepLast;
    private readonly CheckpointRanks _ranks;
    private readonly byte[] _runId;
    private long _saves;
    private Task<CommittedCheckpoint?>? _pending;
    private CheckpointManifest? _pendingManifest;
    private int _failedInARow;
    private readonly CheckpointParent? _resumedFrom;

    /// <summary>Failed saves in a row that stop a run (one failure is retried at the next save).</summary>
    public const int MaxFailedInARow = 3;

    /// <param name="ranks">this saver's rank among those writing each checkpoint (default: one rank alone)</param>
    /// <param name="runId">bytes every rank of the run shares, from which they derive the same checkpoint ids (default: random, for one rank)</param>
    /// <param name="resumedFrom">the checkpoint the run continues from: the parent of its first save (null: a fresh run)</param>
    public CheckpointSaver(string checkpointsDir, CheckpointImage image, IBackend backend, int keepLast, CheckpointRanks? ranks = null, byte[]? runId = null,
        CheckpointParent? resumedFrom = null)
    {
        _resumedFrom = resumedFrom;
        _checkpointsDir = checkpointsDir;
        _image = image;
        _backend = backend;
        _keepLast = keepLast;
        _ranks = ranks ?? CheckpointRanks.Alone;
        _runId = runId ?? Guid.NewGuid().ToByteArray();
    }

    /// <summary>Raised (on the thread that calls <see cref="Save"/> or <see cref="WaitForPending"/>) when a write has committed.</summary>
    public event Action<CheckpointSaved>? Saved;

    /// <summary>Raised (on the caller's thread, like <see cref="Saved"/>) when a write failed and the next save will try again.</summary>
    public event Action<CheckpointSaveFailed>? SaveFailed;

    /// <summary>The last checkpoint committed (by this saver: only rank 0's commits).</summary>
    public CommittedCheckpoint? LastCommitted { get; private set; }

    /// <summary>
    /// The newest good checkpoint of the run as far as this rank can tell: the last it committed, or on the other ranks
    /// (which never commit) the one <c>latest</c> names; null when there is none.
    /// </summary>
    public string? LastGood => LastCommitted?.Directory
        ?? (_ranks.Rank != 0 && CheckpointStore.ReadLatest(_checkpointsDir) is { } name ? Path.Combine(_checkpointsDir, name) : null);

    /// <summary>
    /// Snapshots the tensors and starts writing the checkpoint that <paramref name="manifest"/> describes, its parent set
    /// to the last one committed (or the one the run resumed from).
    /// </summary>
    public void Save(CheckpointManifest manifest, IReadOnlyList<CheckpointExtraFile> extraFiles)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        WaitForPending();
        var parent = LastCommitted is { } last ? new CheckpointParent(Path.GetFileName(last.Directory), last.Id) : _resumedFrom;
        manifest = manifest with { Lineage = manifest.Lineage with { Parent = parent } };
        _image.Capture(_backend);
        _pendingManifest = manifest;
        string id = CheckpointId(manifest.Training.Step, ++_saves);
        _pending = Task.Factory.StartNew(() =>
        {
            var committed = CheckpointWriter.Write(_checkpointsDir, _image, manifest, extraFiles, id, _ranks);
            if (committed is not null)
            {
                try
                {
                    CheckpointStore.ApplyRetention(_checkpointsDir, _keepLast);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The checkpoint is committed; old ones not removed now are removed after the next save.
                }
            }
            return committed;
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The id of the run's <paramref name="ordinal"/>-th save (at <paramref name="step"/>): the same on every rank.</summary>
    private string CheckpointId(long step, long ordinal)
    {
        byte[] key = [.. _runId, .. BitConverter.GetBytes(step), .. BitConverter.GetBytes(ordinal)];
        return CheckpointFormat.Hash(key);
    }

    /// <summary>Reports a write that has finished since the last call, without waiting for one that has not.</summary>
    public void ReportCompleted()
    {
        if (_pending is { IsCompleted: true })
        {
            WaitForPending();
        }
    }

    /// <summary>
    /// Waits for the write in progress, if any. A failed write is reported through <see cref="SaveFailed"/> (the next save
    /// tries again), or, the <see cref="MaxFailedInARow"/>-th in a row, thrown as a <see cref="UserErrorException"/>.
    /// </summary>
    public void WaitForPending() => Complete(lastSave: false);

    /// <summary>Waits for the run's last write: its failure is a <see cref="UserErrorException"/> (earlier checkpoints are intact).</summary>
    public void WaitForLast() => Complete(lastSave: true);

    private void Complete(bool lastSave)
    {
        if (_pending is not { } pending)
        {
            return;
        }
        _pending = null;
        CommittedCheckpoint? committed;
        try
        {
            committed = pending.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failedInARow++;
            string reason = $"could not write the checkpoint of step {_pendingManifest!.Training.Step} into '{_checkpointsDir}': {e.Message}";
            string last = LastGood is { } good ? $"the last good checkpoint is {good}" : "no checkpoint of this run was written";
            if (lastSave || _failedInARow >= MaxFailedInARow)
            {
                string count = _failedInARow > 1 ? $" ({_failedInARow} saves in a row failed)" : "";
                throw new UserErrorException($"{reason}{count}; {last}; free space or fix the directory, then continue with --resume", e);
            }
            SaveFailed?.Invoke(new CheckpointSaveFailed(_pendingManifest!.Training.Step, reason, LastGood, _failedInARow, _ranks.Rank));
            return;
        }
        _failedInARow = 0;
        if (committed is null)
        {
            return; // another rank commits
        }
        LastCommitted = committed;
        Saved?.Invoke(new CheckpointSaved(committed.Step, committed.Directory, committed.Bytes, committed.WriteTime, _pendingManifest!.Reason));
    }

    /// <summary>Waits for a write in progress (its errors are dropped: Dispose does not throw) and frees the image.</summary>
    public void Dispose()
    {
        try
        {
            _pending?.Wait();
        }
        catch (AggregateException)
        {
            // Reported by WaitForPending when the caller waits; on disposal there is no one to tell.
        }
        _image.Dispose();
    }
}
