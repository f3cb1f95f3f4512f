using System.Runtime.InteropServices;

namespace CudaFinetune.Tests.Support;

/// <summary>Named pipes for tests of readers that must refuse them rather than wait for a writer that never comes.</summary>
internal static partial class Fifos
{
    /// <summary>Creates a FIFO at <paramref name="path"/> (Linux).</summary>
    public static void Make(string path)
    {
        if (MakeFifo(path, Convert.ToInt32("644", 8)) != 0)
        {
            throw new IOException($"mkfifo '{path}' failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MakeFifo(string path, int mode);
}
