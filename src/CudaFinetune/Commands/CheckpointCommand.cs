using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>checkpoint verify | inspect | list</c>: check a checkpoint's hashes (exit 0 valid, 1 not),
/// describe one, or list an output directory's checkpoints with their state.
/// </summary>
internal static class CheckpointCommand
{
    public static Command Create()
    {
        var command = new Command("checkpoint", "Verify, inspect or list checkpoints");
        command.Subcommands.Add(Verify());
        command.Subcommands.Add(Inspect());
        command.Subcommands.Add(List());
        return command;
    }

    private static Command Verify()
    {
        var dir = new Argument<string>("DIR") { Description = "A checkpoint directory (OUTPUT_DIR/checkpoints/step-N)" };
        var command = new Command("verify", "Check every tensor and file of a checkpoint against its hashes; exit 0 if valid, 1 if not") { dir };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            string path = parse.GetValue(dir)!;
            var clock = Stopwatch.StartNew();
            try
            {
                var checkpoint = Checkpoint.Open(path);
                checkpoint.Verify();
                double seconds = clock.Elapsed.TotalSeconds;
                long bytes = checkpoint.Manifest.TotalBytes;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"valid: {checkpoint.Directory}: step {checkpoint.Manifest.Training.Step}, {checkpoint.Manifest.Tensors.Count} tensors and {checkpoint.Manifest.Files.Count} files, {bytes / 1e6:F1} MB verified in {seconds:F2} s"));
                return Program.ExitSuccess;
            }
            catch (CheckpointCorruptException e)
            {
                output.WriteLine($"invalid: {e.Message}");
                return Program.ExitCheckFailed;
            }
        });
        return command;
    }

    private static Command Inspect()
    {
        var dir = new Argument<string>("DIR") { Description = "A checkpoint directory" };
        var tensors = new Option<bool>("--tensors") { Description = "List every tensor (name, dtype, shape, file, offset, hash)" };
        var command = new Command("inspect", "Describe a checkpoint: training state, schedule, optimizer, configuration, files (hashes are not read; use verify)") { dir, tensors };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            Checkpoint checkpoint;
            try
            {
                checkpoint = Checkpoint.Open(parse.GetValue(dir)!);
            }
            catch (CheckpointCorruptException e)
            {
                output.WriteLine($"invalid: {e.Message}");
                return Program.ExitCheckFailed;
            }
            Describe(checkpoint, parse.GetValue(tensors), output);
            return Program.ExitSuccess;
        });
        return command;
    }

    private static Command List()
    {
        var dir = new Argument<string>("OUTPUT_DIR") { Description = "A fine-tuning output directory" };
        var command = new Command("list", "List an output directory's checkpoints: step, epoch, size, eval loss, valid or why not (exit 1 if any is damaged)") { dir };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            string outputDir = parse.GetValue(dir)!;
            if (!Directory.Exists(outputDir))
            {
                throw new UserErrorException($"'{outputDir}': no such directory");
            }
            var listings = CheckpointStore.List(outputDir);
            if (listings.Count == 0)
            {
                output.WriteLine($"no checkpoints in {CheckpointStore.CheckpointsDirectory(outputDir)}");
                return Program.ExitSuccess;
            }
            string? latest = CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(outputDir));
            output.WriteLine($"{"checkpoint",-16} {"step",8} {"epoch",6} {"size",10} {"eval loss",10}  {"reason",-11} status");
            foreach (var c in listings)
            {
                var m = c.Manifest;
                string eval = m?.EvalLossAtStep is { } loss ? loss.ToString("F4", CultureInfo.InvariantCulture) : "-";
                string epoch = m is null ? "-" : (m.Training.Epoch + (m.Training.Sampler.Cursor > 0 ? 1 : 0)).ToString(CultureInfo.InvariantCulture);
                string reason = m is null ? "-" : CheckpointFormat.ReasonName(m.Reason);
                string status = c.Valid ? "valid" : $"INVALID: {c.Problem}";
                string mark = c.Name == latest ? " (latest)" : "";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{c.Name,-16} {c.Step,8} {epoch,6} {Size(c.Bytes),10} {eval,10}  {reason,-11} {status}{mark}"));
            }
            return listings.All(c => c.Valid) ? Program.ExitSuccess : Program.ExitCheckFailed;
        });
        return command;
    }

    private static void Describe(Checkpoint checkpoint, bool listTensors, TextWriter output)
    {
        var m = checkpoint.Manifest;
        var t = m.Training;
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine($"checkpoint   {checkpoint.Directory}");
        output.WriteLine($"format       version {m.FormatVersion}, written by engine {m.EngineVersion} at {m.Created.ToString("u", inv)} ({CheckpointFormat.ReasonName(m.Reason)})");
        output.WriteLine($"environment  {string.Join(", ", m.Environment.Select(kv => $"{kv.Key}={kv.Value}"))}");
        output.WriteLine($"backend      {m.Backend}, weights {m.WeightDType.SafetensorsName()}, master weights {(m.MasterDType?.SafetensorsName() ?? "= weights")}, optimizer {m.OptimizerDType.SafetensorsName()}, world size {m.WorldSize}");
        output.WriteLine(string.Create(inv, $"training     step {t.Step}, epoch {t.Epoch + 1} at batch {t.Sampler.Cursor}/{m.Sampler.BatchesPerEpoch}, {t.MicroBatches} micro-batches, seed {t.Sampler.Seed}, shuffle {m.Sampler.Shuffle}"));
        output.WriteLine($"losses       last step {Number(t.LastLoss)}, last eval {Number(t.LastEvalLoss)} (at step {(t.EvaluatedAt < 0 ? "-" : t.EvaluatedAt.ToString(inv))}), best eval {Number(t.BestEvalLoss)}");
        var schedule = new LearningRateSchedule(m.Scheduler.Kind, m.Scheduler.BaseLr, m.Scheduler.WarmupSteps, m.Scheduler.TotalSteps, m.Scheduler.Gamma);
        output.WriteLine(string.Create(inv, $"scheduler    {m.Scheduler.Kind.ToString().ToLowerInvariant()}, base lr {m.Scheduler.BaseLr}, warmup {m.Scheduler.WarmupSteps}, {m.Scheduler.TotalSteps} steps, gamma {m.Scheduler.Gamma}; next lr {schedule.At(t.Step, t.Epoch):0.000e+0}"));
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
