using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.IO;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

// manifest.json, writing: the manifest and a rank's part of it. The bytes are part of the format: the self-hash covers
// them, so what is written here (property order, indentation, number spelling) must not change for a format version —
// checkpoints written before must still verify. Reading is in ManifestJson.Read.cs.
internal static partial class ManifestJson
{
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
}
