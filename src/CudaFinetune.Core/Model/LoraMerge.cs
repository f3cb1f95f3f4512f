
namespace CudaFinetune.Model;

/// <summary>PEFT's merge_and_unload: every adapted projection's weight becomes W + (alpha / r)·B·A, in the weights' dtype.</summary>
public static class LoraMerge
{
    /// <summary>Folds the model's LoRA adapters into its base weights; the adapters stay but must no longer be applied.</summary>
    public static void IntoBaseWeights(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var backend = model.Backend;
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
        {
            foreach (var linear in model.LayerAt(l).Linears)
            {
                if (linear.LoraA is not { } a || linear.LoraB is not { } b)
                {
                    continue;
                }
                // W[out, in] += scale · B[out, r] · A[r, in]
                backend.MatMul(b.FullPrecision, false, a.FullPrecision, false, linear.Weight.FullPrecision, alpha: linear.LoraScale, beta: 1);
                linear.Weight.RefreshValue(backend);
            }
        }
    }
}
