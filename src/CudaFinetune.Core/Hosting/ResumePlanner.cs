using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>What a resumed run continues from: the state, the metrics so far, the history its checkpoints record.</summary>
/// <param name="Metrics">the checkpoint's metrics.jsonl, which the output directory's is cut back to (the steps after it run again)</param>
/// <param name="SetAside">checkpoints of another branch that training moves out of the way first, or null</param>
internal sealed record ResumePlan(ResumeInfo Info, TrainingState State, byte[]? Metrics, CheckpointParent Parent, CheckpointLineage Lineage, RunSetAside? SetAside);

/// <summary>Checkpoints left off the run's history, the folder under branches/ they go to, the checkpoint the run continues from and the old head.</summary>
internal sealed record RunSetAside(IReadOnlyList<CheckpointEntry> Entries, string Archive, string LiveHead, string? OldHead);

/// <summary>
/// Plans a resume: which checkpoint of a run's history to continue from (falling back past damaged ones unless told not
/// to), what changed since it was written (options, data, world size, schedule, environment — warned about or refused),
/// and which history the continued run records (its own branch, or a new one from an earlier checkpoint). Loads the
/// chosen checkpoint into every rank of the session it plans for.
/// </summary>
internal sealed class ResumePlanner(FinetuneSession session, CheckpointFingerprints fingerprints, Func<long, string> newBranchId,
    Func<Func<TrainingRank, string?>, string?[]> onEveryRank)
{
    private readonly FinetuneSession _session = session;
    private readonly CheckpointFingerprints _fingerprints = fingerprints;
    private readonly Func<long, string> _newBranchId = newBranchId;
    private readonly Func<Func<TrainingRank, string?>, string?[]> _onEveryRank = onEveryRank;

    private FinetuneOptions Options => _session.Options;

    private JobTopology Job => _session.Job;

    private Trainer Trainer => _session.Trainer;

    private BatchPlan TrainBatches => _session.TrainBatches;

    /// <summary>
    /// The options a run was saved with, read from the newest checkpoint under <paramref name="path"/>
    /// that opens, with its output directory set to the run's; the starting point for a resume's
    /// options, which flags then override.
    /// </summary>
    /// <param name="launch">where a launcher put this process: only the job's first process refuses a directory a run
    /// holds (when the others read it, the first may already hold it for this very job)</param>
    internal static FinetuneOptions ReadResumeOptions(string path, LaunchEnvironment? launch = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (launch is null || launch.Rank == 0)
        {
            if (CheckpointStore.OutputDirOf(path) is { } outputDir)
            {
                RunLock.ThrowIfHeld(outputDir, "resume from");
            }
        }
        return OpenNewestSaved(path, "resume from", "--resume", verify: false).Options;
    }

    /// <summary>
    /// The newest checkpoint of the live history under <paramref name="path"/> (an output directory, or one checkpoint)
    /// that opens — and, with <paramref name="verify"/>, whose every hash checks — and the options its run was saved with,
    /// output directory set to the run's; <see cref="UserErrorException"/> listing every damaged one when none is good.
    /// <paramref name="purpose"/> completes "no valid checkpoint to …"; <paramref name="flag"/> is how the user gave the path.
    /// </summary>
    internal static (Checkpoint Checkpoint, FinetuneOptions Options) OpenNewestSaved(string path, string purpose, string flag, bool verify)
    {
        var candidates = CheckpointStore.Resolve(path, flag);
        var problems = new List<string>();
        foreach (string dir in candidates.Checkpoints)
        {
            try
            {
                var checkpoint = Checkpoint.Open(dir);
                if (verify)
                {
                    checkpoint.Verify();
                }
                var saved = SavedOptions(checkpoint);
                return (checkpoint, candidates.OutputDir is { } outputDir ? saved with { OutputDir = outputDir } : saved);
            }
            catch (CheckpointCorruptException e)
            {
                problems.Add(e.Message);
            }
        }
        throw NoValidCheckpoint(path, problems, purpose);
    }

    internal static UserErrorException NoValidCheckpoint(string path, IEnumerable<string> problems, string purpose = "resume from")
        => new($"no valid checkpoint to {purpose} at '{path}':{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", problems)}");

    internal static FinetuneOptions SavedOptions(Checkpoint checkpoint)
        => RunConfigFile.ApplyText(new FinetuneOptions(), checkpoint.Manifest.ConfigJson, $"{checkpoint.Directory}/{CheckpointFormat.ManifestFileName} (config)", yaml: false);

    /// <summary>
    /// Loads the newest usable checkpoint of <paramref name="candidates"/> into every rank's model and optimizer, whatever
    /// world size wrote it, and plans the rest of the run from it (steps, schedule, branch). The ranks read their pieces in
    /// parallel and agree before going on: when any finds its part damaged, all pass on to the next checkpoint together.
    /// </summary>
    public ResumePlan Plan(ResumeCandidates candidates, ResumeRequest request)
    {
        var skipped = new List<string>();
        var skippedDirs = new HashSet<string>(StringComparer.Ordinal);
        var notices = new List<string>();
        if (candidates.LatestProblem is { } latestProblem)
        {
            if (request.Strict)
            {
                throw new UserErrorException($"cannot resume from '{request.Path}' with --strict: {latestProblem}; name the checkpoint to continue from (--resume {Path.Combine(request.Path, CheckpointFormat.DirectoryName, "step-N")})");
            }
            notices.Add(latestProblem);
        }
        foreach (string dir in candidates.Checkpoints)
        {
            Checkpoint checkpoint;
            try
            {
                checkpoint = Checkpoint.Open(dir);
            }
            catch (CheckpointCorruptException e) when (!request.Strict && !candidates.Explicit)
            {
                skipped.Add(e.Message);
                skippedDirs.Add(dir);
                continue;
            }
            var manifest = checkpoint.Manifest;
            var state = SamplerWithin(manifest.Training, request.Force, notices);
            var savedSchedule = manifest.Scheduler.ToSchedule();
            string? scheduleChange = null;
            foreach (var rank in _session.Ranks)
            {
                scheduleChange = rank.Trainer.ContinueFrom(state, savedSchedule);
            }
            var warnings = ResumeCompatibility.Check(checkpoint.Directory, SavedOptions(checkpoint), Options, manifest, _fingerprints, Trainer.TotalSteps, request.Force)
                .Concat(RunEnvironment.ChangesSince(manifest, _session.Model.Backend.Name)).ToList();
            CheckSampler(checkpoint, request.Force);
            string? problem = LoadOnEveryRank(checkpoint);
            if (problem is not null)
            {
                if (request.Strict || candidates.Explicit)
                {
                    string insist = request.Strict ? " (--strict: no fallback to an older checkpoint)" : "";
                    throw new CheckpointCorruptException(problem + insist);
                }
                skipped.Add(problem);
                skippedDirs.Add(dir);
                continue;
            }
            if (manifest.WorldSize != Job.WorldSize)
            {
                warnings.Add($"the checkpoint was written by {manifest.WorldSize} rank(s) and this run has {Job.WorldSize}: its optimizer state was resharded; each step now takes {Trainer.BatchesPerStep} micro-batch(es) (set --gradient-accumulation-steps to keep the global batch)");
            }
            if (scheduleChange is not null)
            {
                warnings.Add(ScheduleWarning(savedSchedule, state, scheduleChange));
            }
            var (lineage, setAside, branch) = PlanHistory(checkpoint, candidates, skippedDirs);
            var info = new ResumeInfo(checkpoint.Directory, state.Step, state.Epoch, [.. notices, .. warnings], skipped,
                Trainer.Schedule.DescribeFrom(state.Step, state.Epoch), branch, NothingLeft(manifest, checkpoint.Directory));
            return new ResumePlan(info, state, checkpoint.ReadFile(CheckpointFormat.MetricsFileName),
                new CheckpointParent(checkpoint.Name, manifest.CheckpointId), lineage, setAside);
        }
        throw NoValidCheckpoint(request.Path, skipped);
    }

    /// <summary>Loads the checkpoint on every rank; the first rank's problem (or that another rank had one), or null.</summary>
    private string? LoadOnEveryRank(Checkpoint checkpoint)
    {
        var problems = _onEveryRank(rank =>
        {
            string? mine = null;
            try
            {
                checkpoint.Load(rank.Trainer.Optimizer.CheckpointPieces, rank.Backend, rank.CheckpointTensorNames());
            }
            catch (CheckpointCorruptException e)
            {
                mine = e.Message;
            }
            if (rank.OnAnyRank(mine is not null))
            {
                return mine ?? $"checkpoint '{checkpoint.Directory}': another rank found its part damaged";
            }
            rank.Trainer.Optimizer.PublishRestoredState();
            rank.Trainer.Optimizer.RestoreStepCount(checkpoint.Manifest.Optimizer.StepCount);
            return null;
        });
        return problems.FirstOrDefault(p => p is not null);
    }

    /// <summary>
    /// The saved state, its sampler moved to the end of the epoch when the data changed (--force) and the epoch now has
    /// fewer batches than it had reached.
    /// </summary>
    private TrainingState SamplerWithin(TrainingState saved, bool force, List<string> notices)
    {
        int batches = TrainBatches.Count;
        if (!force || saved.Sampler.Cursor <= batches)
        {
            return saved;
        }
        notices.Add($"epoch {saved.Epoch + 1} had reached batch {saved.Sampler.Cursor}, and the new data has {batches} batches per epoch: that epoch ends here");
        return saved with { Sampler = saved.Sampler with { Cursor = batches } };
    }

    /// <summary>The warning for a schedule that differs from the checkpoint's: the rate of the next step before and after, and why.</summary>
    private string ScheduleWarning(LearningRateSchedule saved, TrainingState state, string change)
    {
        double before = saved.At(state.Step, state.Epoch), after = Trainer.Schedule.At(state.Step, state.Epoch);
        string rates = before == after
            ? $"the learning rate of step {state.Step + 1} stays {LearningRateSchedule.Rate(after)}"
            : $"the learning rate of step {state.Step + 1} changes from {LearningRateSchedule.Rate(before)} to {LearningRateSchedule.Rate(after)}";
        string length = Trainer.TotalSteps == saved.TotalSteps ? "" : $"the run now ends at step {Trainer.TotalSteps} (it was planned to end at step {saved.TotalSteps}); ";
        return $"{length}{change}: {rates}";
    }

    /// <summary>
    /// Decides the history the run's checkpoints record: the checkpoint's own branch when it is the live head of this
    /// output directory (or everything newer on the live chain is damaged), else a new branch from its step — and what
    /// <see cref="FinetuneSession.Train"/> sets aside first. Returns the line that tells the user about a branch, or null.
    /// </summary>
    private (CheckpointLineage Lineage, RunSetAside? SetAside, string? Message) PlanHistory(Checkpoint checkpoint, ResumeCandidates candidates, HashSet<string> skippedDirs)
    {
        var manifest = checkpoint.Manifest;
        var history = candidates.History;
        bool ownDirectory = candidates.OutputDir is { } runDir && Path.GetFullPath(runDir) == Path.GetFullPath(Options.OutputDir) && history is not null;
        var newer = history?.Chain.TakeWhile(e => e.Directory != checkpoint.Directory).ToList() ?? [];
        bool isLive = ownDirectory && history!.Chain.Any(e => e.Directory == checkpoint.Directory) && newer.All(e => !e.Opens || skippedDirs.Contains(e.Directory));
        var lineage = isLive ? manifest.Lineage : manifest.Lineage.BranchedAt(manifest.Training.Step, _newBranchId(manifest.Training.Step));
        if (!ownDirectory)
        {
            return (lineage, null, null);
        }
        // Damaged checkpoints passed over stay: the run writes their steps again on the same branch, replacing them.
        var offHistory = history!.Entries.Where(e => e.Opens && !skippedDirs.Contains(e.Directory) && !manifest.HasInHistory(e.Checkpoint!.Manifest)).ToList();
        if (offHistory.Count == 0)
        {
            return (lineage, null, null);
        }
        string archive = RunBranching.ArchiveFor(Options.OutputDir, offHistory);
        var setAside = new RunSetAside(offHistory, archive, checkpoint.Name, history.Head?.Name);
        string moved = offHistory.Count == 1 ? offHistory[0].Name : $"{offHistory.Count} checkpoints ({offHistory[^1].Name} … {offHistory[0].Name})";
        return (lineage, setAside, isLive
            ? $"{moved} of another branch will be moved to {archive} (they are not on this run's history)"
            : $"this run branches from {checkpoint.Name}: the later branch's {moved}{(offHistory.Any(e => e == history.Head) ? ", its metrics and outputs" : "")} will be moved to {archive}, where it can still be resumed or exported");
    }

    /// <summary>Why a resumed run that already finished has nothing to do (null when it has steps left, or its end to write).</summary>
    private string? NothingLeft(CheckpointManifest manifest, string checkpoint)
    {
        long step = manifest.Training.Step;
        if (manifest.Reason != CheckpointReason.End || Trainer.TotalSteps > step)
        {
            return null;
        }
        string why = Options.MaxSteps > 0 && Options.MaxSteps <= step
            ? $"--max-steps {Options.MaxSteps} is reached"
            : $"its {Options.NumEpochs} epoch(s) are done" + (Options.MaxSteps > step ? $" (--max-steps {Options.MaxSteps} only caps the epochs; it does not add any)" : "");
        return $"nothing to do: the run finished at step {step} ('{checkpoint}') and {why}; raise --num-epochs or --max-steps to train further. Nothing was changed.";
    }

    private void CheckSampler(Checkpoint checkpoint, bool force)
    {
        var m = checkpoint.Manifest;
        if (force)
        {
            return; // the data changed on purpose: the order is the new data's
        }
        if (m.Sampler.BatchesPerEpoch != TrainBatches.Count)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint.Directory}': an epoch had {m.Sampler.BatchesPerEpoch} batches and now has {TrainBatches.Count}");
        }
        if (Fingerprints.Order(BatchSampler.Order(TrainBatches.Count, m.Training.Sampler.Seed, m.Training.Epoch, m.Sampler.Shuffle)) != m.Sampler.OrderHash)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint.Directory}': this engine orders the batches of epoch {m.Training.Epoch} differently from the one that wrote it ({m.EngineVersion}), so the run would not continue exactly");
        }
    }
}
