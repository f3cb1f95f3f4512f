using System.Globalization;
using CudaFinetune.Errors;

namespace CudaFinetune.Config;

/// <summary>
/// A llama-recipes <c>train_config</c> (or <c>lora_config</c>) key for something CudaFinetune does
/// not do. It is accepted silently when <see cref="Harmless"/> holds for its value (the
/// llama-recipes default, or a value that changes nothing here) and refused otherwise.
/// </summary>
internal sealed record UnsupportedKey(string Name, string Accepted, Func<ConfigValue, bool> Harmless, string Hint);

/// <summary>The spellings other tools use: llama-recipes' nested LoRA section, its keys for features not built here, and synonyms for "did you mean".</summary>
public static partial class RunConfigKeys
{
    /// <summary>Names of the LoRA mapping (<c>lora_config:</c> or <c>lora:</c>) and the key each sets.</summary>
    internal static readonly IReadOnlyList<(string Name, string Key)> LoraNested =
    [
        ("r", "lora-r"), ("lora_r", "lora-r"), ("rank", "lora-r"),
        ("lora_alpha", "lora-alpha"), ("alpha", "lora-alpha"),
        ("lora_dropout", "lora-dropout"), ("dropout", "lora-dropout"),
        ("target_modules", "lora-targets"), ("targets", "lora-targets"), ("lora_targets", "lora-targets"),
    ];

    internal static readonly IReadOnlyList<string> LoraSectionNames = ["lora_config", "lora"];

    private static bool IsFalse(ConfigValue v) => v.TryBool() == false;

    private static bool IsBool(ConfigValue v) => v.TryBool() is not null;

