using System.CommandLine;
using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Data;
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
        var format = new Option<string>("--dataset-format") { Description = "auto, pretokenized, chat, alpaca, samsum, grammar, text or custom", DefaultValueFactory = _ => "auto" };
        var chatTemplate = new Option<string>("--chat-template") { Description = FinetuneFlags.ChatTemplateDescription, DefaultValueFactory = _ => "auto" };
        var fieldMap = new Option<string>("--field-map") { Description = "Custom files: e.g. prompt=question,response=answer" };
        var template = new Option<string>("--prompt-template") { Description = FinetuneFlags.PromptTemplateDescription };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows per batch", DefaultValueFactory = _ => 4 };
        var context = new Option<int>("--context-length") { Description = "Tokens per row", DefaultValueFactory = _ => 256 };
        var batching = new Option<string>("--batching") { Description = "packing or padding", DefaultValueFactory = _ => "packing" };
        var device = FinetuneFlags.DeviceOption(FinetuneFlags.DeviceDescription);
        device.DefaultValueFactory = _ => "auto";
        var command = new Command("eval", "Print the loss and perplexity of a model (and optional LoRA adapter) on a dataset")
        {
            model, adapter, dataset, format, chatTemplate, fieldMap, template, batchSize, context, batching, device,
        };
        command.SetAction(parse =>
        {
            var options = new FinetuneOptions
            {
                Model = parse.GetValue(model),
                Dataset = parse.GetValue(dataset),
                DatasetFormat = parse.GetValue(format)!,
                ChatTemplate = parse.GetValue(chatTemplate)!,
                FieldMap = parse.GetValue(fieldMap),
                PromptTemplate = parse.GetValue(template),
                ValidationFraction = 0,
                BatchSize = parse.GetValue(batchSize),
                ContextLength = parse.GetValue(context),
                Batching = FinetuneFlags.ParseBatching(parse.GetValue(batching)!),
                Device = parse.GetValue(device)!,
            };
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
