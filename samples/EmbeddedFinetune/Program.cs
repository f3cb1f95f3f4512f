// Fine-tunes a LoRA adapter from your own program through the CudaFinetune engine (the CudaFinetune.Core and
// CudaFinetune.Cuda NuGet packages): open a session, watch its progress events, train, use the result.
//
//   dotnet run -- <model-dir> <dataset.jsonl> <output-dir> [device] [max-steps]
//
// model-dir: a Hugging Face Llama directory (config.json + model.safetensors; `CudaFinetune init-model --preset tiny
// --out DIR` writes a tiny one); dataset: .json or .jsonl (pretokenized, chat, alpaca, text, ...); device: auto (the
// default), cpu, cuda or cuda-emulated.
using System.Globalization;
using CudaFinetune.Config;
using CudaFinetune.Cuda.Hosting;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Model;
using CudaFinetune.Training;

if (args.Length is < 3 or > 5)
{
    Console.Error.WriteLine("usage: EmbeddedFinetune <model-dir> <dataset.jsonl> <output-dir> [auto|cpu|cuda|cuda-emulated] [max-steps]");
    return 2;
}

// Once per process: makes Device = "cuda" (an NVIDIA GPU) and "cuda-emulated" (the kernel emulator the CudaFinetune.Cuda
// package carries for linux-x64) available; "auto" then picks cuda where there is a GPU, else the CPU.
CudaAccelerators.Install();

var options = new FinetuneOptions
{
    Model = args[0],
    Dataset = args[1],
    OutputDir = args[2],
    Device = args.Length > 3 ? args[3] : "auto",
    MaxSteps = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 8,
    Peft = "lora",
    LoraR = 8,
    LoraAlpha = 16,
    LoraTargets = "all-linear",
    Lr = 1e-2,
    Scheduler = SchedulerKind.Constant,
    // Sized for a tiny model trained for a few steps; a real model takes rows of 256-4096 tokens and a learning rate near 2e-4.
    BatchSize = 4,
    ContextLength = 16,
    EvalEvery = 4,
};

try
{
    // Open reads and checks everything (model, data, options, output directory) before any training starts.
    using var session = FinetuneSession.Open(options);
    Console.WriteLine($"training {session.Model.Config.NumHiddenLayers}-layer model on {session.Model.Backend.Name}: "
        + $"{session.TrainBatches.Count} batches per epoch, at most {options.MaxSteps} steps");
    foreach (string warning in session.DataWarnings)
    {
        Console.WriteLine($"warning: {warning}");
    }
    session.Progress += e =>
    {
        switch (e)
        {
            case StepCompleted step:
                Console.WriteLine($"step {step.Step}/{step.TotalSteps}  loss {step.Loss:F4}  grad norm {step.GradNorm:F3}");
                break;
            case EvaluationCompleted eval:
                Console.WriteLine($"eval at step {eval.Step}  loss {eval.EvalLoss:F4}  perplexity {eval.EvalPerplexity:F2}");
                break;
        }
    };

    // Ctrl-C stops after the current step, with a checkpoint to resume from (FinetuneSession.Open(options, new ResumeRequest(dir))).
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
    FinetuneResult result = session.Train(stop.Token);

    Console.WriteLine($"{(result.Outcome.Cancelled ? "stopped" : "done")} after {result.Outcome.Steps} steps: "
        + $"last loss {result.Outcome.LastLoss:F4}, eval loss {result.Outcome.LastEvalLoss:F4}");
    Console.WriteLine($"adapter: {result.AdapterDir}");
    Console.WriteLine($"metrics: {result.MetricsPath}");
    if (session.Tokenizer is not null)
    {
        Console.WriteLine($"sample: {session.Generate("Hello", new GenerationOptions { MaxNewTokens = 16 })}");
    }
    return 0;
}
catch (UserErrorException e)
{
    // Bad input (a missing file, an impossible option): one line that says what to change.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
