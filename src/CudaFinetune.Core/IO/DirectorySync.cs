using System.Runtime.InteropServices;

namespace CudaFinetune.IO;

/// <summary>
/// fsync(2) on a directory, which makes the names created or renamed in it durable: without it a
/// power loss can undo a rename whose file contents were already flushed. .NET has no API for it,
/// so it is two libc calls; on Windows (where NTFS journals renames) it does nothing.
/// </summary>
internal static partial class DirectorySync
{
    private const int OpenReadOnly = 0;
    private const int OpenCloseOnExec = 0x80000;

    public static void Flush(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        int fd = Open(directory, OpenReadOnly | (OperatingSystem.IsLinux() ? OpenCloseOnExec : 0));
        if (fd < 0)
        {
            throw new IOException($"cannot open directory '{directory}' to flush it (errno {Marshal.GetLastPInvokeError()})");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{directory}' failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
