namespace CudaFinetune.IO;

/// <summary>Telling I/O failures apart where the message a user gets depends on the cause.</summary>
public static class IoErrors
{
    private const int NoSpaceErrno = 28; // ENOSPC on Linux and macOS; .NET puts the raw errno in HResult there
    private const int DiskFullWindows = unchecked((int)0x80070070); // ERROR_DISK_FULL
    private const int HandleDiskFullWindows = unchecked((int)0x80070027); // ERROR_HANDLE_DISK_FULL

    /// <summary>Whether <paramref name="e"/> (or an exception inside it) says the device has no space left.</summary>
    public static bool IsDiskFull(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is IOException && e.HResult is NoSpaceErrno or DiskFullWindows or HandleDiskFullWindows)
            {
                return true;
            }
        }
        return false;
    }
}
