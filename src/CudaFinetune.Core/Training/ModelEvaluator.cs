using CudaFinetune.Data;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>Loss and perplexity of a model over a batch plan, token-weighted, batches in order.</summary>
public static class ModelEvaluator
{
    public static LossResult Evaluate(LlamaModel model, BatchPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        double sum = 0;
        int tokens = 0;
        for (int i = 0; i < plan.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var loss = model.Forward(plan[i]);
            sum += loss.Sum;
            tokens += loss.Tokens;
        }
        return new LossResult(sum, tokens);
    }
}
