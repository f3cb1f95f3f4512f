using CudaFinetune.Errors;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>How batches are formed from tokenized examples.</summary>
public enum BatchingStrategy
{
    /// <summary>Concatenate every example (with its labels) and cut the stream into context-length rows.</summary>
    Packing,

    /// <summary>Group examples of similar length, pad each batch to its longest row, mask the padding.</summary>
    Padding,
}

/// <summary>Learning-rate schedules.</summary>
public enum SchedulerKind
{
    /// <summary>lr × gamma after every epoch (llama-recipes' StepLR).</summary>
    StepLR,
    Cosine,
    Linear,
    Constant,
}

/// <summary>
/// Everything one fine-tuning run needs, resolved from defaults, a config file and flags (in that
/// order). Names follow the CLI flags; defaults follow llama-recipes' <c>train_config</c> where it
/// has one. <see cref="Validate"/> rejects impossible values with one clear message.
/// </summary>
public sealed record FinetuneOptions
{
    // ---- what to train -------------------------------------------------------------------
    /// <summary>Model directory (Hugging Face layout). Null in the built-in demo, which makes its own.</summary>
    public string? Model { get; init; }

    /// <summary>Training data: .json or .jsonl.</summary>
    public string? Dataset { get; init; }

    /// <summary>Where run.json, metrics.jsonl, loss.png (and later checkpoints/) go.</summary>
    public string OutputDir { get; init; } = "output";

    /// <summary>"lora" or "none" (full fine-tuning).</summary>
    public string Peft { get; init; } = "lora";

    public int LoraR { get; init; } = 8;
    public double LoraAlpha { get; init; } = 32;
    public double LoraDropout { get; init; } = 0.05;

    /// <summary>Comma-separated module names or "all-linear".</summary>
    public string LoraTargets { get; init; } = "q_proj,v_proj";

    // ---- data ---------------------------------------------------------------------------
    /// <summary>auto (recognise by fields), pretokenized, chat, alpaca, samsum, grammar, text or custom.</summary>
    public string DatasetFormat { get; init; } = "auto";

    /// <summary>For custom files: "ourfield=input_field" pairs, e.g. "prompt=question,response=answer".</summary>
    public string? FieldMap { get; init; }

    /// <summary>For custom files: a prompt template with {field} placeholders; the response follows it.</summary>
    public string? PromptTemplate { get; init; }

    /// <summary>
    /// A PEFT LoRA adapter directory to start from (llama-recipes' <c>from_peft_checkpoint</c>): its adapter weights are
    /// the starting point and its r, lora_alpha and target_modules replace <see cref="LoraR"/>, <see cref="LoraAlpha"/> and
    /// <see cref="LoraTargets"/>. To continue an interrupted run exactly, use a resume instead.
    /// </summary>
    public string? FromPeft { get; init; }

    /// <summary>How chat records (<c>messages</c>) are rendered: <c>auto</c> (llama3 when the tokenizer has its header tokens, else llama2), <c>llama3</c> or <c>llama2</c>.</summary>
    public string ChatTemplate { get; init; } = "auto";

    /// <summary>Separate validation file; when null, <see cref="ValidationFraction"/> of the data is held out.</summary>
    public string? ValidationDataset { get; init; }

    public double ValidationFraction { get; init; } = 0.1;

    public int BatchSize { get; init; } = 4;

    /// <summary>Tokens per row (llama-recipes' context_length).</summary>
    public int ContextLength { get; init; } = 256;

    public BatchingStrategy Batching { get; init; } = BatchingStrategy.Packing;

    /// <summary>Shuffle the training batches every epoch.</summary>
    public bool Shuffle { get; init; } = true;

    // ---- optimisation -------------------------------------------------------------------
    public int GradientAccumulationSteps { get; init; } = 1;
    public int NumEpochs { get; init; } = 3;

    /// <summary>Stop after this many optimizer steps (0: no limit).</summary>
    public int MaxSteps { get; init; }

    public double Lr { get; init; } = 1e-4;
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    public SchedulerKind Scheduler { get; init; } = SchedulerKind.StepLR;
    public int WarmupSteps { get; init; }

    /// <summary>StepLR's factor per epoch.</summary>
    public double Gamma { get; init; } = 0.85;

    /// <summary>Clip gradients to this global L2 norm (0: no clipping, llama-recipes' default).</summary>
    public double GradientClipping { get; init; }

    /// <summary>
    /// A step whose loss or gradient norm is NaN or infinite is skipped (its update not applied) and counted; false: the run
    /// stops there with a checkpoint of the state before it. Either way a run never trains on a non-finite gradient, and
    /// <see cref="Trainer.MaxSkippedInARow"/> skipped steps in a row stop it.
    /// </summary>
    public bool SkipNonfinite { get; init; } = true;

    public ulong Seed { get; init; } = 42;

    /// <summary>Evaluate every this many optimizer steps (0: only at each epoch's end).</summary>
    public int EvalEvery { get; init; }

    /// <summary>Write a checkpoint every this many optimizer steps (0: only at each epoch's end and at the end).</summary>
    public int SaveEvery { get; init; }

    /// <summary>Checkpoints kept: the newest this many, plus the best by eval loss (0: keep all).</summary>
    public int KeepLast { get; init; } = 3;

    /// <summary>auto, cpu, cuda or cuda-emulated (RunConfigKeys.Device says what each means).</summary>
    public string Device { get; init; } = "auto";

    /// <summary>
    /// Ranks training data-parallel (ZeRO-sharded optimizer). Without a launcher this process runs them all, on threads
    /// (one GPU each with cuda); under torchrun, srun or mpirun the launcher's processes × <see cref="NprocPerNode"/>
    /// make the world, and this value, when not 1, must agree.
    /// </summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Ranks (GPUs) per launched process, on threads (0: one; without a launcher: the same as <see cref="WorldSize"/>).</summary>
    public int NprocPerNode { get; init; }

