using System.CommandLine;
using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary><c>eval</c>: token-weighted mean loss and perplexity of a model (plus adapter) on a whole dataset.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model directory in Hugging Face layout", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "LoRA adapter directory (a fine-tune's adapter/ folder)" };
        var dataset = new Option<string>("--dataset") { Description = "Data to evaluate on, .json, .jsonl or .csv (every example is used)", Required = true };
        // The flags eval shares with finetune, from the option registry: same names, help and defaults.
        var shared = new OptionFlags(RunConfigKeys.Named("dataset-format", "chat-template", "field-map", "prompt-template", "batch-size", "context-length", "batching", "device"));
        var command = new Command("eval", "Print the loss and perplexity of a model (and optional LoRA adapter) on a dataset")
        {
            model, adapter, dataset,
        };
        foreach (Option option in shared.All)
        {
            command.Options.Add(option);
        }
        command.SetAction(parse =>
        {
            var options = shared.Apply(parse, new FinetuneOptions { Model = parse.GetValue(model), Dataset = parse.GetValue(dataset), ValidationFraction = 0 });
            return Run(options, parse.GetValue(adapter), parse.InvocationConfiguration.Output);
        });
        return command;
    }

    internal static int Run(FinetuneOptions options, string? adapterDir, TextWriter output)
    {
        options.Validate();
        if (adapterDir is not null)
        {
            PeftAdapterDirectory.ReadConfig(adapterDir, "--adapter"); // a wrong directory fails before the model loads, naming the flag
        }
        using var backend = BackendFactory.Create(options.Device, HfModelDirectory.TryReadConfig(options.Model!));
        var (model, tokenizer) = ModelLoader.Load(options.Model!, adapterDir, backend);
        using (model)
        {
            options.CheckFits(model.Config);
            var data = DatasetLoader.Load(options, tokenizer, model.Config.VocabSize);
            var plan = BatchPlan.Create(data.Train, options.Batching, options.BatchSize, options.ContextLength, tokenizer?.EosId ?? 0);
            var loss = ModelEvaluator.Evaluate(model, plan);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"eval: loss {loss.Mean:F4}  perplexity {Math.Exp(loss.Mean):F3}  ({loss.Tokens:N0} tokens in {plan.Count} batches, {data.Train.Count} examples, {data.Format})"));
        }
        return Program.ExitSuccess;
    }
}
