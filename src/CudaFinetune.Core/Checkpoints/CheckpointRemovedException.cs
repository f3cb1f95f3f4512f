namespace CudaFinetune.Checkpoints;

/// <summary>
/// A checkpoint that was not there, or stopped being the directory its reader started on, while it was read: retention
/// renames an old checkpoint away before deleting it, and a save of a step already on disk renames the old one away and
/// the new one into place. That is not damage, so listings skip it rather than call it invalid; it derives from
/// <see cref="CheckpointCorruptException"/> so that a resume, which only needs "cannot be used", goes on to the next one.
/// </summary>
public sealed class CheckpointRemovedException : CheckpointCorruptException
{
    public CheckpointRemovedException(string checkpoint, string problem)
        : base(checkpoint, null, null, problem, $"checkpoint '{checkpoint}': {problem}")
    {
    }

    public CheckpointRemovedException()
    {
    }

    public CheckpointRemovedException(string message)
        : base(message)
    {
    }

    public CheckpointRemovedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
