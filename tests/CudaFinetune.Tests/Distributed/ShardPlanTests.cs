using CudaFinetune.Distributed;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>
/// ZeRO's split of the trained parameters: every element in exactly one shard, equal aligned parts of every bucket,
/// buckets in the given order, and resharding between world sizes and bucketings.
/// </summary>
[TestFixture]
public sealed class ShardPlanTests
{
    private static readonly long[] Counts = [1000, 3, 0, 4096, 77, 1];

    private static int[] Reversed => [.. Enumerable.Range(0, Counts.Length).Reverse()];

    /// <summary>A distinct non-zero value for element i of parameter p.</summary>
    private static long Tag(int p, long i) => p * 1_000_000L + i + 1;

    [TestCase(1, long.MaxValue, false)]
    [TestCase(2, long.MaxValue, false)]
    [TestCase(3, long.MaxValue, false)]
    [TestCase(8, long.MaxValue, false)]
    [TestCase(2, 1024, true)]
    [TestCase(3, 100, false)]
    public void Every_element_lands_in_exactly_one_shard_at_its_flat_position(int worldSize, long bucketElements, bool reversed)
    {
        var plan = ShardPlan.Create(Counts, worldSize, bucketElements: bucketElements, order: reversed ? Reversed : null);
        Assert.That(plan.ShardSize * worldSize, Is.EqualTo(plan.FlatSize));
        Assert.That(plan.Buckets.Select(b => b.Size % (worldSize * plan.Alignment)), Is.All.Zero, "every bucket splits into aligned equal parts");
        Assert.That(plan.Buckets.Sum(b => b.Count), Is.EqualTo(Counts.Length));
        if (bucketElements < long.MaxValue)
        {
            Assert.That(plan.Buckets, Has.Count.GreaterThan(1));
            foreach (var b in plan.Buckets.Where(b => b.Count > 1))
            {
                Assert.That(Enumerable.Range(b.First, b.Count).Sum(i => Counts[plan.Order[i]]), Is.LessThanOrEqualTo(bucketElements), "a bucket of several parameters stays within the size");
            }
        }
        var seen = Counts.Select(n => new int[n]).ToArray();
        for (int rank = 0; rank < worldSize; rank++)
        {
            foreach (var s in plan.Segments(rank))
            {
                Assert.That(s.ShardOffset + s.Count, Is.LessThanOrEqualTo(plan.ShardSize));
                Assert.That(plan.FlatPosition(rank, s.ShardOffset), Is.EqualTo(plan.FlatOffset(s.Parameter) + s.ParameterOffset), "flat position");
                for (long i = 0; i < s.Count; i++)
                {
                    seen[s.Parameter][s.ParameterOffset + i]++;
                }
            }
        }
        Assert.That(seen.SelectMany(x => x), Is.All.EqualTo(1));
    }

    [Test]
    public void Buckets_follow_the_layout_order()
    {
        var plan = ShardPlan.Create(Counts, 2, bucketElements: 1024, order: Reversed);
        Assert.That(plan.FlatOffset(5), Is.Zero, "the last parameter comes first");
        Assert.That(plan.FlatOffset(0), Is.GreaterThan(plan.FlatOffset(3)));
        Assert.That(plan.Buckets.Select(b => b.FlatStart), Is.Ordered.Ascending);
    }

    [TestCase(2, 1, long.MaxValue, long.MaxValue)]
    [TestCase(1, 3, long.MaxValue, 500)]
    [TestCase(4, 2, 200, long.MaxValue)]
    [TestCase(3, 5, 1024, 64)]
    public void Resharding_moves_every_value_to_its_place_in_the_other_plan(int from, int to, long fromBucket, long toBucket)
    {
        var source = ShardPlan.Create(Counts, from, bucketElements: fromBucket, order: Reversed);
        var target = ShardPlan.Create(Counts, to, bucketElements: toBucket);
        var shards = Enumerable.Range(0, from).Select(_ => new long[source.ShardSize]).ToArray();
        for (int r = 0; r < from; r++)
        {
            foreach (var s in source.Segments(r))
            {
                for (long i = 0; i < s.Count; i++)
                {
                    shards[r][s.ShardOffset + i] = Tag(s.Parameter, s.ParameterOffset + i);
                }
            }
        }
        var resharded = source.Reshard(shards, target);
        Assert.That(resharded, Has.Length.EqualTo(to));
        for (int r = 0; r < to; r++)
        {
            var expected = new long[target.ShardSize];
            foreach (var s in target.Segments(r))
            {
                for (long i = 0; i < s.Count; i++)
                {
                    expected[s.ShardOffset + i] = Tag(s.Parameter, s.ParameterOffset + i);
                }
            }
            Assert.That(resharded[r], Is.EqualTo(expected), $"rank {r} (padding zero)");
        }
    }
}
