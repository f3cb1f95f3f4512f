using CudaFinetune.Errors;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// A checkpoint that must not be loaded: missing or damaged files, a changed manifest, a tensor whose
/// bytes do not hash to the recorded value. The message names the checkpoint, the file and the tensor.
/// </summary>
public class CheckpointCorruptException : UserErrorException
{
    public CheckpointCorruptException(string checkpoint, string? file, string? tensor, string problem)
        : this(checkpoint, file, tensor, problem, Describe(checkpoint, file, tensor, problem))
    {
    }

    /// <summary>For a kind of unusable checkpoint that is not damage, and says so in its own words.</summary>
    protected CheckpointCorruptException(string checkpoint, string? file, string? tensor, string problem, string message)
        : base(message)
    {
        Checkpoint = checkpoint;
        File = file;
        Tensor = tensor;
        Problem = problem;
    }

    public CheckpointCorruptException()
    {
        Checkpoint = Problem = "";
    }

    public CheckpointCorruptException(string message)
        : base(message)
    {
        Checkpoint = Problem = message;
    }

    public CheckpointCorruptException(string message, Exception innerException)
        : base(message, innerException)
    {
        Checkpoint = Problem = message;
    }

    /// <summary>The checkpoint directory.</summary>
    public string Checkpoint { get; }

    /// <summary>The file inside it, relative (null when the directory itself is the problem).</summary>
    public string? File { get; }

    /// <summary>The tensor (null when no single tensor is at fault).</summary>
    public string? Tensor { get; }

    /// <summary>What is wrong, without the location.</summary>
    public string Problem { get; }

    private static string Describe(string checkpoint, string? file, string? tensor, string problem)
    {
        string where = file is null ? "" : tensor is null ? $"{file}: " : $"{file}: tensor '{tensor}': ";
        return $"checkpoint '{checkpoint}' is not valid: {where}{problem}";
    }
}
