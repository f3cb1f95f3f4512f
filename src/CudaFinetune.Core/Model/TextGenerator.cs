using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Errors;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>How <see cref="TextGenerator"/> picks tokens.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>0 picks the most likely token (greedy); otherwise logits are divided by it before sampling.</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: sample among the most likely tokens whose probabilities add up to this.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Seeds sampling (Philox keyed by the seed and the token's index), so sampled text is reproducible.</summary>
    public ulong Seed { get; init; }

    /// <summary>Checks the settings on their own (no model needed); <see cref="UserErrorException"/> naming the generate flag.</summary>
    public void Validate()
    {
        if (MaxNewTokens <= 0)
        {
            throw new UserErrorException($"--max-new-tokens must be at least 1, got {MaxNewTokens}");
        }
        if (!double.IsFinite(Temperature) || Temperature < 0)
        {
            throw new UserErrorException(string.Create(CultureInfo.InvariantCulture, $"--temperature must be 0 (greedy) or a positive number, got {Temperature}"));
        }
        if (!(TopP is > 0 and <= 1))
        {
            throw new UserErrorException(string.Create(CultureInfo.InvariantCulture, $"--top-p must be above 0 and at most 1, got {TopP}"));
        }
    }
}

/// <summary>
/// Autoregressive generation with a key/value cache: the prompt is run once (prefill), then each new
/// token costs one row through every layer, attending to the cached keys and values. Uses the model's
/// weights and LoRA adapters (no dropout). Batch size 1.
/// </summary>
public sealed class TextGenerator
{
    private readonly LlamaModel _model;
    private readonly IBackend _backend;
    private readonly LlamaConfig _config;

