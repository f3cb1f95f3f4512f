using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>
/// The op-level interface the model is written against once. Every op takes its inputs and
/// preallocated outputs as tensors plus plain sizes; nothing on the training path allocates.
/// Layout conventions (row-major):
/// <list type="bullet">
/// <item>activations are [tokens, features] with tokens = batch * seqLen, batch-major;</item>
/// <item>linear weights are [out, in] as in Hugging Face (y = x·Wᵀ);</item>
/// <item>attention q is [tokens, queryHeads * headDim], k and v [tokens, kvHeads * headDim];</item>
/// <item>"accumulate" outputs are added into (+=), never overwritten, so gradients of shared inputs
/// can be summed without extra buffers.</item>
/// </list>
/// All ops are deterministic: same inputs, same bits, regardless of thread count.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>The backend's name as the CLI spells it (cpu, cuda, cuda-emulated).</summary>
    string Name { get; }

    Device Device { get; }

    /// <summary>The floating-point type activations and model weights are held in.</summary>
    DType ComputeType { get; }

    /// <summary>
    /// The dtype of what must not be rounded to <see cref="ComputeType"/>: per-row statistics (1/rms, log-sum-exp, row
    /// losses), RoPE tables, gradients of trained weights, their master copies and the optimizer's moments. Equal to
    /// ComputeType on the CPU; F32 on the cuda backends, which compute in BF16 (mixed precision).
    /// </summary>
    DType AccumulationType { get; }

    // ---- memory -------------------------------------------------------------------------

    /// <summary>A new zero-filled tensor owned by the caller.</summary>
    Tensor Allocate(DType dtype, Shape shape);

    /// <summary>Copies host values into <paramref name="destination"/> (element types must match its dtype's host type).</summary>
    void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged;

    /// <summary>Copies <paramref name="source"/> out to host memory.</summary>
    void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged;

    /// <summary>destination = source, converting between floating dtypes where they differ.</summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    void Fill(Tensor tensor, double value);

    // ---- linear algebra -----------------------------------------------------------------

    /// <summary>
    /// c = alpha · op(a) · op(b) + beta · c, where op transposes when asked. a, b and c are read as
    /// 2-D [Rows, Columns] matrices; op(a) is [M, K], op(b) is [K, N], c is [M, N]. With beta = 0
    /// the old contents of c are ignored (even NaN). a and b are in ComputeType; c in ComputeType or
    /// AccumulationType (a weight's gradient).
    /// </summary>
    void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0);

    /// <summary>
    /// A LoRA projection's two products into one output: c = a·op(b) + drop(low·op(lowB)), plus the old c when
    /// <paramref name="accumulate"/>; op transposes when <paramref name="transposeB"/>; drop is <see cref="Dropout"/> with
    /// <paramref name="lowDropout"/> and <paramref name="lowDropoutKey"/> (none at 0). The forward is y = x·Wᵀ + low·Bᵀ
    /// (low = s·dropout(x)·Aᵀ), the input gradient dx = dy·W + dropout(dLow·A) with the forward's mask. The same as
    /// MatMuls and Dropout; the cuda backend computes it in one pass over c.
    /// </summary>
    void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default);

    // ---- elementwise --------------------------------------------------------------------

    /// <summary>output = a + b (output may be a or b).</summary>
    void Add(Tensor a, Tensor b, Tensor output);

    /// <summary>accumulator += scale · x.</summary>
    void AddScaled(Tensor x, double scale, Tensor accumulator);

    /// <summary>output = x ⊙ keep / (1 − p), with keep drawn from <paramref name="key"/>; linear, so it is also its own backward.</summary>
    void Dropout(Tensor x, Tensor output, double probability, DropoutKey key);

    // ---- embedding ----------------------------------------------------------------------

    /// <summary>output[n, :] = table[ids[n], :].</summary>
    void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output);

    /// <summary>dTable[ids[n], :] += dOutput[n, :], summed in token order.</summary>
    void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable);

    // ---- normalisation ------------------------------------------------------------------

    /// <summary>output = x / rms(x) ⊙ weight per row; saves 1/rms in <paramref name="rstd"/> [rows].</summary>
    void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd);

    /// <summary>
    /// A residual add and the next norm: sum = x + delta (sum may be x), then <see cref="RmsNormForward"/> of sum.
    /// The same as <see cref="Add"/> then RmsNormForward; the cuda backend does it in one pass.
    /// </summary>
    void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd);

    /// <summary>dx += ∂/∂x; dWeight (if given) += ∂/∂weight.</summary>
    void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight);

    // ---- rotary position embedding ------------------------------------------------------

    /// <summary>
    /// Rotates x [tokens, heads · headDim] in place with the Hugging Face rotate-half convention.
    /// cos and sin are [seqLen, headDim/2]; token n sits at position n mod seqLen. With
    /// <paramref name="inverse"/> it applies the transpose rotation (the backward).
    /// </summary>
    void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse);

    // ---- attention ----------------------------------------------------------------------

    /// <summary>Causal grouped-query attention; saves each row's log-sum-exp [batch, queryHeads, seqLen].</summary>
    void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape);

    /// <summary>Gradients of <see cref="AttentionForward"/>; dq, dk and dv are overwritten.</summary>
    void AttentionBackward(Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp,
        Tensor dq, Tensor dk, Tensor dv, in AttentionShape shape);

    // ---- MLP activation -----------------------------------------------------------------

    /// <summary>output = silu(gate) ⊙ up; output must not be gate or up.</summary>
    void SwiGluForward(Tensor gate, Tensor up, Tensor output);

    /// <summary>dGate and dUp are overwritten with the gradients of <see cref="SwiGluForward"/>.</summary>
    void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp);

    // ---- loss ---------------------------------------------------------------------------

    /// <summary>
    /// Softmax cross-entropy per row of logits [rows, vocab] against integer targets [rows]
    /// (a target of <see cref="IgnoreIndex"/> or below zero counts nothing). Writes each row's loss
    /// (0 for ignored rows) into <paramref name="rowLoss"/>. When <paramref name="dLogits"/> is given
    /// it receives (softmax − onehot) · gradientScale for counted rows and 0 for ignored ones; it may
    /// be the logits tensor itself.
    /// </summary>
    void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale);

    /// <summary>
    /// The output head and the loss together, without a [rows, vocab] logits tensor: logits = x·headᵀ (x [rows, hidden],
    /// head [vocab, hidden]) and <see cref="CrossEntropy"/> against targets into rowLoss; with <paramref name="dX"/>
    /// (overwritten) and <paramref name="dHead"/> (added into; AccumulationType), the gradients of gradientScale·Σ rowLoss.
    /// The CPU backend goes a chunk of rows at a time, the cuda backend a chunk of the vocabulary at a time.
    /// </summary>
    void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale);

    // ---- optimizer ----------------------------------------------------------------------

    /// <summary>
    /// One AdamW update of a parameter in place, exactly as PyTorch's AdamW (decoupled weight decay):
    /// g = gradScale·grad; p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    /// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
    /// With <paramref name="roundedCopy"/>, p is a master copy and the updated values are also written,
    /// rounded, into roundedCopy (the ComputeType weight the model computes with).
    /// </summary>
    void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null);

    // ---- inference ----------------------------------------------------------------------

    /// <summary>
    /// Attention for decoding with a key/value cache (batch 1): the n rows of q are positions
    /// [past, past + n); kCache and vCache [capacity, kvHeads·headDim] hold rows 0..past+n−1; row i
    /// attends to cache rows 0..past+i.
    /// </summary>
    void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape);

    // ---- reductions (results come back to the host) -------------------------------------

    /// <summary>Σ x in a fixed order.</summary>
    double Sum(Tensor x);

    /// <summary>Σ x² in a fixed order.</summary>
    double SumOfSquares(Tensor x);

    /// <summary>Label value that the loss ignores, as in PyTorch and Hugging Face.</summary>
    public const int IgnoreIndex = -100;
}
