using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Interop;

// Every numeric value below is taken from the CUDA headers, read at:
//   cublasLt.h      zspace/system.cuda-12.6 include/cublasLt.h (cuBLAS 12.6.4)
//   cublas_api.h    zspace/system.cuda-12.6 include/cublas_api.h (cuBLAS 12.6.4)
//   library_types.h iree-org/iree build_tools/third_party/cuda/12.2.1/linux-x86_64/include/library_types.h
// Only the values the engine uses are bound. They are ABI (cuBLAS only appends to these enums); no cuBLAS 13
// header was at hand to compare against, so the GPU tests in tests/CudaFinetune.Tests/Cuda/Interop check them on
// their first run with CUDA 13.

/// <summary>A cuBLAS status (cublasStatus_t); 0 is success. Values: cublas_api.h (zspace/system.cuda-12.6 include/cublas_api.h).</summary>
internal enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
    LicenseError = 16,
}

/// <summary>
/// How a matmul multiplies and accumulates (cublasComputeType_t). The engine always accumulates in fp32,
/// whatever the storage type. Values: cublas_api.h (zspace/system.cuda-12.6 include/cublas_api.h).
/// </summary>
internal enum CublasComputeType
{
    /// <summary>CUBLAS_COMPUTE_32F: fp32 multiply-accumulate, no TF32 or bf16 down-conversion of fp32 inputs.</summary>
    Compute32F = 68,
}

/// <summary>
/// Element types of matrices and scalars (cudaDataType_t), as far as the engine stores them.
/// Values: library_types.h (iree-org/iree build_tools/third_party/cuda/12.2.1/linux-x86_64/include/library_types.h).
/// </summary>
internal enum CudaDataType
{
    /// <summary>CUDA_R_32F: float.</summary>
    R32F = 0,

    /// <summary>CUDA_R_16BF: bfloat16.</summary>
    R16BF = 14,
}

/// <summary>Whether an operand is used as stored or transposed (cublasOperation_t). Values: cublas_api.h (zspace/system.cuda-12.6 include/cublas_api.h).</summary>
internal enum CublasOperation
{
    /// <summary>CUBLAS_OP_N.</summary>
    None = 0,

    /// <summary>CUBLAS_OP_T.</summary>
    Transpose = 1,
}

/// <summary>Matmul descriptor attributes the engine sets (cublasLtMatmulDescAttributes_t; each an int32). Values: cublasLt.h (zspace/system.cuda-12.6 include/cublasLt.h).</summary>
internal enum CublasLtMatmulDescAttribute
{
    /// <summary>CUBLASLT_MATMUL_DESC_TRANSA: op(A), a <see cref="CublasOperation"/> as int32.</summary>
    TransA = 3,

    /// <summary>CUBLASLT_MATMUL_DESC_TRANSB: op(B), a <see cref="CublasOperation"/> as int32.</summary>
    TransB = 4,
}

/// <summary>Matrix layout attributes the engine sets (cublasLtMatrixLayoutAttribute_t). Values: cublasLt.h (zspace/system.cuda-12.6 include/cublasLt.h).</summary>
internal enum CublasLtMatrixLayoutAttribute
{
    /// <summary>CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: int32, default 1.</summary>
    BatchCount = 5,

    /// <summary>CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: int64 elements between consecutive matrices of a batch.</summary>
    StridedBatchOffset = 6,
}

/// <summary>Heuristic search preferences the engine sets (cublasLtMatmulPreferenceAttributes_t). Values: cublasLt.h (zspace/system.cuda-12.6 include/cublasLt.h).</summary>
internal enum CublasLtMatmulPreferenceAttribute
{
    /// <summary>CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: uint64, default 0 (no workspace).</summary>
    MaxWorkspaceBytes = 1,

    /// <summary>CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: uint32, default 256.</summary>
    MinAlignmentABytes = 5,

    /// <summary>CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: uint32, default 256.</summary>
    MinAlignmentBBytes = 6,

    /// <summary>CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: uint32, default 256.</summary>
    MinAlignmentCBytes = 7,

    /// <summary>CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: uint32, default 256.</summary>
    MinAlignmentDBytes = 8,
}

/// <summary>A cuBLASLt context (cublasLtHandle_t).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CublasLtHandle(IntPtr Handle);

/// <summary>A matmul operation descriptor (cublasLtMatmulDesc_t).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CublasLtMatmulDesc(IntPtr Handle);

/// <summary>A matrix layout descriptor (cublasLtMatrixLayout_t).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CublasLtMatrixLayout(IntPtr Handle);

/// <summary>A heuristic search preference descriptor (cublasLtMatmulPreference_t).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CublasLtMatmulPreference(IntPtr Handle);

/// <summary>
/// A configured matmul algorithm (cublasLtMatmulAlgo_t: <c>uint64_t data[8]</c>, 64 bytes). Opaque: the
/// heuristic fills it and <see cref="CublasLt.Matmul"/> reads it, so it is kept by value in a plan.
/// </summary>
[InlineArray(8)]
internal struct CublasLtMatmulAlgo
{
    private ulong _data;
}

/// <summary>The four reserved ints closing <see cref="CublasLtMatmulHeuristicResult"/> (<c>int reserved[4]</c>).</summary>
[InlineArray(4)]
internal struct CublasLtReserved4
{
    private int _value;
}

/// <summary>
/// One answer of <see cref="CublasLt.MatmulAlgoGetHeuristic"/> (cublasLtMatmulHeuristicResult_t), laid out
/// exactly as the header: algo (64 bytes) at 0, workspaceSize (size_t) at 64, state (cublasStatus_t) at 72,
/// wavesCount (float) at 76, reserved (int[4]) at 80; 96 bytes in all. Its fields are valid only when
/// <see cref="State"/> is <see cref="CublasStatus.Success"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CublasLtMatmulHeuristicResult
{
    public CublasLtMatmulAlgo Algo;
    public nuint WorkspaceSize;
    public CublasStatus State;
    public float WavesCount;
    public CublasLtReserved4 Reserved;
}

