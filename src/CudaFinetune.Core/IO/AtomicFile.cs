namespace CudaFinetune.IO;

/// <summary>
/// Writes a file so that its final name only ever holds a complete file: the content goes to a
/// temporary file in the same directory (same file system, so the rename is atomic), is flushed to
/// disk, and is then renamed over the target. A crash or an exception part-way leaves the previous
/// file (if any) untouched and no half-written file under the final name.
/// </summary>
internal static class AtomicFile
{
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
