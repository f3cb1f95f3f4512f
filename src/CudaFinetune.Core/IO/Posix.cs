using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.IO;

/// <summary>
/// The few POSIX calls .NET has no API for: fsync of a directory, and files opened with O_DIRECT
/// (writes go from our aligned buffers straight to the device, without a copy into the page cache
/// that would cost the training threads CPU time and memory bandwidth).
/// </summary>
internal static partial class Posix
{
    private const int OpenReadOnly = 0;
    private const int OpenWriteOnly = 1;
    private const int OpenCreate = 0x40;
    private const int OpenExclusive = 0x80;
    private const int OpenCloseOnExec = 0x80000;
    private const int InvalidArgument = 22; // EINVAL: the file system does not do O_DIRECT (tmpfs, some FUSE)

    /// <summary>O_DIRECT differs between architectures (asm-generic: 0x4000; arm64: 0x10000).</summary>
    private static int OpenDirect => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;

    /// <summary>fsync(2) on a directory: makes the names created or renamed in it durable. Does nothing on Windows (NTFS journals renames).</summary>
    public static void FlushDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        int fd = Open(directory, OpenReadOnly | (OperatingSystem.IsLinux() ? OpenCloseOnExec : 0), 0);
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

    /// <summary>
    /// Creates a new file for unbuffered (O_DIRECT) writing; null where that is not available (not
    /// Linux, or a file system that refuses O_DIRECT), and the caller writes through the page cache.
    /// Writes must then start at 4 KiB-aligned addresses and offsets and be multiples of 4 KiB long.
    /// </summary>
    public static SafeFileHandle? TryCreateUnbuffered(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        int fd = Open(path, OpenWriteOnly | OpenCreate | OpenExclusive | OpenCloseOnExec | OpenDirect, Convert.ToInt32("644", 8));
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        int errno = Marshal.GetLastPInvokeError();
        return errno == InvalidArgument ? null : throw new IOException($"cannot create '{path}' (errno {errno})");
    }

    /// <summary>fsync(2) on an open file.</summary>
    public static void Flush(SafeFileHandle file, string path)
    {
        if (Fsync(file.DangerousGetHandle().ToInt32()) != 0)
        {
            throw new IOException($"fsync of '{path}' failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
