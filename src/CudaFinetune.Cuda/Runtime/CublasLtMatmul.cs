using System.Globalization;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Errors;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// One matmul problem as cuBLASLt sees it, column-major: D[M×N] = alpha·op(A)·op(B) + beta·C, op(A) M×K and
/// op(B) K×N, each matrix stored column-major with its leading dimension (the distance between columns, in
/// elements) and, for a strided batch, the distance between consecutive matrices. It is the key of
/// <see cref="CublasLtMatmul"/>'s plan cache, so everything that shapes the descriptors and the algorithm is in it.
/// <para>
/// Row-major data (the engine's) maps onto it without copies: a row-major matrix read column-major is its
/// transpose, so row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ — swap the operands and M with N,
/// keep the transpose flags. <see cref="FromRowMajor"/> builds that shape and <see cref="CublasLtMatmul.RunRowMajor"/>
/// passes the operands swapped.
/// </para>
/// </summary>
internal readonly record struct MatmulShape(
    int M, int N, int K,
    bool TransposeA, bool TransposeB,
    CudaDataType InputType, CudaDataType OutputType,
    long Lda, long Ldb, long Ldc,
    int BatchCount, long StrideA, long StrideB, long StrideC)
{
    /// <summary>Rows and columns of A as stored (K×M when transposed).</summary>
    public (int Rows, int Cols) StoredA => TransposeA ? (K, M) : (M, K);

    /// <summary>Rows and columns of B as stored (N×K when transposed).</summary>
    public (int Rows, int Cols) StoredB => TransposeB ? (N, K) : (K, N);

    /// <summary>A column-major problem on packed matrices: each leading dimension is its stored row count, each batch stride its size.</summary>
    public static MatmulShape ColumnMajor(int m, int n, int k, bool transposeA, bool transposeB, CudaDataType input, CudaDataType output, int batchCount = 1)
    {
        long lda = transposeA ? k : m, ldb = transposeB ? n : k;
        bool batched = batchCount > 1;
        return new MatmulShape(m, n, k, transposeA, transposeB, input, output, lda, ldb, m, batchCount,
            batched ? (long)m * k : 0, batched ? (long)k * n : 0, batched ? (long)m * n : 0);
    }

    /// <summary>
    /// The column-major problem that computes the row-major C[m×n] = op(A)·op(B) on packed row-major matrices
    /// (A stored m×k, or k×m when <paramref name="transposeA"/>; B stored k×n, or n×k): Cᵀ = op(B)ᵀ·op(A)ᵀ.
    /// Its A is the caller's B and its B the caller's A — run it with the operands swapped.
    /// </summary>
    public static MatmulShape FromRowMajor(int m, int n, int k, bool transposeA, bool transposeB, CudaDataType input, CudaDataType output, int batchCount = 1)
    {
        // A row-major matrix's row length is the leading dimension of the column-major matrix it is read as.
        long rowLengthA = transposeA ? m : k, rowLengthB = transposeB ? k : n;
        bool batched = batchCount > 1;
        return new MatmulShape(n, m, k, transposeB, transposeA, input, output, rowLengthB, rowLengthA, n, batchCount,
            batched ? (long)k * n : 0, batched ? (long)m * k : 0, batched ? (long)m * n : 0);
    }

    /// <summary>Throws for an impossible shape (ArgumentException) or a type pair cuBLASLt is not asked for here (NotSupportedException).</summary>
    public void Validate()
    {
        if (M < 1 || N < 1 || K < 1 || BatchCount < 1)
        {
            throw new ArgumentException($"a matmul needs M, N, K and the batch count at least 1: {this}");
        }
        if (Lda < StoredA.Rows || Ldb < StoredB.Rows || Ldc < M)
        {
            throw new ArgumentException($"a leading dimension is below its matrix's stored row count (A {StoredA.Rows}, B {StoredB.Rows}, C {M}): {this}");
        }
        if (StrideA < 0 || StrideB < 0 || StrideC < 0)
        {
            throw new ArgumentException($"batch strides cannot be negative: {this}");
        }
        if ((InputType, OutputType) is not ((CudaDataType.R32F, CudaDataType.R32F) or (CudaDataType.R16BF, CudaDataType.R16BF) or (CudaDataType.R16BF, CudaDataType.R32F)))
        {
            throw new NotSupportedException($"matmuls take fp32 inputs to an fp32 output, or bf16 inputs to a bf16 or fp32 output; not {InputType} to {OutputType}");
        }
    }
}

