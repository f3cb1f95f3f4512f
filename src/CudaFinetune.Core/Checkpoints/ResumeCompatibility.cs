using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Decides whether a run may continue from a checkpoint with the options it is given now. Settings
/// that only steer what happens next (learning rate and schedule, how long to train, evaluation and
/// saving, clipping, decay) may change, each with a warning. Settings that would make the saved state
/// meaningless (the model, PEFT method, LoRA rank/alpha/targets, batch shapes, seed, shuffling, the
/// training data) are refused; accumulation and world size (how many micro-batches a step takes) may change with the field that differs; <c>--force</c> accepts
/// changed training data. Which option follows which rule is declared with the option (<see cref="RunConfigKeys"/>).
/// </summary>
public static class ResumeCompatibility
{
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
        foreach (var option in RunConfigKeys.All)
        {
            if (option.Compared(saved) is not { } before || option.Compared(now) is not { } after)
            {
                continue;
            }
            string key = option.Snake;
            if (before == after)
            {
                continue;
            }
            if (option.Resume == ResumeRule.MustMatch)
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
}
