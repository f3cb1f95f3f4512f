using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// A few host doubles summed over the ranks through one small all-reduce: written into <see cref="Values"/>, staged in a
/// tensor on the group's backend (NCCL wants device memory), summed, and read back into <see cref="Values"/>.
/// </summary>
internal sealed class RankSums : IDisposable
{
    private readonly IBackend _backend;
    private readonly IProcessGroup _group;
    private readonly double[] _values;
    private readonly Tensor _staging;

    public RankSums(IBackend backend, IProcessGroup group, int count)
    {
        (_backend, _group) = (backend, group);
        _values = new double[count];
        _staging = backend.Allocate(DType.F64, new Shape(count));
    }

    /// <summary>This rank's values before <see cref="AllReduce"/>, every rank's sums after it.</summary>
    public Span<double> Values => _values;

    /// <summary>A collective: every rank calls it with its own values.</summary>
    public void AllReduce()
    {
        _backend.CopyFromHost<double>(_values, _staging);
        _group.AllReduceSum(_staging);
        _backend.CopyToHost<double>(_staging, _values);
    }

    public void Dispose() => _staging.Dispose();
}