/// <summary>What cuBLASLt needs for one <see cref="MatmulShape"/>, made once: the descriptor, the layouts and the heuristic's algorithm.</summary>
internal sealed class MatmulPlan
{
    internal CublasLtMatmulDesc Desc;
    internal CublasLtMatrixLayout A;
    internal CublasLtMatrixLayout B;

    /// <summary>The layout of C and of D (they share type, shape and leading dimension).</summary>
    internal CublasLtMatrixLayout C;

    internal CublasLtMatmulAlgo Algo;
    internal nuint WorkspaceBytes;

    /// <summary>Destroys whatever was created; teardown, so failures are ignored.</summary>
    internal void Destroy()
    {
        if (C.Handle != IntPtr.Zero)
        {
            _ = CublasLt.MatrixLayoutDestroy(C);
        }
        if (B.Handle != IntPtr.Zero)
        {
            _ = CublasLt.MatrixLayoutDestroy(B);
        }
        if (A.Handle != IntPtr.Zero)
        {
            _ = CublasLt.MatrixLayoutDestroy(A);
        }
        if (Desc.Handle != IntPtr.Zero)
        {
            _ = CublasLt.MatmulDescDestroy(Desc);
        }
        (Desc, A, B, C) = (default, default, default, default);
    }
}

/// <summary>
/// Matrix multiplies through cuBLASLt: a handle, a workspace (borrowed, or allocated here and freed on
/// <see cref="Dispose"/>), and a plan per distinct <see cref="MatmulShape"/> — descriptor, layouts and the
/// algorithm the heuristic picked — made on first use and cached, so a repeated shape allocates nothing and
/// asks the heuristic once. fp32 or bf16 inputs, fp32 accumulation, fp32 or bf16 output, strided batches.
/// Device pointers must be 16-byte aligned (the heuristic is told so). Needs the device's context current;
/// used from one thread at a time.
/// </summary>
internal sealed unsafe class CublasLtMatmul : IDisposable
{
    /// <summary>The workspace <see cref="Create"/> allocates when not told otherwise (what cuBLAS uses on Hopper).</summary>
    public const int DefaultWorkspaceBytes = 32 << 20;

    /// <summary>The pointer alignment promised to the heuristic and checked on every run.</summary>
    public const int PointerAlignment = 16;

    private readonly CublasLtHandle _handle;
    private readonly ulong _workspace;
    private readonly nuint _workspaceBytes;
    private readonly bool _ownsWorkspace;
    private readonly Dictionary<MatmulShape, MatmulPlan> _plans = [];
    private bool _disposed;

    private CublasLtMatmul(CublasLtHandle handle, ulong workspace, nuint workspaceBytes, bool ownsWorkspace)
    {
        _handle = handle;
        _workspace = workspace;
        _workspaceBytes = workspaceBytes;
        _ownsWorkspace = ownsWorkspace;
    }

    /// <summary>How many times the heuristic was asked (once per distinct shape).</summary>
    public int HeuristicCalls { get; private set; }

    /// <summary>How many plans are cached.</summary>
    public int PlanCount => _plans.Count;

