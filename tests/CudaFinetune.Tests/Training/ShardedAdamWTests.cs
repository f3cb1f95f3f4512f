using CudaFinetune.Backends.Cpu;
using CudaFinetune.Distributed;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// ZeRO's sharded AdamW on thread ranks: after several steps every rank holds the same parameters, equal to one rank's
/// plain AdamW on the gradients summed in rank order (bit for bit), and each rank keeps only its shard of masters and moments.
/// </summary>
[TestFixture]
public sealed class ShardedAdamWTests
{
    private static readonly int[] Sizes = [130, 7, 1000];

    private static float[] Values(int seed, int n) => [.. Enumerable.Range(0, n).Select(i => MathF.Sin(seed * 7919 + i))];

    [TestCase(1, false)]
    [TestCase(2, false)]
    [TestCase(3, false)]
    [TestCase(2, true)]
    [TestCase(3, true)]
    public void Every_rank_ends_where_one_rank_on_the_summed_gradients_ends(int worldSize, bool buckets)
    {
        const int steps = 3;
        // The reference: one AdamW on Σ_r g_r (summed in rank order, as the reduce-scatter does).
        using var cpu = new CpuBackend(threads: 1);
        var reference = Sizes.Select((n, p) => new Parameter($"p{p}", Tensor(cpu, Values(p, n)), cpu.Allocate(DType.F32, new Shape(n)))).ToList();
        using var optimizer = new AdamWOptimizer(cpu, reference, weightDecay: 0.01);
        double lastNorm = 0;
        for (int step = 1; step <= steps; step++)
        {
            foreach (var (p, index) in reference.Select((p, i) => (p, i)))
            {
                var sum = p.Gradient!.HostSpan<float>();
                for (int r = 0; r < worldSize; r++)
                {
                    var g = Values(1000 * step + 10 * index + r, Sizes[index]);
                    for (int i = 0; i < g.Length; i++)
                    {
                        sum[i] = r == 0 ? g[i] : sum[i] + g[i];
                    }
                }
            }
            lastNorm = optimizer.ReduceGradients();
            optimizer.Update(1e-2, gradientScale: 0.5);
        }

        var results = new float[worldSize][][];
        var shardShare = new long[worldSize];
        var norms = new double[worldSize];
        var bucketCounts = new int[worldSize];
        var groups = ThreadProcessGroup.Create(worldSize);
        var threads = groups.Select(group => new Thread(() =>
        {
            using var backend = new CpuBackend(threads: 1);
            var parameters = Sizes.Select((n, p) => new Parameter($"p{p}", Tensor(backend, Values(p, n)), backend.Allocate(DType.F32, new Shape(n)))).ToList();
            // With buckets: the backward pass finishes the last parameter first, and hands each stage over as it goes.
            int[]? stages = buckets ? [2, 1, 0] : null;
            using var sharded = new ShardedAdamW(backend, group, parameters, weightDecay: 0.01, gradientStages: stages, bucketElements: buckets ? 200 : long.MaxValue);
            for (int step = 1; step <= steps; step++)
            {
                for (int index = 0; index < parameters.Count; index++)
                {
                    Values(1000 * step + 10 * index + group.Rank, Sizes[index]).CopyTo(parameters[index].Gradient!.HostSpan<float>());
                }
                bucketCounts[group.Rank] = sharded.Plan.Buckets.Count;
                if (buckets)
                {
                    sharded.GradientsReady(0);
                    sharded.GradientsReady(1);
                }
                norms[group.Rank] = sharded.ReduceGradients();
                sharded.Update(1e-2, gradientScale: 0.5);
            }
            shardShare[group.Rank] = sharded.Shard.Master.ElementCount * worldSize - sharded.Plan.FlatSize;
            results[group.Rank] = [.. parameters.Select(p => p.Value.HostSpan<float>().ToArray())];
            parameters.ForEach(p => p.Dispose());
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.That(shardShare, Is.All.Zero, "each rank keeps one shard of the masters and moments");
        Assert.That(bucketCounts, Is.All.EqualTo(buckets ? 2 : 1), "the 1000-element parameter alone, then the two small ones");
        Assert.That(norms, Is.All.EqualTo(lastNorm).Within(1e-4).Percent, "every rank measures the norm of the summed gradients (f32 sums in another order)");
        for (int r = 0; r < worldSize; r++)
        {
            Assert.That(results[r], Is.Not.Null, $"rank {r} finished");
            for (int p = 0; p < Sizes.Length; p++)
            {
                Assert.That(results[r][p], Is.EqualTo(reference[p].Value.HostSpan<float>().ToArray()), $"rank {r}, parameter {p}");
            }
        }
        reference.ForEach(p => p.Dispose());
    }

    private static Tensor Tensor(CpuBackend backend, float[] values)
    {
        var t = backend.Allocate(DType.F32, new Shape(values.Length));
        backend.CopyFromHost<float>(values, t);
        return t;
    }
}
