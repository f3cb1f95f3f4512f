using System.CommandLine;
using System.Globalization;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Lora;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>finetune</c>: trains a model like llama-recipes' finetuning.py. Options resolve as defaults,
/// then <c>--config FILE</c>, then the flags given on the command line. With no model, dataset or
/// config it runs the built-in demo (<see cref="Demo"/>).
/// </summary>
internal static class FinetuneCommand
{
    public static Command Create()
    {
        var o = new FinetuneFlags();
        var command = new Command("finetune", "Fine-tune a model (LoRA or full). With no --model/--dataset/--config: the built-in demo.");
        foreach (var option in o.All)
        {
            command.Options.Add(option);
        }
        command.SetAction((parse, cancellationToken) => Task.FromResult(Run(parse, o, cancellationToken)));
        return command;
    }

    private static int Run(ParseResult parse, FinetuneFlags flags, CancellationToken cancellationToken)
    {
        var output = parse.InvocationConfiguration.Output;
        var resume = parse.GetValue(flags.Resume);
        if (resume is null && (FinetuneFlags.Given(parse, flags.Force) || FinetuneFlags.Given(parse, flags.Strict)))
        {
            throw new UserErrorException("--force and --strict only apply with --resume PATH");
        }
        if (resume is not null)
        {
            // The run continues with the options it was saved with; flags (and --config) given now override them.
            var launch = LaunchEnvironment.FromProcess();
            var saved = FinetuneSession.ReadResumeOptions(resume, launch);
            if (launch is not null)
            {
                saved = saved with { WorldSize = 1, NprocPerNode = 0 }; // under a launcher the launch decides the world (flags may still say it)
            }
            var request = new ResumeRequest(resume, parse.GetValue(flags.Force), parse.GetValue(flags.Strict));
            var continued = flags.Resolve(parse, saved) with { Overwrite = false };
            CheckDetachedResume(resume, saved, continued);
            return Train(continued, output, cancellationToken, request);
        }
        bool demo = !FinetuneFlags.Given(parse, flags.Model) && !FinetuneFlags.Given(parse, flags.Dataset) && !FinetuneFlags.Given(parse, flags.Config);
        if (demo)
        {
            return Demo.Run(flags, parse, output, cancellationToken);
        }
        var options = flags.Resolve(parse, new FinetuneOptions());
        WarnAboutIgnoredLoraFlags(parse, flags, options, output);
        return Train(options, output, cancellationToken);
    }

    /// <summary>
    /// A checkpoint copied out of its run's checkpoints/ would continue into the output directory its manifest records;
    /// when that directory is gone, recreating it there is a surprise, not a resume: ask where the run should go.
    /// </summary>
    private static void CheckDetachedResume(string resume, FinetuneOptions saved, FinetuneOptions options)
    {
        if (CheckpointStore.OutputDirOf(resume) is null && options.OutputDir == saved.OutputDir && !Directory.Exists(saved.OutputDir))
        {
            throw new UserErrorException($"--resume '{resume}' is a checkpoint outside any run's checkpoints/ directory, and the run it came from ('{saved.OutputDir}') is gone; "
                + "give --output-dir for the continued run");
        }
    }

    /// <summary>
    /// --from-peft takes the adapter's rank, alpha and target modules (FinetuneSession does), so a LoRA flag given
    /// with another value would be dropped without a word: say so. Reading the adapter here also makes a wrong
    /// directory fail before anything loads, with the flag the user typed in the message.
    /// </summary>
    private static void WarnAboutIgnoredLoraFlags(ParseResult parse, FinetuneFlags flags, FinetuneOptions options, TextWriter output)
    {
        if (options.FromPeft is not { } dir)
        {
            return;
        }
        LoraConfig adapter = PeftAdapterDirectory.ReadConfig(dir, "--from-peft");
        void Warn(string flag, string given, string adapterHas) =>
            output.WriteLine($"warning: {flag} {given} is ignored: the adapter in '{dir}' has {adapterHas} (--from-peft takes its rank, alpha and target modules)");
        if (FinetuneFlags.Given(parse, flags.LoraR) && parse.GetValue(flags.LoraR) is var rank && rank != adapter.Rank)
        {
            Warn("--lora-r", Number(rank), $"r {Number(adapter.Rank)}");
        }
        if (FinetuneFlags.Given(parse, flags.LoraAlpha) && parse.GetValue(flags.LoraAlpha) is var alpha && alpha != adapter.Alpha)
        {
            Warn("--lora-alpha", Number(alpha), $"lora_alpha {Number(adapter.Alpha)}");
        }
        if (FinetuneFlags.Given(parse, flags.LoraTargets) && parse.GetValue(flags.LoraTargets) is { } targets
            && !LoraConfig.ParseTargets(targets).ToHashSet().SetEquals(adapter.TargetModules))
        {
            Warn("--lora-targets", targets, $"target modules {string.Join(",", adapter.TargetModules)}");
        }
    }

