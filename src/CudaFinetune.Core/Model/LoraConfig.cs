using CudaFinetune.Errors;

namespace CudaFinetune.Model;

/// <summary>
/// LoRA settings, named and defaulted as llama-recipes' <c>lora_config</c> (r 8, alpha 32,
/// dropout 0.05, q_proj and v_proj). The update is W + (alpha/r)·B·A with A [r, in] and B [out, r].
/// </summary>
public sealed record LoraConfig
{
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.05;
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "v_proj"];

    /// <summary>alpha / r, as PEFT scales the adapter's output.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>Parses a comma-separated module list; "all-linear" means all seven Llama projections.</summary>
    public static IReadOnlyList<string> ParseTargets(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 1 && names[0] == "all-linear")
        {
            return LlamaTensorNames.LinearModules;
        }
        return names;
    }

    public void Validate()
    {
        if (Rank <= 0)
        {
            throw new UserErrorException($"LoRA rank must be positive, got {Rank}");
        }
        if (!(Alpha > 0))
        {
            throw new UserErrorException($"LoRA alpha must be positive, got {Alpha}");
        }
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout))
        {
            throw new UserErrorException($"LoRA dropout must be in [0, 1), got {Dropout}");
        }
        if (TargetModules.Count == 0)
        {
            throw new UserErrorException("LoRA needs at least one target module");
        }
        foreach (string module in TargetModules)
        {
            if (!LlamaTensorNames.LinearModules.Contains(module))
            {
                throw new UserErrorException($"unknown LoRA target module '{module}'; choose from {string.Join(", ", LlamaTensorNames.LinearModules)} or all-linear");
            }
        }
    }

    /// <summary>PEFT's saved name of an adapter tensor, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.</summary>
    public static string TensorName(int layer, string module, char which)
        => $"base_model.model.{LlamaTensorNames.LinearModule(layer, module)}.lora_{which}.weight";
}
