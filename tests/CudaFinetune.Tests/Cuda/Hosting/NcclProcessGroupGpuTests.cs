using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Hosting;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Hosting;

/// <summary>The NCCL process group at world size 1 on GPU 0 (ignored, saying why, without a GPU or NCCL): every collective is the identity.</summary>
[TestFixture]
public sealed class NcclProcessGroupGpuTests
{
    [Test]
    public void At_world_size_one_every_collective_leaves_the_data_as_it_was()
    {
        TestDevices.RequireGpu(report => report.Nccl);
        using var backend = CudaBackend.OpenGpu(computeType: DType.F32);
        using var group = NcclProcessGroup.Join(backend, worldSize: 1, rank: 0, NcclProcessGroup.CreateUniqueId());
        Assert.That((group.Rank, group.WorldSize), Is.EqualTo((0, 1)));
        float[] values = [.. Enumerable.Range(0, 1000).Select(i => MathF.Sin(i))];
        using var buffer = backend.Allocate(DType.F32, new Shape(values.Length));
        using var copy = backend.Allocate(DType.F32, new Shape(values.Length));
        backend.CopyFromHost<float>(values, buffer);
        group.AllReduceSum(buffer);
        group.ReduceScatterSum(buffer, copy);
        group.AllGather(copy, buffer);
        group.Broadcast(buffer, root: 0);
        group.Barrier();
        var result = new float[values.Length];
        backend.CopyToHost<float>(buffer, result);
        Assert.That(result, Is.EqualTo(values));
    }
}
