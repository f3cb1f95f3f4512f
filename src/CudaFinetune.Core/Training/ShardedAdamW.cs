using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Distributed;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Training;

/// <summary>
/// One rank's ZeRO optimizer (stages 1 and 2): every rank holds the full trained parameters for its forward and backward,
/// but only its shard (<see cref="ShardPlan"/>) of the master weights and AdamW moments. The gradients are copied into a
/// flat buffer and reduce-scattered bucket by bucket (Σ over ranks — each rank's gradients are already scaled by the
/// global batch): during the rank's last backward pass of a step <see cref="GradientsReady"/> hands each bucket to the
/// group as soon as the pass is past its parameters (on NCCL the reduction then overlaps the rest of the pass), and
/// <see cref="ReduceGradients"/> does the rest and waits. <see cref="Update"/> steps AdamW on the shard and all-gathers
/// the updated masters into every rank's parameters. With the same inputs every rank ends with the same parameters, equal
/// to one rank stepping on the summed gradients. A checkpoint saves each rank's slices of the masters and moments.
/// </summary>
public sealed class ShardedAdamW : ITrainingOptimizer
{
    private readonly IBackend _backend;
    private readonly IProcessGroup _group;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly Tensor _flatGradients, _flatWeights, _gradientShard, _master, _m, _v;
    private readonly RankSums _normSquared;
    private readonly Tensor[] _gradientViews, _weightViews;
    private readonly (Tensor Gradients, Tensor GradientPart, Tensor Weights, Tensor MasterPart, int Stage)[] _buckets;
    private int _reduced;

    /// <summary>PyTorch DDP's 25 MiB, in fp32 elements.</summary>
    public const long DefaultBucketElements = 25L << 18;

