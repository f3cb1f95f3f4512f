using System.Text.Json;

namespace CudaFinetune.IO;

internal static class JsonWriterExtensions
{
    /// <summary>Writes a number in its shortest round-trip form, or null when it is missing, NaN or infinite (JSON has no such numbers).</summary>
    public static void WriteNumberOrNull(this Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