/// <summary>
/// cuBLASLt (libcublasLt.so.13/.12) as far as the engine uses it: the handle, the version and status
/// strings, matmul descriptors, matrix layouts, heuristic preferences, the heuristic and the matmul.
/// Device pointers are <c>void*</c> as in the header (callers pass a CUdeviceptr cast to a pointer);
/// every <see cref="CublasStatus"/> is checked with <see cref="CublasException.ThrowIfFailed"/>.
/// </summary>
internal static unsafe partial class CublasLt
{
    static CublasLt() => LibraryResolver.Register();

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtCreate")]
    public static partial CublasStatus Create(CublasLtHandle* handle);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtDestroy")]
    public static partial CublasStatus Destroy(CublasLtHandle handle);

    /// <summary>The library's version, major * 10000 + minor * 100 + patch (see <see cref="FormatVersion"/>).</summary>
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtGetVersion")]
    public static partial nuint GetVersion();

    /// <summary>The library's description of a status; a static string, never freed.</summary>
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtGetStatusString")]
    public static partial byte* GetStatusString(CublasStatus status);

    // ---- matmul descriptors -----------------------------------------------------------------
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulDescCreate")]
    public static partial CublasStatus MatmulDescCreate(CublasLtMatmulDesc* desc, CublasComputeType computeType, CudaDataType scaleType);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulDescDestroy")]
    public static partial CublasStatus MatmulDescDestroy(CublasLtMatmulDesc desc);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulDescSetAttribute")]
    public static partial CublasStatus MatmulDescSetAttribute(CublasLtMatmulDesc desc, CublasLtMatmulDescAttribute attribute, void* value, nuint bytes);

    // ---- matrix layouts -----------------------------------------------------------------------
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatrixLayoutCreate")]
    public static partial CublasStatus MatrixLayoutCreate(CublasLtMatrixLayout* layout, CudaDataType type, ulong rows, ulong cols, long leadingDimension);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatrixLayoutDestroy")]
    public static partial CublasStatus MatrixLayoutDestroy(CublasLtMatrixLayout layout);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatrixLayoutSetAttribute")]
    public static partial CublasStatus MatrixLayoutSetAttribute(CublasLtMatrixLayout layout, CublasLtMatrixLayoutAttribute attribute, void* value, nuint bytes);

    // ---- heuristic --------------------------------------------------------------------------------
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulPreferenceCreate")]
    public static partial CublasStatus MatmulPreferenceCreate(CublasLtMatmulPreference* preference);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulPreferenceDestroy")]
    public static partial CublasStatus MatmulPreferenceDestroy(CublasLtMatmulPreference preference);

    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulPreferenceSetAttribute")]
    public static partial CublasStatus MatmulPreferenceSetAttribute(CublasLtMatmulPreference preference, CublasLtMatmulPreferenceAttribute attribute, void* value, nuint bytes);

    /// <summary>Up to <paramref name="requested"/> algorithms for the problem, fastest first; <paramref name="returned"/> says how many were written.</summary>
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmulAlgoGetHeuristic")]
    public static partial CublasStatus MatmulAlgoGetHeuristic(CublasLtHandle handle, CublasLtMatmulDesc desc,
        CublasLtMatrixLayout a, CublasLtMatrixLayout b, CublasLtMatrixLayout c, CublasLtMatrixLayout d,
        CublasLtMatmulPreference preference, int requested, CublasLtMatmulHeuristicResult* results, int* returned);

    // ---- the matmul ----------------------------------------------------------------------------------
    /// <summary>D = alpha·op(A)·op(B) + beta·C, enqueued on <paramref name="stream"/>; alpha and beta are host pointers of the scale type.</summary>
    [LibraryImport(NativeLibraries.CublasLt, EntryPoint = "cublasLtMatmul")]
    public static partial CublasStatus Matmul(CublasLtHandle handle, CublasLtMatmulDesc desc,
        void* alpha, void* a, CublasLtMatrixLayout aLayout, void* b, CublasLtMatrixLayout bLayout,
        void* beta, void* c, CublasLtMatrixLayout cLayout, void* d, CublasLtMatrixLayout dLayout,
        CublasLtMatmulAlgo* algo, void* workspace, nuint workspaceBytes, CuStream stream);

    /// <summary>The library's description of a status, or its number when the library cannot say.</summary>
    public static string Describe(CublasStatus status)
    {
        byte* text = GetStatusString(status);
        return text != null
            ? string.Create(CultureInfo.InvariantCulture, $"{Marshal.PtrToStringUTF8((IntPtr)text)} (cublasStatus_t {(int)status})")
            : string.Create(CultureInfo.InvariantCulture, $"cublasStatus_t {(int)status}");
    }

    /// <summary>cublasLtGetVersion's code (major * 10000 + minor * 100 + patch, e.g. 130100) as "13.1.0".</summary>
    public static string FormatVersion(ulong code)
        => string.Create(CultureInfo.InvariantCulture, $"{code / 10000}.{code % 10000 / 100}.{code % 100}");
}

/// <summary>A cuBLASLt call that failed: the call as written, and cuBLASLt's message.</summary>
internal sealed class CublasException : Exception
{
    public CublasException(string message)
        : base(message)
    {
    }

    public CublasException()
    {
    }

    public CublasException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public static void ThrowIfFailed(CublasStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != CublasStatus.Success)
        {
            throw new CublasException($"{call} failed: {CublasLt.Describe(status)}");
        }
    }
}
