namespace CudaFinetune.Cuda.Interop;

/// <summary>
/// The native libraries the CUDA backend binds to, in one place: the name our
/// <c>[LibraryImport]</c>s use, and the versioned file names tried for it, newest first.
/// </summary>
internal static class NativeLibraries
{
    public const string Driver = "cuda";
    public const string CublasLt = "cublasLt";
    public const string Nccl = "nccl";

    /// <summary>Versioned sonames per import name (Linux; Windows names where they exist).</summary>
    public static IReadOnlyList<string> FileNames(string library) => library switch
    {
        Driver => OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"],
        CublasLt => OperatingSystem.IsWindows() ? ["cublasLt64_13.dll", "cublasLt64_12.dll"] : ["libcublasLt.so.13", "libcublasLt.so.12"],
        Nccl => ["libnccl.so.2"],
        _ => throw new ArgumentOutOfRangeException(nameof(library), library, "not a library of the CUDA backend"),
    };

    /// <summary>The pip package folder (under site-packages/nvidia/) that ships the library, if any.</summary>
    public static string? PipPackage(string library) => library switch
    {
        CublasLt => "cublas",
        Nccl => "nccl",
        _ => null, // the driver comes with the GPU driver, never from pip
    };
}
