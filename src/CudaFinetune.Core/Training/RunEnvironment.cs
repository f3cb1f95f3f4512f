using System.Globalization;
using System.Runtime.InteropServices;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;

namespace CudaFinetune.Training;

/// <summary>
/// What a run records about the machine and engine that ran it (run.json, every checkpoint's manifest), and what a resume
/// reports when they changed: results then continue correctly, but not necessarily to the bit.
/// </summary>
internal static class RunEnvironment
{
    public static string EngineVersion => typeof(RunEnvironment).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>The facts, in the order they are written.</summary>
    public static KeyValuePair<string, string>[] Describe(string backendName) =>
    [
        new("os", RuntimeInformation.OSDescription),
        new("dotnet", RuntimeInformation.FrameworkDescription),
        new("architecture", RuntimeInformation.ProcessArchitecture.ToString()),
        new("processors", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
        new("backend", backendName),
        // The vector width changes how the CPU's reductions are split, so results across levels agree only closely.
        new("simd", SimdLevels.Running.Name()),
    ];

    /// <summary>Differences between the environment that wrote the checkpoint and this one (the thread count does not change results).</summary>
    public static IEnumerable<string> ChangesSince(CheckpointManifest manifest, string backendName)
    {
        const string consequence = "the run continues correctly, but not necessarily bitwise as it would have there";
        if (manifest.EngineVersion != EngineVersion)
        {
            yield return $"the checkpoint was written by engine {manifest.EngineVersion}, this is {EngineVersion}: {consequence}";
        }
        var now = Describe(backendName).ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (key, then) in manifest.Environment)
        {
            if (key != "processors" && now.TryGetValue(key, out string? value) && value != then)
            {
                yield return $"environment: {key} was '{then}' and is '{value}': {consequence}";
            }
        }
    }
}