    /// <param name="gradientStages">when the backward pass finishes each parameter's gradient (<see cref="LlamaModel.GradientStages"/>): buckets are laid out in that order; null: model order, one stage</param>
    /// <param name="bucketElements">elements per bucket at most</param>
    public ShardedAdamW(IBackend backend, IProcessGroup group, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8,
        double weightDecay = 0, int alignment = 64, IReadOnlyList<int>? gradientStages = null, long bucketElements = DefaultBucketElements)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(parameters);
        (_backend, _group, _parameters) = (backend, group, parameters);
        (Beta1, Beta2, Epsilon, WeightDecay) = (beta1, beta2, epsilon, weightDecay);
        int Stage(int p) => gradientStages?[p] ?? 0;
        int[] order = [.. Enumerable.Range(0, parameters.Count).OrderBy(Stage)]; // stable: model order within a stage
        Plan = ShardPlan.Create([.. parameters.Select(p => p.Value.ElementCount)], group.WorldSize, alignment, bucketElements, order);
        var dtype = backend.AccumulationType;
        int flat = checked((int)Plan.FlatSize), shard = checked((int)Plan.ShardSize);
        _flatGradients = backend.Allocate(dtype, new Shape(flat));
        _flatWeights = backend.Allocate(dtype, new Shape(flat));
        _gradientShard = backend.Allocate(dtype, new Shape(shard));
        _master = backend.Allocate(dtype, new Shape(shard));
        _m = backend.Allocate(dtype, new Shape(shard));
        _v = backend.Allocate(dtype, new Shape(shard));
        _normSquared = new RankSums(backend, group, 1);
        _gradientViews = [.. Enumerable.Range(0, parameters.Count).Select(p => _flatGradients.View(Plan.FlatOffset(p), parameters[p].Value.Shape))];
        _weightViews = [.. Enumerable.Range(0, parameters.Count).Select(p => _flatWeights.View(Plan.FlatOffset(p), parameters[p].Value.Shape))];
        _buckets = [.. Plan.Buckets.Select(b => (_flatGradients.View(b.FlatStart, new Shape(checked((int)b.Size))), _gradientShard.View(b.ShardStart, new Shape(checked((int)b.PartSize))),
            _flatWeights.View(b.FlatStart, new Shape(checked((int)b.Size))), _master.View(b.ShardStart, new Shape(checked((int)b.PartSize))),
            Enumerable.Range(b.First, b.Count).Select(i => Stage(order[i])).DefaultIfEmpty(0).Max()))];
        GradientsReady = LaunchReadyBuckets;
        CheckpointPieces = [.. Pieces(CheckpointFormat.ModelGroup, "", _master), .. Pieces(CheckpointFormat.OptimizerGroup, CheckpointFormat.FirstMomentSuffix, _m),
            .. Pieces(CheckpointFormat.OptimizerGroup, CheckpointFormat.SecondMomentSuffix, _v)];
        // The master shard starts from the parameters at full precision (every rank holds the same ones).
        for (int p = 0; p < parameters.Count; p++)
        {
            backend.Copy(parameters[p].FullPrecision, _weightViews[p]);
        }
        foreach (var (_, _, weights, masterPart, _) in _buckets)
        {
            using var mine = weights.View((long)group.Rank * masterPart.ElementCount, masterPart.Shape);
            backend.Copy(mine, masterPart);
        }
    }

    public ShardPlan Plan { get; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    public long StepCount { get; private set; }

    public DType StateDType => _m.DType;

    /// <summary>This rank's slices of every trained parameter (group model) and of its two moments (group optimizer).</summary>
    public IReadOnlyList<CheckpointPiece> CheckpointPieces { get; }

    /// <summary>This rank's shard of the master weights and of the moments, padding included.</summary>
    public (Tensor Master, Tensor M, Tensor V) Shard => (_master, _m, _v);

    public void RestoreStepCount(long stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        StepCount = stepCount;
    }

    /// <summary>
    /// Called by the backward pass with the stage it has finished (see the constructor): reduce-scatters, in order, the
    /// buckets whose gradients are all final. Every rank issues the same buckets in the same order, whether here or in
    /// <see cref="ReduceGradients"/>.
    /// </summary>
    public Action<int> GradientsReady { get; }

    private void LaunchReadyBuckets(int stage)
    {
        for (; _reduced < _buckets.Length && _buckets[_reduced].Stage <= stage; _reduced++)
        {
            var bucket = Plan.Buckets[_reduced];
            for (int i = bucket.First; i < bucket.First + bucket.Count; i++)
            {
                int p = Plan.Order[i];
                _backend.Copy(_parameters[p].Gradient!, _gradientViews[p]);
            }
            _group.ReduceScatterSum(_buckets[_reduced].Gradients, _buckets[_reduced].GradientPart);
        }
    }

    /// <summary>Reduce-scatters the buckets not yet handed over, waits for all (this rank keeps the sum of its shard), and returns the norm of the whole sum.</summary>
    public double ReduceGradients()
    {
        LaunchReadyBuckets(int.MaxValue);
        _reduced = 0;
        _group.WaitForCollectives();
        _normSquared.Values[0] = _backend.SumOfSquares(_gradientShard);
        _normSquared.AllReduce();
        return Math.Sqrt(_normSquared.Values[0]);
    }

    /// <summary>AdamW on this rank's shard, then every rank's updated masters all-gathered into the parameters.</summary>
    public void Update(double learningRate, double gradientScale = 1)
    {
        StepCount++;
        _backend.AdamWUpdate(_master, _gradientShard, _m, _v, new AdamWStep(learningRate, Beta1, Beta2, Epsilon, WeightDecay, StepCount, gradientScale));
        PublishMasters();
    }

    /// <summary>The restored master shards all-gathered into every rank's parameters.</summary>
    public void PublishRestoredState() => PublishMasters();

    private void PublishMasters()
    {
        foreach (var (_, _, weights, masterPart, _) in _buckets)
        {
            _group.AllGather(masterPart, weights);
        }
        for (int p = 0; p < _parameters.Count; p++)
        {
            var parameter = _parameters[p];
            _backend.Copy(_weightViews[p], parameter.FullPrecision);
            parameter.RefreshValue(_backend);
        }
    }

    /// <summary>Each segment of this rank's shard of <paramref name="buffer"/> as a slice of its parameter's tensor.</summary>
    private IEnumerable<CheckpointPiece> Pieces(string group, string suffix, Tensor buffer)
        => Plan.Segments(_group.Rank).Select(s => new CheckpointPiece(_parameters[s.Parameter].Name + suffix, group,
            buffer.View(s.ShardOffset, new Shape(checked((int)s.Count))), _parameters[s.Parameter].Value.Shape, s.ParameterOffset));

    public void Dispose()
    {
        foreach (var t in new[] { _flatGradients, _flatWeights, _gradientShard, _master, _m, _v })
        {
            t.Dispose();
        }
        _normSquared.Dispose();
        foreach (var view in _buckets.SelectMany(b => new[] { b.Gradients, b.GradientPart, b.Weights, b.MasterPart }).Concat(_gradientViews).Concat(_weightViews)
            .Concat(CheckpointPieces.Select(p => p.Data)))
        {
            view.Dispose();
        }
    }
}