    /// <summary>With a workspace of <paramref name="workspaceBytes"/> allocated on the current context and freed on <see cref="Dispose"/>.</summary>
    public static CublasLtMatmul Create(int workspaceBytes = DefaultWorkspaceBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workspaceBytes);
        RequireLibrary();
        ulong workspace = 0;
        if (workspaceBytes > 0)
        {
            CudaException.ThrowIfFailed(CudaDriver.MemAlloc(&workspace, (nuint)workspaceBytes));
        }
        try
        {
            return new CublasLtMatmul(CreateHandle(), workspace, (nuint)workspaceBytes, ownsWorkspace: true);
        }
        catch
        {
            if (workspace != 0)
            {
                _ = CudaDriver.MemFree(workspace);
            }
            throw;
        }
    }

    /// <summary>With a workspace the caller owns and keeps alive (and unused by concurrent work) while this lives.</summary>
    public static CublasLtMatmul WithWorkspace(ulong workspace, nuint workspaceBytes)
    {
        if (workspace == 0 && workspaceBytes != 0)
        {
            throw new ArgumentException("a workspace of non-zero size needs a device pointer", nameof(workspace));
        }
        RequireLibrary();
        return new CublasLtMatmul(CreateHandle(), workspace, workspaceBytes, ownsWorkspace: false);
    }

    /// <summary>
    /// D = alpha·op(A)·op(B) + beta·C in cuBLASLt's column-major terms (see <see cref="MatmulShape"/>), enqueued on
    /// <paramref name="stream"/>. C may be D (in place); with beta = 0, C is not read.
    /// </summary>
    public void Run(in MatmulShape shape, float alpha, ulong a, ulong b, float beta, ulong c, ulong d, CuStream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (((a | b | c | d) & (PointerAlignment - 1)) != 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"matmul operands must be {PointerAlignment}-byte aligned: A 0x{a:x}, B 0x{b:x}, C 0x{c:x}, D 0x{d:x}"));
        }
        var plan = Plan(shape);
        fixed (CublasLtMatmulAlgo* algo = &plan.Algo)
        {
            CublasException.ThrowIfFailed(CublasLt.Matmul(_handle, plan.Desc, &alpha, (void*)a, plan.A, (void*)b, plan.B,
                &beta, (void*)c, plan.C, (void*)d, plan.C, algo, (void*)_workspace, _workspaceBytes, stream));
        }
    }

    /// <summary>
    /// The row-major C[m×n] = alpha·op(A)·op(B) + beta·C on packed row-major matrices (A m×k or, transposed, k×m;
    /// B k×n or n×k): runs <see cref="MatmulShape.FromRowMajor"/>'s shape with A and B swapped.
    /// </summary>
    public void RunRowMajor(int m, int n, int k, bool transposeA, bool transposeB, CudaDataType input, CudaDataType output,
        float alpha, ulong a, ulong b, float beta, ulong c, ulong d, CuStream stream, int batchCount = 1)
        => Run(MatmulShape.FromRowMajor(m, n, k, transposeA, transposeB, input, output, batchCount), alpha, b, a, beta, c, d, stream);

    /// <summary>The cached plan for <paramref name="shape"/>, made (and the heuristic asked) the first time.</summary>
    internal MatmulPlan Plan(in MatmulShape shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_plans.TryGetValue(shape, out var known))
        {
            return known;
        }
        shape.Validate();
        var plan = new MatmulPlan();
        try
        {
            CublasLtMatmulDesc desc;
            CublasException.ThrowIfFailed(CublasLt.MatmulDescCreate(&desc, CublasComputeType.Compute32F, CudaDataType.R32F));
            plan.Desc = desc;
            int transA = (int)(shape.TransposeA ? CublasOperation.Transpose : CublasOperation.None);
            int transB = (int)(shape.TransposeB ? CublasOperation.Transpose : CublasOperation.None);
            CublasException.ThrowIfFailed(CublasLt.MatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransA, &transA, sizeof(int)));
            CublasException.ThrowIfFailed(CublasLt.MatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransB, &transB, sizeof(int)));
            plan.A = Layout(shape.InputType, shape.StoredA.Rows, shape.StoredA.Cols, shape.Lda, shape.BatchCount, shape.StrideA);
            plan.B = Layout(shape.InputType, shape.StoredB.Rows, shape.StoredB.Cols, shape.Ldb, shape.BatchCount, shape.StrideB);
            plan.C = Layout(shape.OutputType, shape.M, shape.N, shape.Ldc, shape.BatchCount, shape.StrideC);
            var chosen = Heuristic(plan, shape);
            plan.Algo = chosen.Algo;
            plan.WorkspaceBytes = chosen.WorkspaceSize;
        }
        catch
        {
            plan.Destroy();
            throw;
        }
        _plans[shape] = plan;
        return plan;
    }

    private CublasLtMatmulHeuristicResult Heuristic(MatmulPlan plan, in MatmulShape shape)
    {
        CublasLtMatmulPreference preference;
        CublasException.ThrowIfFailed(CublasLt.MatmulPreferenceCreate(&preference));
        try
        {
            ulong maxWorkspace = _workspaceBytes;
            CublasException.ThrowIfFailed(CublasLt.MatmulPreferenceSetAttribute(preference, CublasLtMatmulPreferenceAttribute.MaxWorkspaceBytes, &maxWorkspace, sizeof(ulong)));
            uint alignment = PointerAlignment;
            foreach (var attribute in (ReadOnlySpan<CublasLtMatmulPreferenceAttribute>)[CublasLtMatmulPreferenceAttribute.MinAlignmentABytes,
                CublasLtMatmulPreferenceAttribute.MinAlignmentBBytes, CublasLtMatmulPreferenceAttribute.MinAlignmentCBytes, CublasLtMatmulPreferenceAttribute.MinAlignmentDBytes])
            {
                CublasException.ThrowIfFailed(CublasLt.MatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof(uint)));
            }
            CublasLtMatmulHeuristicResult result = default;
            int returned = 0;
            var status = CublasLt.MatmulAlgoGetHeuristic(_handle, plan.Desc, plan.A, plan.B, plan.C, plan.C, preference, 1, &result, &returned);
            HeuristicCalls++;
            if (status == CublasStatus.NotSupported || (status == CublasStatus.Success && (returned < 1 || result.State != CublasStatus.Success)))
            {
                string why = status != CublasStatus.Success ? CublasLt.Describe(status)
                    : returned < 1 ? "no algorithm returned" : CublasLt.Describe(result.State);
                throw new CublasException(string.Create(CultureInfo.InvariantCulture,
                    $"cuBLASLt has no matmul algorithm for {shape} within {_workspaceBytes} bytes of workspace and {PointerAlignment}-byte alignment on this GPU ({why})"));
            }
            CublasException.ThrowIfFailed(status, "cublasLtMatmulAlgoGetHeuristic");
            return result;
        }
        finally
        {
            _ = CublasLt.MatmulPreferenceDestroy(preference);
        }
    }

    private static CublasLtMatrixLayout Layout(CudaDataType type, int rows, int cols, long leadingDimension, int batchCount, long batchStride)
    {
        CublasLtMatrixLayout layout;
        CublasException.ThrowIfFailed(CublasLt.MatrixLayoutCreate(&layout, type, (ulong)rows, (ulong)cols, leadingDimension));
        try
        {
            if (batchCount > 1)
            {
                CublasException.ThrowIfFailed(CublasLt.MatrixLayoutSetAttribute(layout, CublasLtMatrixLayoutAttribute.BatchCount, &batchCount, sizeof(int)));
                CublasException.ThrowIfFailed(CublasLt.MatrixLayoutSetAttribute(layout, CublasLtMatrixLayoutAttribute.StridedBatchOffset, &batchStride, sizeof(long)));
            }
            return layout;
        }
        catch
        {
            _ = CublasLt.MatrixLayoutDestroy(layout);
            throw;
        }
    }

    private static CublasLtHandle CreateHandle()
    {
        CublasLtHandle handle;
        CublasException.ThrowIfFailed(CublasLt.Create(&handle));
        return handle;
    }

    /// <summary>A missing cuBLASLt is the machine's, not the engine's: say so, with every place it was looked for.</summary>
    internal static void RequireLibrary()
    {
        var probe = LibraryResolver.Probe(NativeLibraries.CublasLt);
        if (!probe.Found)
        {
            throw new UserErrorException($"GPU matrix multiplies need cuBLASLt, which was not found (install the CUDA toolkit or pip's nvidia-cublas; run 'CudaFinetune devices' for details). {probe.Describe()}");
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var plan in _plans.Values)
        {
            plan.Destroy();
        }
        _plans.Clear();
        _ = CublasLt.Destroy(_handle); // teardown: nothing useful to do with a failure
        if (_ownsWorkspace && _workspace != 0)
        {
            _ = CudaDriver.MemFree(_workspace);
        }
    }
}