    private static bool IsNonNegativeInt(ConfigValue v)
        => v.Node is ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.Number } s && long.TryParse(s.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) && n >= 0;

    private static bool IsString(ConfigValue v) => v.Node is ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.String };

    private static bool IsEmpty(ConfigValue v)
        => v.IsNull || v.Node is ConfigScalar s && (s.Text.Length == 0 || (s.Kind == ScalarKind.Plain && s.Text == "None"));

    /// <summary>llama-recipes keys we accept only with a value that changes nothing here.</summary>
    internal static readonly IReadOnlyList<UnsupportedKey> Unsupported =
    [
        new("enable_fsdp", "`false`", IsFalse, "several GPUs train with --world-size / --nproc-per-node and a ZeRO-sharded optimizer over NCCL, not FSDP"),
        new("low_cpu_fsdp", "`false`", IsFalse, "several GPUs train with --world-size / --nproc-per-node and a ZeRO-sharded optimizer over NCCL, not FSDP"),
        new("quantization", "`false`, `null` or empty", v => IsFalse(v) || IsEmpty(v), "models are trained in full precision (bf16/fp32)"),
        new("use_fp16", "`false`", IsFalse, "the cuda backend uses bf16 with fp32 master weights, the cpu backend fp32"),
        new("mixed_precision", "`true` or `false`", IsBool, "the precision is the backend's"),
        new("use_fast_kernels", "`true` or `false`", IsBool, "the backend's own attention kernels are always used"),
        new("one_gpu", "`true` or `false`", IsBool, "the number of devices is --world-size / --nproc-per-node"),
        new("save_model", "`true`", v => v.TryBool() == true, "the trained weights are always saved"),
        new("save_optimizer", "`true` or `false`", IsBool, "checkpoints always hold the optimizer state"),
        new("save_metrics", "`true` or `false`", IsBool, "metrics.jsonl is always written"),
        new("dist_checkpoint_root_folder", "any path", IsString, "only used with FSDP"),
        new("dist_checkpoint_folder", "any name", IsString, "only used with FSDP"),
        new("use_wandb", "`false`", IsFalse, "metrics go to metrics.jsonl and loss.png"),
        new("use_profiler", "`false`", IsFalse, "profiling is not built in"),
        new("profiler_dir", "any path", IsString, "only used with use_profiler"),
        new("flop_counter", "`false`", IsFalse, "a FLOP counter is not built in"),
        new("flop_counter_start", "any integer ≥ 0", IsNonNegativeInt, "only used with flop_counter"),
        new("freeze_layers", "`false`", IsFalse, "layer freezing is not built; use peft lora or none"),
        new("num_freeze_layers", "any integer ≥ 0", IsNonNegativeInt, "only used with freeze_layers"),
        new("freeze_LLM_only", "`false`", IsFalse, "vision models are not supported"),
        new("num_workers_dataloader", "any integer ≥ 0", IsNonNegativeInt, "data loading is in-process"),
        new("val_batch_size", "any integer ≥ 0", IsNonNegativeInt, "the validation batch size is not set separately"),
        new("max_eval_step", "`0`", v => v.Node is ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.Number, Text: "0" }, "validation always covers the whole validation set"),
        new("tokenizer_name", "`null` or empty", IsEmpty, "the tokenizer is read from the model directory"),
        new("enable_activation_checkpointing", "`false`", IsFalse, "activation checkpointing is not built yet"),
        new("activation_checkpointing_use_reentrant", "`true` or `false`", IsBool, "only used with activation checkpointing"),
        new("enable_memory_monitoring", "`false`", IsFalse, "memory monitoring is not built in"),
        new("memory_monitoring_interval", "any integer ≥ 0", IsNonNegativeInt, "only used with memory monitoring"),
    ];

    /// <summary>llama-recipes' lora_config fields we accept only at their defaults.</summary>
    internal static readonly IReadOnlyList<UnsupportedKey> LoraUnsupported =
    [
        new("bias", "`none`", v => IsString(v) && string.Equals(v.NullableString(), "none", StringComparison.OrdinalIgnoreCase), "LoRA adapters train no biases"),
        new("task_type", "`CAUSAL_LM`", v => IsString(v) && string.Equals(v.NullableString(), "CAUSAL_LM", StringComparison.OrdinalIgnoreCase), "only causal language modelling is trained"),
        new("inference_mode", "`false`", IsFalse, "fine-tuning trains the adapters"),
    ];

    /// <summary>Names other tools use for our settings (Hugging Face TrainingArguments, PEFT), for "did you mean".</summary>
    internal static readonly IReadOnlyDictionary<string, string> Synonyms = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["learning_rate"] = "lr",
        ["epochs"] = "num_epochs",
        ["num_train_epochs"] = "num_epochs",
        ["per_device_train_batch_size"] = "batch_size",
        ["train_batch_size"] = "batch_size",
        ["max_grad_norm"] = "gradient_clipping",
        ["max_seq_length"] = "context_length",
        ["max_length"] = "context_length",
        ["seq_len"] = "context_length",
        ["model_name_or_path"] = "model_name",
        ["model_path"] = "model_name",
        ["train_file"] = "dataset",
        ["data_path"] = "dataset",
        ["validation_file"] = "validation_dataset",
        ["eval_file"] = "validation_dataset",
        ["eval_steps"] = "eval_every",
        ["save_steps"] = "save_every",
        ["save_total_limit"] = "keep_last",
        ["lr_scheduler_type"] = "scheduler",
        ["lora_rank"] = "lora_r",
        ["target_modules"] = "lora_targets",
        ["peft_config"] = "lora_config",
        ["adam_beta1"] = "beta1",
        ["adam_beta2"] = "beta2",
        ["adam_epsilon"] = "epsilon",
        ["output_directory"] = "output_dir",
    };

    private static readonly string[] LlamaRecipesDatasets =
    [
        "samsum_dataset", "alpaca_dataset", "grammar_dataset", "custom_dataset", "llamaguard_toxicchat_dataset", "ocrvqa_dataset",
    ];

    /// <summary>A dataset key's value: a .json/.jsonl path (or null); a llama-recipes dataset name is refused with what to do.</summary>
    private static string? DatasetPath(ConfigValue v)
    {
        string? path = v.NullableString();
        if (path is null)
        {
            return null;
        }
        path = path.Trim();
        const string Formats = "recognised formats: alpaca (instruction/input/output), samsum (dialogue/summary), grammar (input/target), chat (messages), text, pretokenized (input_ids/labels), or custom with field_map and prompt_template; see dataset_format";
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
        {
            return path;
        }
        bool looksLikeName = path.IndexOfAny(['/', '\\', '.']) < 0;
        if (looksLikeName && (Array.IndexOf(LlamaRecipesDatasets, path) >= 0 || path.EndsWith("_dataset", StringComparison.Ordinal)))
        {
            throw v.Error($"'{v.Key}: {path}' is a llama-recipes dataset name; CudaFinetune reads local files: give the path of a .json, .jsonl or .csv file ({Formats})");
        }
        throw v.Error($"'{v.Key}: {path}' must be the path of a .json, .jsonl or .csv file ({Formats})");
    }
}
