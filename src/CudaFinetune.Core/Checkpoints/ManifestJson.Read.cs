using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

// manifest.json, reading: the self-hash first, then every field through JsonFields, so each problem is one
// CheckpointCorruptException naming the field in the shared wording ("manifest.json: 'training.step' must be an
// integer ≥ 0, found -1"). The checkpoint's own kinds of value (hashes, dtypes, paths inside the checkpoint, shapes)
// are the helpers at the end. Writing is in ManifestJson.Write.cs.
internal static partial class ManifestJson
{
    /// <summary>Parses and checks a manifest; every problem is a <see cref="CheckpointCorruptException"/> naming the field.</summary>
    public static CheckpointManifest Read(byte[] bytes, string checkpoint)
    {
        Func<string, UserErrorException> error = problem => new CheckpointCorruptException(checkpoint, CheckpointFormat.ManifestFileName, null, problem);
        using JsonDocument doc = JsonFields.Parse(bytes, error, new JsonDocumentOptions { MaxDepth = 16 });
        var r = JsonFields.Root(doc, error);
        if (r.String("format") != FormatName)
        {
            throw r.Error("format", $"is not '{FormatName}'");
        }
        int version = r.Int("format_version", 0);
        if (version is < CheckpointFormat.OldestReadableVersion or > CheckpointFormat.Version)
        {
            string engine = r.Member("engine_version") is { Kind: JsonValueKind.String } e ? e.AsString() : "?";
            throw r.Error("format_version", $"is {version}; this engine reads versions {CheckpointFormat.OldestReadableVersion} to {CheckpointFormat.Version} (written by engine {engine})");
        }
        string recorded = r.String(SelfHashKey);
        int at = CheckpointFormat.IsHashText(recorded) ? SelfHashPosition(bytes, recorded) : -1;
        if (at < 0)
        {
            throw r.Error(SelfHashKey, "is missing or malformed");
        }
        byte[] zeroed = (byte[])bytes.Clone();
        Encoding.ASCII.GetBytes(ZeroHash).CopyTo(zeroed, at);
        if (CheckpointFormat.Hash(zeroed) != recorded)
        {
            throw new CheckpointCorruptException(checkpoint, CheckpointFormat.ManifestFileName, null, "the manifest was changed after it was written (its content does not hash to manifest_xxh128)");
        }
        return Parse(r);
    }

    /// <summary>Reads a rank's part back; it must belong to checkpoint <paramref name="checkpointId"/> and rank <paramref name="rank"/>.</summary>
    public static (List<CheckpointShard> Shards, List<CheckpointTensor> Tensors) ReadPart(byte[] bytes, string checkpoint, string checkpointId, int rank)
    {
        Func<string, UserErrorException> error = problem => new CheckpointCorruptException(checkpoint, null, null, $"rank {rank}'s part of the manifest: {problem}");
        using JsonDocument doc = JsonFields.Parse(bytes, error);
        var r = JsonFields.Root(doc, error);
        if (r.String("checkpoint_id") != checkpointId || r.Int("rank", 0) != rank)
        {
            throw r.Error("checkpoint_id", "belongs to another checkpoint or rank");
        }
        return ParseShardsAndTensors(r);
    }

    private static (List<CheckpointShard> Shards, List<CheckpointTensor> Tensors) ParseShardsAndTensors(JsonFields r)
    {
        var shards = r.Array("shards").Select(s => new CheckpointShard(s.RelativePath("file"), s.Group("group"), s.Int("rank", 0), s.Long("length", 0))).ToList();
        var tensors = r.Array("tensors").Select(t => new CheckpointTensor(
            t.String("name"), t.Group("group"), t.DType("dtype"), t.Shape("shape"), t.RelativePath("file"), t.Long("offset", 0), t.Long("length", 0), t.Hash("xxh128"), OptionalSlice(t))).ToList();
        return (shards, tensors);
    }

    private static CheckpointManifest Parse(JsonFields r)
    {
        var dtypes = r.Object("dtypes");
        var training = r.Object("training");
        var sampler = r.Object("sampler");
        var scheduler = r.Object("scheduler");
        var optimizer = r.Object("optimizer");
        var fingerprints = r.Object("fingerprints");
        var state = new TrainingState
        {
            Step = training.Long("step", 0),
            Sampler = new SamplerState(sampler.ULong("seed"), sampler.Int("epoch", 0), sampler.Int("cursor", 0)),
            MicroBatches = training.Long("micro_batches", 0),
            EvaluatedAt = training.Long("evaluated_at", -1),
            LastLoss = training.NumberOrNull("last_loss"),
            LastEvalLoss = training.NumberOrNull("last_eval_loss"),
            BestEvalLoss = training.NumberOrNull("best_eval_loss"),
            SkippedSteps = training.OptionalLong("skipped_steps", 0) ?? 0,
        };
        if (training.Int("epoch", 0) != state.Epoch)
        {
            throw training.Error("epoch", "differs from sampler.epoch");
        }
        var (shards, tensors) = ParseShardsAndTensors(r);
        var files = r.Array("files").Select(f => new CheckpointFile(f.RelativePath("path"), f.Long("length", 0), f.Hash("xxh128"))).ToList();
        return new CheckpointManifest
        {
            FormatVersion = r.Int("format_version", 1),
            CheckpointId = r.Hash("checkpoint_id"),
            EngineVersion = r.String("engine_version"),
            Created = r.Timestamp("created_utc"),
            Environment = [.. r.Object("environment").Entries().Select(e => KeyValuePair.Create(e.Name, e.Value.Kind == JsonValueKind.String ? e.Value.AsString() : e.Value.Raw))],
            Backend = r.String("backend"),
            WeightDType = dtypes.DType("weights"),
            MasterDType = dtypes.Has("master_weights") ? dtypes.DType("master_weights") : null,
            OptimizerDType = dtypes.DType("optimizer"),
            WorldSize = r.Int("world_size", 1),
            Reason = r.Choice("reason", [CheckpointReason.Periodic, CheckpointReason.EpochEnd, CheckpointReason.End, CheckpointReason.Interrupted, CheckpointReason.NonFinite], CheckpointFormat.ReasonName),
            Training = state,
            Sampler = new SamplerRecord(sampler.Bool("shuffle"), sampler.Int("batches_per_epoch", 0), sampler.Hash("order_xxh128")),
            Scheduler = new SchedulerRecord(
                scheduler.Choice("kind", [SchedulerKind.StepLR, SchedulerKind.Cosine, SchedulerKind.Linear, SchedulerKind.Constant], k => k.ToString().ToLowerInvariant()),
                scheduler.Number("base_lr"), scheduler.Int("warmup_steps", 0), scheduler.Long("total_steps", 0), scheduler.Number("gamma"), Continuation(scheduler)),
            Optimizer = new OptimizerRecord(optimizer.Number("beta1"), optimizer.Number("beta2"), optimizer.Number("epsilon"), optimizer.Number("weight_decay"), optimizer.Long("step_count", 0)),
            Fingerprints = new CheckpointFingerprints(fingerprints.Hash("model"), fingerprints.Hash("train_data"), fingerprints.Hash("validation_data")),
            ConfigJson = r.Object("config").Raw,
            Shards = shards,
            Tensors = tensors,
            Files = files,
            Lineage = ReadLineage(r),
        };
    }

