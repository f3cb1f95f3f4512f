using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Interop;

/// <summary>The version queries of cuBLASLt and NCCL (their full bindings come with the kernels and the process groups).</summary>
internal static unsafe partial class LibraryVersions
{
    static LibraryVersions() => LibraryResolver.Register();

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtGetVersion")]
    public static partial nuint CublasLtGetVersion();

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetVersion")]
    public static partial int NcclGetVersion(int* version);
}
