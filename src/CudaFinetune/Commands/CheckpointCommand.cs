using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>checkpoint verify | inspect | list</c>: check a checkpoint's hashes (exit 0 valid, 1 not),
/// describe one, or list an output directory's checkpoints with their state.
/// </summary>
internal static class CheckpointCommand
{
    /// <summary>How many times verify reads an output directory's history when a run saving there retires all it read.</summary>
    private const int HistoryReadings = 3;

    public static Command Create()
    {
        var command = new Command("checkpoint", "Verify, inspect or list checkpoints");
        command.Subcommands.Add(Verify());
        command.Subcommands.Add(Inspect());
        command.Subcommands.Add(List());
        return command;
    }

    private static Argument<string> CheckpointOrRun() => new("DIR")
    {
        Description = "A checkpoint directory (OUTPUT_DIR/checkpoints/step-N), or a run's output directory (the newest checkpoint of its live history, as --resume takes it)",
    };

    private static Command Verify()
    {
        var dir = CheckpointOrRun();
        var command = new Command("verify", "Check every tensor and file of a checkpoint against its hashes; exit 0 if valid, 1 if not (for an output directory: its newest checkpoint; if damaged, also which one resume and export would use)") { dir };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            string path = parse.GetValue(dir)!;
            // A run saving into the directory may retire every checkpoint read before it is verified: read its history again.
            for (int reading = 1; ; reading++)
            {
                if (VerifyNewest(CheckpointStore.Resolve(path, "checkpoint verify"), path, output) is { } code)
                {
                    return code;
                }
                if (reading == HistoryReadings)
                {
                    output.WriteLine($"every checkpoint of the run's history at '{path}' was removed while being read (a run is saving there): verify again");
                    return Program.ExitCheckFailed;
                }
            }
        });
        return command;
    }

    /// <summary>
    /// Verifies the candidates newest first until one is valid; the exit code, or null when every one was removed while
    /// being read (a run saving into the output directory retired them), and so the directory is worth reading again.
    /// </summary>
    private static int? VerifyNewest(ResumeCandidates candidates, string path, TextWriter output)
    {
        ReportLatestProblem(candidates, output);
        bool newestValid = true;
        foreach (string candidate in candidates.Checkpoints)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var checkpoint = Checkpoint.Open(candidate);
                checkpoint.Verify();
                double seconds = clock.Elapsed.TotalSeconds;
                long bytes = checkpoint.Manifest.TotalBytes;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"valid: {checkpoint.Directory}: step {checkpoint.Manifest.Training.Step}, {checkpoint.Manifest.Tensors.Count} tensors and {checkpoint.Manifest.Files.Count} files, {bytes / 1e6:F1} MB verified in {seconds:F2} s"));
                if (!newestValid)
                {
                    output.WriteLine($"  the newest valid checkpoint of the run: resume and export use it");
                }
                return newestValid ? Program.ExitSuccess : Program.ExitCheckFailed;
            }
            catch (CheckpointRemovedException e)
            {
                ReportRemoved(e, output); // retired or replaced by a run saving there: not damage, and not the newest any more
            }
            catch (CheckpointCorruptException e)
            {
                output.WriteLine($"invalid: {e.Message}");
                newestValid = false;
            }
        }
        if (newestValid && !candidates.Explicit)
        {
            return null;
        }
        if (!candidates.Explicit)
        {
            output.WriteLine($"no valid checkpoint in the run's history at '{path}'");
        }
        return Program.ExitCheckFailed;
    }

    private static Command Inspect()
    {
        var dir = CheckpointOrRun();
        var tensors = new Option<bool>("--tensors") { Description = "List every tensor (name, dtype, shape, file, offset, hash)" };
        var command = new Command("inspect", "Describe a checkpoint: training state, history, schedule, optimizer, configuration, files (hashes are not read; use verify)") { dir, tensors };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var candidates = CheckpointStore.Resolve(parse.GetValue(dir)!, "checkpoint inspect");
            ReportLatestProblem(candidates, output);
            foreach (string candidate in candidates.Checkpoints)
            {
                try
                {
                    Describe(Checkpoint.Open(candidate), parse.GetValue(tensors), output);
                    return Program.ExitSuccess;
                }
                catch (CheckpointRemovedException e)
                {
                    ReportRemoved(e, output);
                }
                catch (CheckpointCorruptException e)
                {
                    output.WriteLine($"invalid: {e.Message}");
                }
            }
            return Program.ExitCheckFailed;
        });
        return command;
    }

    /// <summary>A checkpoint gone while it was read (a run saving into the directory): said as such, never as invalid.</summary>
    private static void ReportRemoved(CheckpointRemovedException e, TextWriter output) => output.WriteLine($"skipped: {e.Message}");

    private static void ReportLatestProblem(ResumeCandidates candidates, TextWriter output)
    {
        if (candidates.LatestProblem is { } problem)
        {
            output.WriteLine($"warning: {problem}");
        }
    }

    private static Command List()
    {
        var dir = new Argument<string>("OUTPUT_DIR") { Description = "A fine-tuning output directory" };
        var command = new Command("list", "List an output directory's checkpoints: step, epochs done, size, eval loss, valid or why not, which is latest and which lie on another branch; and the branches set aside (exit 1 if any is damaged)") { dir };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            string outputDir = parse.GetValue(dir)!;
            if (!Directory.Exists(outputDir))
            {
                throw new UserErrorException($"checkpoint list '{outputDir}': no such directory");
            }
            var history = RunHistory.Read(CheckpointStore.CheckpointsDirectory(outputDir));
            var listings = CheckpointStore.List(history);
            var branches = RunBranching.SetAsideBranches(outputDir);
            if (listings.Count == 0 && branches.Count == 0)
            {
                output.WriteLine($"no checkpoints in {CheckpointStore.CheckpointsDirectory(outputDir)}");
                return Program.ExitSuccess;
            }
            if (RunLock.Holder(outputDir) is { } holder)
            {
                output.WriteLine($"note: {holder} is training here: checkpoints it creates or retires while this lists are left out");
            }
            if (history.LatestProblem is { } problem)
            {
                output.WriteLine($"warning: {problem}");
            }
            output.WriteLine($"{"checkpoint",-16} {"step",8} {"epochs",7} {"size",10} {"eval loss",10}  {"reason",-11} status");
            foreach (var c in listings)
            {
                var m = c.Manifest;
                string eval = m?.EvalLossAtStep is { } loss ? loss.ToString("F4", CultureInfo.InvariantCulture) : "-";
                string epochs = m is null ? "-" : EpochsDone(m);
                string reason = m is null ? "-" : CheckpointFormat.ReasonName(m.Reason);
                string status = c.Valid ? "valid" : $"INVALID: {c.Problem}";
                string mark = c.Latest ? " (latest)" : c.OnChain ? "" : " (another branch: not on the run's history)";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{c.Name,-16} {c.Step,8} {epochs,7} {Size(c.Bytes),10} {eval,10}  {reason,-11} {status}{mark}"));
            }
            foreach (string branch in branches)
            {
                var setAside = RunHistory.Read(CheckpointStore.CheckpointsDirectory(branch));
                string head = setAside.Head is { } h ? $", newest {h.Name}" : "";
                output.WriteLine($"branch set aside: {Path.GetRelativePath(outputDir, branch)}: {setAside.Entries.Count} checkpoint(s){head} (resume or export it: {branch})");
            }
            return listings.All(c => c.Valid) ? Program.ExitSuccess : Program.ExitCheckFailed;
        });
        return command;
    }

    /// <summary>Epochs done at the checkpoint, with the fraction of the current one (the same figure list and inspect show).</summary>
    private static string EpochsDone(CheckpointManifest m) => m.Training.EpochsDone(m.Sampler.BatchesPerEpoch).ToString("0.00", CultureInfo.InvariantCulture);

    private static void Describe(Checkpoint checkpoint, bool listTensors, TextWriter output)
    {
        var m = checkpoint.Manifest;
        var t = m.Training;
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine($"checkpoint   {checkpoint.Directory}");
        output.WriteLine($"format       version {m.FormatVersion}, written by engine {m.EngineVersion} at {m.Created.ToString("u", inv)} ({CheckpointFormat.ReasonName(m.Reason)})");
        output.WriteLine($"environment  {string.Join(", ", m.Environment.Select(kv => $"{kv.Key}={kv.Value}"))}");
        output.WriteLine($"backend      {m.Backend}, weights {m.WeightDType.SafetensorsName()}, master weights {(m.MasterDType?.SafetensorsName() ?? "= weights")}, optimizer {m.OptimizerDType.SafetensorsName()}, world size {m.WorldSize}");
        string position = t.Sampler.Cursor == 0 ? $"{t.Epoch} epoch(s) complete" : $"in epoch {t.Epoch + 1}, at batch {t.Sampler.Cursor} of {m.Sampler.BatchesPerEpoch}";
        output.WriteLine(string.Create(inv, $"training     step {t.Step}, {EpochsDone(m)} epochs done ({position}), {t.MicroBatches} micro-batches, seed {t.Sampler.Seed}, shuffle {m.Sampler.Shuffle}"));
        string parent = m.Lineage.Parent is { } p ? $"continues {p.Name} (id {p.Id})" : "the first checkpoint of its run";
        string branches = string.Join(" <- ", m.Lineage.Segments.Reverse().Select(b => $"{(b.Branch.Length == 0 ? "(unrecorded)" : b.Branch[..8])} from step {b.FromStep}"));
        output.WriteLine($"history      {parent}; branch {branches}");
        output.WriteLine($"losses       last step {Number(t.LastLoss)}, last eval {Number(t.LastEvalLoss)} (at step {(t.EvaluatedAt < 0 ? "-" : t.EvaluatedAt.ToString(inv))}), best eval {Number(t.BestEvalLoss)}");
        var schedule = m.Scheduler.ToSchedule();
        string continued = m.Scheduler.Continuation is { } c ? string.Create(inv, $", continued at step {c.FromStep} from progress {c.FromProgress:0.####}") : "";
        output.WriteLine(string.Create(inv, $"scheduler    {LearningRateSchedule.Name(m.Scheduler.Kind)}, base lr {m.Scheduler.BaseLr}, warmup {m.Scheduler.WarmupSteps}, {m.Scheduler.TotalSteps} steps, gamma {m.Scheduler.Gamma}{continued}; next: {schedule.DescribeFrom(t.Step, t.Epoch)}"));
        output.WriteLine(string.Create(inv, $"optimizer    adamw, betas {m.Optimizer.Beta1}/{m.Optimizer.Beta2}, eps {m.Optimizer.Epsilon}, weight decay {m.Optimizer.WeightDecay}, {m.Optimizer.StepCount} updates"));
        output.WriteLine($"fingerprints model {m.Fingerprints.Model}, train data {m.Fingerprints.TrainData}, validation {m.Fingerprints.ValidationData}");
        using (var config = JsonDocument.Parse(m.ConfigJson))
        {
            var settings = config.RootElement.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).Select(p => $"{p.Name}={p.Value.GetRawText()}");
            output.WriteLine($"config       {string.Join(" ", settings)}");
        }
        foreach (var shard in m.Shards)
        {
            var inShard = m.Tensors.Where(x => x.File == shard.File).ToList();
            output.WriteLine($"shard        {shard.File}: {shard.Group}, rank {shard.Rank}, {inShard.Count} tensors, {Size(shard.Length)}");
        }
        foreach (var file in m.Files)
        {
            output.WriteLine($"file         {file.Path}: {Size(file.Length)}");
        }
        if (listTensors)
        {
            foreach (var x in m.Tensors)
            {
                string slice = x.Slice is { } part ? $" elements [{part.Start}, {part.End})" : "";
                output.WriteLine($"tensor       {x.Group}/{x.Name} {x.DType.SafetensorsName()} [{string.Join(", ", x.Shape)}]{slice} {x.File}@{x.Offset} {x.Hash}");
            }
        }
        output.WriteLine("(hashes not read; 'checkpoint verify' checks them)");
    }

    private static string Number(double? value) => value is { } v ? v.ToString("F4", CultureInfo.InvariantCulture) : "-";

    private static string Size(long bytes) => bytes >= 1 << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1 << 30):F2} GiB")
        : bytes >= 1 << 20 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1 << 20):F1} MiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB");
}
