using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// Everything one forward pass saves for its backward, plus the backward's scratch, for one batch
/// shape. Allocated once and reused step after step.
/// </summary>
internal sealed class LlamaActivations : IDisposable
{
    private readonly List<Tensor> _owned = [];

    public LlamaActivations(IBackend backend, LlamaConfig config, int batch, int seqLen, int loraRank)
    {
        Batch = batch;
        SeqLen = seqLen;
        int n = batch * seqLen, h = config.HiddenSize, i = config.IntermediateSize;
        int layers = config.NumHiddenLayers;
        Tensor Allocate(DType dtype, int[] dims)
        {
            var t = backend.Allocate(dtype, new Shape(dims));
            _owned.Add(t);
            return t;
        }
        // Activations in the compute dtype; statistics and RoPE tables in the accumulation dtype (fp32 under mixed precision).
        Tensor New(params int[] dims) => Allocate(backend.ComputeType, dims);
        Tensor NewStatistic(params int[] dims) => Allocate(backend.AccumulationType, dims);
        Tensor[] PerLayer(int count, params int[] dims) => [.. Enumerable.Range(0, count).Select(_ => New(dims))];
        Tensor[] PerLayerStatistic(int count, params int[] dims) => [.. Enumerable.Range(0, count).Select(_ => NewStatistic(dims))];

        TokenIds = backend.Allocate(DType.I32, new Shape(n));
        Targets = backend.Allocate(DType.I32, new Shape(n));
        _owned.Add(TokenIds);
        _owned.Add(Targets);
        Residual = PerLayer(layers + 1, n, h);
        Mid = PerLayer(layers, n, h);
        Normed1 = PerLayer(layers, n, h);
        Normed2 = PerLayer(layers, n, h);
        Rstd1 = PerLayerStatistic(layers, n);
        Rstd2 = PerLayerStatistic(layers, n);
        Q = PerLayer(layers, n, config.QueryWidth);
        K = PerLayer(layers, n, config.KeyValueWidth);
        V = PerLayer(layers, n, config.KeyValueWidth);
        Attention = PerLayer(layers, n, config.QueryWidth);
        LogSumExp = PerLayerStatistic(layers, batch * config.NumAttentionHeads * seqLen);
        Gate = PerLayer(layers, n, i);
        Up = PerLayer(layers, n, i);
        Activated = PerLayer(layers, n, i);
        FinalNormed = New(n, h);
        FinalRstd = NewStatistic(n);

        RopeCos = NewStatistic(seqLen, config.HeadSize / 2);
        RopeSin = NewStatistic(seqLen, config.HeadSize / 2);
        RotaryFrequencies.Upload(backend, config, seqLen, RopeCos, RopeSin);

        DResidual = New(n, h);
        DNormed = New(n, h);
        ProjectionOut = New(n, h);
        DAttention = New(n, config.QueryWidth);
        DQ = New(n, config.QueryWidth);
        DK = New(n, config.KeyValueWidth);
        DV = New(n, config.KeyValueWidth);
        DActivated = New(n, i);
        DGate = New(n, i);
        DUp = New(n, i);

        // No logits here: the backend's LinearCrossEntropy makes them a chunk at a time.
        RowLoss = NewStatistic(n);

        int[] inputWidths = [h, config.QueryWidth, i];
        Lora = new LinearScratch(backend, n, loraRank, inputWidths);
        HostTargets = new int[n];
    }

    public int Batch { get; }
    public int SeqLen { get; }
    public Tensor TokenIds { get; }
    public Tensor Targets { get; }
    public int[] HostTargets { get; }

    /// <summary>Residual stream: Residual[l] is layer l's input, Residual[L] the last layer's output.</summary>
    public Tensor[] Residual { get; }
    /// <summary>Residual stream after attention, before the MLP.</summary>
    public Tensor[] Mid { get; }
    public Tensor[] Normed1 { get; }
    public Tensor[] Normed2 { get; }
    public Tensor[] Rstd1 { get; }
    public Tensor[] Rstd2 { get; }
    /// <summary>Queries and keys after RoPE.</summary>
    public Tensor[] Q { get; }
    public Tensor[] K { get; }
    public Tensor[] V { get; }
    public Tensor[] Attention { get; }
    public Tensor[] LogSumExp { get; }
    public Tensor[] Gate { get; }
    public Tensor[] Up { get; }
    public Tensor[] Activated { get; }
    public Tensor FinalNormed { get; }
    public Tensor FinalRstd { get; }
    public Tensor RopeCos { get; }
    public Tensor RopeSin { get; }

    public Tensor DResidual { get; }
    public Tensor DNormed { get; }
    /// <summary>Output of o_proj / down_proj before it joins the residual stream.</summary>
    public Tensor ProjectionOut { get; }
    public Tensor DAttention { get; }
    public Tensor DQ { get; }
    public Tensor DK { get; }
    public Tensor DV { get; }
    public Tensor DActivated { get; }
    public Tensor DGate { get; }
    public Tensor DUp { get; }

    public Tensor RowLoss { get; }

    public LinearScratch Lora { get; }

    public void Dispose()
    {
        foreach (var t in _owned)
        {
            t.Dispose();
        }
        Lora.Dispose();
    }
}
