using System.CommandLine;
using System.Globalization;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>init-model</c>: writes a deterministic random model of a preset shape in Hugging Face layout,
/// so demos, tests and benchmarks have a model without downloading one. It never overwrites a
/// non-empty directory unless told to (--force), so saved work is not lost by a typo.
/// </summary>
internal static class InitModelCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset")
        {
            Description = $"Model shape: {string.Join(", ", LlamaPresets.Names)}",
            Required = true,
        };
        var seed = new Option<ulong>("--seed")
        {
            Description = "Random seed; the same seed always gives the same bytes",
            DefaultValueFactory = _ => 1,
        };
        var output = new Option<string>("--out")
        {
            Description = "Directory to write config.json and model.safetensors into",
            Required = true,
        };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Weight dtype in the file: f32 or bf16",
            DefaultValueFactory = _ => "f32",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Write into a non-empty directory, replacing its config.json and model.safetensors",
        };
        var command = new Command("init-model", "Write a deterministic random Llama model (config.json + model.safetensors) in Hugging Face layout")
        {
            preset, seed, output, dtype, force,
        };
        command.SetAction(parse => Run(
            parse.GetRequiredValue(preset),
            parse.GetValue(seed),
            parse.GetRequiredValue(output),
            parse.GetValue(dtype) ?? "f32",
            parse.GetValue(force),
            parse.InvocationConfiguration.Output));
        return command;
    }

    internal static int Run(string presetName, ulong seed, string outDirectory, string dtypeName, bool force, TextWriter output)
    {
        _ = LlamaPresets.Get(presetName); // an unknown preset is refused before anything else
        DType fileDType = dtypeName switch
        {
            "f32" => DType.F32,
            "bf16" => DType.BF16,
            _ => throw new UserErrorException($"unknown --dtype '{dtypeName}'; choose f32 or bf16"),
        };
        string directory = Path.GetFullPath(outDirectory);
        CheckOutput(directory, force);

        long parameters = RandomModelDirectory.Write(presetName, seed, directory, fileDType);
        long bytes = new FileInfo(Path.Combine(directory, HfModelDirectory.ConfigFileName)).Length
            + new FileInfo(Path.Combine(directory, HfModelDirectory.WeightsFileName)).Length;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"init-model: wrote {presetName} (seed {seed}, {dtypeName}) to {directory}: {parameters:N0} parameters, {bytes:N0} bytes"));
        return Program.ExitSuccess;
    }

    private static void CheckOutput(string directory, bool force)
    {
        if (File.Exists(directory))
        {
            throw new UserErrorException($"--out '{directory}' is a file; give a directory");
        }
        if (!force && Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new UserErrorException($"--out '{directory}' is not empty; choose an empty or new directory, or pass --force to replace its config.json and model.safetensors");
        }
    }
}
