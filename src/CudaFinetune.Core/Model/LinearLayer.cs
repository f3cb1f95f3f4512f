using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// One projection y = x·Wᵀ, optionally with a LoRA adapter: y = x·Wᵀ + low·Bᵀ with low = s·dropout(x)·Aᵀ,
/// the two products into y in one <see cref="IBackend.LowRankMatMul"/>, and dx = dy·W + dropout(dLow·A) likewise. The adapter's small products are recomputed in the backward (they cost N·in·r) instead of
/// being stored; the dropout mask is regenerated from its counter-based key.
/// </summary>
internal sealed class LinearLayer
{
    public LinearLayer(Parameter weight, Parameter? loraA, Parameter? loraB, double loraScale, double dropout, int layer, int use)
    {
        Weight = weight;
        LoraA = loraA;
        LoraB = loraB;
        LoraScale = loraScale;
        Dropout = dropout;
        Layer = layer;
        Use = use;
    }

    public Parameter Weight { get; }
    public Parameter? LoraA { get; }
    public Parameter? LoraB { get; }
    public double LoraScale { get; }
    public double Dropout { get; }
    public int Layer { get; }

    /// <summary>Which dropout stream of the layer this projection uses.</summary>
    public int Use { get; }

    public int InFeatures => Weight.Value.Shape[1];

    /// <summary>y = x·Wᵀ (+ the adapter).</summary>
    public void Forward(IBackend backend, Tensor x, Tensor y, LinearScratch scratch, in DropoutContext context)
    {
        if (LoraA is null || LoraB is null)
        {
            backend.MatMul(x, false, Weight.Value, true, y);
            return;
        }
        Tensor low = scratch.Low;
        backend.MatMul(Dropped(backend, x, scratch, context), false, LoraA.Value, true, low, alpha: LoraScale);
        backend.LowRankMatMul(x, Weight.Value, low, LoraB.Value, transposeB: true, y, accumulate: false);
    }

    /// <summary>dx (+)= ∂/∂x; trainable weights' gradients += their parts.</summary>
    public void Backward(IBackend backend, Tensor x, Tensor dy, Tensor dx, bool accumulateDx, LinearScratch scratch, in DropoutContext context)
    {
        if (Weight.Gradient is { } dW)
        {
            backend.MatMul(dy, true, x, false, dW, beta: 1);
        }
        if (LoraA is null || LoraB is null)
        {
            backend.MatMul(dy, false, Weight.Value, false, dx, beta: accumulateDx ? 1 : 0);
            return;
        }
        Tensor dropped = Dropped(backend, x, scratch, context);
        Tensor low = scratch.Low, dLow = scratch.DLow;
        backend.MatMul(dropped, false, LoraA.Value, true, low, alpha: LoraScale);
        if (LoraB.Gradient is { } dB)
        {
            backend.MatMul(dy, true, low, false, dB, beta: 1);
        }
        backend.MatMul(dy, false, LoraB.Value, false, dLow, alpha: LoraScale);
        if (LoraA.Gradient is { } dA)
        {
            backend.MatMul(dLow, true, dropped, false, dA, beta: 1);
        }
        // dx = dy·W + dropout(dLow·A), with the mask the forward drew for x.
        bool masked = context.Applies(Dropout);
        backend.LowRankMatMul(dy, Weight.Value, dLow, LoraA.Value, transposeB: false, dx, accumulateDx, masked ? Dropout : 0, masked ? context.Key(Layer, Use) : default);
    }

    private Tensor Dropped(IBackend backend, Tensor x, LinearScratch scratch, in DropoutContext context)
    {
        if (!context.Applies(Dropout))
        {
            return x;
        }
        Tensor dropped = scratch.Dropped(InFeatures);
        backend.Dropout(x, dropped, Dropout, context.Key(Layer, Use));
        return dropped;
    }
}

/// <summary>Whether dropout is active in this pass (training) and which masks it draws (seed, step).</summary>
internal readonly record struct DropoutContext(ulong Seed, long Step, bool Training)
{
    public bool Applies(double probability) => Training && probability > 0;

    public DropoutKey Key(int layer, int use) => new(Seed, Step, layer, use);
}

/// <summary>
/// Scratch a LoRA projection borrows for one batch shape: a [rows, in] buffer for the dropped
/// input (viewed at each input width the model has) and [rows, r] buffers for the low-rank
/// products. Views are made once, so the training step allocates nothing.
/// </summary>
internal sealed class LinearScratch : IDisposable
{
    private readonly Tensor _dropped;
    private readonly Dictionary<int, Tensor> _droppedViews = [];

    public LinearScratch(IBackend backend, int rows, int rank, IEnumerable<int> inputWidths)
    {
        int[] widths = [.. inputWidths.Distinct()];
        _dropped = backend.Allocate(backend.ComputeType, new Shape(rows * widths.Max()));
        foreach (int w in widths)
        {
            _droppedViews[w] = new Tensor(_dropped.Storage, _dropped.DType, new Shape(rows, w), 0, ownsStorage: false);
        }
        Low = backend.Allocate(backend.ComputeType, new Shape(rows, Math.Max(1, rank)));
        DLow = backend.Allocate(backend.ComputeType, new Shape(rows, Math.Max(1, rank)));
    }

    public Tensor Low { get; }

    public Tensor DLow { get; }

    public Tensor Dropped(int width) => _droppedViews[width];

    public void Dispose()
    {
        _dropped.Dispose();
        Low.Dispose();
        DLow.Dispose();
    }
}
