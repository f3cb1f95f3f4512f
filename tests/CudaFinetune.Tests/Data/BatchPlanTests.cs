using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Model;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Data;

public sealed class BatchPlanTests
{
    /// <summary>An example of <paramref name="length"/> tokens with ids start, start+1, …; the first <paramref name="masked"/> labels are -100.</summary>
    private static TokenizedExample Example(int start, int length, int masked = 0)
    {
        int[] ids = Enumerable.Range(start, length).ToArray();
        int[] labels = ids.Select((id, i) => i < masked ? -100 : id).ToArray();
        return new TokenizedExample(ids, labels);
    }

    private static int[] Row(TokenBatch batch, int row, bool labels = false) =>
        (labels ? batch.Labels! : batch.InputIds).AsSpan(row * batch.SeqLen, batch.SeqLen).ToArray();

    [Test]
    public void Packing_concatenates_and_cuts_rows_of_the_context_length()
    {
        TokenizedExample[] examples = [Example(100, 3, masked: 1), Example(200, 4, masked: 2), Example(300, 6)];
        BatchPlan plan = BatchPlan.Create(examples, BatchingStrategy.Packing, batchSize: 2, contextLength: 4, padId: 0);
        Assert.That(plan.Rows, Is.EqualTo(13 / 4));
        Assert.That(plan.DroppedTokens, Is.EqualTo(1));
        Assert.That(plan.Count, Is.EqualTo(2));
        Assert.That((plan[0].BatchSize, plan[0].SeqLen, plan[1].BatchSize, plan[1].SeqLen), Is.EqualTo((2, 4, 1, 4)));
        Assert.That(Row(plan[0], 0), Is.EqualTo(new[] { 100, 101, 102, 200 }));
        Assert.That(Row(plan[0], 1), Is.EqualTo(new[] { 201, 202, 203, 300 }));
        Assert.That(Row(plan[1], 0), Is.EqualTo(new[] { 301, 302, 303, 304 }));
        Assert.That(Row(plan[0], 0, labels: true), Is.EqualTo(new[] { -100, 101, 102, -100 }));
        Assert.That(Row(plan[0], 1, labels: true), Is.EqualTo(new[] { -100, 202, 203, 300 }));
        Assert.That(Row(plan[1], 0, labels: true), Is.EqualTo(new[] { 301, 302, 303, 304 }));
    }

    [TestCase(7, 1)]
    [TestCase(8, 3)]
    [TestCase(16, 5)]
    public void Packing_makes_floor_total_over_context_rows(int contextLength, int batchSize)
    {
        var examples = Enumerable.Range(0, 23).Select(i => Example(i * 100, 1 + (i * 7 % 11))).ToArray();
        int total = examples.Sum(e => e.Length);
        BatchPlan plan = BatchPlan.Create(examples, BatchingStrategy.Packing, batchSize, contextLength, padId: 0);
        Assert.That(plan.Rows, Is.EqualTo(total / contextLength));
        Assert.That(plan.Count, Is.EqualTo((total / contextLength + batchSize - 1) / batchSize));
        Assert.That(plan.DroppedTokens, Is.EqualTo(total % contextLength));
        var stream = Enumerable.Range(0, plan.Count).SelectMany(b => plan[b].InputIds).ToArray();
        Assert.That(stream, Is.EqualTo(examples.SelectMany(e => e.InputIds).Take(plan.Rows * contextLength)));
    }

    [Test]
    public void Packing_too_little_data_for_one_row_is_a_user_error()
    {
        var e = Assert.Throws<UserErrorException>(() => BatchPlan.Create([Example(0, 5)], BatchingStrategy.Packing, 1, 8, 0));
        Assert.That(e!.Message, Does.Contain("--context-length"));
        Assert.That(BatchPlan.Create([], BatchingStrategy.Packing, 1, 8, 0).Count, Is.Zero);
        Assert.That(BatchPlan.Create([], BatchingStrategy.Padding, 1, 8, 0).Count, Is.Zero);
    }

    [Test]
    public void Padding_groups_by_length_rounds_up_to_64_and_masks_the_padding()
    {
        TokenizedExample[] examples = [Example(1000, 70), Example(2000, 5, masked: 2), Example(3000, 130), Example(4000, 6), Example(5000, 64)];
        BatchPlan plan = BatchPlan.Create(examples, BatchingStrategy.Padding, batchSize: 2, contextLength: 256, padId: 7);
        Assert.That(plan.Count, Is.EqualTo(3));
        Assert.That(Enumerable.Range(0, 3).Select(b => (plan[b].BatchSize, plan[b].SeqLen)), Is.EqualTo(new[] { (2, 64), (2, 128), (1, 192) }));
        // Batch 0: the 5- and 6-token examples.
        Assert.That(Row(plan[0], 0), Is.EqualTo(examples[1].InputIds.Concat(Enumerable.Repeat(7, 59))));
        Assert.That(Row(plan[0], 0, labels: true), Is.EqualTo(examples[1].Labels.Concat(Enumerable.Repeat(-100, 59))));
        Assert.That(Row(plan[0], 1), Is.EqualTo(examples[3].InputIds.Concat(Enumerable.Repeat(7, 58))));
        // Batch 1: 64 and 70 tokens, padded to 128.
        Assert.That(Row(plan[1], 0), Is.EqualTo(examples[4].InputIds.Concat(Enumerable.Repeat(7, 64))));
        Assert.That(Row(plan[1], 1, labels: true), Is.EqualTo(examples[0].Labels.Concat(Enumerable.Repeat(-100, 58))));
        Assert.That(Row(plan[2], 0).Take(130), Is.EqualTo(examples[2].InputIds));
        Assert.That(plan.DroppedTokens, Is.Zero);
    }

    [Test]
    public void Padding_truncates_to_the_context_length_and_caps_the_rounding()
    {
        TokenizedExample[] examples = [Example(0, 130), Example(500, 90)];
        BatchPlan plan = BatchPlan.Create(examples, BatchingStrategy.Padding, batchSize: 4, contextLength: 100, padId: 0);
        Assert.That((plan.Count, plan[0].BatchSize, plan[0].SeqLen), Is.EqualTo((1, 2, 100)));
        Assert.That(Row(plan[0], 0), Is.EqualTo(examples[1].InputIds.Concat(Enumerable.Repeat(0, 10))));
        Assert.That(Row(plan[0], 1), Is.EqualTo(examples[0].InputIds.Take(100)));
        Assert.That(plan.DroppedTokens, Is.EqualTo(30));
    }

    [Test]
    public void Padding_keeps_the_order_of_equal_lengths()
    {
        TokenizedExample[] examples = [Example(10, 3), Example(20, 2), Example(30, 3), Example(40, 2), Example(50, 3)];
        BatchPlan plan = BatchPlan.Create(examples, BatchingStrategy.Padding, batchSize: 1, contextLength: 64, padId: 0);
        Assert.That(Enumerable.Range(0, plan.Count).Select(b => plan[b].InputIds[0]), Is.EqualTo(new[] { 20, 40, 10, 30, 50 }));
    }
}
