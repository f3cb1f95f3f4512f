using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Which directory a checkpoint's path named when reading began. What is read there is evidence about the checkpoint only
/// while the path still names that same directory: retention renames a checkpoint away before deleting it, and a save of
/// a step already on disk renames the old one away and the new one into place, so a reader racing them meets missing
/// files or another checkpoint's bytes although nothing is damaged. Linux compares (device, inode), which also catches a
/// replacement; elsewhere only a removal is seen.
/// </summary>
internal readonly record struct CheckpointPresence(string Directory, (ulong Device, ulong Inode)? Identity)
{
    public static CheckpointPresence Of(string directory) => new(directory, IdentityOf(directory));

    /// <summary>The path no longer names the directory reading began on (or never named one).</summary>
    public bool IsGone => Identity is null || IdentityOf(Directory) != Identity;

    /// <summary>
    /// <paramref name="found"/> as it should be reported: a <see cref="CheckpointRemovedException"/> when the directory has
    /// gone (the problem then says nothing about the checkpoint), else unchanged.
    /// </summary>
    public CheckpointCorruptException Explain(CheckpointCorruptException found)
        => found is CheckpointRemovedException || !IsGone ? found : Removed(found.File is null ? found.Problem : $"{found.File}: {found.Problem}");

    /// <summary>Throws <see cref="CheckpointRemovedException"/> when the directory has gone: what was read may be a mix of two checkpoints.</summary>
    public void ThrowIfGone()
    {
        if (IsGone)
        {
            throw Removed(null);
        }
    }

    private CheckpointRemovedException Removed(string? seen)
        => new(Directory, $"it was removed or replaced while being read (by retention, or a newer save of the same step){(seen is null ? "" : $"; reading it met: {seen}")}");

    private static (ulong Device, ulong Inode)? IdentityOf(string directory)
        => OperatingSystem.IsLinux() ? Posix.IdentityOf(directory) : System.IO.Directory.Exists(directory) ? (0UL, 0UL) : null;
}
