using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.IO;
using CudaFinetune.Training;

namespace CudaFinetune.Reporting;

/// <summary>
/// Reads the losses back out of a metrics.jsonl (the loss chart of a resumed run, tests and tools), and checks a whole
/// file by the same rules before a resume trusts it (<see cref="ProblemIn"/>).
/// </summary>
public static class MetricsFile
{
    public static IReadOnlyList<(long Step, double Loss)> ReadStepLosses(string path) => Read(path, "loss");

    public static IReadOnlyList<(long Step, double EvalLoss)> ReadEvalLosses(string path) => Read(path, "eval_loss");

    /// <summary>
    /// Why <paramref name="content"/> is not a metrics file these readers can read — a line that is not complete, not one
    /// JSON object, or lacks an integer "step" or has a "loss"/"eval_loss" that is neither a number nor null (as a damaged
    /// file, or two writers' lines interleaved, would) — naming the line; null when it is one (empty included).
    /// </summary>
    public static string? ProblemIn(ReadOnlySpan<byte> content)
    {
        for (int line = 1; !content.IsEmpty; line++)
        {
            int end = content.IndexOf((byte)'\n');
            if (end < 0)
            {
                return $"line {line} is not complete (the file does not end with a line end)";
            }
            try
            {
                ParseLine(content[..end].ToArray()).Dispose();
            }
            catch (JsonException e)
            {
                return $"line {line} is not a metrics record: {e.Message}";
            }
            content = content[(end + 1)..];
        }
        return null;
    }

    /// <summary>A number as metrics.jsonl spells it (shortest round-trip form).</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>(step, value) of every line that has <paramref name="key"/>; null reads as NaN.</summary>
    private static List<(long, double)> Read(string path, string key)
    {
        var result = new List<(long, double)>();
        foreach (string line in File.ReadLines(path, Encoding.UTF8))
        {
            using var doc = ParseLine(Encoding.UTF8.GetBytes(line));
            if (doc.RootElement.TryGetProperty(key, out var value))
            {
                result.Add((doc.RootElement.GetProperty("step").GetInt64(), value.ValueKind == JsonValueKind.Null ? double.NaN : value.GetDouble()));
            }
        }
        return result;
    }

    /// <summary>One line, checked to be what <see cref="Read"/> reads: a JSON object, an integer "step", numeric or null losses.</summary>
    private static JsonDocument ParseLine(byte[] line)
    {
        var doc = StrictJson.Parse(line, new JsonDocumentOptions { AllowDuplicateProperties = false });
        try
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException($"it is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object");
            }
            if (!root.TryGetProperty("step", out var step) || step.ValueKind != JsonValueKind.Number || !step.TryGetInt64(out _))
            {
                throw new JsonException("it has no integer \"step\"");
            }
            foreach (string key in (ReadOnlySpan<string>)["loss", "eval_loss"])
            {
                if (root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null && !(value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out _)))
                {
                    throw new JsonException($"its \"{key}\" is not a number or null");
                }
            }
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }
}
