using CudaFinetune.Model;

namespace CudaFinetune.Tests.Model;

/// <summary>
/// A deliberately plain re-statement of Hugging Face's LlamaForCausalLM forward and loss in double
/// precision, written from transformers' modeling_llama.py structure (rotate_half, repeat_kv,
/// additive causal mask, softmax, shift_logits/shift_labels, CrossEntropyLoss(ignore_index=-100))
/// and sharing no code with the engine. LoRA follows PEFT: y += scale · B(A(x)).
/// </summary>
internal static class ReferenceLlama
{
    public static double Loss(LlamaConfig cfg, IReadOnlyDictionary<string, double[]> w, int batch, int seqLen, int[] ids, int[]? labels,
        IReadOnlyDictionary<string, (double[] A, double[] B, int Rank)>? lora = null, double loraScale = 0)
    {
        labels ??= ids;
        int h = cfg.HiddenSize, d = cfg.HeadSize, nq = cfg.NumAttentionHeads, nkv = cfg.KeyValueHeads;
        var (cos, sin) = RopeCosSin(cfg, seqLen);
        double lossSum = 0;
        int counted = 0;
        for (int b = 0; b < batch; b++)
        {
            var hidden = new double[seqLen][];
            for (int t = 0; t < seqLen; t++)
            {
                hidden[t] = w[LlamaTensorNames.Embedding].Skip(ids[b * seqLen + t] * h).Take(h).ToArray();
            }
            for (int l = 0; l < cfg.NumHiddenLayers; l++)
            {
                double[][] Proj(double[][] x, string module)
                {
                    var (o, i) = LlamaTensorNames.LinearShape(cfg, module);
                    var weight = w[LlamaTensorNames.LinearWeight(l, module)];
                    string key = LlamaTensorNames.LinearModule(l, module);
                    return [.. x.Select(row =>
                    {
                        var y = Linear(row, weight, o, i);
                        if (lora is not null && lora.TryGetValue(key, out var ad))
                        {
                            var low = Linear(row, ad.A, ad.Rank, i);
                            var up = Linear(low, ad.B, o, ad.Rank);
                            for (int k = 0; k < o; k++)
                            {
                                y[k] += loraScale * up[k];
                            }
                        }
                        return y;
                    })];
                }
                var residual = hidden;
                var normed = hidden.Select(r => RmsNorm(r, w[LlamaTensorNames.InputNorm(l)], cfg.RmsNormEps)).ToArray();
                var q = Proj(normed, "q_proj");
                var k = Proj(normed, "k_proj");
                var v = Proj(normed, "v_proj");
                var attnOut = new double[seqLen][];
                for (int t = 0; t < seqLen; t++)
                {
                    attnOut[t] = new double[nq * d];
                }
                for (int head = 0; head < nq; head++)
                {
                    int kvHead = head / (nq / nkv); // repeat_kv
                    var qh = Enumerable.Range(0, seqLen).Select(t => ApplyRotary(q[t].Skip(head * d).Take(d).ToArray(), cos[t], sin[t])).ToArray();
                    var kh = Enumerable.Range(0, seqLen).Select(t => ApplyRotary(k[t].Skip(kvHead * d).Take(d).ToArray(), cos[t], sin[t])).ToArray();
                    var vh = Enumerable.Range(0, seqLen).Select(t => v[t].Skip(kvHead * d).Take(d).ToArray()).ToArray();
                    for (int i = 0; i < seqLen; i++)
                    {
                        var scores = new double[seqLen];
                        for (int j = 0; j < seqLen; j++)
                        {
                            double dot = 0;
                            for (int c = 0; c < d; c++)
                            {
                                dot += qh[i][c] * kh[j][c];
                            }
                            scores[j] = dot * Math.Pow(d, -0.5) + (j > i ? double.NegativeInfinity : 0);
                        }
                        var probs = Softmax(scores);
                        for (int j = 0; j < seqLen; j++)
                        {
                            for (int c = 0; c < d; c++)
                            {
                                attnOut[i][head * d + c] += probs[j] * vh[j][c];
                            }
                        }
                    }
                }
                var o = Proj(attnOut, "o_proj");
                hidden = [.. residual.Zip(o, Add)];
                residual = hidden;
                var normed2 = hidden.Select(r => RmsNorm(r, w[LlamaTensorNames.PostAttentionNorm(l)], cfg.RmsNormEps)).ToArray();
                var gate = Proj(normed2, "gate_proj");
                var up = Proj(normed2, "up_proj");
                var act = gate.Zip(up, (g, u) => g.Zip(u, (gv, uv) => gv / (1 + Math.Exp(-gv)) * uv).ToArray()).ToArray();
                var down = Proj(act, "down_proj");
                hidden = [.. residual.Zip(down, Add)];
            }
            var headWeight = cfg.TieWordEmbeddings ? w[LlamaTensorNames.Embedding] : w[LlamaTensorNames.LmHead];
            for (int t = 0; t < seqLen - 1; t++)
            {
                int label = labels[b * seqLen + t + 1];
                if (label == -100)
                {
                    continue;
                }
                var logits = Linear(RmsNorm(hidden[t], w[LlamaTensorNames.FinalNorm], cfg.RmsNormEps), headWeight, cfg.VocabSize, h);
                double max = logits.Max();
                lossSum += max + Math.Log(logits.Sum(x => Math.Exp(x - max))) - logits[label];
                counted++;
            }
        }
        return lossSum / counted;
    }