    /// <summary>
    /// ZeRO stage with several ranks: 2 shards the optimizer state (fp32 masters and moments) and reduce-scatters the
    /// gradients; 3 also shards the frozen decoder-layer base weights of a LoRA run, gathering each layer when it is used.
    /// </summary>
    public int ZeroStage { get; init; } = 2;

    /// <summary>Seconds a rank waits for the others at the rendezvous, in each exchange and for a checkpoint's parts before it fails.</summary>
    public int DistTimeout { get; init; } = 600;

    /// <summary>Replace an earlier run's files in <see cref="OutputDir"/> (refused otherwise, so nothing saved is lost).</summary>
    public bool Overwrite { get; init; }

    /// <summary>The LoRA adapters these options train (null for full fine-tuning).</summary>
    public LoraConfig? LoraSettings() => Peft == "lora"
        ? new LoraConfig { Rank = LoraR, Alpha = LoraAlpha, Dropout = LoraDropout, TargetModules = LoraConfig.ParseTargets(LoraTargets) }
        : null;

    /// <summary>Throws <see cref="UserErrorException"/> when the options ask more of the model than it has (rows longer than its positions).</summary>
    public void CheckFits(Model.LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (ContextLength > config.MaxPositionEmbeddings)
        {
            throw new UserErrorException($"--context-length {ContextLength} is over the model's {config.MaxPositionEmbeddings} positions (max_position_embeddings); use at most {config.MaxPositionEmbeddings}");
        }
    }

    /// <summary>Throws <see cref="UserErrorException"/> naming the first impossible value.</summary>
    public void Validate()
    {
        static void Require(bool ok, string message)
        {
            if (!ok)
            {
                throw new UserErrorException(message);
            }
        }
        Require(Peft is "lora" or "none", $"--peft must be lora or none, got '{Peft}'");
        Require(LoraR > 0, $"--lora-r must be positive, got {LoraR}");
        Require(LoraAlpha > 0, $"--lora-alpha must be positive, got {LoraAlpha}");
        Require(LoraDropout is >= 0 and < 1, $"--lora-dropout must be in [0, 1), got {LoraDropout}");
        Require(DatasetFormat is "auto" or "pretokenized" or "chat" or "alpaca" or "samsum" or "grammar" or "text" or "custom",
            $"--dataset-format must be auto, pretokenized, chat, alpaca, samsum, grammar, text or custom, got '{DatasetFormat}'");
        Require(ChatTemplate is "auto" or "llama3" or "llama2", $"--chat-template must be auto, llama3 or llama2, got '{ChatTemplate}'");
        Require(ValidationFraction is >= 0 and < 1, $"--validation-fraction must be in [0, 1), got {ValidationFraction}");
        Require(BatchSize > 0, $"--batch-size must be positive, got {BatchSize}");
        Require(ContextLength > 1, $"--context-length must be at least 2, got {ContextLength}");
        Require(GradientAccumulationSteps > 0, $"--gradient-accumulation-steps must be positive, got {GradientAccumulationSteps}");
        Require(NumEpochs > 0, $"--num-epochs must be positive, got {NumEpochs}");
        Require(MaxSteps >= 0, $"--max-steps must be 0 (no limit) or positive, got {MaxSteps}");
        Require(Lr > 0 && double.IsFinite(Lr), $"--lr must be a positive number, got {Lr}");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), $"--weight-decay must be zero or positive, got {WeightDecay}");
        Require(Beta1 is >= 0 and < 1 && Beta2 is >= 0 and < 1, $"AdamW betas must be in [0, 1), got {Beta1}, {Beta2}");
        Require(Epsilon > 0, $"AdamW epsilon must be positive, got {Epsilon}");
        Require(WarmupSteps >= 0, $"--warmup-steps must be zero or positive, got {WarmupSteps}");
        Require(Gamma > 0 && Gamma <= 1, $"--gamma must be in (0, 1], got {Gamma}");
        Require(GradientClipping >= 0 && double.IsFinite(GradientClipping), $"--gradient-clipping must be zero (off) or positive, got {GradientClipping}");
        Require(EvalEvery >= 0, $"--eval-every must be zero (epoch ends only) or positive, got {EvalEvery}");
        Require(SaveEvery >= 0, $"--save-every must be zero (epoch ends only) or positive, got {SaveEvery}");
        Require(KeepLast >= 0, $"--keep-last must be zero (keep all) or positive, got {KeepLast}");
        Require(Device is "auto" or "cpu" or "cuda" or "cuda-emulated", $"--device must be auto, cpu, cuda or cuda-emulated, got '{Device}'");
        Require(WorldSize > 0, $"--world-size must be positive, got {WorldSize}");
        Require(FromPeft is null || Peft == "lora", "--from-peft starts from a LoRA adapter; it needs --peft lora");
        Require(DistTimeout > 0, $"--dist-timeout must be a positive number of seconds, got {DistTimeout}");
        Require(ZeroStage is 2 or 3, $"--zero-stage must be 2 (optimizer state and gradients sharded) or 3 (also the frozen base weights), got {ZeroStage}");
        Require(ZeroStage != 3 || Peft == "lora", "--zero-stage 3 shards the frozen base weights of a LoRA run; full fine-tuning (--peft none) trains them, so use --zero-stage 2");
        Require(NprocPerNode >= 0, $"--nproc-per-node must be positive (or 0: one rank per launched process), got {NprocPerNode}");
    }
}