    private static string Number(double value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Opens the session (resuming when asked), trains with a progress display, and reports where the results are.</summary>
    internal static int Train(FinetuneOptions options, TextWriter output, CancellationToken cancellationToken, ResumeRequest? resume = null)
    {
        using var session = FinetuneSession.Open(options, resume, LaunchEnvironment.FromProcess());
        var job = session.Job;
        if (!job.IsFirstProcess)
        {
            // The first process reports the job; the others say who they are and when they are done.
            string ranks = job.LocalRanks == 1 ? $"rank {job.FirstRank}" : $"ranks {job.FirstRank}..{job.FirstRank + job.LocalRanks - 1}";
            output.WriteLine($"finetune: {ranks} of {job.WorldSize} (process {job.ProcessRank} of {job.ProcessCount}); the first process reports progress");
            var quiet = session.Train(cancellationToken);
            output.WriteLine(quiet.Outcome.Cancelled ? $"finetune: stopped after step {quiet.Outcome.Steps}" : $"finetune: done, {quiet.Outcome.Steps} steps");
            return Program.ExitSuccess;
        }
        using var progress = new ProgressDisplay(output);
        session.Progress += progress.OnEvent;
        if (session.Resumed is { } resumed)
        {
            foreach (string skipped in resumed.Skipped)
            {
                output.WriteLine($"warning: skipped a damaged checkpoint: {skipped}");
            }
            if (resumed.NothingToDo is { } why)
            {
                output.WriteLine($"finetune: {why}");
                return Program.ExitSuccess;
            }
            output.WriteLine($"finetune: resuming from {resumed.Checkpoint} (step {resumed.Step}, {resumed.Epoch} epoch(s) complete)");
            foreach (string warning in resumed.Warnings)
            {
                output.WriteLine($"warning: {warning}");
            }
            if (resumed.Branch is { } branch)
            {
                output.WriteLine($"finetune: {branch}");
            }
            output.WriteLine($"finetune: learning rate: {resumed.Schedule}");
        }
        foreach (string warning in session.DataWarnings)
        {
            output.WriteLine($"warning: {warning}");
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"finetune: {session.Data.Train.Count} training / {session.Data.Validation.Count} validation examples ({session.Data.Format}), {session.TrainBatches.Count} batches per epoch, {session.Trainer.TotalSteps} steps, {(session.Model.Lora is null ? "full fine-tuning" : "LoRA")}"));
        if (job.WorldSize > 1)
        {
            string where = job.ProcessCount > 1 ? $"{job.ProcessCount} processes × {job.LocalRanks} ({job.Launch!.Launcher})" : "threads of this process";
            output.WriteLine($"finetune: {job.WorldSize} ranks on {where}, ZeRO-sharded AdamW; each step takes {session.Trainer.BatchesPerStep} micro-batches ({options.GradientAccumulationSteps} per rank)");
        }
        var result = session.Train(cancellationToken);
        progress.Finish();
        Report(result, output);
        return Program.ExitSuccess;
    }

    internal static void Report(FinetuneResult result, TextWriter output)
    {
        if (result.Outcome.Cancelled)
        {
            output.WriteLine($"finetune: interrupted after step {result.Outcome.Steps}; checkpoint {result.LastCheckpoint}");
            output.WriteLine($"  resume with: CudaFinetune finetune --resume {Quote(result.OutputDir)}");
        }
        else
        {
            output.WriteLine($"finetune: done, {result.Outcome.Steps} steps");
        }
        if (result.Outcome.SkippedSteps > 0)
        {
            output.WriteLine($"  skipped     {result.Outcome.SkippedSteps} steps with a NaN or infinite loss or gradient norm (not applied; \"skipped\": true in metrics)");
        }
        output.WriteLine($"  metrics     {result.MetricsPath}");
        output.WriteLine($"  loss curve  {result.LossChartPath}");
        if (result.AdapterDir is not null)
        {
            output.WriteLine($"  adapter     {result.AdapterDir}   (use with: eval/generate --adapter)");
        }
        if (result.ModelDir is not null)
        {
            output.WriteLine($"  model       {result.ModelDir}");
        }
        if (result.LastCheckpoint is not null && !result.Outcome.Cancelled)
        {
            output.WriteLine($"  checkpoint  {result.LastCheckpoint}   (continue with: finetune --resume {Quote(result.OutputDir)} --num-epochs N)");
        }
    }

