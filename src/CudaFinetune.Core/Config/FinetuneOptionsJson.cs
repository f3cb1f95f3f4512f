using System.Text.Json;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>
/// Writes <see cref="FinetuneOptions"/> as a JSON object with snake_case keys — the keys a
/// <c>--config</c> file accepts — so the "config" object of run.json can be fed back as a config.
/// Every option the registry (<see cref="RunConfigKeys.All"/>) says is saved, in its order.
/// </summary>
public static class FinetuneOptionsJson
{
    public static void Write(Utf8JsonWriter w, FinetuneOptions o)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(o);
        w.WriteStartObject();
        foreach (var key in RunConfigKeys.All)
        {
            if (key.Saved)
            {
                key.Save(w, o);
            }
        }
        w.WriteEndObject();
    }
}
