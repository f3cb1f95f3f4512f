using CudaFinetune.IO;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// The files of a checkpoint directory read as untrusted: a checkpoint holds only regular files and directories, so a
/// planted link (to /dev/zero, to /etc/passwd, even to a good copy of the file), a FIFO (a reader would wait forever) or a
/// device is refused and never followed or waited on; sizes come from the file actually opened; reads are bounded. Every
/// failure is a <see cref="CheckpointCorruptException"/> naming the file, so that it reaches the fallback to an older
/// checkpoint rather than the user as a raw I/O error.
/// </summary>
internal static class CheckpointFiles
{
    private const string OnlyRegular = "a checkpoint holds only regular files and directories (a link, FIFO or device there is never read)";

    /// <summary>Refuses a checkpoint path that is not a directory itself, or a tree holding anything but regular files and directories.</summary>
    public static void CheckTree(string dir)
    {
        var kind = RegularFiles.KindOf(dir);
        if (kind == FileKind.Missing)
        {
            throw new CheckpointRemovedException(dir, "no such directory");
        }
        if (kind != FileKind.Directory)
        {
            throw new CheckpointCorruptException(dir, null, null, $"is {RegularFiles.Describe(kind)}, not a directory: {OnlyRegular}");
        }
        if (Guard(dir, null, () => RegularFiles.FindForeignEntry(dir)) is { } foreign)
        {
            throw new CheckpointCorruptException(dir, Path.GetRelativePath(dir, foreign.Path).Replace('\\', '/'), null, $"is {RegularFiles.Describe(foreign.Kind)}: {OnlyRegular}");
        }
    }

    /// <summary>Opens <paramref name="file"/> (relative to the checkpoint) if it is a regular file, not through a link.</summary>
    public static SafeFileHandle Open(string dir, string file, string missing = "is missing")
        => Guard(dir, file, () => RegularFiles.OpenHandle(Path.Combine(dir, file)), missing);

    /// <summary>The size of the file a handle from <see cref="Open"/> refers to.</summary>
    public static long LengthOf(string dir, string file, SafeFileHandle handle) => Guard(dir, file, () => RandomAccess.GetLength(handle));

    /// <summary>
    /// The whole of <paramref name="file"/>, which must be a regular file of at most <paramref name="maxBytes"/> bytes
    /// (<paramref name="limit"/> says whose limit that is: "any manifest has"); fewer bytes when it shrank while read.
    /// </summary>
    public static byte[] ReadAll(string dir, string file, long maxBytes, string limit, string missing = "is missing")
        => Guard(dir, file, () => RegularFiles.ReadAll(Path.Combine(dir, file), maxBytes), missing, limit);

    private static T Guard<T>(string dir, string? file, Func<T> read, string missing = "is missing", string limit = "it may have")
    {
        try
        {
            return read();
        }
        catch (NotARegularFileException e)
        {
            throw new CheckpointCorruptException(dir, file, null, $"is {RegularFiles.Describe(e.Kind)}: {OnlyRegular}");
        }
        catch (FileTooLargeException e)
        {
            throw new CheckpointCorruptException(dir, file, null, $"is {e.Length} bytes, more than {limit}");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointCorruptException(dir, file, null, missing);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointCorruptException(dir, file, null, $"cannot be read: {e.Message}");
        }
    }
}
