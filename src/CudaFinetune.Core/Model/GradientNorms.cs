using CudaFinetune.Backends;

namespace CudaFinetune.Model;

/// <summary>The global norm of parameters' gradients: √(Σ over parameters, in order, of Σ g²).</summary>
public static class GradientNorms
{
    public static double Of(IBackend backend, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(parameters);
        double sum = 0;
        for (int i = 0; i < parameters.Count; i++)
        {
            sum += backend.SumOfSquares(parameters[i].Gradient!);
        }
        return Math.Sqrt(sum);
    }
}
