using CudaFinetune.Backends;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// LlamaForCausalLM written once against <see cref="IBackend"/>: embedding, decoder layers
/// (RMSNorm → q/k/v → RoPE → causal GQA → o_proj → residual; RMSNorm → SwiGLU MLP → residual),
/// final norm, lm_head (or the tied embedding) and the shifted causal-LM loss, with a hand-written
/// backward. Gradients accumulate into <see cref="Parameter.Gradient"/> until <see cref="ZeroGradients"/>.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    private const int UseQ = 0, UseK = 1, UseV = 2, UseO = 3, UseGate = 4, UseUp = 5, UseDown = 6;

    private readonly IBackend _backend;
    private readonly Layer[] _layers;
    private readonly Parameter _embedding;
    private readonly Parameter _finalNorm;
    private readonly Parameter _head;
    private readonly ulong _seed;
    private readonly Parameter[] _trainable;
    /// <summary>Activations per batch shape, so alternating train and eval shapes does not reallocate.</summary>
    private readonly Dictionary<(int Batch, int SeqLen), LlamaActivations> _activations = [];

    /// <summary>Builds the model over <paramref name="baseWeights"/> (which it then owns), adding LoRA adapters when configured.</summary>
    public LlamaModel(IBackend backend, LlamaConfig config, ParameterSet baseWeights, LlamaModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(baseWeights);
        config.Validate();
        options ??= new LlamaModelOptions();
        options.Lora?.Validate();
        _backend = backend;
        Config = config;
        Lora = options.Lora;
        _seed = options.Seed;
        Parameters = baseWeights;
        LayerWeights = options.LayerWeights;

        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
        {
            var p = baseWeights[name];
            if (p.Value.Shape != new Shape(shape) || p.Value.DType != backend.ComputeType || p.Value.Device != backend.Device)
            {
                throw new ArgumentException($"{name}: expected {backend.ComputeType} {new Shape(shape)} on {backend.Device}, got {p.Value}");
            }
            if (Lora is null && p.Gradient is null)
            {
                MakeTrainable(p);
            }
        }

        _embedding = baseWeights[LlamaTensorNames.Embedding];
        _finalNorm = baseWeights[LlamaTensorNames.FinalNorm];
        _head = config.TieWordEmbeddings ? _embedding : baseWeights[LlamaTensorNames.LmHead];
        _layers = new Layer[config.NumHiddenLayers];
        int loraIndex = 0;
        for (int l = 0; l < _layers.Length; l++)
        {
            LinearLayer Linear(string module, int use) => MakeLinear(l, module, use, ref loraIndex);
            _layers[l] = new Layer(
                baseWeights[LlamaTensorNames.InputNorm(l)],
                baseWeights[LlamaTensorNames.PostAttentionNorm(l)],
                Linear("q_proj", UseQ), Linear("k_proj", UseK), Linear("v_proj", UseV), Linear("o_proj", UseO),
                Linear("gate_proj", UseGate), Linear("up_proj", UseUp), Linear("down_proj", UseDown));
        }
        _trainable = [.. Parameters.Trainable];
        var layerOf = new Dictionary<Parameter, int>();
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            foreach (var p in new[] { layer.InputNorm, layer.PostAttentionNorm }.Concat(layer.Linears
                .SelectMany(linear => new[] { linear.Weight, linear.LoraA, linear.LoraB }).OfType<Parameter>()))
            {
                layerOf[p] = l;
            }
        }
        GradientStages = [.. _trainable.Select(p => layerOf.TryGetValue(p, out int l) ? _layers.Length - 1 - l : _layers.Length)];
    }

    public LlamaConfig Config { get; }

    public LoraConfig? Lora { get; }

    public IBackend Backend => _backend;

    /// <summary>The sharded decoder-layer weights (ZeRO stage 3), or null when they are whole.</summary>
    public ILayerWeights? LayerWeights { get; }

    /// <summary>Base weights (Hugging Face names) followed by LoRA adapters (PEFT names).</summary>
    public ParameterSet Parameters { get; }

    /// <summary>The parameters that receive gradients, in <see cref="Parameters"/> order.</summary>
    public IReadOnlyList<Parameter> TrainableParameters => _trainable;

    /// <summary>
    /// For each trainable parameter, the stage of the backward pass after which its gradient is final: layer l's
    /// parameters at stage NumHiddenLayers − 1 − l (the pass runs from the last layer down), the embedding, final norm and
    /// head at stage NumHiddenLayers (the end). <see cref="ForwardBackward"/> reports each stage as it finishes it.
    /// </summary>
    public IReadOnlyList<int> GradientStages { get; }

    private LinearLayer MakeLinear(int layer, string module, int use, ref int loraIndex)
    {
        var weight = Parameters[LlamaTensorNames.LinearWeight(layer, module)];
        if (Lora is null || !Lora.TargetModules.Contains(module))
        {
            return new LinearLayer(weight, null, null, 0, 0, layer, use);
        }
        var (outFeatures, inFeatures) = LlamaTensorNames.LinearShape(Config, module);
        var a = NewTrainable(LoraConfig.TensorName(layer, module, 'A'), Lora.Rank, inFeatures);
        var b = NewTrainable(LoraConfig.TensorName(layer, module, 'B'), outFeatures, Lora.Rank);
        InitializeLoraA(a, inFeatures, loraIndex++);
        return new LinearLayer(weight, a, b, Lora.Scale, Lora.Dropout, layer, use);
    }

    private Parameter NewTrainable(string name, int rows, int cols)
    {
        var p = Parameters.Add(new Parameter(name, _backend.Allocate(_backend.ComputeType, new Shape(rows, cols))));
        MakeTrainable(p);
        return p;
    }

    /// <summary>
    /// Gives <paramref name="p"/> a gradient in the backend's accumulation dtype and, when that is wider than the weight's
    /// (mixed precision), a master copy initialised from the weight.
    /// </summary>
    private void MakeTrainable(Parameter p)
    {
        p.Gradient = _backend.Allocate(_backend.AccumulationType, p.Value.Shape);
        if (p.Value.DType != _backend.AccumulationType)
        {
            p.Master = _backend.Allocate(_backend.AccumulationType, p.Value.Shape);
            _backend.Copy(p.Value, p.Master);
        }
    }

    /// <summary>Rounds every master copy into its working weight: after masters were loaded (a checkpoint, an adapter).</summary>
    public void RefreshWorkingWeights()
    {
        foreach (var p in _trainable)
        {
            p.RefreshValue(_backend);
        }
    }

    /// <summary>
    /// PEFT's default: kaiming_uniform_(A, a=√5), i.e. U(−1/√in, 1/√in); B stays zero so the adapted
    /// model starts equal to the base. Drawn from Philox keyed by the seed and the adapter's index.
    /// </summary>
    private void InitializeLoraA(Parameter a, int fanIn, int index)
    {
        double bound = 1.0 / Math.Sqrt(fanIn);
        var values = new double[a.Value.ElementCount];
        for (int i = 0; i < values.Length; i++)
        {
            uint w0 = Philox.Word(_seed, 0x4C6F5241u, (uint)index, 2L * i);
            uint w1 = Philox.Word(_seed, 0x4C6F5241u, (uint)index, 2L * i + 1);
            values[i] = (2 * Philox.ToUniformDouble(w0, w1) - 1) * bound;
        }
        CopyIn(values, a.FullPrecision);
        if (a.Master is not null)
        {
            _backend.Copy(a.Master, a.Value);
        }
    }

    private void CopyIn(double[] values, Tensor destination)
    {
        if (destination.DType == DType.F64)
        {
            _backend.CopyFromHost<double>(values, destination);
        }
        else
        {
            _backend.CopyFromHost<float>([.. values.Select(v => (float)v)], destination);
        }
    }

    /// <summary>√(Σ over trainable parameters of Σ grad²), summed in parameter order (deterministic).</summary>
    public double GradientNorm() => GradientNorms.Of(_backend, _trainable);

    /// <summary>Sets every trainable parameter's gradient to zero.</summary>
    public void ZeroGradients()
    {
        foreach (var p in _trainable)
        {
            _backend.Fill(p.Gradient!, 0);
        }
    }

    /// <summary>
    /// The mean next-token loss of a batch, as LlamaForCausalLM(labels=…).loss computes it. In eval
    /// mode (the default) dropout is off; with <paramref name="training"/> it applies the masks of
    /// <paramref name="step"/>, exactly as <see cref="ForwardBackward"/> at that step would.
    /// </summary>
    public LossResult Forward(TokenBatch batch, bool training = false, long step = 0)
        => Run(batch, new DropoutContext(_seed, step, training), backward: false, gradientScale: 0);

    /// <summary>
    /// Forward and backward: returns the loss and adds <paramref name="gradientScale"/> · ∂(mean loss)/∂θ
    /// to each trainable parameter's gradient. <paramref name="step"/> keys the dropout masks.
    /// </summary>
    /// <param name="gradientsReady">called with each stage of the backward pass as it finishes (see <see cref="GradientStages"/>): what lets a data-parallel optimizer reduce gradients while the pass goes on</param>
    public LossResult ForwardBackward(TokenBatch batch, long step, double gradientScale = 1, Action<int>? gradientsReady = null)
        => Run(batch, new DropoutContext(_seed, step, Training: true), backward: true, gradientScale, gradientsReady);

    private LossResult Run(TokenBatch batch, in DropoutContext dropout, bool backward, double gradientScale, Action<int>? gradientsReady = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var act = ActivationsFor(batch);
        int counted = batch.ShiftedTargets(act.HostTargets, Config.VocabSize);
        _backend.CopyFromHost<int>(batch.InputIds, act.TokenIds);
        _backend.CopyFromHost<int>(act.HostTargets, act.Targets);

        var attention = new AttentionShape(batch.BatchSize, batch.SeqLen, Config.NumAttentionHeads, Config.KeyValueHeads, Config.HeadSize, 1.0 / Math.Sqrt(Config.HeadSize));
        _backend.EmbeddingForward(_embedding.Value, act.TokenIds, act.Residual[0]);
        _backend.RmsNormForward(act.Residual[0], _layers[0].InputNorm.Value, Config.RmsNormEps, act.Normed1[0], act.Rstd1[0]);
        for (int l = 0; l < _layers.Length; l++)
        {
            LayerForward(l, act, attention, dropout);
        }

        double lossSum = HeadAndLoss(act, backward, counted == 0 ? 0 : gradientScale / counted);
        if (backward)
        {
            Backward(act, attention, dropout, gradientsReady);
        }
        return new LossResult(lossSum, counted);
    }

    private LlamaActivations ActivationsFor(TokenBatch batch)
    {
        var key = (batch.BatchSize, batch.SeqLen);
        if (!_activations.TryGetValue(key, out var activations))
        {
            activations = new LlamaActivations(_backend, Config, batch.BatchSize, batch.SeqLen, Lora?.Rank ?? 0);
            _activations.Add(key, activations);
        }
        return activations;
    }

    /// <summary>Frees the activation buffers kept for each batch shape seen so far.</summary>
    public void ReleaseActivations()
    {
        foreach (var activations in _activations.Values)
        {
            activations.Dispose();
        }
        _activations.Clear();
    }

    /// <summary>
    /// Layer l from its normed input (Normed1[l], made by the previous layer or the embedding step) to Residual[l + 1]
    /// and the next norm of it: layer l + 1's input norm, or the final norm after the last layer.
    /// </summary>
    private void LayerForward(int l, LlamaActivations act, in AttentionShape attention, in DropoutContext dropout)
    {
        LayerWeights?.Gather(l);
        var layer = _layers[l];
        var scratch = act.Lora;
        layer.Q.Forward(_backend, act.Normed1[l], act.Q[l], scratch, dropout);
        layer.K.Forward(_backend, act.Normed1[l], act.K[l], scratch, dropout);
        layer.V.Forward(_backend, act.Normed1[l], act.V[l], scratch, dropout);
        _backend.Rope(act.Q[l], Config.NumAttentionHeads, act.RopeCos, act.RopeSin, act.SeqLen, inverse: false);
        _backend.Rope(act.K[l], Config.KeyValueHeads, act.RopeCos, act.RopeSin, act.SeqLen, inverse: false);
        _backend.AttentionForward(act.Q[l], act.K[l], act.V[l], act.Attention[l], act.LogSumExp[l], attention);
        layer.O.Forward(_backend, act.Attention[l], act.ProjectionOut, scratch, dropout);
        _backend.AddRmsNormForward(act.Residual[l], act.ProjectionOut, layer.PostAttentionNorm.Value, Config.RmsNormEps, act.Mid[l], act.Normed2[l], act.Rstd2[l]);

        layer.Gate.Forward(_backend, act.Normed2[l], act.Gate[l], scratch, dropout);
        layer.Up.Forward(_backend, act.Normed2[l], act.Up[l], scratch, dropout);
        _backend.SwiGluForward(act.Gate[l], act.Up[l], act.Activated[l]);
        layer.Down.Forward(_backend, act.Activated[l], act.ProjectionOut, scratch, dropout);
        bool last = l == _layers.Length - 1;
        _backend.AddRmsNormForward(act.Mid[l], act.ProjectionOut, last ? _finalNorm.Value : _layers[l + 1].InputNorm.Value, Config.RmsNormEps,
            act.Residual[l + 1], last ? act.FinalNormed : act.Normed1[l + 1], last ? act.FinalRstd : act.Rstd1[l + 1]);
    }

    /// <summary>
    /// The head and the cross-entropy against the shifted targets in one op (no [tokens, vocab] logits tensor), and — when
    /// training — the gradients into the final norm's output and the head weight.
    /// </summary>
    private double HeadAndLoss(LlamaActivations act, bool backward, double dLogitScale)
    {
        _backend.LinearCrossEntropy(act.FinalNormed, _head.Value, act.Targets, act.RowLoss, backward ? act.DNormed : null, backward ? _head.Gradient : null, dLogitScale);
        return _backend.Sum(act.RowLoss);
    }

    private void Backward(LlamaActivations act, in AttentionShape attention, in DropoutContext dropout, Action<int>? gradientsReady)
    {
        _backend.Fill(act.DResidual, 0);
        _backend.RmsNormBackward(act.DNormed, act.Residual[^1], _finalNorm.Value, act.FinalRstd, act.DResidual, _finalNorm.Gradient);
        for (int l = _layers.Length - 1; l >= 0; l--)
        {
            LayerBackward(l, act, attention, dropout);
            gradientsReady?.Invoke(_layers.Length - 1 - l);
        }
        if (_embedding.Gradient is { } dEmbedding)
        {
            _backend.EmbeddingBackward(act.DResidual, act.TokenIds, dEmbedding);
        }
        gradientsReady?.Invoke(_layers.Length);
    }

    /// <summary>
    /// With sharded layer weights: the collectives of one pass (forward, and backward when asked) without its compute, for
    /// a rank that has no batch where the others have one, so every rank meets the same gathers (and, with
    /// <paramref name="gradientsReady"/>, the same gradient reductions) in the same order.
    /// </summary>
    public void StandInForPass(bool backward, Action<int>? gradientsReady = null)
    {
        if (LayerWeights is not { } weights)
        {
            return;
        }
        for (int l = 0; l < _layers.Length; l++)
        {
            weights.Gather(l);
        }
        if (backward)
        {
            for (int l = _layers.Length - 1; l >= 0; l--)
            {
                weights.Gather(l);
                gradientsReady?.Invoke(_layers.Length - 1 - l);
            }
            gradientsReady?.Invoke(_layers.Length);
        }
    }

    /// <summary>DResidual holds ∂loss/∂(layer output) on entry and ∂loss/∂(layer input) on exit.</summary>
    private void LayerBackward(int l, LlamaActivations act, in AttentionShape attention, in DropoutContext dropout)
    {
        LayerWeights?.Gather(l);
        var layer = _layers[l];
        var scratch = act.Lora;
        // MLP block: out = mid + down(swiglu(gate(n2), up(n2))), n2 = norm(mid).
        layer.Down.Backward(_backend, act.Activated[l], act.DResidual, act.DActivated, false, scratch, dropout);
        _backend.SwiGluBackward(act.DActivated, act.Gate[l], act.Up[l], act.DGate, act.DUp);
        layer.Gate.Backward(_backend, act.Normed2[l], act.DGate, act.DNormed, false, scratch, dropout);
        layer.Up.Backward(_backend, act.Normed2[l], act.DUp, act.DNormed, true, scratch, dropout);
        _backend.RmsNormBackward(act.DNormed, act.Mid[l], layer.PostAttentionNorm.Value, act.Rstd2[l], act.DResidual, layer.PostAttentionNorm.Gradient);

        // Attention block: mid = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))), n1 = norm(x).
        layer.O.Backward(_backend, act.Attention[l], act.DResidual, act.DAttention, false, scratch, dropout);
        _backend.AttentionBackward(act.DAttention, act.Q[l], act.K[l], act.V[l], act.Attention[l], act.LogSumExp[l], act.DQ, act.DK, act.DV, attention);
        _backend.Rope(act.DQ, Config.NumAttentionHeads, act.RopeCos, act.RopeSin, act.SeqLen, inverse: true);
        _backend.Rope(act.DK, Config.KeyValueHeads, act.RopeCos, act.RopeSin, act.SeqLen, inverse: true);
        layer.Q.Backward(_backend, act.Normed1[l], act.DQ, act.DNormed, false, scratch, dropout);
        layer.K.Backward(_backend, act.Normed1[l], act.DK, act.DNormed, true, scratch, dropout);
        layer.V.Backward(_backend, act.Normed1[l], act.DV, act.DNormed, true, scratch, dropout);
        _backend.RmsNormBackward(act.DNormed, act.Residual[l], layer.InputNorm.Value, act.Rstd1[l], act.DResidual, layer.InputNorm.Gradient);
    }

    public void Dispose()
    {
        ReleaseActivations();
        Parameters.Dispose();
    }

    // ---- what inference (TextGenerator) reads -----------------------------------------------

    internal Layer LayerAt(int index) => _layers[index];

    internal Parameter EmbeddingWeight => _embedding;

    internal Parameter FinalNormWeight => _finalNorm;

    internal Parameter HeadWeight => _head;

    internal sealed record Layer(Parameter InputNorm, Parameter PostAttentionNorm,
        LinearLayer Q, LinearLayer K, LinearLayer V, LinearLayer O, LinearLayer Gate, LinearLayer Up, LinearLayer Down)
    {
        /// <summary>The seven projections, in Hugging Face's order.</summary>
        public IEnumerable<LinearLayer> Linears => [Q, K, V, O, Gate, Up, Down];
    }
}
