using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.IO;

/// <summary>
/// The few POSIX calls .NET has no API for: fsync of a directory; files opened with O_DIRECT
/// (writes go from our aligned buffers straight to the device, without a copy into the page cache
/// that would cost the training threads CPU time and memory bandwidth); a file's type without following
/// links (statx), opening without following a link or blocking on a FIFO (O_NOFOLLOW|O_NONBLOCK); and
/// open-file-description locks (fcntl F_OFD_SETLK), which unlike .NET's flock-based FileShare.None do not
/// stop other processes from reading the locked file.
/// </summary>
internal static partial class Posix
{
    private const int OpenReadOnly = 0;
    private const int OpenWriteOnly = 1;
    private const int OpenCreate = 0x40;
    private const int OpenExclusive = 0x80;
    private const int OpenCloseOnExec = 0x80000;
    private const int OpenNoFollow = 0x20000;
    private const int OpenNonBlocking = 0x800;
    private const int OpenReadWrite = 2;
    private const int InvalidArgument = 22; // EINVAL: the file system does not do O_DIRECT (tmpfs, some FUSE)
    private const int TooManyLinks = 40; // ELOOP: O_NOFOLLOW met a symbolic link
    private const int NoSuchFile = 2; // ENOENT

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
            throw Failure($"cannot open directory '{directory}' to flush it", Marshal.GetLastPInvokeError());
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw Failure($"fsync of directory '{directory}' failed", Marshal.GetLastPInvokeError());
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
        return errno == InvalidArgument ? null : throw Failure($"cannot create '{path}'", errno);
    }

    /// <summary>The type of <paramref name="path"/> itself (a link is a link, not what it points to); Linux only, null elsewhere.</summary>
    public static FileKind? KindOf(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        var status = default(StatusBuffer);
        if (Statx(CurrentDirectory, path, StatxNoFollow, StatxBasic, ref status) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno is NoSuchFile or NotADirectory ? FileKind.Missing : throw Failure($"cannot look at '{path}'", errno);
        }
        return KindOfMode(status.Mode);
    }

    /// <summary>The type, size and identity (device, inode) of the file an open handle refers to; Linux only, null elsewhere.</summary>
    public static (FileKind Kind, long Length, (ulong Device, ulong Inode) Identity)? Describe(SafeFileHandle file)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        var status = default(StatusBuffer);
        if (Statx(file.DangerousGetHandle().ToInt32(), "", StatxEmptyPath, StatxBasic, ref status) != 0)
        {
            throw Failure("cannot look at an open file", Marshal.GetLastPInvokeError());
        }
        return (KindOfMode(status.Mode), (long)status.Size, Identity(status));
    }

    /// <summary>The (device, inode) pair <paramref name="path"/> names now, without following a link; null when it is gone.</summary>
    public static (ulong Device, ulong Inode)? IdentityOf(string path)
    {
        var status = default(StatusBuffer);
        return Statx(CurrentDirectory, path, StatxNoFollow, StatxBasic, ref status) == 0 ? Identity(status) : null;
    }

    /// <summary>
    /// Opens <paramref name="path"/> read-only without blocking on a FIFO and, unless <paramref name="followLinks"/>,
    /// without following a final symbolic link (<paramref name="isLink"/> tells that case). Linux only: null elsewhere,
    /// and null with isLink false when the path is missing.
    /// </summary>
    public static SafeFileHandle? TryOpenForReading(string path, bool followLinks, out bool isLink)
    {
        isLink = false;
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        int fd = Open(path, OpenReadOnly | OpenNonBlocking | OpenCloseOnExec | (followLinks ? 0 : OpenNoFollow), 0);
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        int errno = Marshal.GetLastPInvokeError();
        isLink = errno == TooManyLinks && !followLinks;
        return errno is NoSuchFile or NotADirectory || isLink ? null : throw Failure($"cannot open '{path}'", errno);
    }

    /// <summary>Opens (creating when missing, mode 0644) a file for reading and writing, not following a final link.</summary>
    public static SafeFileHandle OpenOrCreateNoFollow(string path)
    {
        int fd = Open(path, OpenReadWrite | OpenCreate | OpenCloseOnExec | OpenNoFollow, Convert.ToInt32("644", 8));
        return fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw Failure($"cannot open '{path}'", Marshal.GetLastPInvokeError());
    }

    /// <summary>
    /// Takes an exclusive open-file-description lock on the whole file without waiting: true when taken, false when
    /// another description (any process, or another open of it in this one) holds a lock. The OS drops it when the
    /// description is closed, including when the process dies.
    /// </summary>
    public static bool TryLockExclusive(SafeFileHandle file)
    {
        var request = new FileLockRequest { Type = WriteLock, Whence = 0, Start = 0, Length = 0, Pid = 0 };
        if (FcntlLock(file.DangerousGetHandle().ToInt32(), SetOfdLock, ref request) == 0)
        {
            return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        return errno is WouldBlock or AccessDenied ? false : throw Failure("cannot lock a file", errno);
    }

    /// <summary>Whether some open file description holds a lock on the file (F_OFD_GETLK; takes none itself).</summary>
    public static bool IsLocked(SafeFileHandle file)
    {
        var request = new FileLockRequest { Type = WriteLock, Whence = 0, Start = 0, Length = 0, Pid = 0 };
        if (FcntlLock(file.DangerousGetHandle().ToInt32(), GetOfdLock, ref request) != 0)
        {
            throw Failure("cannot test a file's lock", Marshal.GetLastPInvokeError());
        }
        return request.Type != Unlocked;
    }

    /// <summary>The C library's text for an errno value (strerror), e.g. "No space left on device".</summary>
    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>An IOException whose HResult is the errno, as .NET's own on Unix (so <see cref="IoErrors"/> reads it the same way).</summary>
    private static IOException Failure(string what, int errno) => new($"{what}: {ErrorText(errno)}", errno);

    private const int CurrentDirectory = -100; // AT_FDCWD
    private const int StatxNoFollow = 0x100; // AT_SYMLINK_NOFOLLOW
    private const int StatxEmptyPath = 0x1000; // AT_EMPTY_PATH: the descriptor itself
    private const uint StatxBasic = 0x7FF; // STATX_BASIC_STATS
    private const int NotADirectory = 20; // ENOTDIR: a path component is a file
    private const int WouldBlock = 11; // EAGAIN
    private const int AccessDenied = 13; // EACCES: some systems' answer for a held lock
    private const int SetOfdLock = 37; // F_OFD_SETLK
    private const int GetOfdLock = 36; // F_OFD_GETLK
    private const short WriteLock = 1; // F_WRLCK
    private const short Unlocked = 2; // F_UNLCK

    private static FileKind KindOfMode(ushort mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0xA000 => FileKind.SymbolicLink,
        0x1000 => FileKind.Fifo,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        _ => FileKind.Socket,
    };

    private static (ulong Device, ulong Inode) Identity(in StatusBuffer status) => (((ulong)status.DeviceMajor << 32) | status.DeviceMinor, status.Inode);

    /// <summary>struct statx (256 bytes, the same on every Linux architecture); only the fields read are named.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatusBuffer
    {
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Inode;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(136)] public uint DeviceMajor;
        [FieldOffset(140)] public uint DeviceMinor;
    }

    /// <summary>struct flock on 64-bit Linux; Pid must be 0 for open-file-description locks.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct FileLockRequest
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, ref StatusBuffer status);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlLock(int fd, int command, ref FileLockRequest request);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