    public TextGenerator(LlamaModel model)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _backend = model.Backend;
        _config = model.Config;
    }

    /// <summary>
    /// Checks a request against this model before anything runs: the options, the prompt's ids against the
    /// vocabulary, and the prompt plus the new tokens against the model's positions. <see cref="Generate"/> checks
    /// the same; a caller that prints as tokens arrive calls this first, so a refusal comes before any output.
    /// </summary>
    public void Check(IReadOnlyList<int> prompt, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (prompt.Count == 0)
        {
            throw new UserErrorException("the prompt is empty: generation needs at least one token");
        }
        foreach (int id in prompt)
        {
            if ((uint)id >= (uint)_config.VocabSize)
            {
                throw new UserErrorException($"the prompt has token id {id}, outside the model's vocabulary of {_config.VocabSize}; the tokenizer and the model do not belong together");
            }
        }
        int positions = _config.MaxPositionEmbeddings;
        if ((long)prompt.Count + options.MaxNewTokens > positions)
        {
            string fix = prompt.Count < positions ? $"lower --max-new-tokens to at most {positions - prompt.Count} or shorten the prompt" : "shorten the prompt";
            throw new UserErrorException($"the prompt ({prompt.Count} token{(prompt.Count == 1 ? "" : "s")}) plus --max-new-tokens ({options.MaxNewTokens}) is more than the model's {positions} positions; {fix}");
        }
    }

    /// <summary>The new token ids (stopping after <paramref name="eosId"/>, which is included, or at the limit).</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> prompt, GenerationOptions options, int? eosId, Action<int>? onToken = null)
    {
        Check(prompt, options);
        int capacity = prompt.Count + options.MaxNewTokens;
        using var cache = new Session(_backend, _config, capacity);
        var generated = new List<int>();
        var logits = new float[_config.VocabSize];
        Step(cache, [.. prompt], logits);
        for (int i = 0; i < options.MaxNewTokens; i++)
        {
            int next = Pick(logits, options, i);
            generated.Add(next);
            onToken?.Invoke(next);
            if (next == eosId || i + 1 == options.MaxNewTokens)
            {
                break;
            }
            Step(cache, [next], logits);
        }
        return generated;
    }

    /// <summary>
    /// Next-token logits after <paramref name="tokens"/>, fed to the cache <paramref name="chunk"/>
    /// tokens at a time (1 = token by token as in decoding; tokens.Count = one prefill).
    /// </summary>
    internal float[] LogitsAfter(IReadOnlyList<int> tokens, int chunk)
    {
        using var session = new Session(_backend, _config, tokens.Count);
        var logits = new float[_config.VocabSize];
        for (int i = 0; i < tokens.Count; i += chunk)
        {
            Step(session, [.. tokens.Skip(i).Take(chunk)], logits);
        }
        return logits;
    }

    /// <summary>Runs <paramref name="tokens"/> at the next positions, fills the cache, and returns the last row's logits.</summary>
    private void Step(Session s, int[] tokens, float[] logitsOut)
    {
        int n = tokens.Length, past = s.Length;
        var dt = _backend.ComputeType;
        using var ids = _backend.Allocate(DType.I32, new Shape(n));
        _backend.CopyFromHost<int>(tokens, ids);
        using var x = _backend.Allocate(dt, new Shape(n, _config.HiddenSize));
        using var normed = _backend.Allocate(dt, new Shape(n, _config.HiddenSize));
        using var rstd = _backend.Allocate(_backend.AccumulationType, new Shape(n));
        using var q = _backend.Allocate(dt, new Shape(n, _config.QueryWidth));
        using var attention = _backend.Allocate(dt, new Shape(n, _config.QueryWidth));
        using var projected = _backend.Allocate(dt, new Shape(n, _config.HiddenSize));
        using var gate = _backend.Allocate(dt, new Shape(n, _config.IntermediateSize));
        using var up = _backend.Allocate(dt, new Shape(n, _config.IntermediateSize));
        using var activated = _backend.Allocate(dt, new Shape(n, _config.IntermediateSize));
        using var scratch = new LinearScratch(_backend, n, _model.Lora?.Rank ?? 0, [_config.HiddenSize, _config.QueryWidth, _config.IntermediateSize]);
        var cos = s.Cos.SliceRows(past, n);
        var sin = s.Sin.SliceRows(past, n);
        var shape = new AttentionShape(1, n, _config.NumAttentionHeads, _config.KeyValueHeads, _config.HeadSize, 1.0 / Math.Sqrt(_config.HeadSize));
        var eval = new DropoutContext(0, 0, Training: false);

        _backend.EmbeddingForward(_model.EmbeddingWeight.Value, ids, x);
        for (int l = 0; l < _config.NumHiddenLayers; l++)
        {
            var layer = _model.LayerAt(l);
            var kNew = s.K[l].SliceRows(past, n);
            var vNew = s.V[l].SliceRows(past, n);
            _backend.RmsNormForward(x, layer.InputNorm.Value, _config.RmsNormEps, normed, rstd);
            layer.Q.Forward(_backend, normed, q, scratch, eval);
            layer.K.Forward(_backend, normed, kNew, scratch, eval);
            layer.V.Forward(_backend, normed, vNew, scratch, eval);
            _backend.Rope(q, _config.NumAttentionHeads, cos, sin, n, inverse: false);
            _backend.Rope(kNew, _config.KeyValueHeads, cos, sin, n, inverse: false);
            _backend.AttentionDecode(q, s.K[l], s.V[l], attention, past, shape);
            layer.O.Forward(_backend, attention, projected, scratch, eval);
            _backend.Add(x, projected, x);
            _backend.RmsNormForward(x, layer.PostAttentionNorm.Value, _config.RmsNormEps, normed, rstd);
            layer.Gate.Forward(_backend, normed, gate, scratch, eval);
            layer.Up.Forward(_backend, normed, up, scratch, eval);
            _backend.SwiGluForward(gate, up, activated);
            layer.Down.Forward(_backend, activated, projected, scratch, eval);
            _backend.Add(x, projected, x);
        }
        s.Length += n;

        using var lastNormed = _backend.Allocate(dt, new Shape(1, _config.HiddenSize));
        using var lastRstd = _backend.Allocate(_backend.AccumulationType, new Shape(1));
        using var logits = _backend.Allocate(_backend.AccumulationType, new Shape(1, _config.VocabSize)); // fp32 or f64, also under bf16
        _backend.RmsNormForward(x.SliceRows(n - 1, 1), _model.FinalNormWeight.Value, _config.RmsNormEps, lastNormed, lastRstd);
        _backend.MatMul(lastNormed, false, _model.HeadWeight.Value, true, logits);
        if (logits.DType == DType.F32)
        {
            _backend.CopyToHost<float>(logits, logitsOut);
        }
        else
        {
            var d = new double[_config.VocabSize];
            _backend.CopyToHost<double>(logits, d);
            for (int i = 0; i < d.Length; i++)
            {
                logitsOut[i] = (float)d[i];
            }
        }
    }

    /// <summary>Greedy, or temperature + top-p sampling with a counter-based draw.</summary>
    internal static int Pick(float[] logits, GenerationOptions options, int index)
    {
        if (options.Temperature <= 0)
        {
            int best = 0;
            for (int i = 1; i < logits.Length; i++)
            {
                if (logits[i] > logits[best])
                {
                    best = i;
                }
            }
            return best;
        }
        double max = logits.Max();
        var probs = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            probs[i] = Math.Exp((logits[i] - max) / options.Temperature);
            sum += probs[i];
        }
        int[] order = [.. Enumerable.Range(0, logits.Length).OrderByDescending(i => probs[i]).ThenBy(i => i)];
        double kept = 0;
        int count = 0;
        foreach (int i in order)
        {
            kept += probs[i] / sum;
            count++;
            if (kept >= options.TopP)
            {
                break;
            }
        }
        double u = Philox.ToUniformDouble(Philox.Word(options.Seed, 0x47454E00u, 0, 2L * index), Philox.Word(options.Seed, 0x47454E00u, 0, 2L * index + 1)) * kept;
        double acc = 0;
        for (int r = 0; r < count; r++)
        {
            acc += probs[order[r]] / sum;
            if (u < acc)
            {
                return order[r];
            }
        }
        return order[count - 1];
    }

    /// <summary>The key/value cache and RoPE tables of one generation.</summary>
    private sealed class Session : IDisposable
    {
        public Session(IBackend backend, LlamaConfig config, int capacity)
        {
            K = [.. Enumerable.Range(0, config.NumHiddenLayers).Select(_ => backend.Allocate(backend.ComputeType, new Shape(capacity, config.KeyValueWidth)))];
            V = [.. Enumerable.Range(0, config.NumHiddenLayers).Select(_ => backend.Allocate(backend.ComputeType, new Shape(capacity, config.KeyValueWidth)))];
            Cos = backend.Allocate(backend.AccumulationType, new Shape(capacity, config.HeadSize / 2));
            Sin = backend.Allocate(backend.AccumulationType, new Shape(capacity, config.HeadSize / 2));
            RotaryFrequencies.Upload(backend, config, capacity, Cos, Sin);
        }

        public Tensor[] K { get; }
        public Tensor[] V { get; }
        public Tensor Cos { get; }
        public Tensor Sin { get; }

        /// <summary>Positions filled so far.</summary>
        public int Length { get; set; }

        public void Dispose()
        {
            foreach (var t in K.Concat(V))
            {
                t.Dispose();
            }
            Cos.Dispose();
            Sin.Dispose();
        }
    }
}
