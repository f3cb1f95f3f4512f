using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.IO;
using CudaFinetune.Data;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// manifest.json: writes a <see cref="CheckpointManifest"/> and reads one back with every field
/// checked. The last property, <c>manifest_xxh128</c>, is the XxHash128 of the file with that
/// property's value written as 32 zeros, so any edit of the manifest is detected.
/// </summary>
internal static class ManifestJson
{
    private const string FormatName = "cudafinetune-checkpoint";
    private const string SelfHashKey = "manifest_xxh128";
    private static readonly string ZeroHash = new('0', 32);

    public static byte[] Write(CheckpointManifest m)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteNumber("format_version", m.FormatVersion);
            w.WriteString("checkpoint_id", m.CheckpointId);
            w.WriteString("engine_version", m.EngineVersion);
            w.WriteString("created_utc", m.Created.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            w.WriteStartObject("environment");
            foreach (var (key, value) in m.Environment)
            {
                w.WriteString(key, value);
            }
            w.WriteEndObject();
            w.WriteString("backend", m.Backend);
            w.WriteStartObject("dtypes");
            w.WriteString("weights", m.WeightDType.SafetensorsName());
            w.WriteString("master_weights", m.MasterDType?.SafetensorsName());
            w.WriteString("optimizer", m.OptimizerDType.SafetensorsName());
            w.WriteEndObject();
            w.WriteNumber("world_size", m.WorldSize);
            w.WriteString("reason", CheckpointFormat.ReasonName(m.Reason));
            WriteTraining(w, m.Training);
            w.WriteStartObject("sampler");
            w.WriteNumber("seed", m.Training.Sampler.Seed);
            w.WriteNumber("epoch", m.Training.Sampler.Epoch);
            w.WriteNumber("cursor", m.Training.Sampler.Cursor);
            w.WriteBoolean("shuffle", m.Sampler.Shuffle);
            w.WriteNumber("batches_per_epoch", m.Sampler.BatchesPerEpoch);
            w.WriteString("order_xxh128", m.Sampler.OrderHash);
            w.WriteEndObject();
            w.WriteStartObject("rng");
            w.WriteString("algorithm", "philox4x32-10, keyed by (seed, micro-batch, layer, module); no hidden state");
            w.WriteNumber("seed", m.Training.Sampler.Seed);
            w.WriteNumber("next_micro_batch", m.Training.MicroBatches);
            w.WriteEndObject();
            w.WriteStartObject("scheduler");
            w.WriteString("kind", m.Scheduler.Kind.ToString().ToLowerInvariant());
            w.WriteNumber("base_lr", m.Scheduler.BaseLr);
            w.WriteNumber("warmup_steps", m.Scheduler.WarmupSteps);
            w.WriteNumber("total_steps", m.Scheduler.TotalSteps);
            w.WriteNumber("gamma", m.Scheduler.Gamma);
            w.WriteNumber("completed_steps", m.Training.Step);
            if (m.Scheduler.Continuation is { } continuation)
            {
                w.WriteStartObject("continuation");
                w.WriteNumber("from_step", continuation.FromStep);
                w.WriteNumber("from_progress", continuation.FromProgress);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteStartObject("optimizer");
            w.WriteString("kind", "adamw");
            w.WriteNumber("beta1", m.Optimizer.Beta1);
            w.WriteNumber("beta2", m.Optimizer.Beta2);
            w.WriteNumber("epsilon", m.Optimizer.Epsilon);
            w.WriteNumber("weight_decay", m.Optimizer.WeightDecay);
            w.WriteNumber("step_count", m.Optimizer.StepCount);
            w.WriteEndObject();
            w.WriteStartObject("fingerprints");
            w.WriteString("model", m.Fingerprints.Model);
            w.WriteString("train_data", m.Fingerprints.TrainData);
            w.WriteString("validation_data", m.Fingerprints.ValidationData);
            w.WriteEndObject();
            w.WritePropertyName("config");
            using (var config = JsonDocument.Parse(m.ConfigJson))
            {
                config.RootElement.WriteTo(w);
            }
            WriteLineage(w, m.Lineage);
            WriteShardsAndTensors(w, m.Shards, m.Tensors);
            w.WriteStartArray("files");
            foreach (var f in m.Files)
            {
                w.WriteStartObject();
                w.WriteString("path", f.Path);
                w.WriteNumber("length", f.Length);
                w.WriteString("xxh128", f.Hash);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString(SelfHashKey, ZeroHash);
            w.WriteEndObject();
        }
        byte[] bytes = [.. buffer.WrittenSpan, (byte)'\n'];
        int at = SelfHashPosition(bytes, ZeroHash);
        Encoding.ASCII.GetBytes(CheckpointFormat.Hash(bytes)).CopyTo(bytes, at);
        return bytes;
    }

    private static void WriteShardsAndTensors(Utf8JsonWriter w, IReadOnlyList<CheckpointShard> shards, IReadOnlyList<CheckpointTensor> tensors)
    {
        w.WriteStartArray("shards");
        foreach (var s in shards)
        {
            w.WriteStartObject();
            w.WriteString("file", s.File);
            w.WriteString("group", s.Group);
            w.WriteNumber("rank", s.Rank);
            w.WriteNumber("length", s.Length);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("tensors");
        foreach (var t in tensors)
        {
            w.WriteStartObject();
            w.WriteString("name", t.Name);
            w.WriteString("group", t.Group);
            w.WriteString("dtype", t.DType.SafetensorsName());
            w.WriteStartArray("shape");
            foreach (long d in t.Shape)
            {
                w.WriteNumberValue(d);
            }
            w.WriteEndArray();
            w.WriteString("file", t.File);
            w.WriteNumber("offset", t.Offset);
            w.WriteNumber("length", t.Length);
            w.WriteString("xxh128", t.Hash);
            if (t.Slice is { } slice)
            {
                w.WriteStartObject("slice");
                w.WriteNumber("start", slice.Start);
                w.WriteNumber("count", slice.Count);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>
    /// What one rank of a multi-rank save wrote (its shards and tensors), for rank 0 to merge into the manifest. Written
    /// by the rank into the checkpoint's temporary directory and removed before the checkpoint commits.
    /// </summary>
    public static byte[] WritePart(string checkpointId, int rank, IReadOnlyList<CheckpointShard> shards, IReadOnlyList<CheckpointTensor> tensors)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("checkpoint_id", checkpointId);
            w.WriteNumber("rank", rank);
            WriteShardsAndTensors(w, shards, tensors);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a rank's part back; it must belong to checkpoint <paramref name="checkpointId"/> and rank <paramref name="rank"/>.</summary>
    public static (List<CheckpointShard> Shards, List<CheckpointTensor> Tensors) ReadPart(byte[] bytes, string checkpoint, string checkpointId, int rank)
    {
        JsonDocument doc;
        try
        {
            doc = IO.StrictJson.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException(checkpoint, null, null, $"rank {rank}'s part of the manifest is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var r = new Fields(doc.RootElement, checkpoint, $"rank-{rank}.");
            if (r.String("checkpoint_id") != checkpointId || r.Int("rank", 0) != rank)
            {
                throw r.Error("checkpoint_id", "belongs to another checkpoint or rank");
            }
            return ParseShardsAndTensors(r);
        }
    }

    private static (List<CheckpointShard> Shards, List<CheckpointTensor> Tensors) ParseShardsAndTensors(Fields r)
    {
        var shards = r.Array("shards").Select(s => new CheckpointShard(s.RelativePath("file"), s.Group("group"), s.Int("rank", 0), s.Long("length", 0))).ToList();
        var tensors = r.Array("tensors").Select(t => new CheckpointTensor(
            t.String("name"), t.Group("group"), t.DType("dtype"), t.Shape("shape"), t.RelativePath("file"), t.Long("offset", 0), t.Long("length", 0), t.Hash("xxh128"), t.OptionalSlice("slice"))).ToList();
        return (shards, tensors);
    }

    private static void WriteLineage(Utf8JsonWriter w, CheckpointLineage lineage)
    {
        w.WriteStartObject("history");
        w.WriteStartArray("branches");
        foreach (var segment in lineage.Segments)
        {
            w.WriteStartObject();
            w.WriteString("branch", segment.Branch);
            w.WriteNumber("from_step", segment.FromStep);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (lineage.Parent is { } parent)
        {
            w.WriteStartObject("parent");
            w.WriteString("checkpoint", parent.Name);
            w.WriteString("checkpoint_id", parent.Id);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("parent");
        }
        w.WriteEndObject();
    }

    /// <summary>history (format 3); older manifests have none and read as <see cref="CheckpointLineage.Unrecorded"/>.</summary>
    private static CheckpointLineage ReadLineage(Fields r)
    {
        if (!r.Has("history"))
        {
            return CheckpointLineage.Unrecorded;
        }
        var history = r.Object("history");
        var segments = history.Array("branches").Select(b => new HistorySegment(b.BranchId("branch"), b.Long("from_step", 0))).ToList();
        if (segments.Count == 0 || segments.Count > 100_000)
        {
            throw history.Error("branches", $"should list 1 to 100000 branches, found {segments.Count}");
        }
        for (int i = 1; i < segments.Count; i++)
        {
            if (segments[i].FromStep < segments[i - 1].FromStep)
            {
                throw history.Error("branches", "should be in the order of their steps");
            }
        }
        CheckpointParent? parent = null;
        if (history.Has("parent") && !history.IsNull("parent"))
        {
            var p = history.Object("parent");
            string name = p.String("checkpoint");
            if (!CheckpointFormat.TryParseStep(name, out _))
            {
                throw p.Error("checkpoint", $"is not a checkpoint name ('{name}')");
            }
            parent = new CheckpointParent(name, p.Hash("checkpoint_id"));
        }
        return new CheckpointLineage(segments, parent);
    }

    private static void WriteTraining(Utf8JsonWriter w, TrainingState t)
    {
        w.WriteStartObject("training");
        w.WriteNumber("step", t.Step);
        w.WriteNumber("epoch", t.Epoch);
        w.WriteNumber("micro_batches", t.MicroBatches);
        w.WriteNumber("evaluated_at", t.EvaluatedAt);
        w.WriteNumberOrNull("last_loss", t.LastLoss);
        w.WriteNumberOrNull("last_eval_loss", t.LastEvalLoss);
        w.WriteNumberOrNull("best_eval_loss", t.BestEvalLoss);
        w.WriteNumber("skipped_steps", t.SkippedSteps);
        w.WriteEndObject();
    }

    /// <summary>Index of the self-hash value inside the manifest bytes (-1 when absent).</summary>
    private static int SelfHashPosition(ReadOnlySpan<byte> bytes, string value)
    {
        byte[] needle = Encoding.ASCII.GetBytes($"\"{SelfHashKey}\": \"{value}\"");
        int at = bytes.LastIndexOf(needle);
        return at < 0 ? -1 : at + needle.Length - 33;
    }

    /// <summary>Parses and checks a manifest; every problem is a <see cref="CheckpointCorruptException"/> naming the field.</summary>
    public static CheckpointManifest Read(byte[] bytes, string checkpoint)
    {
        JsonDocument doc;
        try
        {
            doc = IO.StrictJson.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException(checkpoint, CheckpointFormat.ManifestFileName, null, $"not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var r = new Fields(doc.RootElement, checkpoint, "");
            if (r.String("format") != FormatName)
            {
                throw r.Error("format", $"is not '{FormatName}'");
            }
            int version = r.Int("format_version", 0);
            if (version is < CheckpointFormat.OldestReadableVersion or > CheckpointFormat.Version)
            {
                throw r.Error("format_version", $"is {version}; this engine reads versions {CheckpointFormat.OldestReadableVersion} to {CheckpointFormat.Version} (written by engine {r.OptionalString("engine_version") ?? "?"})");
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
    }

    private static CheckpointManifest Parse(Fields r)
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
            LastLoss = training.OptionalDouble("last_loss"),
            LastEvalLoss = training.OptionalDouble("last_eval_loss"),
            BestEvalLoss = training.OptionalDouble("best_eval_loss"),
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
            Environment = [.. r.Object("environment").StringProperties()],
            Backend = r.String("backend"),
            WeightDType = dtypes.DType("weights"),
            MasterDType = dtypes.OptionalString("master_weights") is null ? null : dtypes.DType("master_weights"),
            OptimizerDType = dtypes.DType("optimizer"),
            WorldSize = r.Int("world_size", 1),
            Reason = r.Choice("reason", [CheckpointReason.Periodic, CheckpointReason.EpochEnd, CheckpointReason.End, CheckpointReason.Interrupted, CheckpointReason.NonFinite], CheckpointFormat.ReasonName),
            Training = state,
            Sampler = new SamplerRecord(sampler.Bool("shuffle"), sampler.Int("batches_per_epoch", 0), sampler.Hash("order_xxh128")),
            Scheduler = new SchedulerRecord(
                scheduler.Choice("kind", [SchedulerKind.StepLR, SchedulerKind.Cosine, SchedulerKind.Linear, SchedulerKind.Constant], k => k.ToString().ToLowerInvariant()),
                scheduler.Double("base_lr"), scheduler.Int("warmup_steps", 0), scheduler.Long("total_steps", 0), scheduler.Double("gamma"), Continuation(scheduler)),
            Optimizer = new OptimizerRecord(optimizer.Double("beta1"), optimizer.Double("beta2"), optimizer.Double("epsilon"), optimizer.Double("weight_decay"), optimizer.Long("step_count", 0)),
            Fingerprints = new CheckpointFingerprints(fingerprints.Hash("model"), fingerprints.Hash("train_data"), fingerprints.Hash("validation_data")),
            ConfigJson = r.Object("config").Raw,
            Shards = shards,
            Tensors = tensors,
            Files = files,
            Lineage = ReadLineage(r),
        };
    }

    /// <summary>scheduler.continuation (format 3), or null when absent.</summary>
    private static ScheduleContinuation? Continuation(Fields scheduler)
    {
        if (!scheduler.Has("continuation"))
        {
            return null;
        }
        var c = scheduler.Object("continuation");
        double progress = c.Double("from_progress");
        return progress is >= 0 and <= 1 ? new ScheduleContinuation(c.Long("from_step", 0), progress) : throw c.Error("from_progress", $"should be in [0, 1], found {progress}");
    }

    /// <summary>Typed, checked access to one JSON object of the manifest; errors name the field's path.</summary>
    private readonly struct Fields(JsonElement element, string checkpoint, string path)
    {
        public string Raw => element.GetRawText();

        /// <summary>Whether the (optional) property is present.</summary>
        public bool Has(string name) => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out _);

        public bool IsNull(string name) => element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Null;

        /// <summary>A branch id: 32 lowercase hex digits, or "" (a history that began before branches were recorded).</summary>
        public string BranchId(string name)
        {
            string text = String(name);
            return text.Length == 0 || CheckpointFormat.IsHashText(text) ? text : throw Error(name, $"should be 32 lowercase hex digits or empty, found '{text}'");
        }

        public CheckpointCorruptException Error(string name, string problem)
            => new(checkpoint, CheckpointFormat.ManifestFileName, null, $"field '{path}{name}' {problem}");

        private JsonElement Get(string name, JsonValueKind kind)
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out var value))
            {
                throw Error(name, "is missing");
            }
            if (value.ValueKind != kind && !(kind == JsonValueKind.True && value.ValueKind == JsonValueKind.False))
            {
                throw Error(name, $"should be {kind.ToString().ToLowerInvariant()}, found {value.ValueKind.ToString().ToLowerInvariant()}");
            }
            return value;
        }

        public Fields Object(string name) => new(Get(name, JsonValueKind.Object), checkpoint, $"{path}{name}.");

        public List<Fields> Array(string name)
        {
            var items = Get(name, JsonValueKind.Array);
            var list = new List<Fields>();
            int i = 0;
            foreach (var item in items.EnumerateArray())
            {
                list.Add(new Fields(item, checkpoint, $"{path}{name}[{i++}]."));
            }
            return list;
        }

        public IEnumerable<KeyValuePair<string, string>> StringProperties()
        {
            foreach (var p in element.EnumerateObject())
            {
                yield return new(p.Name, p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText());
            }
        }

        public string String(string name) => Get(name, JsonValueKind.String).GetString()!;

        public string? OptionalString(string name)
            => element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        public bool Bool(string name) => Get(name, JsonValueKind.True).GetBoolean();

        public long Long(string name, long min)
        {
            var v = Get(name, JsonValueKind.Number);
            return v.TryGetInt64(out long n) && n >= min ? n : throw Error(name, $"should be an integer ≥ {min}, found {v.GetRawText()}");
        }

        /// <summary>An integer ≥ <paramref name="min"/>, or null when the property is absent (a key added after format 1).</summary>
        public long? OptionalLong(string name, long min) => element.TryGetProperty(name, out _) ? Long(name, min) : null;

        public int Int(string name, int min)
        {
            long n = Long(name, min);
            return n <= int.MaxValue ? (int)n : throw Error(name, $"is too large ({n})");
        }

        public ulong ULong(string name)
        {
            var v = Get(name, JsonValueKind.Number);
            return v.TryGetUInt64(out ulong n) ? n : throw Error(name, $"should be an unsigned integer, found {v.GetRawText()}");
        }

        public double Double(string name)
        {
            var v = Get(name, JsonValueKind.Number);
            return v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw Error(name, $"should be a finite number, found {v.GetRawText()}");
        }

        public double? OptionalDouble(string name)
        {
            if (element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Null)
            {
                return null;
            }
            return Double(name);
        }

        /// <summary>A {"start", "count"} stretch, or null when the property is absent.</summary>
        public TensorSlice? OptionalSlice(string name)
        {
            if (!element.TryGetProperty(name, out _))
            {
                return null;
            }
            var slice = Object(name);
            return new TensorSlice(slice.Long("start", 0), slice.Long("count", 0));
        }

        public string Hash(string name)
        {
            string text = String(name);
            return CheckpointFormat.IsHashText(text) ? text : throw Error(name, $"should be 32 lowercase hex digits, found '{text}'");
        }

        public DateTimeOffset Timestamp(string name)
            => DateTimeOffset.TryParse(String(name), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : throw Error(name, "is not an ISO 8601 time");

        public DType DType(string name)
            => DTypeExtensions.FromSafetensorsName(String(name)) ?? throw Error(name, $"names no known dtype ('{String(name)}')");

        public string Group(string name)
        {
            string text = String(name);
            return text is CheckpointFormat.ModelGroup or CheckpointFormat.OptimizerGroup ? text : throw Error(name, $"names no known group ('{text}')");
        }

        /// <summary>A path inside the checkpoint: relative, forward slashes, no "..".</summary>
        public string RelativePath(string name)
        {
            string text = String(name);
            bool safe = text.Length is > 0 and < 256 && !text.StartsWith('/') && !text.Contains('\\', StringComparison.Ordinal)
                && text.Split('/').All(part => part.Length > 0 && part != "." && part != "..") && !text.Any(char.IsControl);
            return safe ? text : throw Error(name, $"is not a relative path inside the checkpoint ('{text}')");
        }

        public List<long> Shape(string name)
        {
            var v = Get(name, JsonValueKind.Array);
            var dims = new List<long>();
            foreach (var d in v.EnumerateArray())
            {
                if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long n) || n < 0 || dims.Count >= 8)
                {
                    throw Error(name, $"should be at most 8 non-negative integers, found {v.GetRawText()}");
                }
                dims.Add(n);
            }
            return dims;
        }

        public T Choice<T>(string name, T[] values, Func<T, string> spell)
        {
            string text = String(name);
            foreach (var value in values)
            {
                if (spell(value) == text)
                {
                    return value;
                }
            }
            throw Error(name, $"is not one of {string.Join(", ", values.Select(spell))} ('{text}')");
        }
    }
}