    /// <summary>history (format 3); older manifests have none and read as <see cref="CheckpointLineage.Unrecorded"/>.</summary>
    private static CheckpointLineage ReadLineage(JsonFields r)
    {
        if (r.OptionalObject("history") is not { } history)
        {
            return CheckpointLineage.Unrecorded;
        }
        var segments = history.Array("branches").Select(b => new HistorySegment(b.BranchId("branch"), b.Long("from_step", 0))).ToList();
        if (segments.Count == 0 || segments.Count > 100_000)
        {
            throw history.Error("branches", $"must list 1 to 100000 branches, found {segments.Count}");
        }
        for (int i = 1; i < segments.Count; i++)
        {
            if (segments[i].FromStep < segments[i - 1].FromStep)
            {
                throw history.Error("branches", "must be in the order of their steps");
            }
        }
        CheckpointParent? parent = null;
        if (history.OptionalObject("parent") is { } p)
        {
            string name = p.String("checkpoint", "a checkpoint name (step-NNNNNNNN)", text => CheckpointFormat.TryParseStep(text, out _));
            parent = new CheckpointParent(name, p.Hash("checkpoint_id"));
        }
        return new CheckpointLineage(segments, parent);
    }

    /// <summary>scheduler.continuation (format 3), or null when absent.</summary>
    private static ScheduleContinuation? Continuation(JsonFields scheduler)
    {
        if (scheduler.OptionalObject("continuation") is not { } c)
        {
            return null;
        }
        double progress = c.Number("from_progress");
        return progress is >= 0 and <= 1 ? new ScheduleContinuation(c.Long("from_step", 0), progress) : throw c.Member("from_progress").Wrong("a number from 0 to 1");
    }

    /// <summary>A tensor's {"start", "count"} stretch, or null when the property is absent.</summary>
    private static TensorSlice? OptionalSlice(JsonFields tensor)
        => tensor.OptionalObject("slice") is { } slice ? new TensorSlice(slice.Long("start", 0), slice.Long("count", 0)) : null;

    // ---- the checkpoint's kinds of value ----------------------------------------------------------------------------

    private static string Hash(this JsonFields f, string name) => f.String(name, "32 lowercase hex digits", CheckpointFormat.IsHashText);

    /// <summary>A branch id: 32 lowercase hex digits, or "" (a history that began before branches were recorded).</summary>
    private static string BranchId(this JsonFields f, string name)
        => f.String(name, "32 lowercase hex digits or empty", text => text.Length == 0 || CheckpointFormat.IsHashText(text));

    private static DateTimeOffset Timestamp(this JsonFields f, string name)
    {
        var member = f.Member(name);
        return DateTimeOffset.TryParse(member.AsString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var time) ? time : throw member.Wrong("an ISO 8601 time");
    }

    private static DType DType(this JsonFields f, string name)
    {
        var member = f.Member(name);
        return DTypeExtensions.FromSafetensorsName(member.AsString()) ?? throw member.Wrong("one of F32, F64, BF16, F16, I32");
    }

    private static string Group(this JsonFields f, string name)
        => f.String(name, $"one of {CheckpointFormat.ModelGroup}, {CheckpointFormat.OptimizerGroup}", text => text is CheckpointFormat.ModelGroup or CheckpointFormat.OptimizerGroup);

    /// <summary>A path inside the checkpoint: relative, forward slashes, no "..".</summary>
    private static string RelativePath(this JsonFields f, string name)
        => f.String(name, "a relative path inside the checkpoint", text => text.Length is > 0 and < 256 && !text.StartsWith('/') && !text.Contains('\\', StringComparison.Ordinal)
            && text.Split('/').All(part => part.Length > 0 && part != "." && part != "..") && !text.Any(char.IsControl));

    /// <summary>A tensor's shape: at most 8 non-negative integers.</summary>
    private static List<long> Shape(this JsonFields f, string name)
    {
        var dims = f.Array(name);
        return dims.Count <= 8 ? [.. dims.Select(d => d.AsLong(0))] : throw f.Member(name).Wrong("at most 8 non-negative integers");
    }
}
