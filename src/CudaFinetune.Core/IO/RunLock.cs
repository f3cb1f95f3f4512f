using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.Errors;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.IO;

/// <summary>
/// An output directory's claim by one training process, held for the run's life. The claim is an OS lock on
/// <c>.cudafinetune.lock</c> — on Linux an open-file-description lock (fcntl F_OFD_SETLK), elsewhere the file opened
/// with FileShare.None — so it is atomic: of any number of processes or threads racing for it exactly one wins, and it
/// is released by the OS when its holder dies, so no lock is ever stale. The file's text (pid, host, start times) is
/// information for the message a refused run prints, never the lock itself. Disposing releases it and deletes the file.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = ".cudafinetune.lock";

    /// <summary>Tries before giving up when every claimed file was deleted by its previous holder under us (each try is a fresh open).</summary>
    private const int ClaimAttempts = 100;

    private readonly string _path;
    private readonly SafeFileHandle _handle;
    private bool _released;

    private RunLock(string path, SafeFileHandle handle)
    {
        _path = path;
        _handle = handle;
    }

    /// <summary>Claims <paramref name="outputDir"/> (created if missing); <see cref="UserErrorException"/> when another run holds it.</summary>
    public static RunLock Acquire(string outputDir)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        string path = Path.Combine(outputDir, FileName);
        try
        {
            Directory.CreateDirectory(outputDir);
            for (int attempt = 0; attempt < ClaimAttempts; attempt++)
            {
                var handle = OperatingSystem.IsLinux() ? TryClaimLinux(path) : TryClaimPortable(path);
                if (handle is not null)
                {
                    var runLock = new RunLock(path, handle);
                    runLock.WriteOwner();
                    return runLock;
                }
                if (HolderOf(path, out string? holder))
                {
                    throw InUse(outputDir, holder);
                }
            }
        }
        catch (IOException e) when (IoErrors.IsDiskFull(e))
        {
            throw new UserErrorException($"cannot start a run in --output-dir '{outputDir}': no space left on the device (free some space, or choose another --output-dir)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"cannot claim --output-dir '{outputDir}': {e.Message}");
        }
        throw new UserErrorException($"could not claim --output-dir '{outputDir}': {path} was replaced {ClaimAttempts} times while claiming it (several runs are starting there)");
    }

    /// <summary>Refuses, with the holder named, to <paramref name="doing"/> in an output directory a run holds now.</summary>
    public static void ThrowIfHeld(string outputDir, string doing)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        if (Holder(outputDir) is { } holder)
        {
            throw new UserErrorException($"cannot {doing} '{outputDir}': {holder} is training there; wait for it to finish or stop it first");
        }
    }

    /// <summary>Who holds <paramref name="outputDir"/> now ("process 123 on host (since …)"), or null when no run does.</summary>
    public static string? Holder(string outputDir)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        return HolderOf(Path.Combine(outputDir, FileName), out string? holder) ? holder : null;
    }

    /// <summary>Opens (creating) the lock file and locks it; null when someone else holds it or it was deleted under us.</summary>
    private static SafeFileHandle? TryClaimLinux(string path)
    {
        var handle = Posix.OpenOrCreateNoFollow(path);
        // The previous holder deletes the file while it still holds the lock; whoever opened that file before the
        // delete and locks it after must see that the name now leads elsewhere (or nowhere), and try again.
        if (Posix.TryLockExclusive(handle) && Posix.Describe(handle)!.Value.Identity == Posix.IdentityOf(path))
        {
            return handle;
        }
        handle.Dispose();
        return null;
    }

    private static SafeFileHandle? TryClaimPortable(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (!IoErrors.IsDiskFull(e))
        {
            return null; // held by another process
        }
    }

    /// <summary>Whether a live run holds the lock file at <paramref name="path"/>, and what it says about its owner.</summary>
    private static bool HolderOf(string path, out string? holder)
    {
        holder = null;
        if (OperatingSystem.IsLinux())
        {
            using var handle = Posix.TryOpenForReading(path, followLinks: false, out _);
            if (handle is null || !Posix.IsLocked(handle))
            {
                return false;
            }
            holder = DescribeOwner(ReadOwnerText(handle));
            return true;
        }
        try
        {
            using var probe = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false; // nobody holds it
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            holder = "another process";
            return true;
        }
    }

    private static string ReadOwnerText(SafeFileHandle handle)
    {
        var bytes = new byte[4096];
        int read = RandomAccess.Read(handle, bytes, 0);
        return Encoding.UTF8.GetString(bytes, 0, read);
    }

    /// <summary>"process 123 on host (training since …)" from the owner's record; "another process" while it is still being written.</summary>
    private static string DescribeOwner(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            string since = root.TryGetProperty("acquired_utc", out var a) ? $" (training since {a.GetString()})" : "";
            return $"process {root.GetProperty("pid").GetInt32()} on {root.GetProperty("host").GetString()}{since}";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return "another process"; // the owner has not written its record yet
        }
    }

    private static UserErrorException InUse(string outputDir, string? holder)
        => new($"--output-dir '{outputDir}' is in use by {holder ?? "another process"}; wait for it to finish, stop it, or choose another --output-dir");

    /// <summary>Writes who holds the lock into the lock file (information only).</summary>
    private void WriteOwner()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        using (var me = Process.GetCurrentProcess())
        {
            json.WriteStartObject();
            json.WriteNumber("pid", Environment.ProcessId);
            json.WriteString("host", Environment.MachineName);
            json.WriteString("process_started_utc", me.StartTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            json.WriteString("acquired_utc", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            json.WriteEndObject();
        }
        RandomAccess.SetLength(_handle, 0);
        RandomAccess.Write(_handle, buffer.ToArray(), 0);
    }

    public void Dispose()
    {
        if (_released)
        {
            return;
        }
        _released = true;
        try
        {
            File.Delete(_path); // while still locked, so no one can claim the file that is about to vanish
        }
        catch (IOException)
        {
            // Left behind: harmless, the lock is what counts and it goes with the handle.
        }
        catch (UnauthorizedAccessException)
        {
        }
        _handle.Dispose();
    }
}
