using CudaFinetune.Backends;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// Random initialisation of a fresh Llama model, as Hugging Face's <c>LlamaPreTrainedModel._init_weights</c>
/// does it: linear and embedding weights ~ Normal(0, initializer_range), RMSNorm weights = 1.
/// The normals come from Philox keyed by the seed, with the tensor's index in
/// <see cref="LlamaTensorNames.BaseWeights"/> as a counter word, so every element is a pure
/// function of (seed, tensor, element): the same seed gives the same model on any thread count,
/// and the values do not depend on which other tensors exist.
/// </summary>
public static class LlamaInitializer
{
    /// <summary>Counter word that separates initialisation draws from every other use of Philox.</summary>
    private const uint Purpose = 0x494E4954; // "INIT"

    /// <summary>Pairs of normals generated per parallel work item; fixed so the partition never depends on the machine.</summary>
    private const int PairsPerChunk = 1 << 14;

    public static void Initialize(IBackend backend, ParameterSet weights, LlamaConfig config, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(config);
        uint index = 0;
        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
        {
            if (!weights.TryGet(name, out Parameter parameter))
            {
                throw new ArgumentException($"the weights have no '{name}'; allocate them with LlamaWeights.Allocate", nameof(weights));
            }
            Tensor value = parameter.Value;
            if (value.Shape != new Shape(shape))
            {
                throw new ArgumentException($"'{name}' has shape {value.Shape}, the config needs {new Shape(shape)}", nameof(weights));
            }
            if (shape.Length == 1)
            {
                backend.Fill(value, 1.0);
            }
            else
            {
                FillNormal(backend, value, config.InitializerRange, seed, index);
            }
            index++;
        }
    }

    /// <summary>Element j of tensor <paramref name="tensorIndex"/>: pair j/2 uses one Philox block (four words, two uniforms), Box–Muller gives cos for even j, sin for odd j.</summary>
    private static void FillNormal(IBackend backend, Tensor tensor, double std, ulong seed, uint tensorIndex)
    {
        var values = new double[tensor.ElementCount];
        long pairs = (values.Length + 1) / 2;
        long chunks = (pairs + PairsPerChunk - 1) / PairsPerChunk;
        Parallel.For(0, chunks, chunk =>
        {
            long end = Math.Min(pairs, (chunk + 1) * PairsPerChunk);
            for (long pair = chunk * PairsPerChunk; pair < end; pair++)
            {
                var (r0, r1, r2, r3) = Philox.Generate((uint)pair, (uint)(pair >> 32), tensorIndex, Purpose, (uint)seed, (uint)(seed >> 32));
                double u1 = Philox.ToUniformDouble(r0, r1), u2 = Philox.ToUniformDouble(r2, r3);
                double radius = std * Math.Sqrt(-2.0 * Math.Log(1.0 - u1)); // 1 − u1 ∈ (0, 1]: never log(0)
                (double sin, double cos) = Math.SinCos(2.0 * Math.PI * u2);
                long j = 2 * pair;
                values[j] = radius * cos;
                if (j + 1 < values.Length)
                {
                    values[j + 1] = radius * sin;
                }
            }
        });
        CopyIn(backend, values, tensor);
    }

    private static void CopyIn(IBackend backend, double[] values, Tensor tensor)
    {
        switch (tensor.DType)
        {
            case DType.F64:
                backend.CopyFromHost<double>(values, tensor);
                break;
            case DType.F32:
                backend.CopyFromHost<float>(Array.ConvertAll(values, v => (float)v), tensor);
                break;
            case DType.BF16:
                backend.CopyFromHost<ushort>(Array.ConvertAll(values, v => HalfPrecision.ToBFloat16((float)v)), tensor);
                break;
            case DType.F16:
                backend.CopyFromHost<ushort>(Array.ConvertAll(values, v => HalfPrecision.ToFloat16((float)v)), tensor);
                break;
            default:
                throw new ArgumentException($"cannot initialise a {tensor.DType} tensor with normal values", nameof(tensor));
        }
    }
}
