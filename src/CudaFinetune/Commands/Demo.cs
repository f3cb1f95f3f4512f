using System.CommandLine;
using System.Globalization;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// The built-in demo, run by <c>finetune</c> with no model, dataset or config: LoRA-fine-tune the
/// <c>tiny</c> random model on a small sentiment dataset that ships inside the executable, show the
/// eval loss falling, and show the model's answer to a held-out review before and after.
/// Any finetune flag still applies (e.g. --max-steps 20 for a quicker look).
/// </summary>
internal static class Demo
{
    public const string DefaultOutputDir = "demo-output";
    private const string MarkerFileName = ".cudafinetune-demo";
    private const string DatasetResource = "CudaFinetune.Demo.demo-sentiment.jsonl";

    /// <summary>The demo's settings; chosen so the task is learned visibly in well under 3 minutes on 2 cores.</summary>
    internal static FinetuneOptions Defaults(string modelDir, string dataset, string outputDir) => new()
    {
        Model = modelDir,
        Dataset = dataset,
        OutputDir = outputDir,
        Overwrite = true,
        Peft = "lora",
        LoraR = 16,
        LoraAlpha = 32,
        LoraDropout = 0.05,
        LoraTargets = "all-linear",
        // A short prompt instead of alpaca's preamble: the tiny random model learns faster when the
        // review is most of what the answer position attends to.
        DatasetFormat = "custom",
        PromptTemplate = "Review: {input}\nSentiment:",
        FieldMap = "response=output",
        ValidationFraction = 0.1,
        BatchSize = 8,
        ContextLength = 128,
        Batching = BatchingStrategy.Padding,
        NumEpochs = 6,
        Lr = 4e-3,
        Scheduler = SchedulerKind.Cosine,
        WarmupSteps = 20,
        GradientClipping = 1.0,
        EvalEvery = 40,
        Seed = 42,
    };

    public static int Run(FinetuneFlags flags, ParseResult parse, TextWriter output, CancellationToken cancellationToken)
    {
        var outputDir = flags.Options.Named<string>("--output-dir");
        string dir = Path.GetFullPath(OptionFlags.Given(parse, outputDir) ? parse.GetValue(outputDir)! : DefaultOutputDir);
        if (File.Exists(Path.Combine(dir, RunFileNames.RunFileName)) && !File.Exists(Path.Combine(dir, MarkerFileName)))
        {
            throw new UserErrorException($"'{dir}' holds a run that is not the demo's; give the demo another --output-dir");
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, MarkerFileName), "This directory belongs to the CudaFinetune demo; running the demo again replaces it.\n");

        output.WriteLine("CudaFinetune demo: LoRA fine-tuning of a tiny random Llama model to classify review sentiment, on the CPU.");
        string modelDir = Path.Combine(dir, "base-model");
        if (!File.Exists(Path.Combine(modelDir, "config.json")))
        {
            InitModelCommand.Run("tiny", 1, modelDir, "f32", force: true, output);
        }
        string dataset = Path.Combine(dir, "demo-sentiment.jsonl");
        using (var resource = typeof(Demo).Assembly.GetManifestResourceStream(DatasetResource)
            ?? throw new InvalidOperationException($"the demo dataset resource {DatasetResource} is missing from the build"))
        using (var file = File.Create(dataset))
        {
            resource.CopyTo(file);
        }

        var options = flags.Resolve(parse, Defaults(modelDir, dataset, dir)) with { OutputDir = dir, Overwrite = true };
        using var session = FinetuneSession.Open(options);
        var tokenizer = session.Tokenizer!;
        var heldOut = session.Data.Validation.Count > 0 ? session.Data.Validation : session.Data.Train;
        var sample = heldOut[0];
        output.WriteLine($"held-out review: \"{Review(tokenizer.Decode(Prompt(sample)))}\"  (expected: {Expected(tokenizer, sample)})");
        output.WriteLine($"before fine-tuning: answer \"{Answer(session, sample)}\", {Accuracy(session, heldOut)}, eval loss {EvalLoss(session)}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"training {session.Trainer.TotalSteps} steps on {session.Data.Train.Count} examples: LoRA r={options.LoraR} on {options.LoraTargets}, lr {options.Lr}, {options.Scheduler.ToString().ToLowerInvariant()} schedule"));
        using var progress = new ProgressDisplay(output);
        session.Progress += progress.OnEvent;
        var result = session.Train(cancellationToken);
        progress.Finish();
        output.WriteLine($"after fine-tuning:  answer \"{Answer(session, sample)}\", {Accuracy(session, heldOut)}, eval loss {EvalLoss(session)}");
        FinetuneCommand.Report(result, output);
        return Program.ExitSuccess;
    }

    private static int[] Prompt(Data.TokenizedExample example) => example.InputIds[..Array.FindIndex(example.Labels, l => l >= 0)];

    private static string Expected(Tokenizers.ITokenizer tokenizer, Data.TokenizedExample example)
        => tokenizer.Decode(example.InputIds[Prompt(example).Length..].Where(id => id != tokenizer.EosId)).Trim();

    private static string Answer(FinetuneSession session, Data.TokenizedExample example)
    {
        var tokenizer = session.Tokenizer!;
        var ids = new TextGenerator(session.Model).Generate(Prompt(example), new GenerationOptions { MaxNewTokens = 3 }, tokenizer.EosId);
        return tokenizer.Decode(ids.Where(id => id != tokenizer.EosId)).Trim();
    }

    /// <summary>How many held-out reviews the model labels right (greedy answer equals the expected label).</summary>
    private static string Accuracy(FinetuneSession session, IReadOnlyList<Data.TokenizedExample> examples)
    {
        int right = examples.Count(e => Answer(session, e) == Expected(session.Tokenizer!, e));
        return string.Create(CultureInfo.InvariantCulture, $"{right}/{examples.Count} held-out reviews right");
    }

    private static string EvalLoss(FinetuneSession session) => session.ValidationBatches is { } plan
        ? ModelEvaluator.Evaluate(session.Model, plan).Mean.ToString("F4", CultureInfo.InvariantCulture)
        : "-";

    /// <summary>The review inside the demo's prompt "Review: …\nSentiment:".</summary>
    private static string Review(string prompt)
    {
        const string start = "Review: ", end = "\nSentiment:";
        int s = prompt.IndexOf(start, StringComparison.Ordinal);
        s = s < 0 ? 0 : s + start.Length;
        int e = prompt.IndexOf(end, s, StringComparison.Ordinal);
        return (e < 0 ? prompt[s..] : prompt[s..e]).Trim();
    }
}