    private static string Quote(string path) => path.Contains(' ', StringComparison.Ordinal) || path.Contains('\'', StringComparison.Ordinal) ? $"'{path.Replace("'", "'\\''", StringComparison.Ordinal)}'" : path;
}

/// <summary>The finetune flags, and how they override a config file and the defaults.</summary>
internal sealed class FinetuneFlags
{
    public Option<int> DistTimeout { get; } = new("--dist-timeout") { Description = "Seconds a rank waits for the others at the rendezvous and in each exchange before it fails [default: 600]" };
    public Option<string> Resume { get; } = new("--resume") { Description = "Continue a run exactly: an output directory (its newest valid checkpoint) or a checkpoints/step-N directory; flags given now override the saved options where allowed" };
    public Option<bool> Force { get; } = new("--force") { Description = "With --resume: continue even though the training data changed" };
    public Option<bool> Strict { get; } = new("--strict") { Description = "With --resume: fail if the newest checkpoint is damaged instead of using the newest valid one" };
    public Option<string> Config { get; } = new("--config") { Description = "JSON or YAML file of options (our names or llama-recipes train_config names); flags override it" };
    public Option<string> Model { get; } = new("--model") { Description = "Model directory in Hugging Face layout (config.json + model.safetensors)" };
    public Option<string> Dataset { get; } = new("--dataset") { Description = "Training data, .json, .jsonl or .csv (pretokenized, chat, alpaca, samsum, grammar, text or custom)" };
    public Option<string> OutputDir { get; } = new("--output-dir") { Description = "Where run.json, metrics.jsonl, loss.png and the adapter/model go [default: output]" };
    public Option<bool> Overwrite { get; } = new("--overwrite") { Description = "Replace an earlier run's files in --output-dir" };
    public Option<string> FromPeft { get; } = new("--from-peft") { Description = "Start from an existing PEFT LoRA adapter directory; its r, alpha and target modules replace --lora-r, --lora-alpha and --lora-targets (llama-recipes' from_peft_checkpoint)" };
    public Option<string> Peft { get; } = new("--peft") { Description = "lora, or none for full fine-tuning [default: lora]" };
    public Option<int> LoraR { get; } = new("--lora-r") { Description = "LoRA rank [default: 8]" };
    public Option<double> LoraAlpha { get; } = new("--lora-alpha") { Description = "LoRA alpha; the update is scaled by alpha/r [default: 32]" };
    public Option<double> LoraDropout { get; } = new("--lora-dropout") { Description = "Dropout on the LoRA input [default: 0.05]" };
    public Option<string> LoraTargets { get; } = new("--lora-targets") { Description = "Comma-separated modules (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear [default: q_proj,v_proj]" };
    public Option<string> DatasetFormat { get; } = new("--dataset-format") { Description = "auto, pretokenized, chat, alpaca, samsum, grammar, text or custom [default: auto]" };
    public Option<string> ChatTemplate { get; } = new("--chat-template") { Description = $"{ChatTemplateDescription} [default: auto]" };
    public Option<string> FieldMap { get; } = new("--field-map") { Description = "Custom files: map our fields to yours, e.g. prompt=question,response=answer" };
    public Option<string> PromptTemplate { get; } = new("--prompt-template") { Description = PromptTemplateDescription };
    public Option<string> ValidationDataset { get; } = new("--validation-dataset") { Description = "Separate validation file (else --validation-fraction of the data)" };
    public Option<double> ValidationFraction { get; } = new("--validation-fraction") { Description = "Share of the data held out for evaluation [default: 0.1]" };
    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Rows per micro-batch [default: 4]" };
    public Option<int> ContextLength { get; } = new("--context-length") { Description = "Tokens per row [default: 256]" };
    public Option<string> Batching { get; } = new("--batching") { Description = "packing or padding [default: packing]" };
    public Option<bool> Shuffle { get; } = new("--shuffle") { Description = "Shuffle batches every epoch: true or false [default: true]" };
    public Option<int> GradientAccumulationSteps { get; } = new("--gradient-accumulation-steps") { Description = "Micro-batches per optimizer step [default: 1]" };
    public Option<int> NumEpochs { get; } = new("--num-epochs") { Description = "Passes over the data [default: 3]" };
    public Option<int> MaxSteps { get; } = new("--max-steps") { Description = "Stop after this many optimizer steps; 0 = no limit [default: 0]" };
    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate [default: 1e-4]" };
    public Option<double> WeightDecay { get; } = new("--weight-decay") { Description = "AdamW decoupled weight decay [default: 0]" };
    public Option<double> Beta1 { get; } = new("--beta1") { Description = "AdamW β1 [default: 0.9]" };
    public Option<double> Beta2 { get; } = new("--beta2") { Description = "AdamW β2 [default: 0.999]" };
    public Option<double> Epsilon { get; } = new("--epsilon") { Description = "AdamW ε [default: 1e-8]" };
    public Option<string> Scheduler { get; } = new("--scheduler") { Description = "steplr, cosine, linear or constant [default: steplr]" };
    public Option<int> WarmupSteps { get; } = new("--warmup-steps") { Description = "Linear warmup steps [default: 0]" };
    public Option<double> Gamma { get; } = new("--gamma") { Description = "steplr: factor per epoch [default: 0.85]" };
    public Option<double> GradientClipping { get; } = new("--gradient-clipping") { Description = "Clip gradients to this global norm; 0 = off [default: 0]" };
    public Option<bool> SkipNonfinite { get; } = new("--skip-nonfinite") { Description = "Skip and count a step whose loss or gradient norm is NaN or infinite; false: stop with a checkpoint of the last good state [default: true]" };
    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed for LoRA init, dropout, shuffling and the validation split [default: 42]" };
    public Option<int> EvalEvery { get; } = new("--eval-every") { Description = "Evaluate every N steps (and at each epoch end); 0 = epoch ends only [default: 0]" };
    public Option<int> SaveEvery { get; } = new("--save-every") { Description = "Write a checkpoint every N steps (and at each epoch end and the end); 0 = epoch ends only [default: 0]" };
    public Option<int> KeepLast { get; } = new("--keep-last") { Description = "Keep the newest K checkpoints plus the best by eval loss; 0 = all [default: 3]" };
    public Option<string> Device { get; } = DeviceOption($"{DeviceDescription} [default: auto]");
    public Option<int> WorldSize { get; } = new("--world-size") { Description = "Ranks training data-parallel (ZeRO-sharded optimizer): threads of this process, one GPU each with cuda; under a launcher, checked against it [default: 1]" };
    public Option<int> NprocPerNode { get; } = new("--nproc-per-node") { Description = "Ranks (GPUs) per process started by torchrun, srun or mpirun [default: 1]" };
    public Option<int> ZeroStage { get; } = new("--zero-stage") { Description = "2: optimizer state and gradients sharded over the ranks; 3: also the frozen layer weights of a LoRA run, gathered per layer [default: 2]" };

