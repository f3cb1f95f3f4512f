using System.CommandLine;
using System.Globalization;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
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
        if (resume is null && (OptionFlags.Given(parse, flags.Force) || OptionFlags.Given(parse, flags.Strict)))
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
        bool demo = !OptionFlags.Given(parse, flags.Options.Named<string>("--model")) && !OptionFlags.Given(parse, flags.Options.Named<string>("--dataset"))
            && !OptionFlags.Given(parse, flags.Config);
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
        var rankFlag = flags.Options.Named<int>("--lora-r");
        var alphaFlag = flags.Options.Named<double>("--lora-alpha");
        var targetsFlag = flags.Options.Named<string>("--lora-targets");
        if (OptionFlags.Given(parse, rankFlag) && parse.GetValue(rankFlag) is var rank && rank != adapter.Rank)
        {
            Warn("--lora-r", Number(rank), $"r {Number(adapter.Rank)}");
        }
        if (OptionFlags.Given(parse, alphaFlag) && parse.GetValue(alphaFlag) is var alpha && alpha != adapter.Alpha)
        {
            Warn("--lora-alpha", Number(alpha), $"lora_alpha {Number(adapter.Alpha)}");
        }
        if (OptionFlags.Given(parse, targetsFlag) && parse.GetValue(targetsFlag) is { } targets
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

/// <summary>
/// The finetune flags: one per option of the registry (<see cref="OptionFlags"/>), and the four that steer the command
/// itself — --config, --resume and its --force and --strict.
/// </summary>
internal sealed class FinetuneFlags
{
    public Option<string> Resume { get; } = new("--resume") { Description = "Continue a run exactly: an output directory (its newest valid checkpoint) or a checkpoints/step-N directory; flags given now override the saved options where allowed" };
    public Option<bool> Force { get; } = new("--force") { Description = "With --resume: continue even though the training data changed" };
    public Option<bool> Strict { get; } = new("--strict") { Description = "With --resume: fail if the newest checkpoint is damaged instead of using the newest valid one" };
    public Option<string> Config { get; } = new("--config") { Description = "JSON or YAML file of options (our names or llama-recipes train_config names); flags override it" };

    /// <summary>A flag per option of the registry.</summary>
    public OptionFlags Options { get; } = new(RunConfigKeys.All);

    public IEnumerable<Option> All => [Resume, Force, Strict, Config, .. Options.All];

    /// <summary>Defaults (or <paramref name="start"/>), then --config, then every flag given.</summary>
    public FinetuneOptions Resolve(ParseResult parse, FinetuneOptions start)
    {
        var options = parse.GetValue(Config) is { } configPath ? RunConfigFile.Apply(start, configPath) : start;
        return Options.Apply(parse, options);
    }
}
