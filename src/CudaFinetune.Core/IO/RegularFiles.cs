using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.IO;

/// <summary>A path that names something other than a regular file where only a regular file will do.</summary>
public sealed class NotARegularFileException(string path, FileKind kind)
    : IOException($"'{path}' is {RegularFiles.Describe(kind)}, not a regular file")
{
    public string Path { get; } = path;

    public FileKind Kind { get; } = kind;
}

/// <summary>A file longer than its reader accepts (checked on the file opened, never on a link's target name).</summary>
public sealed class FileTooLargeException(string path, long length, long maxBytes)
    : IOException($"'{path}' is {length:N0} bytes, more than the {maxBytes:N0} it may have")
{
    public long Length { get; } = length;

    public long MaxBytes { get; } = maxBytes;
}

/// <summary>
/// Reading files that may have been planted: a symbolic link (to /etc/passwd, to /dev/zero), a FIFO (a reader would
/// wait forever) or a device is refused with <see cref="NotARegularFileException"/> unless links are explicitly
/// allowed, the type and size are read from the handle actually opened (no window between a check and the open), and
/// every read is bounded.
/// </summary>
public static class RegularFiles
{
    /// <summary>What <paramref name="path"/> itself is (not following a link).</summary>
    public static FileKind KindOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Posix.KindOf(path) is { } kind)
        {
            return kind;
        }
        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path))
        {
            return FileKind.Missing;
        }
        return info.LinkTarget is not null ? FileKind.SymbolicLink
            : (info.Attributes & FileAttributes.Directory) != 0 ? FileKind.Directory
            : (info.Attributes & FileAttributes.Device) != 0 ? FileKind.CharacterDevice
            : FileKind.Regular;
    }

    /// <summary>"a symbolic link", "a FIFO", … for messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Missing => "missing",
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a directory",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        _ => "a socket",
    };

    /// <summary>
    /// The first entry under <paramref name="directory"/> (recursively, links not followed) that is neither a regular
    /// file nor a directory, with its kind; null when there is none.
    /// </summary>
    public static (string Path, FileKind Kind)? FindForeignEntry(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };
        foreach (string entry in Directory.EnumerateFileSystemEntries(directory, "*", options).Order(StringComparer.Ordinal))
        {
            var kind = KindOf(entry);
            if (kind is not (FileKind.Regular or FileKind.Directory or FileKind.Missing))
            {
                return (entry, kind);
            }
        }
        return null;
    }

    /// <summary>
    /// Opens a regular file for reading: <see cref="FileNotFoundException"/> when missing, <see cref="NotARegularFileException"/>
    /// for a link (unless <paramref name="followLinks"/>, and then for what the link leads to if that is not a regular file),
    /// a FIFO, a device or a directory.
    /// </summary>
    public static FileStream OpenRead(string path, bool followLinks = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        return new FileStream(OpenHandle(path, followLinks), FileAccess.Read, bufferSize: 0);
    }

    /// <summary>The whole of a regular file, refused with <see cref="FileTooLargeException"/> when over <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAll(string path, long maxBytes, bool followLinks = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var handle = OpenHandle(path, followLinks);
        long length = RandomAccess.GetLength(handle);
        if (length > maxBytes || length > Array.MaxLength)
        {
            throw new FileTooLargeException(path, length, maxBytes);
        }
        var bytes = new byte[length];
        int read = 0;
        while (read < bytes.Length)
        {
            int n = RandomAccess.Read(handle, bytes.AsSpan(read), read);
            if (n == 0)
            {
                return bytes[..read]; // shrank while we read: what is there
            }
            read += n;
        }
        return bytes;
    }

    /// <summary>
    /// <see cref="OpenRead"/> as a handle (for a memory map, or reads at offsets): the checks of the kind and, with
    /// <see cref="RandomAccess.GetLength"/>, the size apply to exactly the file that is then read or mapped.
    /// </summary>
    public static SafeFileHandle OpenHandle(string path, bool followLinks = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        var handle = Posix.TryOpenForReading(path, followLinks, out bool isLink);
        if (handle is null)
        {
            if (isLink)
            {
                throw new NotARegularFileException(path, FileKind.SymbolicLink);
            }
            if (OperatingSystem.IsLinux())
            {
                throw new FileNotFoundException($"'{path}' does not exist", path);
            }
            return OpenPortable(path, followLinks);
        }
        var kind = Posix.Describe(handle)!.Value.Kind;
        if (kind != FileKind.Regular)
        {
            handle.Dispose();
            throw new NotARegularFileException(path, kind);
        }
        return handle;
    }

    /// <summary>Where there is no O_NOFOLLOW: the type is checked first, then the file opened (a narrow race, accepted there).</summary>
    private static SafeFileHandle OpenPortable(string path, bool followLinks)
    {
        var kind = KindOf(path);
        if (kind == FileKind.SymbolicLink && followLinks)
        {
            kind = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) is { } target ? KindOf(target.FullName) : FileKind.Missing;
        }
        return kind switch
        {
            FileKind.Regular => File.OpenHandle(path),
            FileKind.Missing => throw new FileNotFoundException($"'{path}' does not exist", path),
            _ => throw new NotARegularFileException(path, kind),
        };
    }
}
