using System.Globalization;
using CudaFinetune.Model;
using CudaFinetune.Training;
using static CudaFinetune.Config.OptionDeclarations;

namespace CudaFinetune.Config;

/// <summary>
/// The registry of fine-tune options: each is declared here once (<see cref="OptionKey"/> says what every part of the
/// code takes from a declaration). Adding an option is one entry in <see cref="All"/>, its property in
/// <see cref="FinetuneOptions"/>, and the code that uses it; `CUDAFINETUNE_WRITE_DOCS=1 dotnet test --filter
/// OptionRegistryTests` rewrites docs/cli.md's table.
/// </summary>
public static partial class RunConfigKeys
{
    private static readonly string[] SchedulerNames = ["steplr", "cosine", "linear", "constant"];
    private static readonly SchedulerKind[] SchedulerValues = [SchedulerKind.StepLR, SchedulerKind.Cosine, SchedulerKind.Linear, SchedulerKind.Constant];
    private static readonly string[] BatchingNames = ["packing", "padding"];
    private static readonly BatchingStrategy[] BatchingValues = [BatchingStrategy.Packing, BatchingStrategy.Padding];

    /// <summary>The training devices <c>--device</c> takes (eval, generate and bench step offer the same).</summary>
    public static readonly IReadOnlyList<string> DeviceNames = ["auto", "cpu", "cuda", "cuda-emulated"];

    private static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Lowered(ConfigValue v) => v.String().Trim().ToLowerInvariant();

    /// <summary>Compared only in a LoRA run (a full fine-tune has no rank to keep).</summary>
    private static Func<FinetuneOptions, string> InLoraRun(Func<FinetuneOptions, string> value) => o => o.Peft == "lora" ? value(o) : "-";

    private static string FullPath(string? path) => path is null ? "-" : Path.GetFullPath(path);

    // Keys that combine with others in a config file (their Read is null or they are read with the others: see
    // RunConfigFile.ApplyPeft, ApplyGradientClipping and ApplyValidation).
    public static readonly OptionKey<string> Peft = Choice("peft", null, "`lora` or `none` (full fine-tuning)", ["lora", "none"], o => o.Peft, (o, v) => o with { Peft = v })
        with { Read = null, Resume = ResumeRule.MustMatch };
    public static readonly OptionKey UsePeft = Alias("use_peft", "llama-recipes: `true` → peft `lora`, `false` → `none`", Peft);
    public static readonly OptionKey PeftMethod = Alias("peft_method", "llama-recipes: only `lora` is supported", Peft);
    public static readonly OptionKey<double> GradientClipping = Number("gradient-clipping", "gradient_clipping",
        "clip the global gradient L2 norm to this (0: off); llama-recipes' boolean form is accepted too (`false` → 0, `true` → gradient_clipping_threshold, default 1.0)",
        o => o.GradientClipping, (o, v) => o with { GradientClipping = v }) with { Read = null, Resume = ResumeRule.MayChange };
    public static readonly OptionKey GradientClippingThreshold = Alias("gradient_clipping_threshold", "llama-recipes: the clipping norm used when `gradient_clipping: true`", GradientClipping);
    public static readonly OptionKey<double> ValidationFraction = Number("validation-fraction", null,
        "share of the data held out for validation when no validation file is given (0: none)", o => o.ValidationFraction, (o, v) => o with { ValidationFraction = v });
    public static readonly OptionKey RunValidation = Alias("run_validation", "llama-recipes: `false` → validation-fraction 0 (no validation) unless a validation file is given", ValidationFraction);
    public static readonly OptionKey<string?> ValidationDataset = OptionalText("validation-dataset", null, "separate validation file (.json, .jsonl or .csv, any format)",
        o => o.ValidationDataset, (o, v) => o with { ValidationDataset = v }, DatasetPath) with { ValueName = "FILE", Resume = ResumeRule.MayChange };
    public static readonly OptionKey<string> Device = Text("device", null,
        "`cpu`, `cuda` (GPU 0) or `cuda-emulated` (the cuda code path on the kernel emulator: any machine, slow); `auto`: cuda when there is a GPU and the model's head size is 32, 64 or 128, else cpu",
        o => o.Device, (o, v) => o with { Device = v }, Lowered) with
    {
        Choices = DeviceNames,
        ValueName = string.Join('|', DeviceNames),
        Resume = ResumeRule.MayChange,
        Details = "`cpu`: the CPU backend (fp32). `cuda`: our kernels, bf16 weights and activations, fp32 master weights, gradients and AdamW moments. "
            + "`cuda-emulated`: the very same code path with the kernels run by the emulator (for tests and debugging). Asking for `cuda` without a GPU, or with a model the kernels do not take, is a user error",
    };
    public static readonly OptionKey<string> ChatTemplate = Text("chat-template", null,
        "how chat records (`messages`) are rendered: `auto`, `llama3` (needs Llama 3's tokenizer.json) or `llama2` (needs a tokenizer with a BOS, e.g. Llama 2's tokenizer.model); the loss is on assistant turns",
        o => o.ChatTemplate, (o, v) => o with { ChatTemplate = v }, Lowered) with { ValueName = "T", Details = "`auto`: llama3 when the tokenizer has Llama 3's header tokens, else llama2; see Chat data below" };
    public static readonly OptionKey<string?> PromptTemplate = OptionalText("prompt-template", null,
        "custom files: the prompt, with `{field}` placeholders; `\\n`, `\\t` and `\\\\` in it are a newline, a tab and a backslash (e.g. `Q: {question}\\nA: `)",
        o => o.PromptTemplate, (o, v) => o with { PromptTemplate = v }) with { ValueName = "T" };
    public static readonly OptionKey<string> Batching = Choice("batching", "batching_strategy", "`packing` (concatenate and cut) or `padding` (length-grouped batches, padded)",
        BatchingNames, o => BatchingNames[Array.IndexOf(BatchingValues, o.Batching)], (o, v) => o with { Batching = BatchingValues[Array.IndexOf(BatchingNames, v)] })
        with { Resume = ResumeRule.MustMatch };

