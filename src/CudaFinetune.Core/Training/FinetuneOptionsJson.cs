using System.Text.Json;

namespace CudaFinetune.Training;

/// <summary>
/// Writes <see cref="FinetuneOptions"/> as a JSON object with snake_case keys — the keys a
/// <c>--config</c> file accepts — so the "config" object of run.json can be fed back as a config.
/// </summary>
public static class FinetuneOptionsJson
{
    public static void Write(Utf8JsonWriter w, FinetuneOptions o)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(o);
        w.WriteStartObject();
        w.WriteString("model", o.Model);
        w.WriteString("dataset", o.Dataset);
        w.WriteString("output_dir", o.OutputDir);
        w.WriteString("peft", o.Peft);
        w.WriteNumber("lora_r", o.LoraR);
        w.WriteNumber("lora_alpha", o.LoraAlpha);
        w.WriteNumber("lora_dropout", o.LoraDropout);
        w.WriteString("lora_targets", o.LoraTargets);
        w.WriteString("from_peft", o.FromPeft);
        w.WriteString("dataset_format", o.DatasetFormat);
        w.WriteString("chat_template", o.ChatTemplate);
        w.WriteString("field_map", o.FieldMap);
        w.WriteString("prompt_template", o.PromptTemplate);
        w.WriteString("validation_dataset", o.ValidationDataset);
        w.WriteNumber("validation_fraction", o.ValidationFraction);
        w.WriteNumber("batch_size", o.BatchSize);
        w.WriteNumber("context_length", o.ContextLength);
        w.WriteString("batching", o.Batching.ToString().ToLowerInvariant());
        w.WriteBoolean("shuffle", o.Shuffle);
        w.WriteNumber("gradient_accumulation_steps", o.GradientAccumulationSteps);
        w.WriteNumber("num_epochs", o.NumEpochs);
        w.WriteNumber("max_steps", o.MaxSteps);
        w.WriteNumber("lr", o.Lr);
        w.WriteNumber("weight_decay", o.WeightDecay);
        w.WriteNumber("beta1", o.Beta1);
        w.WriteNumber("beta2", o.Beta2);
        w.WriteNumber("epsilon", o.Epsilon);
        w.WriteString("scheduler", o.Scheduler.ToString().ToLowerInvariant());
        w.WriteNumber("warmup_steps", o.WarmupSteps);
        w.WriteNumber("gamma", o.Gamma);
        w.WriteNumber("gradient_clipping", o.GradientClipping);
        w.WriteBoolean("skip_nonfinite", o.SkipNonfinite);
        w.WriteNumber("seed", o.Seed);
        w.WriteNumber("eval_every", o.EvalEvery);
        w.WriteNumber("save_every", o.SaveEvery);
        w.WriteNumber("keep_last", o.KeepLast);
        w.WriteString("device", o.Device);
        w.WriteNumber("world_size", o.WorldSize);
        w.WriteNumber("nproc_per_node", o.NprocPerNode);
        w.WriteNumber("zero_stage", o.ZeroStage);
        w.WriteNumber("dist_timeout", o.DistTimeout);
        w.WriteEndObject();
    }
}
