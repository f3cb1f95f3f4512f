using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Training;

/// <summary>
/// AdamW with decoupled weight decay (PyTorch's defaults: β 0.9/0.999, ε 1e-8), one first and
/// second moment tensor per trainable parameter, stepped on the backend. A parameter with a master copy is
/// stepped on the master (moments in its dtype) and rounded into its working weight. The one-rank optimizer.
/// </summary>
public sealed class AdamWOptimizer : ITrainingOptimizer
{
    private readonly IBackend _backend;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly (Parameter Parameter, Tensor M, Tensor V)[] _state;

    public AdamWOptimizer(IBackend backend, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(parameters);
        _backend = backend;
        _parameters = parameters;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _state = [.. parameters.Select(p => (p, backend.Allocate(p.FullPrecision.DType, p.Value.Shape), backend.Allocate(p.FullPrecision.DType, p.Value.Shape)))];
        CheckpointPieces =
        [
            .. _state.Select(s => CheckpointPiece.Whole(s.Parameter.Name, CheckpointFormat.ModelGroup, s.Parameter.FullPrecision)),
            .. _state.SelectMany(s => new[]
            {
                CheckpointPiece.Whole(s.Parameter.Name + CheckpointFormat.FirstMomentSuffix, CheckpointFormat.OptimizerGroup, s.M),
                CheckpointPiece.Whole(s.Parameter.Name + CheckpointFormat.SecondMomentSuffix, CheckpointFormat.OptimizerGroup, s.V),
            }),
        ];
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    public long StepCount { get; private set; }

    public DType StateDType => _state.Length > 0 ? _state[0].M.DType : _backend.AccumulationType;

    public IReadOnlyList<CheckpointPiece> CheckpointPieces { get; }

    /// <summary>Each parameter with its first (M) and second (V) moments, in parameter order.</summary>
    public IReadOnlyList<(Parameter Parameter, Tensor M, Tensor V)> State => _state;

    public void RestoreStepCount(long stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        StepCount = stepCount;
    }

    /// <summary>One rank has nothing to combine.</summary>
    public Action<int>? GradientsReady => null;

    /// <summary>One rank's gradients are already global: only their norm.</summary>
    public double ReduceGradients() => GradientNorms.Of(_backend, _parameters);

    public void Update(double learningRate, double gradientScale = 1)
    {
        StepCount++;
        var update = new AdamWStep(learningRate, Beta1, Beta2, Epsilon, WeightDecay, StepCount, gradientScale);
        foreach (var (p, m, v) in _state)
        {
            _backend.AdamWUpdate(p.FullPrecision, p.Gradient!, m, v, update, p.Master is null ? null : p.Value);
        }
    }

    /// <summary>The restored full-precision weights rounded into the working weights.</summary>
    public void PublishRestoredState()
    {
        foreach (var (p, _, _) in _state)
        {
            p.RefreshValue(_backend);
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