    /// <summary>Every key, in the order of the documentation table.</summary>
    public static readonly IReadOnlyList<OptionKey> All =
    [
        OptionalText("model", "model_name", "model directory in Hugging Face layout (`config.json` + `model.safetensors`)", o => o.Model, (o, v) => o with { Model = v })
            with { ValueName = "DIR", Resume = ResumeRule.MayChange, CompareAs = o => FullPath(o.Model) },
        OptionalText("dataset", "dataset", "training data: a .json, .jsonl or .csv file in one of the dataset formats (not a llama-recipes dataset name)", o => o.Dataset, (o, v) => o with { Dataset = v }, DatasetPath)
            with { ValueName = "FILE", Resume = ResumeRule.MayChange, CompareAs = o => FullPath(o.Dataset) },
        Text("output-dir", "output_dir", "where run.json, metrics.jsonl, loss.png, checkpoints and the adapter or model go", o => o.OutputDir, (o, v) => o with { OutputDir = v })
            with { ValueName = "DIR" },
        Switch("overwrite", null, "replace an earlier run's files in the output directory", o => o.Overwrite, (o, v) => o with { Overwrite = v })
            with { Saved = false, ValueName = null, Details = "(otherwise refused, so nothing saved is lost)" },
        Peft,
        UsePeft,
        PeftMethod,
        Integer("lora-r", "lora_config.r", "LoRA rank", o => o.LoraR, (o, v) => o with { LoraR = v })
            with { Resume = ResumeRule.MustMatch, CompareAs = InLoraRun(o => o.LoraR.ToString(CultureInfo.InvariantCulture)) },
        Number("lora-alpha", "lora_config.lora_alpha", "LoRA scale numerator (the update is scaled by alpha / r)", o => o.LoraAlpha, (o, v) => o with { LoraAlpha = v })
            with { Resume = ResumeRule.MustMatch, CompareAs = InLoraRun(o => Invariant(o.LoraAlpha)) },
        Number("lora-dropout", "lora_config.lora_dropout", "dropout on the LoRA input", o => o.LoraDropout, (o, v) => o with { LoraDropout = v })
            with { Resume = ResumeRule.MayChange },
        Text("lora-targets", "lora_config.target_modules", "modules that get adapters: a list or comma-separated names (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj), or `all-linear`",
            o => o.LoraTargets, (o, v) => o with { LoraTargets = v }, v => v.NameList())
            with { ValueName = "LIST", Resume = ResumeRule.MustMatch, CompareAs = InLoraRun(o => string.Join(",", LoraConfig.ParseTargets(o.LoraTargets).Order(StringComparer.Ordinal))) },
        OptionalText("from-peft", "from_peft_checkpoint", "start from an existing PEFT LoRA adapter directory; its r, alpha and target modules replace --lora-r, --lora-alpha and --lora-targets",
            o => o.FromPeft, (o, v) => o with { FromPeft = v }, v => v.NullableString() is { Length: > 0 } dir ? dir : null) with
        {
            ValueName = "DIR",
            Details = "(`DIR` holds `adapter_config.json` and `adapter_model.safetensors`, e.g. a run's `adapter/`): its weights are the starting point; one of those "
                + "flags given on the command line with another value prints a warning that it is ignored. A resume takes the adapter from the checkpoint instead",
        },
        ChatTemplate,
        Text("dataset-format", null, "`auto`, `pretokenized`, `chat`, `alpaca`, `samsum`, `grammar`, `text` or `custom`", o => o.DatasetFormat, (o, v) => o with { DatasetFormat = v }, Lowered)
            with { ValueName = "F", Details = "`auto` recognises the format from the first record's fields (table below)" },
        OptionalText("field-map", null, "read a format's fields from yours, e.g. `instruction=question,output=answer`", o => o.FieldMap, (o, v) => o with { FieldMap = v })
            with { ValueName = "MAP" },
        PromptTemplate,
        ValidationDataset,
        ValidationFraction,
        RunValidation,
        Integer("batch-size", "batch_size_training", "rows per micro-batch", o => o.BatchSize, (o, v) => o with { BatchSize = v })
            with { Resume = ResumeRule.MustMatch },
        Integer("context-length", "context_length", "tokens per row; at most the model's `max_position_embeddings`", o => o.ContextLength, (o, v) => o with { ContextLength = v })
            with { Resume = ResumeRule.MustMatch },
        Batching,
        Switch("shuffle", null, "shuffle the training batches every epoch", o => o.Shuffle, (o, v) => o with { Shuffle = v })
            with { Resume = ResumeRule.MustMatch },
        Integer("gradient-accumulation-steps", "gradient_accumulation_steps", "micro-batches per optimizer step (each loss divided by N)", o => o.GradientAccumulationSteps,
            (o, v) => o with { GradientAccumulationSteps = v }) with { Resume = ResumeRule.MayChange },
        Integer("num-epochs", "num_epochs", "passes over the training data", o => o.NumEpochs, (o, v) => o with { NumEpochs = v })
            with { Resume = ResumeRule.MayChange },
        Integer("max-steps", "max_train_step", "stop after this many optimizer steps (0: no limit), or at the end of the epochs, whichever is first", o => o.MaxSteps,
            (o, v) => o with { MaxSteps = v }) with { Resume = ResumeRule.MayChange },
        Number("lr", "lr", "peak learning rate", o => o.Lr, (o, v) => o with { Lr = v }) with { Resume = ResumeRule.MayChange },
        Number("weight-decay", "weight_decay", "AdamW decoupled weight decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }) with { Resume = ResumeRule.MayChange },
        Number("beta1", null, "AdamW β1", o => o.Beta1, (o, v) => o with { Beta1 = v }) with { Resume = ResumeRule.MayChange },
        Number("beta2", null, "AdamW β2", o => o.Beta2, (o, v) => o with { Beta2 = v }) with { Resume = ResumeRule.MayChange },
        Number("epsilon", null, "AdamW ε", o => o.Epsilon, (o, v) => o with { Epsilon = v }) with { Resume = ResumeRule.MayChange },
        Choice("scheduler", null, "`steplr` (× gamma every epoch, as llama-recipes), `cosine`, `linear` or `constant`", SchedulerNames,
            o => SchedulerNames[Array.IndexOf(SchedulerValues, o.Scheduler)], (o, v) => o with { Scheduler = SchedulerValues[Array.IndexOf(SchedulerNames, v)] })
            with { Resume = ResumeRule.MayChange },
        Integer("warmup-steps", null, "linear warm-up steps", o => o.WarmupSteps, (o, v) => o with { WarmupSteps = v }) with { Resume = ResumeRule.MayChange },
        Number("gamma", "gamma", "StepLR's learning-rate factor per epoch", o => o.Gamma, (o, v) => o with { Gamma = v }) with { Resume = ResumeRule.MayChange },
        GradientClipping,
        GradientClippingThreshold,
        Switch("skip-nonfinite", null, "skip (and count) a step whose loss or gradient norm is NaN or infinite; `false`: stop there with a checkpoint of the last good state",
            o => o.SkipNonfinite, (o, v) => o with { SkipNonfinite = v }) with
        {
            Resume = ResumeRule.MayChange,
            Details = "(exit 2). A skipped step prints a warning line, has `\"skipped\": true` in metrics.jsonl and is counted in the summary; "
                + "16 skipped steps in a row stop any run. See `docs/reliability.md`",
        },
        Unsigned("seed", "seed", "seed for LoRA initialisation, dropout masks, shuffling and the validation split", o => o.Seed, (o, v) => o with { Seed = v })
            with { Resume = ResumeRule.MustMatch },
        Integer("eval-every", null, "evaluate every this many optimizer steps (0: at each epoch's end only)", o => o.EvalEvery, (o, v) => o with { EvalEvery = v })
            with { Resume = ResumeRule.MayChange },
        Integer("save-every", null, "write a checkpoint every this many optimizer steps (0: at each epoch's end and at the end only)", o => o.SaveEvery, (o, v) => o with { SaveEvery = v })
            with { Resume = ResumeRule.MayChange, Details = "(one is also written on interruption)" },
        Integer("keep-last", null, "checkpoints kept: the newest this many plus the best by eval loss (0: all)", o => o.KeepLast, (o, v) => o with { KeepLast = v })
            with { ValueName = "K", Resume = ResumeRule.MayChange },
        Device,
        Integer("world-size", null, "ranks training data-parallel with a ZeRO-sharded optimizer: threads of this process (one GPU each with cuda), or checked against a launcher's world",
            o => o.WorldSize, (o, v) => o with { WorldSize = v }) with
        {
            Resume = ResumeRule.MayChange,
            Details = "Under a launcher (torchrun, srun, mpirun) the world is the launcher's processes × `--nproc-per-node`, and this, when given, must agree. "
                + "Each rank trains on its part of every global batch of N × `--batch-size` × `--gradient-accumulation-steps` rows. See `docs/distributed.md`",
        },
        Integer("nproc-per-node", null, "ranks (GPUs) per process launched by torchrun, srun or mpirun, on threads (0: one)", o => o.NprocPerNode, (o, v) => o with { NprocPerNode = v })
            with { ValueName = "K", Details = "(for one process per node: `srun --ntasks-per-node 1`)" },
        Integer("zero-stage", null, "`2`: optimizer state and gradients sharded over the ranks; `3`: also the frozen decoder-layer weights of a LoRA run, gathered per layer",
            o => o.ZeroStage, (o, v) => o with { ZeroStage = v }) with { ValueName = "2|3", Resume = ResumeRule.MayChange },
        Integer("dist-timeout", null, "seconds a rank waits for the others at the rendezvous and in each exchange before it fails with a message", o => o.DistTimeout,
            (o, v) => o with { DistTimeout = v }) with { ValueName = "S" },
    ];

    /// <summary>The keys named (kebab-case), in the order given; an unknown name is a mistake in the caller.</summary>
    public static IReadOnlyList<OptionKey> Named(params string[] names) =>
        [.. names.Select(name => All.SingleOrDefault(k => k.Name == name) ?? throw new ArgumentException($"no option is named '{name}'", nameof(names)))];
}
