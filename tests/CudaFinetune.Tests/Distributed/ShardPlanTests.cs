using CudaFinetune.Distributed;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>ZeRO's split of the trained parameters: every element in exactly one shard, equal aligned shards, and resharding between world sizes.</summary>
[TestFixture]
public sealed class ShardPlanTests
{
    private static readonly long[] Counts = [1000, 3, 0, 4096, 77, 1];

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(8)]
    public void Every_element_lands_in_exactly_one_shard_at_its_flat_position(int worldSize)
    {
        var plan = ShardPlan.Create(Counts, worldSize);
        Assert.That(plan.FlatSize % (worldSize * plan.Alignment), Is.Zero);
        Assert.That(plan.ShardSize * worldSize, Is.EqualTo(plan.FlatSize));
        var seen = new int[plan.ElementCount];
        for (int rank = 0; rank < worldSize; rank++)
        {
            foreach (var s in plan.Segments(rank))
            {
                Assert.That(s.ShardOffset + s.Count, Is.LessThanOrEqualTo(plan.ShardSize));
                Assert.That(rank * plan.ShardSize + s.ShardOffset, Is.EqualTo(plan.FlatOffset(s.Parameter) + s.ParameterOffset), "flat position");
                for (long i = 0; i < s.Count; i++)
                {
                    seen[plan.FlatOffset(s.Parameter) + s.ParameterOffset + i]++;
                }
            }
        }
        Assert.That(seen, Is.All.EqualTo(1));
    }

    [TestCase(2, 1)]
    [TestCase(1, 3)]
    [TestCase(4, 2)]
    [TestCase(3, 5)]
    public void Resharding_keeps_every_value_at_its_flat_position(int from, int to)
    {
        var source = ShardPlan.Create(Counts, from);
        var target = ShardPlan.Create(Counts, to);
        long[][] shards = [.. Enumerable.Range(0, from).Select(r => Enumerable.Range(0, (int)source.ShardSize)
            .Select(i => r * source.ShardSize + i < source.ElementCount ? r * source.ShardSize + i + 1 : 0).ToArray())];
        var resharded = source.Reshard(shards, target);
        Assert.That(resharded, Has.Length.EqualTo(to));
        for (int r = 0; r < to; r++)
        {
            for (long i = 0; i < target.ShardSize; i++)
            {
                long flat = r * target.ShardSize + i;
                Assert.That(resharded[r][i], Is.EqualTo(flat < target.ElementCount ? flat + 1 : 0), $"rank {r}, element {i}");
            }
        }
    }
}