    private static double[] Add(double[] a, double[] b) => [.. a.Zip(b, (x, y) => x + y)];

    private static double[] Linear(double[] x, double[] weight, int outFeatures, int inFeatures)
    {
        var y = new double[outFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            double s = 0;
            for (int i = 0; i < inFeatures; i++)
            {
                s += weight[o * inFeatures + i] * x[i];
            }
            y[o] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double variance = x.Average(v => v * v);
        double r = 1 / Math.Sqrt(variance + eps);
        return [.. x.Select((v, i) => weight[i] * (v * r))];
    }

    private static double[] Softmax(double[] s)
    {
        double max = s.Max();
        var e = s.Select(x => Math.Exp(x - max)).ToArray();
        double sum = e.Sum();
        return [.. e.Select(x => x / sum)];
    }

    /// <summary>q·cos + rotate_half(q)·sin with cos, sin of length d (the frequencies repeated twice).</summary>
    private static double[] ApplyRotary(double[] x, double[] cos, double[] sin)
    {
        int half = x.Length / 2;
        var rotated = x.Skip(half).Select(v => -v).Concat(x.Take(half)).ToArray();
        return [.. x.Select((v, i) => v * cos[i] + rotated[i] * sin[i])];
    }

    /// <summary>LlamaRotaryEmbedding: emb = cat(freqs, freqs); inv_freq per _compute_default / _compute_llama3_parameters.</summary>
    private static (double[][] Cos, double[][] Sin) RopeCosSin(LlamaConfig cfg, int seqLen)
    {
        int d = cfg.HeadSize;
        var invFreq = Enumerable.Range(0, d / 2).Select(i => 1.0 / Math.Pow(cfg.RopeTheta, 2.0 * i / d)).ToArray();
        if (cfg.RopeScaling is { } s)
        {
            double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            invFreq = [.. invFreq.Select(f =>
            {
                double wavelen = 2 * Math.PI / f;
                if (wavelen < highFreqWavelen)
                {
                    return f;
                }
                if (wavelen > lowFreqWavelen)
                {
                    return f / s.Factor;
                }
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                return (1 - smooth) * f / s.Factor + smooth * f;
            })];
        }
        var cos = new double[seqLen][];
        var sin = new double[seqLen][];
        for (int t = 0; t < seqLen; t++)
        {
            var freqs = invFreq.Select(f => t * f).ToArray();
            var emb = freqs.Concat(freqs).ToArray();
            cos[t] = [.. emb.Select(Math.Cos)];
            sin[t] = [.. emb.Select(Math.Sin)];
        }
        return (cos, sin);
    }
}