    /// <summary>The --device values: the backends BackendFactory opens. eval, generate and bench step offer the same.</summary>
    internal static IReadOnlyList<string> DeviceNames { get; } = ["auto", "cpu", "cuda", "cuda-emulated"];

    internal const string DeviceDescription =
        "cpu, cuda (GPU 0) or cuda-emulated (the cuda code path on the kernel emulator: any machine, slow); auto: cuda when there is a GPU and the model's head size is 32, 64 or 128, else cpu";

    internal const string ChatTemplateDescription =
        "Chat records (messages): auto, llama3 (needs Llama 3's tokenizer.json) or llama2 (needs a tokenizer with a BOS, e.g. Llama 2's tokenizer.model); the loss is on assistant turns";

    internal const string PromptTemplateDescription =
        "Custom files: prompt text with {field} placeholders; \\n, \\t and \\\\ in it are a newline, a tab and a backslash (e.g. 'Q: {question}\\nA: ')";

    /// <summary>A --device option that accepts only <see cref="DeviceNames"/>, so a typo fails while parsing, with the choices.</summary>
    internal static Option<string> DeviceOption(string description)
    {
        var option = new Option<string>("--device") { Description = description };
        option.AcceptOnlyFromAmong([.. DeviceNames]);
        return option;
    }

    public IEnumerable<Option> All =>
    [
        Resume, Force, Strict, DistTimeout, Config, Model, Dataset, OutputDir, Overwrite, Peft, FromPeft, LoraR, LoraAlpha, LoraDropout, LoraTargets, DatasetFormat, ChatTemplate, FieldMap, PromptTemplate,
        ValidationDataset, ValidationFraction, BatchSize, ContextLength, Batching, Shuffle, GradientAccumulationSteps, NumEpochs, MaxSteps,
        Lr, WeightDecay, Beta1, Beta2, Epsilon, Scheduler, WarmupSteps, Gamma, GradientClipping, SkipNonfinite, Seed, EvalEvery, SaveEvery, KeepLast, Device, WorldSize, NprocPerNode, ZeroStage,
    ];

