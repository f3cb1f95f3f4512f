using System.Text;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>
/// The argument checks of the backends' ops, in one place so that every backend words a mistake the same way. An instance
/// knows what one backend takes — its name, its device and the two floating dtypes it computes in — for the device and
/// dtype checks; the static checks are of sizes that must agree, and return the sizes the op then uses. Each throws an
/// <see cref="ArgumentException"/> naming the tensors, and allocates nothing unless it throws.
/// </summary>
public sealed class OpChecks
{
    private readonly string _backend;
    private readonly Device _device;
    private readonly DType _float, _otherFloat;

    /// <param name="backend">The backend's name (<see cref="IBackend.Name"/>), for messages.</param>
    /// <param name="device">Where its tensors must be.</param>
    /// <param name="floatType">One floating dtype its ops compute in.</param>
    /// <param name="otherFloatType">The other.</param>
    public OpChecks(string backend, Device device, DType floatType, DType otherFloatType)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
        _device = device;
        _float = floatType;
        _otherFloat = otherFloatType;
    }

    // ---- devices and dtypes -------------------------------------------------------------

    /// <summary>The tensor is on the backend's device.</summary>
    public void OnDevice(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device != _device)
        {
            throw new ArgumentException($"the {_backend} backend cannot use {tensor}: it is not on {_device}");
        }
    }

    /// <summary>Every tensor is on the backend's device and holds <paramref name="dtype"/>.</summary>
    public void Expect(DType dtype, params ReadOnlySpan<Tensor> tensors)
    {
        foreach (var tensor in tensors)
        {
            OnDevice(tensor);
            if (tensor.DType != dtype)
            {
                throw new ArgumentException($"{tensor}: the {_backend} backend expects {dtype} here");
            }
        }
    }

    /// <summary>The dtype of the tensors: on the backend's device, one of its two floating dtypes, the same for all.</summary>
    public DType FloatType(params ReadOnlySpan<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors[0]);
        var dtype = tensors[0].DType;
        foreach (var tensor in tensors)
        {
            OnDevice(tensor);
            if (tensor.DType != dtype || (dtype != _float && dtype != _otherFloat))
            {
                throw new ArgumentException($"the {_backend} backend computes in {_float} or {_otherFloat}, all operands of one dtype; got {DTypes(tensors)}");
            }
        }
        return dtype;
    }

    /// <summary>A copy between <paramref name="count"/> host values of <typeparamref name="T"/> and the tensor, which must hold as many of that type.</summary>
    public void HostCopy<T>(Tensor tensor, int count) where T : unmanaged
    {
        OnDevice(tensor);
        if (tensor.DType.HostElementType() != typeof(T) || count != tensor.ElementCount)
        {
            throw new ArgumentException($"{tensor}: a host copy needs {tensor.ElementCount} elements of {tensor.DType.HostElementType().Name}, got {count} of {typeof(T).Name}");
        }
    }

    private static string DTypes(ReadOnlySpan<Tensor> tensors)
    {
        var text = new StringBuilder();
        foreach (var tensor in tensors)
        {
            text.Append(text.Length == 0 ? "" : ", ").Append(tensor?.DType.ToString() ?? "null");
        }
        return text.ToString();
    }

    // ---- sizes --------------------------------------------------------------------------

    /// <summary>Every tensor has as many elements as <paramref name="first"/>.</summary>
    public static void SameCount(Tensor first, params ReadOnlySpan<Tensor> others)
    {
        ArgumentNullException.ThrowIfNull(first);
        foreach (var other in others)
        {
            ArgumentNullException.ThrowIfNull(other);
            if (other.ElementCount != first.ElementCount)
            {
                throw new ArgumentException($"element counts differ: {first} and {other}");
            }
        }
    }

    /// <summary>
    /// The rows and columns of a row op (RMSNorm): x and y hold rows of as many elements as weight has, stats one per row.
    /// </summary>
    public static (int Rows, int Cols) RowOp(Tensor x, Tensor weight, Tensor y, Tensor stats)
    {
        int cols = checked((int)weight.ElementCount);
        if (cols == 0 || x.ElementCount % cols != 0)
        {
            throw new ArgumentException($"{x} does not hold rows of {cols}");
        }
        int rows = checked((int)(x.ElementCount / cols));
        if (y.ElementCount != x.ElementCount || stats.ElementCount != rows)
        {
            throw new ArgumentException($"row op sizes disagree: x {x.Shape}, weight {weight.Shape}, {y.Shape}, stats {stats.Shape}");
        }
        return (rows, cols);
    }

    /// <summary>
    /// The tokens and width of an embedding op: one row of <paramref name="table"/>'s width per id in <paramref name="rows"/>
    /// (the forward's output, the backward's incoming gradient).
    /// </summary>
    public static (int Tokens, int Dim) Embedding(Tensor ids, Tensor table, Tensor rows)
    {
        int tokens = checked((int)ids.ElementCount), dim = table.Shape.Columns;
        if (rows.ElementCount != (long)tokens * dim)
        {
            throw new ArgumentException($"embedding rows {rows.Shape} are not {tokens}×{dim}: {tokens} ids into a table {table.Shape}");
        }
        return (tokens, dim);
    }

    /// <summary>The head size of a rotary embedding of x [tokens, heads · headDim] with cos and sin tables [seqLen, headDim / 2].</summary>
    public static int Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen)
    {
        int tokens = x.Shape.Rows, width = x.Shape.Columns;
        if (heads <= 0 || width % heads != 0 || width / heads % 2 != 0)
        {
            throw new ArgumentException($"rope: {width} columns do not split into {heads} heads of an even size");
        }
        int headDim = width / heads;
        if (seqLen <= 0 || tokens % seqLen != 0 || cos.ElementCount < (long)seqLen * headDim / 2 || sin.ElementCount != cos.ElementCount)
        {
            throw new ArgumentException($"rope: {tokens} tokens, sequence length {seqLen}, cos {cos.Shape} and sin {sin.Shape} do not agree with head size {headDim}");
        }
        return headDim;
    }

    /// <summary>Causal attention's q, k, v, output and log-sum-exp (one per query row and head) against <paramref name="shape"/>.</summary>
    public static void Attention(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        shape.Validate();
        long tokens = shape.Tokens;
        if (q.ElementCount != tokens * shape.QueryHeads * shape.HeadDim || output.ElementCount != q.ElementCount
            || k.ElementCount != tokens * shape.KvHeads * shape.HeadDim || v.ElementCount != k.ElementCount
            || logSumExp.ElementCount != tokens * shape.QueryHeads)
        {
            throw new ArgumentException($"attention tensors do not match {shape}: q {q.Shape}, k {k.Shape}, v {v.Shape}, out {output.Shape}, lse {logSumExp.Shape}");
        }
    }

    /// <summary>The query rows of a decode step: q and output [rows, qHeads · headDim] after <paramref name="past"/> cached positions (batch 1).</summary>
    public static int AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        shape.Validate();
        int rows = q.Shape.Rows, kvWidth = shape.KvHeads * shape.HeadDim;
        if (shape.Batch != 1 || q.Shape.Columns != shape.QueryHeads * shape.HeadDim || output.ElementCount != q.ElementCount
            || kCache.Shape.Columns != kvWidth || vCache.Shape != kCache.Shape || past < 0 || past + rows > kCache.Shape.Rows)
        {
            throw new ArgumentException($"attention decode: q {q.Shape}, caches {kCache.Shape}/{vCache.Shape}, out {output.Shape}, past {past} do not match {shape}");
        }
        return rows;
    }

    /// <summary>The rows and vocabulary of a cross-entropy: a target and a loss per row of logits; dLogits (or null) like the logits.</summary>
    public static (int Rows, int Vocab) CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits)
    {
        int rows = logits.Shape.Rows, vocab = logits.Shape.Columns;
        if (targets.ElementCount != rows || rowLoss.ElementCount != rows)
        {
            throw new ArgumentException($"cross-entropy: {rows} rows of logits, {targets.ElementCount} targets, {rowLoss.ElementCount} losses");
        }
        if (dLogits is not null)
        {
            SameCount(logits, dLogits);
        }
        return (rows, vocab);
    }

    /// <summary>
    /// The rows, width and vocabulary of the head fused with the loss: x [rows, hidden], head [vocab, hidden], a target and a
    /// loss per row; dX (or null) shaped like x, dHead (or null) like head.
    /// </summary>
    public static (int Rows, int Hidden, int Vocab) HeadLoss(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead)
    {
        int rows = x.Shape.Rows, hidden = x.Shape.Columns, vocab = head.Shape.Rows;
        if (head.Shape.Columns != hidden || targets.ElementCount != rows || rowLoss.ElementCount != rows || (dX is not null && dX.Shape != x.Shape))
        {
            throw new ArgumentException($"head loss shapes do not agree: x {x.Shape}, head {head.Shape}, targets {targets.Shape}, row loss {rowLoss.Shape}, dX {dX?.Shape}");
        }
        if (dHead is not null)
        {
            SameCount(head, dHead);
        }
        return (rows, hidden, vocab);
    }

    /// <summary>
    /// The sizes of a low-rank matmul (<see cref="IBackend.LowRankMatMul"/>): forward a = x [T, K], b = W [N, K], low [T, R],
    /// lowB = B [N, R], c = y [T, N] (<paramref name="transposeB"/>); backward a = dy [T, N], b = W [N, K], low = dLow [T, R],
    /// lowB = A [R, K], c = dx [T, K].
    /// </summary>
    public static (int Tokens, int N, int K, int R) LowRank(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c)
    {
        int tokens = a.Shape.Rows, r = low.Shape.Columns;
        int n = b.Shape.Rows, k = b.Shape.Columns;
        bool shapesAgree = transposeB
            ? a.Shape.Columns == k && IsMatrix(c.Shape, tokens, n) && IsMatrix(lowB.Shape, n, r)
            : a.Shape.Columns == n && IsMatrix(c.Shape, tokens, k) && IsMatrix(lowB.Shape, r, k);
        if (!shapesAgree || low.Shape.Rows != tokens)
        {
            throw new ArgumentException($"low-rank matmul shapes do not agree: a {a.Shape}, b {b.Shape}{(transposeB ? "ᵀ" : "")}, low {low.Shape}, lowB {lowB.Shape}, c {c.Shape}");
        }
        return (tokens, n, k, r);
    }

    /// <summary>Whether the shape is [rows, cols] (without making a <see cref="Shape"/> to compare).</summary>
    private static bool IsMatrix(Shape shape, int rows, int cols) => shape.Rank == 2 && shape[0] == rows && shape[1] == cols;

    /// <summary>A dropout probability: in [0, 1).</summary>
    public static void DropoutProbability(double probability)
    {
        if (probability is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "dropout probability must be in [0, 1)");
        }
    }
}
