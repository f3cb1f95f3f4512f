namespace CudaFinetune.IO;

/// <summary>
/// Writes a file so that its final name only ever holds a complete file: the content goes to a
/// temporary file in the same directory (same file system, so the rename is atomic), is flushed to
/// disk, and is then renamed over the target. A crash or an exception part-way leaves the previous
/// file (if any) untouched and no half-written file under the final name.
/// </summary>
internal static class AtomicFile
{
    private static readonly System.Buffers.SearchValues<char> HexDigits = System.Buffers.SearchValues.Create("0123456789abcdef");

    public static void Write(string path, Action<FileStream> writeContent)
    {
        ArgumentNullException.ThrowIfNull(writeContent);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? throw new ArgumentException($"'{path}' has no directory", nameof(path));
        string temporary = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                writeContent(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Deletes the temporary files that writes into <paramref name="directory"/> left when their process was killed
    /// (<c>.NAME.GUID.tmp</c>); call it only while no write there can be under way (the run's lock held).
    /// </summary>
    public static void RemoveLeftovers(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return;
        }
        foreach (string file in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            if (IsLeftover(Path.GetFileName(file)))
            {
                TryDelete(file);
            }
        }
    }

    /// <summary>Whether <paramref name="name"/> has the form of this class's temporary files: <c>.NAME.</c> 32 hex digits <c>.tmp</c>.</summary>
    private static bool IsLeftover(string name)
    {
        const int guidDigits = 32;
        if (!name.StartsWith('.') || !name.EndsWith(".tmp", StringComparison.Ordinal) || name.Length < 1 + 1 + 1 + guidDigits + 4)
        {
            return false;
        }
        var guid = name.AsSpan(name.Length - 4 - guidDigits, guidDigits);
        return name[name.Length - 5 - guidDigits] == '.' && !guid.ContainsAnyExcept(HexDigits);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // The original failure is the one worth reporting; a stray temporary file is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
