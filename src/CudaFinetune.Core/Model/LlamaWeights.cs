using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>
/// Allocates a Llama model's base weights: one tensor per <see cref="LlamaTensorNames.BaseWeights"/>
/// entry, in that order, so every place that walks the weights (initialisation, saving, loading)
/// sees the same fixed order.
/// </summary>
public static class LlamaWeights
{
    /// <summary>Zero-filled weights in the backend's compute dtype, without gradients.</summary>
    /// <param name="placed">tensors that live elsewhere (views of sharded layer weights), by name; the rest are allocated</param>
    public static ParameterSet Allocate(IBackend backend, LlamaConfig config, Func<string, Tensor?>? placed = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        var weights = new ParameterSet();
        try
        {
            foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
            {
                weights.Add(new Parameter(name, placed?.Invoke(name) ?? backend.Allocate(backend.ComputeType, new Shape(shape))));
            }
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        return weights;
    }

    /// <summary>Total element count of the weights.</summary>
    public static long CountParameters(ParameterSet weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        long total = 0;
        foreach (Parameter p in weights.All)
        {
            total += p.Value.ElementCount;
        }
        return total;
    }
}
