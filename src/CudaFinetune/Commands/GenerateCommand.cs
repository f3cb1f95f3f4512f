using System.CommandLine;
using CudaFinetune.Backends;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Cli.Commands;

/// <summary><c>generate</c>: continue a prompt with a model (plus adapter), greedy or sampled, using a key/value cache.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model directory in Hugging Face layout (with a tokenizer record)", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "LoRA adapter directory (a fine-tune's adapter/ folder)" };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate at most", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy; above 0 samples", DefaultValueFactory = _ => 0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling threshold (with --temperature > 0)", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 0 };
        var device = new OptionFlags([RunConfigKeys.Device]).Flag(RunConfigKeys.Device);
        var command = new Command("generate", "Generate text from a prompt (greedy, temperature, top-p; KV cache)")
        {
            model, adapter, prompt, maxNew, temperature, topP, seed, device,
        };
        command.SetAction(parse => Run(parse.GetValue(model)!, parse.GetValue(adapter), parse.GetValue(prompt)!,
            new GenerationOptions { MaxNewTokens = parse.GetValue(maxNew), Temperature = parse.GetValue(temperature), TopP = parse.GetValue(topP), Seed = parse.GetValue(seed) },
            parse.GetValue(device) ?? RunConfigKeys.Device.DefaultText!, parse.InvocationConfiguration.Output));
        return command;
    }

    /// <summary>Checks everything (flags, adapter, device, tokenizer, prompt length) before the first character is printed, then streams the text.</summary>
    internal static int Run(string modelDir, string? adapterDir, string prompt, GenerationOptions options, string device, TextWriter output)
    {
        options.Validate(); // before a model is loaded
        if (adapterDir is not null)
        {
            PeftAdapterDirectory.ReadConfig(adapterDir, "--adapter"); // a wrong directory fails before the model loads, naming the flag
        }
        using var backend = BackendFactory.Create(device, HfModelDirectory.TryReadConfig(modelDir));
        var (model, tokenizer) = ModelLoader.Load(modelDir, adapterDir, backend);
        using (model)
        {
            if (tokenizer is null)
            {
                throw new UserErrorException($"'{modelDir}' records no tokenizer (tokenizer_config.json), so text cannot be encoded; models from 'init-model --preset tiny' have one");
            }
            var ids = tokenizer.EncodePrompt(prompt);
            var generator = new TextGenerator(model);
            generator.Check(ids, options);
            output.Write(prompt);
            var generated = new List<int>();
            int printed = 0;
            generator.Generate(ids, options, tokenizer.EosId, id =>
            {
                if (id == tokenizer.EosId)
                {
                    return;
                }
                generated.Add(id);
                // Decode everything so far and print the new part, so multi-token characters come out whole.
                string text = tokenizer.Decode(generated);
                if (text.Length > printed && !text.EndsWith('\uFFFD'))
                {
                    output.Write(text[printed..]);
                    printed = text.Length;
                }
            });
            output.WriteLine();
        }
        return Program.ExitSuccess;
    }
}
