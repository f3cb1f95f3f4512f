using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// RoPE inverse frequencies and cos/sin tables, computed as Hugging Face's LlamaRotaryEmbedding does
/// (including <c>rope_scaling</c> type "llama3" from Llama 3.1/3.2). The float32 tables follow
/// PyTorch's float32 arithmetic step by step (frequency rounded to float, then position × frequency
/// rounded to float) so angles agree with transformers at long positions too.
/// </summary>
public static class RotaryFrequencies
{
    /// <summary>inv_freq[i] = 1 / theta^(2i/d), i &lt; d/2, then llama3-scaled when configured.</summary>
    public static double[] InverseFrequencies(LlamaConfig config)
    {
        int dim = config.HeadSize, half = dim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
        {
            inv[i] = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / dim);
        }
        if (config.RopeScaling is { } s)
        {
            ApplyLlama3Scaling(inv, s);
        }
        return inv;
    }

    /// <summary>
    /// Llama 3 frequency scaling: wavelengths longer than original_max/low_freq_factor are divided
    /// by factor, shorter than original_max/high_freq_factor are kept, and those between are blended
    /// smoothly.
    /// </summary>
    private static void ApplyLlama3Scaling(double[] inv, RopeScaling s)
    {
        double oldContext = s.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / s.LowFreqFactor;
        double highFreqWavelen = oldContext / s.HighFreqFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            double scaled = wavelen > lowFreqWavelen ? inv[i] / s.Factor : inv[i];
            bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium)
            {
                double smooth = (oldContext / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                scaled = (1 - smooth) * scaled / s.Factor + smooth * scaled;
            }
            inv[i] = scaled;
        }
    }

    /// <summary>Fills cos and sin tensors [seqLen, d/2] (F32 or F64; the backend's accumulation dtype) with the tables.</summary>
    public static void Upload(IBackend backend, LlamaConfig config, int seqLen, Tensor cos, Tensor sin)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(cos);
        if (cos.DType == DType.F64)
        {
            var (c, s) = TablesF64(config, seqLen);
            backend.CopyFromHost<double>(c, cos);
            backend.CopyFromHost<double>(s, sin);
        }
        else
        {
            var (c, s) = TablesF32(config, seqLen);
            backend.CopyFromHost<float>(c, cos);
            backend.CopyFromHost<float>(s, sin);
        }
    }

    /// <summary>cos and sin tables [seqLen, d/2] in double precision.</summary>
    public static (double[] Cos, double[] Sin) TablesF64(LlamaConfig config, int seqLen)
    {
        double[] inv = InverseFrequencies(config);
        int half = inv.Length;
        var cos = new double[seqLen * half];
        var sin = new double[seqLen * half];
        for (int p = 0; p < seqLen; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * inv[i];
                cos[p * half + i] = Math.Cos(angle);
                sin[p * half + i] = Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    /// <summary>cos and sin tables [seqLen, d/2] as float32, with PyTorch's float32 rounding of frequency and angle.</summary>
    public static (float[] Cos, float[] Sin) TablesF32(LlamaConfig config, int seqLen)
    {
        double[] inv = InverseFrequencies(config);
        int half = inv.Length;
        var cos = new float[seqLen * half];
        var sin = new float[seqLen * half];
        for (int p = 0; p < seqLen; p++)
        {
            for (int i = 0; i < half; i++)
            {
                float angle = p * (float)inv[i];
                cos[p * half + i] = (float)Math.Cos(angle);
                sin[p * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }
}
