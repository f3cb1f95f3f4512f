using System.Globalization;
using CudaFinetune.Errors;
using CudaFinetune.Lora;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Decides whether a run may continue from a checkpoint with the options it is given now. Settings
/// that only steer what happens next (learning rate and schedule, how long to train, evaluation and
/// saving, clipping, decay) may change, each with a warning. Settings that would make the saved state
/// meaningless (the model, PEFT method, LoRA rank/alpha/targets, batch shapes, seed, shuffling, the
/// training data) are refused; accumulation and world size (how many micro-batches a step takes) may change with the field that differs; <c>--force</c> accepts
/// changed training data.
/// </summary>
public static class ResumeCompatibility
{
    private enum Rule
    {
        MustMatch,
        MayChange,
    }

    private static readonly (string Key, Rule Rule, Func<FinetuneOptions, string> Value)[] Fields =
    [
        ("peft", Rule.MustMatch, o => o.Peft),
        ("lora_r", Rule.MustMatch, o => o.Peft == "lora" ? Text(o.LoraR) : "-"),
        ("lora_alpha", Rule.MustMatch, o => o.Peft == "lora" ? Text(o.LoraAlpha) : "-"),
        ("lora_targets", Rule.MustMatch, o => o.Peft == "lora" ? string.Join(",", LoraConfig.ParseTargets(o.LoraTargets).Order(StringComparer.Ordinal)) : "-"),
        ("batch_size", Rule.MustMatch, o => Text(o.BatchSize)),
        ("context_length", Rule.MustMatch, o => Text(o.ContextLength)),
        ("batching", Rule.MustMatch, o => o.Batching.ToString().ToLowerInvariant()),
        ("shuffle", Rule.MustMatch, o => o.Shuffle ? "true" : "false"),
        ("gradient_accumulation_steps", Rule.MayChange, o => Text(o.GradientAccumulationSteps)),
        ("world_size", Rule.MayChange, o => Text(o.WorldSize)),
        ("zero_stage", Rule.MayChange, o => Text(o.ZeroStage)),
        ("seed", Rule.MustMatch, o => Text(o.Seed)),
        ("lr", Rule.MayChange, o => Text(o.Lr)),
        ("scheduler", Rule.MayChange, o => o.Scheduler.ToString().ToLowerInvariant()),
        ("warmup_steps", Rule.MayChange, o => Text(o.WarmupSteps)),
        ("gamma", Rule.MayChange, o => Text(o.Gamma)),
        ("num_epochs", Rule.MayChange, o => Text(o.NumEpochs)),
        ("max_steps", Rule.MayChange, o => Text(o.MaxSteps)),
        ("eval_every", Rule.MayChange, o => Text(o.EvalEvery)),
        ("save_every", Rule.MayChange, o => Text(o.SaveEvery)),
        ("keep_last", Rule.MayChange, o => Text(o.KeepLast)),
        ("weight_decay", Rule.MayChange, o => Text(o.WeightDecay)),
        ("gradient_clipping", Rule.MayChange, o => Text(o.GradientClipping)),
        ("skip_nonfinite", Rule.MayChange, o => o.SkipNonfinite ? "true" : "false"),
        ("beta1", Rule.MayChange, o => Text(o.Beta1)),
        ("beta2", Rule.MayChange, o => Text(o.Beta2)),
        ("epsilon", Rule.MayChange, o => Text(o.Epsilon)),
        ("lora_dropout", Rule.MayChange, o => Text(o.LoraDropout)),
        ("device", Rule.MayChange, o => o.Device),
        ("validation_dataset", Rule.MayChange, o => o.ValidationDataset ?? "-"),
        ("model", Rule.MayChange, o => o.Model is null ? "-" : Path.GetFullPath(o.Model)),
        ("dataset", Rule.MayChange, o => o.Dataset is null ? "-" : Path.GetFullPath(o.Dataset)),
    ];

    /// <summary>Warnings for every honoured change; throws <see cref="UserErrorException"/> for the first that cannot be honoured.</summary>
    /// <param name="checkpoint">the checkpoint's directory (for messages)</param>
    /// <param name="saved">the options the checkpoint was written with</param>
    /// <param name="now">the options of the resumed run</param>
    /// <param name="manifest">the checkpoint's manifest</param>
    /// <param name="current">fingerprints of the model and data loaded now</param>
    /// <param name="totalSteps">the resumed run's step count</param>
    /// <param name="force">accept changed training data</param>
    public static IReadOnlyList<string> Check(string checkpoint, FinetuneOptions saved, FinetuneOptions now, CheckpointManifest manifest,
        CheckpointFingerprints current, long totalSteps, bool force)
    {
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(now);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(current);
        var warnings = new List<string>();
        if (current.Model != manifest.Fingerprints.Model)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint}': the model differs from the one it was trained on (its config.json or weight files changed); resume with the same --model");
        }
        foreach (var (key, rule, value) in Fields)
        {
            string before = value(saved), after = value(now);
            if (before == after)
            {
                continue;
            }
            if (rule == Rule.MustMatch)
            {
                throw new UserErrorException($"cannot resume from '{checkpoint}': {key} was {before} and is now {after}; a resumed run must keep it (start a new run in another --output-dir to change it)");
            }
            warnings.Add($"{key} changed from {before} to {after}");
        }
        if (current.TrainData != manifest.Fingerprints.TrainData || saved.ValidationFraction != now.ValidationFraction)
        {
            if (!force)
            {
                throw new UserErrorException($"cannot resume from '{checkpoint}': the training data differs from the checkpoint's (different examples, tokenization, format or validation split); pass --force to continue on the new data");
            }
            warnings.Add("the training data differs from the checkpoint's (--force): the sampler continues at the same epoch and position over the new batches");
        }
        else if (current.ValidationData != manifest.Fingerprints.ValidationData)
        {
            warnings.Add("the validation data differs from the checkpoint's: eval losses are not comparable with the earlier ones");
        }
        if (totalSteps < manifest.Training.Step)
        {
            throw new UserErrorException($"cannot resume from '{checkpoint}': it is at step {manifest.Training.Step} but --num-epochs {now.NumEpochs} / --max-steps {now.MaxSteps} end the run at step {totalSteps}; raise them to train further");
        }
        return warnings;
    }

    private static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Text(ulong value) => value.ToString(CultureInfo.InvariantCulture);
}