    public static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>Defaults (or <paramref name="start"/>), then --config, then every flag given.</summary>
    public FinetuneOptions Resolve(ParseResult parse, FinetuneOptions start)
    {
        var o = start;
        if (parse.GetValue(Config) is { } configPath)
        {
            o = RunConfigFile.Apply(o, configPath);
        }
        T Get<T>(Option<T> option, T current) => Given(parse, option) ? parse.GetValue(option)! : current;
        string? GetText(Option<string> option, string? current) => Given(parse, option) ? parse.GetValue(option) : current;
        return o with
        {
            Model = GetText(Model, o.Model),
            Dataset = GetText(Dataset, o.Dataset),
            OutputDir = Get(OutputDir, o.OutputDir),
            Overwrite = Get(Overwrite, o.Overwrite),
            Peft = Get(Peft, o.Peft),
            FromPeft = GetText(FromPeft, o.FromPeft),
            LoraR = Get(LoraR, o.LoraR),
            LoraAlpha = Get(LoraAlpha, o.LoraAlpha),
            LoraDropout = Get(LoraDropout, o.LoraDropout),
            LoraTargets = Get(LoraTargets, o.LoraTargets),
            DatasetFormat = Get(DatasetFormat, o.DatasetFormat),
            ChatTemplate = Get(ChatTemplate, o.ChatTemplate),
            FieldMap = GetText(FieldMap, o.FieldMap),
            PromptTemplate = GetText(PromptTemplate, o.PromptTemplate),
            ValidationDataset = GetText(ValidationDataset, o.ValidationDataset),
            ValidationFraction = Get(ValidationFraction, o.ValidationFraction),
            BatchSize = Get(BatchSize, o.BatchSize),
            ContextLength = Get(ContextLength, o.ContextLength),
            Batching = Given(parse, Batching) ? ParseBatching(parse.GetValue(Batching)!) : o.Batching,
            Shuffle = Get(Shuffle, o.Shuffle),
            GradientAccumulationSteps = Get(GradientAccumulationSteps, o.GradientAccumulationSteps),
            NumEpochs = Get(NumEpochs, o.NumEpochs),
            MaxSteps = Get(MaxSteps, o.MaxSteps),
            Lr = Get(Lr, o.Lr),
            WeightDecay = Get(WeightDecay, o.WeightDecay),
            Beta1 = Get(Beta1, o.Beta1),
            Beta2 = Get(Beta2, o.Beta2),
            Epsilon = Get(Epsilon, o.Epsilon),
            Scheduler = Given(parse, Scheduler) ? ParseScheduler(parse.GetValue(Scheduler)!) : o.Scheduler,
            WarmupSteps = Get(WarmupSteps, o.WarmupSteps),
            Gamma = Get(Gamma, o.Gamma),
            GradientClipping = Get(GradientClipping, o.GradientClipping),
            SkipNonfinite = Get(SkipNonfinite, o.SkipNonfinite),
            Seed = Get(Seed, o.Seed),
            EvalEvery = Get(EvalEvery, o.EvalEvery),
            SaveEvery = Get(SaveEvery, o.SaveEvery),
            KeepLast = Get(KeepLast, o.KeepLast),
            Device = Get(Device, o.Device),
            WorldSize = Get(WorldSize, o.WorldSize),
            NprocPerNode = Get(NprocPerNode, o.NprocPerNode),
            ZeroStage = Get(ZeroStage, o.ZeroStage),
            DistTimeout = Get(DistTimeout, o.DistTimeout),
        };
    }

    internal static BatchingStrategy ParseBatching(string value) => value.ToLowerInvariant() switch
    {
        "packing" => BatchingStrategy.Packing,
        "padding" => BatchingStrategy.Padding,
        _ => throw new UserErrorException($"--batching must be packing or padding, got '{value}'"),
    };

    internal static SchedulerKind ParseScheduler(string value) => value.ToLowerInvariant() switch
    {
        "steplr" => SchedulerKind.StepLR,
        "cosine" => SchedulerKind.Cosine,
        "linear" => SchedulerKind.Linear,
        "constant" => SchedulerKind.Constant,
        _ => throw new UserErrorException($"--scheduler must be steplr, cosine, linear or constant, got '{value}'"),
    };
}
