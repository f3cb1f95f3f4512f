using System.Globalization;
using System.Text.Json;
using CudaFinetune.Lora;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>What a resumed run may do with an option that differs from the checkpoint's.</summary>
internal enum ResumeRule
{
    /// <summary>Changes silently (where files are, how long to wait): the results do not depend on it.</summary>
    Free,

    /// <summary>Changes, with a warning naming the old and new value (the schedule, how long to train, saving).</summary>
    MayChange,

    /// <summary>Refused: the saved state would be meaningless under another value (the model's shape, batches, seed).</summary>
    MustMatch,
}

/// <summary>
/// A fine-tune option as every place that handles it sees it. It is accepted in a config file as <see cref="Name"/>
/// (kebab-case, the flag without dashes), as its snake_case, and as <see cref="LlamaRecipes"/> where llama-recipes'
/// <c>train_config</c> has the setting. <see cref="Set"/> is null for the keys whose meaning depends on others (PEFT,
/// gradient clipping, validation), which <see cref="RunConfigFile"/> resolves after reading the whole file.
/// <see cref="Save"/> writes it into the saved options (run.json, a checkpoint's manifest: <see cref="FinetuneOptionsJson"/>)
/// under its snake_case name; <see cref="Resume"/> and <see cref="Compared"/> are what a resume checks
/// (<see cref="Checkpoints.ResumeCompatibility"/>).
/// </summary>
internal sealed record OptionKey(
    string Name,
    string? Flag,
    string? LlamaRecipes,
    string Property,
    string Meaning,
    Func<FinetuneOptions, ConfigValue, FinetuneOptions>? Set)
{
    public string Snake => Name.Replace('-', '_');

    /// <summary>Writes the option's value under the given name; null for keys that are not saved (aliases, --overwrite).</summary>
    public Action<Utf8JsonWriter, string, FinetuneOptions>? Save { get; init; }

    public ResumeRule Resume { get; init; } = ResumeRule.Free;

    /// <summary>The value a resume compares, as text (also what its messages show); null when it is not compared.</summary>
    public Func<FinetuneOptions, string>? Compared { get; init; }

    /// <summary>Every top-level spelling, kebab first; the llama-recipes name only where it differs and is top-level.</summary>
    public IEnumerable<string> Spellings
    {
        get
        {
            yield return Name;
            if (Snake != Name)
            {
                yield return Snake;
            }
            if (LlamaRecipes is { } lr && lr != Snake && !lr.Contains('.', StringComparison.Ordinal))
            {
                yield return LlamaRecipes;
            }
        }
    }
}

/// <summary>
/// A llama-recipes <c>train_config</c> (or <c>lora_config</c>) key for something CudaFinetune does
/// not do. It is accepted silently when <see cref="Harmless"/> holds for its value (the
/// llama-recipes default, or a value that changes nothing here) and refused otherwise.
/// </summary>
internal sealed record UnsupportedKey(string Name, string Accepted, Func<ConfigValue, bool> Harmless, string Hint);

internal static class RunConfigKeys
{
    // How each option is saved and compared: one of these per value type.
    private static Action<Utf8JsonWriter, string, FinetuneOptions> Text(Func<FinetuneOptions, string?> get) => (w, key, o) => w.WriteString(key, get(o));

    private static Action<Utf8JsonWriter, string, FinetuneOptions> Integer(Func<FinetuneOptions, long> get) => (w, key, o) => w.WriteNumber(key, get(o));

    private static Action<Utf8JsonWriter, string, FinetuneOptions> Unsigned(Func<FinetuneOptions, ulong> get) => (w, key, o) => w.WriteNumber(key, get(o));

    private static Action<Utf8JsonWriter, string, FinetuneOptions> Number(Func<FinetuneOptions, double> get) => (w, key, o) => w.WriteNumber(key, get(o));

    private static Action<Utf8JsonWriter, string, FinetuneOptions> Flag(Func<FinetuneOptions, bool> get) => (w, key, o) => w.WriteBoolean(key, get(o));

    private static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Invariant(ulong value) => value.ToString(CultureInfo.InvariantCulture);

    private static readonly string[] SchedulerNames = ["steplr", "cosine", "linear", "constant"];
    private static readonly SchedulerKind[] SchedulerValues = [SchedulerKind.StepLR, SchedulerKind.Cosine, SchedulerKind.Linear, SchedulerKind.Constant];
    private static readonly string[] BatchingNames = ["packing", "padding"];
    private static readonly BatchingStrategy[] BatchingValues = [BatchingStrategy.Packing, BatchingStrategy.Padding];

