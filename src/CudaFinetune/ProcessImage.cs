using System.Runtime.InteropServices;
using System.Text;

namespace CudaFinetune.Cli;

/// <summary>
/// Replaces the running program with another (execve): the process keeps its id, open terminal, parent and signals, so
/// to a shell, a launcher or a lock file nothing changed hands. Linux only.
/// </summary>
internal static unsafe partial class ProcessImage
{
    /// <summary>Runs <paramref name="path"/> in this process; returns only when that failed, with the reason.</summary>
    public static string Replace(string path, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        if (!OperatingSystem.IsLinux())
        {
            return "replacing the process is done on Linux only";
        }
        var strings = new List<IntPtr>();
        try
        {
            byte** argv = NullTerminated(arguments, strings);
            byte** envp = NullTerminated([.. environment.Select(kv => $"{kv.Key}={kv.Value}")], strings);
            byte* file = Utf8(path, strings);
            _ = Execve(file, argv, envp);
            return $"execve of '{path}' failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}";
        }
        finally
        {
            strings.ForEach(p => NativeMemory.Free((void*)p));
        }
    }

    /// <summary>Runs this very program again, with the same command line (the runtime host's too) and <paramref name="environment"/>.</summary>
    public static string Restart(IReadOnlyDictionary<string, string> environment)
    {
        if (!OperatingSystem.IsLinux())
        {
            return "restarting the process is done on Linux only";
        }
        string[] commandLine;
        try
        {
            commandLine = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException e)
        {
            return $"cannot read this process's command line: {e.Message}";
        }
        return Replace("/proc/self/exe", commandLine, environment);
    }

    private static byte** NullTerminated(IReadOnlyList<string> values, List<IntPtr> owned)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(values.Count + 1), (nuint)sizeof(byte*));
        owned.Add((IntPtr)array);
        for (int i = 0; i < values.Count; i++)
        {
            array[i] = Utf8(values[i], owned);
        }
        return array;
    }

    private static byte* Utf8(string value, List<IntPtr> owned)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        var bytes = (byte*)NativeMemory.AllocZeroed((nuint)length + 1);
        owned.Add((IntPtr)bytes);
        Encoding.UTF8.GetBytes(value, new Span<byte>(bytes, length));
        return bytes;
    }

    [LibraryImport("libc", EntryPoint = "execve", SetLastError = true)]
    private static partial int Execve(byte* path, byte** argv, byte** envp);
}
