using System.CommandLine;
using CudaFinetune.Cli.Commands;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Hosting;
using CudaFinetune.Errors;

namespace CudaFinetune.Cli;

/// <summary>
/// The <c>CudaFinetune</c> executable: builds the verb tree (one file per verb under Commands/) and
/// maps outcomes to the exit codes the design fixes: 0 done, 1 a check failed, 2 a user error
/// (bad flag, file or input, or a file system that refuses a read or write; printed as one "error:" line, never a stack trace). Any other
/// exception is an engine fault and propagates with the runtime's own non-zero exit code.
/// </summary>
internal static class Program
{
    public const int ExitSuccess = 0;
    public const int ExitCheckFailed = 1;
    public const int ExitUserError = 2;

    public static int Main(string[] args)
    {
        if (SimdBuilds.SwitchIfAsked(args, Console.Error) is { } refused)
        {
            return refused;
        }
        using var interrupt = new InterruptSignals(Console.Error);
        return Run(args, Console.Out, Console.Error, interrupt.Token);
    }

    /// <summary>The verb tree.</summary>
    internal static RootCommand CreateRootCommand() =>
        new("CudaFinetune fine-tunes Llama-family language models (LoRA or full-parameter) "
            + "with its own CUDA kernels or on the CPU, and resumes exactly from its checkpoints.")
        {
            FinetuneCommand.Create(),
            EvalCommand.Create(),
            GenerateCommand.Create(),
            InitModelCommand.Create(),
            CheckpointCommand.Create(),
            ExportCommand.Create(),
            DevicesCommand.Create(),
            VerifyKernelsCommand.Create(),
            BenchCommand.Create(),
        };

    /// <summary>Runs the command line in-process with the given writers; returns the exit code.</summary>
    internal static int Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        CudaAccelerators.Install();
        ParseResult parse = CreateRootCommand().Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (string message in ParseErrorMessages.Describe(parse))
            {
                error.WriteLine($"error: {message}");
            }
            error.WriteLine($"run '{ParseErrorMessages.CommandLine(parse.CommandResult)} --help' for usage");
            return ExitUserError;
        }
        try
        {
            // Signals are handled by InterruptSignals (a graceful stop), not by System.CommandLine's
            // termination timeout, which would kill the process while results are being written.
            var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
            return parse.InvokeAsync(configuration, cancellationToken).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is UserErrorException or IOException or UnauthorizedAccessException)
        {
            // A file-system error (a full disk, a vanished or read-only directory) is the machine's state, not an engine fault.
            error.WriteLine($"error: {e.Message}");
            return ExitUserError;
        }
    }
}
