using CudaFinetune.Backends;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Training;

/// <summary>
/// AdamW with decoupled weight decay (PyTorch's defaults: β 0.9/0.999, ε 1e-8), one first and
/// second moment tensor per trainable parameter, stepped on the backend. A parameter with a master copy is
/// stepped on the master (moments in its dtype) and rounded into its working weight.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly IBackend _backend;
    private readonly (Parameter Parameter, Tensor M, Tensor V)[] _state;

    public AdamWOptimizer(IBackend backend, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(parameters);
        _backend = backend;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _state = [.. parameters.Select(p => (p, backend.Allocate(p.FullPrecision.DType, p.Value.Shape), backend.Allocate(p.FullPrecision.DType, p.Value.Shape)))];
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    /// <summary>Updates taken so far (PyTorch's per-parameter "step").</summary>
    public long StepCount { get; private set; }

    /// <summary>Each parameter with its first (M) and second (V) moments, in parameter order.</summary>
    public IReadOnlyList<(Parameter Parameter, Tensor M, Tensor V)> State => _state;

    /// <summary>Continues the step count of a restored optimizer (its moments are restored into <see cref="State"/>).</summary>
    public void RestoreStepCount(long stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        StepCount = stepCount;
    }

    /// <summary>One update of every parameter from its gradient times <paramref name="gradientScale"/> (the clipping factor).</summary>
    public void Step(double learningRate, double gradientScale = 1)
    {
        StepCount++;
        var update = new AdamWStep(learningRate, Beta1, Beta2, Epsilon, WeightDecay, StepCount, gradientScale);
        foreach (var (p, m, v) in _state)
        {
            _backend.AdamWUpdate(p.FullPrecision, p.Gradient!, m, v, update, p.Master is null ? null : p.Value);
        }
    }

    public void Dispose()
    {
        foreach (var (_, m, v) in _state)
        {
            m.Dispose();
            v.Dispose();
        }
    }
}
