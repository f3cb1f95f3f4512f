using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Interop;

// Every numeric value below is taken from NCCL's public header, read at
// NVIDIA/nccl src/nccl.h.in (the template of nccl.h; commit 021e8045ff77a8a9fba909617a0129d3c3d44def).
// These enums are ABI: NCCL only appends to them.

/// <summary>An NCCL status (ncclResult_t); 0 is success. Values: nccl.h (NVIDIA/nccl src/nccl.h.in).</summary>
internal enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    RemoteError = 6,
    InProgress = 7,
    Timeout = 8,
}

/// <summary>Element types NCCL reduces and moves (ncclDataType_t), as far as the engine stores them. Values: nccl.h (NVIDIA/nccl src/nccl.h.in).</summary>
internal enum NcclDataType
{
    /// <summary>ncclInt32.</summary>
    Int32 = 2,

    /// <summary>ncclFloat32.</summary>
    Float32 = 7,

    /// <summary>ncclFloat64.</summary>
    Float64 = 8,

    /// <summary>ncclBfloat16 (NCCL 2.10 and later).</summary>
    BFloat16 = 9,
}

/// <summary>Built-in reductions (ncclRedOp_t). Values: nccl.h (NVIDIA/nccl src/nccl.h.in).</summary>
internal enum NcclRedOp
{
    Sum = 0,
    Prod = 1,
    Max = 2,
    Min = 3,

    /// <summary>ncclAvg: the sum divided by the number of ranks (NCCL 2.10 and later).</summary>
    Avg = 4,
}

/// <summary>A communicator (ncclComm_t).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct NcclComm(IntPtr Handle);

/// <summary>
/// The rendezvous token every rank of a communicator shares (ncclUniqueId: <c>char internal[NCCL_UNIQUE_ID_BYTES]</c>,
/// NCCL_UNIQUE_ID_BYTES = 128). Rank 0 creates it and hands the bytes to the other ranks by any means; it is
/// passed to ncclCommInitRank by value.
/// </summary>
[InlineArray(Nccl.UniqueIdBytes)]
internal struct NcclUniqueId
{
    private byte _internal;
}

/// <summary>
/// NCCL (libnccl.so.2) as far as the engine uses it: version, unique ids, communicators (init, destroy, abort,
/// asynchronous errors, size and rank), the collectives of data-parallel training (all-reduce, reduce-scatter,
/// all-gather, broadcast) and group calls. Device buffers are <c>void*</c> as in the header; every
/// <see cref="NcclResult"/> is checked with <see cref="NcclException.ThrowIfFailed"/>.
/// </summary>
internal static unsafe partial class Nccl
{
    /// <summary>NCCL_UNIQUE_ID_BYTES (nccl.h).</summary>
    public const int UniqueIdBytes = 128;

    static Nccl() => LibraryResolver.Register();

    /// <summary>NCCL_VERSION_CODE of the loaded library (see <see cref="FormatVersion"/>).</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetVersion")]
    public static partial NcclResult GetVersion(int* version);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetUniqueId")]
    public static partial NcclResult GetUniqueId(NcclUniqueId* uniqueId);

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="ranks"/> to the communicator; blocks until every rank has joined. Uses the current CUDA device.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommInitRank")]
    public static partial NcclResult CommInitRank(NcclComm* comm, int ranks, NcclUniqueId uniqueId, int rank);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommDestroy")]
    public static partial NcclResult CommDestroy(NcclComm comm);

    /// <summary>Frees the communicator and aborts whatever it still has running on the device: the way out after an error.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommAbort")]
    public static partial NcclResult CommAbort(NcclComm comm);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommGetAsyncError")]
    public static partial NcclResult CommGetAsyncError(NcclComm comm, NcclResult* asyncError);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommCount")]
    public static partial NcclResult CommCount(NcclComm comm, int* count);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommUserRank")]
    public static partial NcclResult CommUserRank(NcclComm comm, int* rank);

    // ---- collectives (enqueued on the stream; in place when the buffers coincide as documented) --------
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclAllReduce")]
    public static partial NcclResult AllReduce(void* send, void* receive, nuint count, NcclDataType type, NcclRedOp op, NcclComm comm, CuStream stream);

    /// <summary>Rank i receives block i (of <paramref name="receiveCount"/> elements) of the reduction; send holds ranks × receiveCount.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclReduceScatter")]
    public static partial NcclResult ReduceScatter(void* send, void* receive, nuint receiveCount, NcclDataType type, NcclRedOp op, NcclComm comm, CuStream stream);

    /// <summary>Every rank receives ranks × <paramref name="sendCount"/> elements, rank i's at offset i × sendCount.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclAllGather")]
    public static partial NcclResult AllGather(void* send, void* receive, nuint sendCount, NcclDataType type, NcclComm comm, CuStream stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclBroadcast")]
    public static partial NcclResult Broadcast(void* send, void* receive, nuint count, NcclDataType type, int root, NcclComm comm, CuStream stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGroupStart")]
    public static partial NcclResult GroupStart();

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGroupEnd")]
    public static partial NcclResult GroupEnd();

    // ---- errors -----------------------------------------------------------------------------------------
    /// <summary>The library's name for a status; a static string, never freed.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetErrorString")]
    public static partial byte* GetErrorString(NcclResult result);

    /// <summary>A human-readable account of the last error (NCCL 2.13 and later); <paramref name="comm"/> may be null.</summary>
    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetLastError")]
    public static partial byte* GetLastError(NcclComm comm);

    /// <summary>The library's description of a status, with its account of the last error where the library has one.</summary>
    public static string Describe(NcclResult result)
    {
        byte* text = GetErrorString(result);
        string message = text != null
            ? string.Create(CultureInfo.InvariantCulture, $"{Marshal.PtrToStringUTF8((IntPtr)text)} (ncclResult_t {(int)result})")
            : string.Create(CultureInfo.InvariantCulture, $"ncclResult_t {(int)result}");
        string? last = LastError();
        return string.IsNullOrWhiteSpace(last) ? message : $"{message}: {last.Trim()}";
    }

    private static string? LastError()
    {
        try
        {
            byte* text = GetLastError(default);
            return text != null ? Marshal.PtrToStringUTF8((IntPtr)text) : null;
        }
        catch (EntryPointNotFoundException)
        {
            return null; // NCCL before 2.13 has only the status name
        }
    }

    /// <summary>
    /// NCCL_VERSION_CODE as "major.minor.patch". NCCL encodes major * 10000 + minor * 100 + patch from 2.9 on
    /// (21903 is 2.19.3) and major * 1000 + minor * 100 + patch up to 2.8 (2708 is 2.7.8); see NCCL_VERSION in nccl.h.
    /// </summary>
    public static string FormatVersion(int code)
        => code >= 10000
            ? string.Create(CultureInfo.InvariantCulture, $"{code / 10000}.{code % 10000 / 100}.{code % 100}")
            : string.Create(CultureInfo.InvariantCulture, $"{code / 1000}.{code % 1000 / 100}.{code % 100}");
}

/// <summary>An NCCL call that failed: the call as written, and NCCL's message.</summary>
internal sealed class NcclException : Exception
{
    public NcclException(string message)
        : base(message)
    {
    }

    public NcclException()
    {
    }

    public NcclException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public static void ThrowIfFailed(NcclResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != NcclResult.Success)
        {
            throw new NcclException($"{call} failed: {Nccl.Describe(result)}");
        }
    }
}