    // Keys with rules that involve other keys (Set is null; see RunConfigFile.ApplyCompound).
    public static readonly OptionKey Peft = new("peft", "--peft", null, nameof(FinetuneOptions.Peft),
        "`lora` or `none` (full fine-tuning)", null) { Save = Text(o => o.Peft), Resume = ResumeRule.MustMatch, Compared = o => o.Peft };
    public static readonly OptionKey UsePeft = new("use-peft", null, "use_peft", nameof(FinetuneOptions.Peft),
        "llama-recipes: `true` → peft `lora`, `false` → `none`", null);
    public static readonly OptionKey PeftMethod = new("peft-method", null, "peft_method", nameof(FinetuneOptions.Peft),
        "llama-recipes: only `lora` is supported", null);
    public static readonly OptionKey GradientClipping = new("gradient-clipping", "--gradient-clipping", "gradient_clipping", nameof(FinetuneOptions.GradientClipping),
        "clip the global gradient L2 norm to this (0: off); llama-recipes' boolean form is accepted too (`false` → 0, `true` → gradient_clipping_threshold, default 1.0)", null) { Save = Number(o => o.GradientClipping), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.GradientClipping) };
    public static readonly OptionKey GradientClippingThreshold = new("gradient-clipping-threshold", null, "gradient_clipping_threshold", nameof(FinetuneOptions.GradientClipping),
        "llama-recipes: the clipping norm used when `gradient_clipping: true`", null);
    public static readonly OptionKey RunValidation = new("run-validation", null, "run_validation", nameof(FinetuneOptions.ValidationFraction),
        "llama-recipes: `false` → validation-fraction 0 (no validation) unless a validation file is given", null);
    public static readonly OptionKey ValidationFraction = new("validation-fraction", "--validation-fraction", null, nameof(FinetuneOptions.ValidationFraction),
        "share of the data held out for validation when no validation file is given", (o, v) => o with { ValidationFraction = v.Double() }) { Save = Number(o => o.ValidationFraction) };
    public static readonly OptionKey ValidationDataset = new("validation-dataset", "--validation-dataset", null, nameof(FinetuneOptions.ValidationDataset),
        "separate validation file (.json, .jsonl or .csv)", (o, v) => o with { ValidationDataset = DatasetPath(v) }) { Save = Text(o => o.ValidationDataset), Resume = ResumeRule.MayChange, Compared = o => o.ValidationDataset ?? "-" };

    /// <summary>Every settable key, in the order of the documentation table.</summary>
    public static readonly IReadOnlyList<OptionKey> All =
    [
        new("model", "--model", "model_name", nameof(FinetuneOptions.Model),
            "model directory (Hugging Face layout)", (o, v) => o with { Model = v.NullableString() }) { Save = Text(o => o.Model), Resume = ResumeRule.MayChange, Compared = o => o.Model is null ? "-" : Path.GetFullPath(o.Model) },
        new("dataset", "--dataset", "dataset", nameof(FinetuneOptions.Dataset),
            "training data: a .json, .jsonl or .csv file (not a llama-recipes dataset name)", (o, v) => o with { Dataset = DatasetPath(v) }) { Save = Text(o => o.Dataset), Resume = ResumeRule.MayChange, Compared = o => o.Dataset is null ? "-" : Path.GetFullPath(o.Dataset) },
        new("output-dir", "--output-dir", "output_dir", nameof(FinetuneOptions.OutputDir),
            "where run.json, metrics.jsonl, loss.png and checkpoints go", (o, v) => o with { OutputDir = v.String() }) { Save = Text(o => o.OutputDir) },
        Peft,
        UsePeft,
        PeftMethod,
        new("lora-r", "--lora-r", "lora_config.r", nameof(FinetuneOptions.LoraR),
            "LoRA rank", (o, v) => o with { LoraR = v.Int() }) { Save = Integer(o => o.LoraR), Resume = ResumeRule.MustMatch, Compared = o => o.Peft == "lora" ? Invariant(o.LoraR) : "-" },
        new("lora-alpha", "--lora-alpha", "lora_config.lora_alpha", nameof(FinetuneOptions.LoraAlpha),
            "LoRA scale numerator (scale = alpha / r)", (o, v) => o with { LoraAlpha = v.Double() }) { Save = Number(o => o.LoraAlpha), Resume = ResumeRule.MustMatch, Compared = o => o.Peft == "lora" ? Invariant(o.LoraAlpha) : "-" },
        new("lora-dropout", "--lora-dropout", "lora_config.lora_dropout", nameof(FinetuneOptions.LoraDropout),
            "dropout on the LoRA input", (o, v) => o with { LoraDropout = v.Double() }) { Save = Number(o => o.LoraDropout), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.LoraDropout) },
        new("lora-targets", "--lora-targets", "lora_config.target_modules", nameof(FinetuneOptions.LoraTargets),
            "modules that get adapters: a list or comma-separated names, or `all-linear`", (o, v) => o with { LoraTargets = v.NameList() }) { Save = Text(o => o.LoraTargets), Resume = ResumeRule.MustMatch, Compared = o => o.Peft == "lora" ? string.Join(",", LoraConfig.ParseTargets(o.LoraTargets).Order(StringComparer.Ordinal)) : "-" },
        new("from-peft", "--from-peft", "from_peft_checkpoint", nameof(FinetuneOptions.FromPeft),
            "start from an existing PEFT LoRA adapter directory (its r, alpha and target modules)", (o, v) => o with { FromPeft = v.NullableString() is { Length: > 0 } dir ? dir : null }) { Save = Text(o => o.FromPeft) },
        new("chat-template", "--chat-template", null, nameof(FinetuneOptions.ChatTemplate),
            "how chat records (`messages`) are rendered: `auto`, `llama3` or `llama2`", (o, v) => o with { ChatTemplate = v.String().Trim().ToLowerInvariant() }) { Save = Text(o => o.ChatTemplate) },
        new("dataset-format", "--dataset-format", null, nameof(FinetuneOptions.DatasetFormat),
            "`auto`, `pretokenized`, `chat`, `alpaca`, `samsum`, `grammar`, `text` or `custom`", (o, v) => o with { DatasetFormat = v.String().Trim().ToLowerInvariant() }) { Save = Text(o => o.DatasetFormat) },
        new("field-map", "--field-map", null, nameof(FinetuneOptions.FieldMap),
            "custom files: `prompt=question,response=answer` style field names", (o, v) => o with { FieldMap = v.NullableString() }) { Save = Text(o => o.FieldMap) },
        new("prompt-template", "--prompt-template", null, nameof(FinetuneOptions.PromptTemplate),
            "custom files: prompt template with `{field}` placeholders (`\\n`, `\\t`, `\\\\` as on the command line)", (o, v) => o with { PromptTemplate = v.NullableString() }) { Save = Text(o => o.PromptTemplate) },
        ValidationDataset,
        ValidationFraction,
        RunValidation,
        new("batch-size", "--batch-size", "batch_size_training", nameof(FinetuneOptions.BatchSize),
            "rows per micro-batch", (o, v) => o with { BatchSize = v.Int() }) { Save = Integer(o => o.BatchSize), Resume = ResumeRule.MustMatch, Compared = o => Invariant(o.BatchSize) },
        new("context-length", "--context-length", "context_length", nameof(FinetuneOptions.ContextLength),
            "tokens per row", (o, v) => o with { ContextLength = v.Int() }) { Save = Integer(o => o.ContextLength), Resume = ResumeRule.MustMatch, Compared = o => Invariant(o.ContextLength) },
        new("batching", "--batching", "batching_strategy", nameof(FinetuneOptions.Batching),
            "`packing` or `padding`", (o, v) => o with { Batching = BatchingValues[v.Choice(BatchingNames)] }) { Save = Text(o => o.Batching.ToString().ToLowerInvariant()), Resume = ResumeRule.MustMatch, Compared = o => o.Batching.ToString().ToLowerInvariant() },
        new("shuffle", "--shuffle", null, nameof(FinetuneOptions.Shuffle),
            "shuffle the training batches every epoch", (o, v) => o with { Shuffle = v.Bool() }) { Save = Flag(o => o.Shuffle), Resume = ResumeRule.MustMatch, Compared = o => o.Shuffle ? "true" : "false" },
        new("gradient-accumulation-steps", "--gradient-accumulation-steps", "gradient_accumulation_steps", nameof(FinetuneOptions.GradientAccumulationSteps),
            "micro-batches per optimizer step", (o, v) => o with { GradientAccumulationSteps = v.Int() }) { Save = Integer(o => o.GradientAccumulationSteps), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.GradientAccumulationSteps) },
        new("num-epochs", "--num-epochs", "num_epochs", nameof(FinetuneOptions.NumEpochs),
            "passes over the training data", (o, v) => o with { NumEpochs = v.Int() }) { Save = Integer(o => o.NumEpochs), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.NumEpochs) },
        new("max-steps", "--max-steps", "max_train_step", nameof(FinetuneOptions.MaxSteps),
            "stop after this many optimizer steps (0: no limit)", (o, v) => o with { MaxSteps = v.Int() }) { Save = Integer(o => o.MaxSteps), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.MaxSteps) },
        new("lr", "--lr", "lr", nameof(FinetuneOptions.Lr),
            "learning rate", (o, v) => o with { Lr = v.Double() }) { Save = Number(o => o.Lr), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.Lr) },
        new("weight-decay", "--weight-decay", "weight_decay", nameof(FinetuneOptions.WeightDecay),
            "AdamW weight decay", (o, v) => o with { WeightDecay = v.Double() }) { Save = Number(o => o.WeightDecay), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.WeightDecay) },
        new("beta1", "--beta1", null, nameof(FinetuneOptions.Beta1),
            "AdamW β1", (o, v) => o with { Beta1 = v.Double() }) { Save = Number(o => o.Beta1), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.Beta1) },
        new("beta2", "--beta2", null, nameof(FinetuneOptions.Beta2),
            "AdamW β2", (o, v) => o with { Beta2 = v.Double() }) { Save = Number(o => o.Beta2), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.Beta2) },
        new("epsilon", "--epsilon", null, nameof(FinetuneOptions.Epsilon),
            "AdamW ε", (o, v) => o with { Epsilon = v.Double() }) { Save = Number(o => o.Epsilon), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.Epsilon) },
        new("scheduler", "--scheduler", null, nameof(FinetuneOptions.Scheduler),
            "`steplr` (× gamma every epoch, as llama-recipes), `cosine`, `linear` or `constant`", (o, v) => o with { Scheduler = SchedulerValues[v.Choice(SchedulerNames)] }) { Save = Text(o => o.Scheduler.ToString().ToLowerInvariant()), Resume = ResumeRule.MayChange, Compared = o => o.Scheduler.ToString().ToLowerInvariant() },
        new("warmup-steps", "--warmup-steps", null, nameof(FinetuneOptions.WarmupSteps),
            "linear warm-up steps", (o, v) => o with { WarmupSteps = v.Int() }) { Save = Integer(o => o.WarmupSteps), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.WarmupSteps) },
        new("gamma", "--gamma", "gamma", nameof(FinetuneOptions.Gamma),
            "StepLR's learning-rate factor per epoch", (o, v) => o with { Gamma = v.Double() }) { Save = Number(o => o.Gamma), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.Gamma) },
        GradientClipping,
        GradientClippingThreshold,
        new("skip-nonfinite", "--skip-nonfinite", null, nameof(FinetuneOptions.SkipNonfinite),
            "skip (and count) a step whose loss or gradient norm is NaN or infinite; `false`: stop there with a checkpoint of the last good state", (o, v) => o with { SkipNonfinite = v.Bool() }) { Save = Flag(o => o.SkipNonfinite), Resume = ResumeRule.MayChange, Compared = o => o.SkipNonfinite ? "true" : "false" },
        new("seed", "--seed", "seed", nameof(FinetuneOptions.Seed),
            "seed for initialisation, dropout and shuffling", (o, v) => o with { Seed = v.ULong() }) { Save = Unsigned(o => o.Seed), Resume = ResumeRule.MustMatch, Compared = o => Invariant(o.Seed) },
        new("eval-every", "--eval-every", null, nameof(FinetuneOptions.EvalEvery),
            "evaluate every this many optimizer steps (0: at each epoch's end only)", (o, v) => o with { EvalEvery = v.Int() }) { Save = Integer(o => o.EvalEvery), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.EvalEvery) },
        new("save-every", "--save-every", null, nameof(FinetuneOptions.SaveEvery),
            "write a checkpoint every this many optimizer steps (0: at each epoch's end and at the end only)", (o, v) => o with { SaveEvery = v.Int() }) { Save = Integer(o => o.SaveEvery), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.SaveEvery) },
        new("keep-last", "--keep-last", null, nameof(FinetuneOptions.KeepLast),
            "checkpoints kept: the newest this many plus the best by eval loss (0: all)", (o, v) => o with { KeepLast = v.Int() }) { Save = Integer(o => o.KeepLast), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.KeepLast) },
        new("device", "--device", null, nameof(FinetuneOptions.Device),
            "`auto`, `cpu`, `cuda` or `cuda-emulated`", (o, v) => o with { Device = v.String().Trim().ToLowerInvariant() }) { Save = Text(o => o.Device), Resume = ResumeRule.MayChange, Compared = o => o.Device },
        new("world-size", "--world-size", null, nameof(FinetuneOptions.WorldSize),
            "ranks training data-parallel with a ZeRO-sharded optimizer: threads of this process (one GPU each with cuda), or checked against a launcher's world", (o, v) => o with { WorldSize = v.Int() }) { Save = Integer(o => o.WorldSize), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.WorldSize) },
        new("nproc-per-node", "--nproc-per-node", null, nameof(FinetuneOptions.NprocPerNode),
            "ranks (GPUs) per process launched by torchrun, srun or mpirun, on threads (0: one)", (o, v) => o with { NprocPerNode = v.Int() }) { Save = Integer(o => o.NprocPerNode) },
        new("zero-stage", "--zero-stage", null, nameof(FinetuneOptions.ZeroStage),
            "`2`: optimizer state and gradients sharded over the ranks; `3`: also the frozen decoder-layer weights of a LoRA run", (o, v) => o with { ZeroStage = v.Int() }) { Save = Integer(o => o.ZeroStage), Resume = ResumeRule.MayChange, Compared = o => Invariant(o.ZeroStage) },
        new("dist-timeout", "--dist-timeout", null, nameof(FinetuneOptions.DistTimeout),
            "seconds a rank waits for the others at the rendezvous and in each exchange before failing with a message", (o, v) => o with { DistTimeout = v.Int() }) { Save = Integer(o => o.DistTimeout) },
        new("overwrite", "--overwrite", null, nameof(FinetuneOptions.Overwrite),
            "replace an earlier run's files in the output directory", (o, v) => o with { Overwrite = v.Bool() }),
    ];

    /// <summary>Names of the LoRA mapping (<c>lora_config:</c> or <c>lora:</c>) and the key each sets.</summary>
    public static readonly IReadOnlyList<(string Name, string Key)> LoraNested =
    [
        ("r", "lora-r"), ("lora_r", "lora-r"), ("rank", "lora-r"),
        ("lora_alpha", "lora-alpha"), ("alpha", "lora-alpha"),
        ("lora_dropout", "lora-dropout"), ("dropout", "lora-dropout"),
        ("target_modules", "lora-targets"), ("targets", "lora-targets"), ("lora_targets", "lora-targets"),
    ];

    public static readonly IReadOnlyList<string> LoraSectionNames = ["lora_config", "lora"];

    private static bool IsFalse(ConfigValue v) => v.TryBool() == false;

    private static bool IsBool(ConfigValue v) => v.TryBool() is not null;

    private static bool IsNonNegativeInt(ConfigValue v)
        => v.Node is ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.Number } s && long.TryParse(s.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) && n >= 0;

    private static bool IsString(ConfigValue v) => v.Node is ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.String };

    private static bool IsEmpty(ConfigValue v)
        => v.IsNull || v.Node is ConfigScalar s && (s.Text.Length == 0 || (s.Kind == ScalarKind.Plain && s.Text == "None"));

    /// <summary>llama-recipes keys we accept only with a value that changes nothing here.</summary>
    public static readonly IReadOnlyList<UnsupportedKey> Unsupported =
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
    public static readonly IReadOnlyList<UnsupportedKey> LoraUnsupported =
    [
        new("bias", "`none`", v => IsString(v) && string.Equals(v.NullableString(), "none", StringComparison.OrdinalIgnoreCase), "LoRA adapters train no biases"),
        new("task_type", "`CAUSAL_LM`", v => IsString(v) && string.Equals(v.NullableString(), "CAUSAL_LM", StringComparison.OrdinalIgnoreCase), "only causal language modelling is trained"),
        new("inference_mode", "`false`", IsFalse, "fine-tuning trains the adapters"),
    ];

    /// <summary>Names other tools use for our settings (Hugging Face TrainingArguments, PEFT), for "did you mean".</summary>
    public static readonly IReadOnlyDictionary<string, string> Synonyms = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
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
