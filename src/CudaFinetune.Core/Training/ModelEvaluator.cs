using CudaFinetune.Data;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>Loss and perplexity of a model over a batch plan, token-weighted, batches in order.</summary>
public static class ModelEvaluator
{
    public static LossResult Evaluate(LlamaModel model, BatchPlan plan, CancellationToken cancellationToken = default)
        => Evaluate(model, plan, 0, 1, cancellationToken);

    /// <summary>
    /// The sums over batches <paramref name="first"/>, first + <paramref name="stride"/>, … (one rank's share); a rank with
    /// one batch fewer than the others stands in for it, so sharded layer weights see the same gathers on every rank.
    /// </summary>
    public static LossResult Evaluate(LlamaModel model, BatchPlan plan, int first, int stride, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, 1);
        double sum = 0;
        int tokens = 0;
        for (int i = first; i < plan.Count; i += stride)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var loss = model.Forward(plan[i]);
            sum += loss.Sum;
            tokens += loss.Tokens;
        }
        for (int i = 0; i < Distributed.RankShare.Shortfall(plan.Count, first, stride); i++)
        {
            model.StandInForPass(backward: false);
        }
        return new LossResult(sum, tokens);
    }
}
