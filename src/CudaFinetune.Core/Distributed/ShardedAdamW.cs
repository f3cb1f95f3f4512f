using CudaFinetune.Backends;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// One rank's ZeRO optimizer (stages 1 and 2): every rank holds the full trained parameters for its forward and backward,
/// but only its shard (<see cref="ShardPlan"/>) of the master weights and AdamW moments. A step gathers the rank's
/// gradients into one flat buffer, reduce-scatters it (Σ over ranks — each rank's gradients are already scaled by the
/// global batch), steps AdamW on the shard, and all-gathers the updated masters into every rank's parameters. With the
/// same inputs every rank ends with the same parameters, and equal to one rank stepping on the summed gradients.
/// </summary>
public sealed class ShardedAdamW : IDisposable
{
    private readonly IBackend _backend;
    private readonly IProcessGroup _group;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly Tensor _flatGradients, _flatWeights, _gradientShard, _master, _m, _v;
    private readonly Tensor[] _gradientViews, _weightViews;

    public ShardedAdamW(IBackend backend, IProcessGroup group, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8,
        double weightDecay = 0, int alignment = 64)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(parameters);
        (_backend, _group, _parameters) = (backend, group, parameters);
        (Beta1, Beta2, Epsilon, WeightDecay) = (beta1, beta2, epsilon, weightDecay);
        Plan = ShardPlan.Create([.. parameters.Select(p => p.Value.ElementCount)], group.WorldSize, alignment);
        var dtype = backend.AccumulationType;
        int flat = checked((int)Plan.FlatSize), shard = checked((int)Plan.ShardSize);
        _flatGradients = backend.Allocate(dtype, new Shape(flat));
        _flatWeights = backend.Allocate(dtype, new Shape(flat));
        _gradientShard = backend.Allocate(dtype, new Shape(shard));
        _master = backend.Allocate(dtype, new Shape(shard));
        _m = backend.Allocate(dtype, new Shape(shard));
        _v = backend.Allocate(dtype, new Shape(shard));
        Tensor View(Tensor buffer, int p) => new(buffer.Storage, dtype, parameters[p].Value.Shape, Plan.FlatOffset(p), ownsStorage: false);
        _gradientViews = [.. Enumerable.Range(0, parameters.Count).Select(p => View(_flatGradients, p))];
        _weightViews = [.. Enumerable.Range(0, parameters.Count).Select(p => View(_flatWeights, p))];
        // The master shard starts from the parameters at full precision (every rank holds the same ones).
        for (int p = 0; p < parameters.Count; p++)
        {
            backend.Copy(parameters[p].FullPrecision, _weightViews[p]);
        }
        backend.Copy(new Tensor(_flatWeights.Storage, dtype, new Shape(shard), (long)group.Rank * shard, ownsStorage: false), _master);
    }

    public ShardPlan Plan { get; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    /// <summary>Updates taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>This rank's shard of the master weights and of the moments (what a sharded checkpoint saves).</summary>
    public (Tensor Master, Tensor M, Tensor V) Shard => (_master, _m, _v);

    /// <summary>One update from every rank's gradients (summed), scaled by <paramref name="gradientScale"/> (the clipping factor).</summary>
    public void Step(double learningRate, double gradientScale = 1)
    {
        StepCount++;
        for (int p = 0; p < _parameters.Count; p++)
        {
            _backend.Copy(_parameters[p].Gradient!, _gradientViews[p]);
        }
        _group.ReduceScatterSum(_flatGradients, _gradientShard);
        _backend.AdamWUpdate(_master, _gradientShard, _m, _v, new AdamWStep(learningRate, Beta1, Beta2, Epsilon, WeightDecay, StepCount, gradientScale));
        _group.AllGather(_master, _flatWeights);
        for (int p = 0; p < _parameters.Count; p++)
        {
            var parameter = _parameters[p];
            _backend.Copy(_weightViews[p], parameter.FullPrecision);
            if (parameter.Master is not null)
            {
                _backend.Copy(parameter.Master, parameter.Value);
            }
        }
    }

    public void Dispose()
    {
        foreach (var t in new[] { _flatGradients, _flatWeights, _gradientShard, _master, _m, _v })
        {
            t.Dispose();
        }
    }
}
