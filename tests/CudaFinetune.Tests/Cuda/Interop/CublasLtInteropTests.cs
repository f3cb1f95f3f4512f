using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>The cuBLASLt bindings' blittable layouts (as cublasLt.h lays them out), version decoding, and the message when the library is absent.</summary>
[TestFixture]
public sealed unsafe class CublasLtInteropTests
{
    [Test]
    public void Handles_are_one_pointer()
    {
        Assert.That(Unsafe.SizeOf<CublasLtHandle>(), Is.EqualTo(IntPtr.Size));
        Assert.That(Unsafe.SizeOf<CublasLtMatmulDesc>(), Is.EqualTo(IntPtr.Size));
        Assert.That(Unsafe.SizeOf<CublasLtMatrixLayout>(), Is.EqualTo(IntPtr.Size));
        Assert.That(Unsafe.SizeOf<CublasLtMatmulPreference>(), Is.EqualTo(IntPtr.Size));
    }

    [Test]
    public void The_algorithm_is_eight_uint64()
    {
        Assert.That(Unsafe.SizeOf<CublasLtMatmulAlgo>(), Is.EqualTo(64));
        Assert.That(sizeof(CublasLtMatmulAlgo), Is.EqualTo(64));
    }

    [Test]
    public void The_heuristic_result_is_laid_out_as_in_cublasLt_h()
    {
        // typedef struct { cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]; }
        Assert.That(Unsafe.SizeOf<CublasLtMatmulHeuristicResult>(), Is.EqualTo(96));
        Assert.That(sizeof(CublasLtMatmulHeuristicResult), Is.EqualTo(96));
        Assert.That(Unsafe.SizeOf<CublasStatus>(), Is.EqualTo(4), "a C enum is an int");

        // The layout the runtime passes (runtime marshalling is disabled, so this is what cuBLASLt reads) ...
        CublasLtMatmulHeuristicResult result = default;
        byte* start = (byte*)&result;
        Assert.That((byte*)&result.Algo - start, Is.Zero);
        Assert.That((byte*)&result.WorkspaceSize - start, Is.EqualTo(64));
        Assert.That((byte*)&result.State - start, Is.EqualTo(72));
        Assert.That((byte*)&result.WavesCount - start, Is.EqualTo(76));
        Assert.That((byte*)&result.Reserved - start, Is.EqualTo(80));

        // ... and the declared sequential layout agrees.
        Assert.That(Marshal.OffsetOf<CublasLtMatmulHeuristicResult>(nameof(CublasLtMatmulHeuristicResult.Algo)), Is.EqualTo((nint)0));
        Assert.That(Marshal.OffsetOf<CublasLtMatmulHeuristicResult>(nameof(CublasLtMatmulHeuristicResult.WorkspaceSize)), Is.EqualTo((nint)64));
        Assert.That(Marshal.OffsetOf<CublasLtMatmulHeuristicResult>(nameof(CublasLtMatmulHeuristicResult.State)), Is.EqualTo((nint)72));
        Assert.That(Marshal.OffsetOf<CublasLtMatmulHeuristicResult>(nameof(CublasLtMatmulHeuristicResult.WavesCount)), Is.EqualTo((nint)76));
        Assert.That(Marshal.OffsetOf<CublasLtMatmulHeuristicResult>(nameof(CublasLtMatmulHeuristicResult.Reserved)), Is.EqualTo((nint)80));
    }

    [TestCase(130100UL, "13.1.0")]
    [TestCase(120604UL, "12.6.4")]
    [TestCase(120905UL, "12.9.5")]
    public void The_version_code_is_major_minor_patch(ulong code, string expected)
        => Assert.That(CublasLt.FormatVersion(code), Is.EqualTo(expected));
}
