using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CudaFinetune.Errors;

namespace CudaFinetune.IO;

/// <summary>
/// An output directory's claim by one training process: <c>.cudafinetune.lock</c>, created exclusively, names the
/// owner (pid, host, the process's start time). A second run on the same directory is refused, naming the owner; a
/// lock whose owner is gone — not running on this host, or its pid now belongs to a process started later (a reused
/// pid) — is stale and taken over. Disposing releases it.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = ".cudafinetune.lock";

    private readonly string _path;
    private bool _released;

    private RunLock(string path) => _path = path;

    /// <summary>Claims <paramref name="outputDir"/> (created if missing); <see cref="UserErrorException"/> when a live process holds it.</summary>
    public static RunLock Acquire(string outputDir)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        Directory.CreateDirectory(outputDir);
        string path = Path.Combine(outputDir, FileName);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                using var json = new Utf8JsonWriter(stream);
                using var me = Process.GetCurrentProcess();
                json.WriteStartObject();
                json.WriteNumber("pid", Environment.ProcessId);
                json.WriteString("host", Environment.MachineName);
                json.WriteString("process_started_utc", me.StartTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
                json.WriteString("acquired_utc", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
                json.WriteEndObject();
                return new RunLock(path);
            }
            catch (IOException) when (File.Exists(path))
            {
                var owner = ReadOwner(path);
                if (owner is { } o && IsAlive(o))
                {
                    throw new UserErrorException($"--output-dir '{outputDir}' is in use by process {o.Pid} on {o.Host} (training since {o.Acquired}); "
                        + $"wait for it to finish, stop it, or choose another --output-dir (if that process is gone, delete {path})");
                }
                File.Delete(path); // stale: its owner is gone
            }
        }
        throw new UserErrorException($"could not claim --output-dir '{outputDir}': {path} keeps reappearing (another run is starting there)");
    }

    private sealed record Owner(int Pid, string Host, DateTime? ProcessStarted, string Acquired);

    private static Owner? ReadOwner(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            DateTime? started = root.TryGetProperty("process_started_utc", out var s) && DateTime.TryParse(s.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : null;
            return new Owner(root.GetProperty("pid").GetInt32(), root.GetProperty("host").GetString() ?? "", started,
                root.TryGetProperty("acquired_utc", out var a) ? a.GetString() ?? "?" : "?");
        }
        catch (Exception e) when (e is JsonException or IOException or KeyNotFoundException or InvalidOperationException or UnauthorizedAccessException)
        {
            return null; // half-written or damaged: treated as stale
        }
    }

    /// <summary>Whether the owner still runs: on another host we cannot tell, so yes; here, its pid must run a process started when it was.</summary>
    private static bool IsAlive(Owner owner)
    {
        if (!string.Equals(owner.Host, Environment.MachineName, StringComparison.Ordinal))
        {
            return true;
        }
        try
        {
            using var process = Process.GetProcessById(owner.Pid);
            return owner.ProcessStarted is not { } started || Math.Abs((process.StartTime.ToUniversalTime() - started).TotalSeconds) < 2;
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
        catch (InvalidOperationException)
        {
            return false; // it exited while we looked
        }
    }

    public void Dispose()
    {
        if (!_released)
        {
            _released = true;
            try
            {
                File.Delete(_path);
            }
            catch (IOException)
            {
                // Left behind: the next run sees its owner gone and takes it over.
            }
        }
    }
}
