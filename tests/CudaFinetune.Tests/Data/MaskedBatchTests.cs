using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Data;

/// <summary>
/// A batch whose every label is masked has a 0/0 loss: it is left out when the data is prepared (with a count), a plan
/// with no target at all is refused naming what it is, and no step or evaluation is ever trained or reported on it.
/// </summary>
[TestFixture]
public sealed class MaskedBatchTests
{
    /// <summary>An example of <paramref name="length"/> tokens whose first <paramref name="masked"/> labels are -100 (a prompt).</summary>
    private static TokenizedExample Example(int length, int masked)
    {
        int[] ids = [.. Enumerable.Range(1, length)];
        return new TokenizedExample(ids, [.. ids.Select((id, i) => i < masked ? TokenizedExample.IgnoreIndex : id)]);
    }

    [TestCase(BatchingStrategy.Padding)]
    [TestCase(BatchingStrategy.Packing)]
    public void Batches_without_a_target_are_left_out_and_counted(BatchingStrategy batching)
    {
        // Padding: prompts of 20 tokens cut at a context of 16 leave nothing of their responses; the short ones keep theirs.
        // Packing: a 36-token prompt fills the first two rows (one batch) before its response starts.
        TokenizedExample[] examples = batching == BatchingStrategy.Padding
            ? [Example(24, 20), Example(24, 20), Example(8, 2), Example(8, 2)]
            : [Example(40, 36), Example(8, 2)];
        var plan = BatchPlan.Create(examples, batching, batchSize: 2, contextLength: 16, padId: 0);
        Assert.That(plan.EmptyBatches, Is.GreaterThan(0));
        Assert.That(Enumerable.Range(0, plan.Count).All(i => plan[i].TargetCount > 0), Is.True);
        Assert.That(plan.EmptyBatchesWarning("the training data"), Does.StartWith($"the training data: {plan.EmptyBatches} of {plan.EmptyBatches + plan.Count} batches have every label masked"));
        Assert.That(BatchPlan.Create([Example(8, 2), Example(8, 2)], batching, 2, 8, 0).EmptyBatchesWarning("x"), Is.Null);
    }

    [Test]
    public void Data_whose_every_label_is_masked_is_refused_naming_it()
    {
        TokenizedExample[] examples = [Example(24, 20), Example(30, 20)];
        var e = Assert.Throws<UserErrorException>(() => BatchPlan.Create(examples, BatchingStrategy.Padding, 2, 16, 0, "the validation split (--validation-fraction 0.1)"));
        Assert.That(e!.Message, Does.StartWith("the validation split (--validation-fraction 0.1) gives no token to learn from").And.Contain("--context-length 16"));
    }

    [Test]
    public void A_validation_split_too_small_for_a_packed_row_says_it_is_the_validation_split()
    {
        var e = Assert.Throws<UserErrorException>(() => BatchPlan.Create([Example(5, 0)], BatchingStrategy.Packing, 1, 16, 0, "the validation split (--validation-fraction 0.05)", "a larger --validation-fraction"));
        Assert.That(e!.Message, Does.StartWith("the validation split (--validation-fraction 0.05): its 1 example(s) hold 5 tokens").And.Contain("a larger --validation-fraction"));
    }
}

/// <summary>An evaluation whose loss is NaN (the weights went bad) is never taken as the best, and stops a run that does not skip non-finite values.</summary>
[TestFixture]
public sealed class NonFiniteEvaluationTests : LearnableTaskFixture
{
    [TestCase(false)]
    [TestCase(true)]
    public void A_nan_evaluation_stops_a_run_that_does_not_skip_and_is_never_the_best(bool skip)
    {
        var options = LearnableTask.Options(ModelDir, DataFile, Dir.File("run")) with { NumEpochs = 1, EvalEvery = 4, SaveEvery = 0, SkipNonfinite = skip, MaxSteps = 6 };
        using var session = FinetuneSession.Open(options);
        session.Progress += e =>
        {
            if (e is StepCompleted { Step: 4 })
            {
                // A NaN in a weight after the optimizer step: the evaluation that follows sees it first.
                session.Model.TrainableParameters[^1].Value.HostSpan<float>()[0] = float.NaN;
            }
        };
        if (!skip)
        {
            var e = Assert.Throws<UserErrorException>(() => session.Train());
            Assert.That(e!.Message, Does.Contain("the evaluation after step 4 gave a NaN or infinite loss").And.Contain("--resume"));
            return;
        }
        var result = session.Train();
        Assert.That(result.Outcome.LastEvalLoss, Is.Null.Or.Not.NaN);
        var end = CudaFinetune.Checkpoints.Checkpoint.Open(result.LastCheckpoint!).Manifest.Training;
        Assert.That(end.BestEvalLoss, Is.Null, "no finite evaluation happened, and a NaN is never the best");
    }
}
