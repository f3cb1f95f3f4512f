using System.CommandLine;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// <c>export</c>: a checkpoint's trained weights in Hugging Face's formats — a PEFT adapter, or a merged model directory
/// that transformers and vLLM load as any Llama (<see cref="CheckpointExport"/>).
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint (OUTPUT_DIR/checkpoints/step-N) or a run's output directory (its newest valid checkpoint)", Required = true };
        var format = new Option<string>("--format") { Description = "peft: adapter_model.safetensors + adapter_config.json; merged: a full model directory with the adapter folded in", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (created; files in it are replaced)", Required = true };
        var baseModel = new Option<string>("--base-model") { Description = "merged: the base model directory, if it moved since training (it must be the same model)" };
        var dtype = new Option<string>("--dtype") { Description = "merged: bf16 or f32", DefaultValueFactory = _ => "bf16" };
        var shard = new Option<long>("--max-shard-bytes") { Description = "merged: bytes per safetensors shard at most; larger models get shards and model.safetensors.index.json", DefaultValueFactory = _ => HfModelDirectory.DefaultMaxShardBytes };
        var command = new Command("export", "Write a checkpoint's weights as a PEFT adapter or a merged Hugging Face model") { checkpoint, format, output, baseModel, dtype, shard };
        command.SetAction(parse =>
        {
            var writer = parse.InvocationConfiguration.Output;
            string from = parse.GetValue(checkpoint)!, to = parse.GetValue(output)!;
            string used = parse.GetValue(format) switch
            {
                "peft" => CheckpointExport.ToPeft(from, to),
                "merged" => CheckpointExport.ToMerged(from, to, parse.GetValue(baseModel), ParseDType(parse.GetValue(dtype)!), Positive(parse.GetValue(shard))),
                var other => throw new UserErrorException($"--format must be peft or merged, got '{other}'"),
            };
            writer.WriteLine($"export: {parse.GetValue(format)} from {used} -> {Path.GetFullPath(to)}");
            return Program.ExitSuccess;
        });
        return command;
    }

    private static DType ParseDType(string value) => value.ToLowerInvariant() switch
    {
        "bf16" or "bfloat16" => DType.BF16,
        "f32" or "fp32" or "float32" => DType.F32,
        _ => throw new UserErrorException($"--dtype must be bf16 or f32, got '{value}'"),
    };

    private static long Positive(long bytes) => bytes > 0 ? bytes : throw new UserErrorException($"--max-shard-bytes must be positive, got {bytes}");
}
