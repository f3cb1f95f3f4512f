using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.IO;

namespace CudaFinetune.Training;

/// <summary>
/// Appends <c>metrics.jsonl</c>: one JSON object per optimizer step
/// {"step","epoch","loss","lr","grad_norm","tokens_per_s"} and per evaluation
/// {"step","eval_loss","eval_perplexity"}. Numbers round-trip exactly; non-finite values are null.
/// Each line is flushed as it is written, so a crash loses at most the line being written.
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly ArrayBufferWriter<byte> _buffer = new();

    /// <param name="path">the metrics.jsonl file</param>
    /// <param name="append">continue an existing file (a resumed run): its points are read back for the loss chart</param>
    public MetricsWriter(string path, bool append = false)
    {
        Path = path;
        if (append && File.Exists(path))
        {
            TrainLoss.AddRange(MetricsFile.ReadStepLosses(path).Select(p => ((double)p.Step, p.Loss)));
            EvalLoss.AddRange(MetricsFile.ReadEvalLosses(path).Select(p => ((double)p.Step, p.EvalLoss)));
        }
        _stream = new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read);
    }

    public string Path { get; }

    /// <summary>Bytes in the file so far (every line written is flushed).</summary>
    public long Length => _stream.Position;

    /// <summary>Training-loss points (step, loss) written so far, for the loss chart.</summary>
    public List<(double Step, double Value)> TrainLoss { get; } = [];

    /// <summary>Eval-loss points (step, eval loss) written so far.</summary>
    public List<(double Step, double Value)> EvalLoss { get; } = [];

    public void Write(TrainingEvent e)
    {
        switch (e)
        {
            case StepCompleted s:
                TrainLoss.Add((s.Step, s.Loss));
                WriteLine(w =>
                {
                    w.WriteNumber("step", s.Step);
                    w.WriteNumber("epoch", s.Epoch);
                    w.WriteNumberOrNull("loss", s.Loss);
                    w.WriteNumberOrNull("lr", s.LearningRate);
                    w.WriteNumberOrNull("grad_norm", s.GradNorm);
                    w.WriteNumberOrNull("tokens_per_s", Math.Round(s.TokensPerSecond, 1));
                });
                break;
            case EvaluationCompleted ev:
                EvalLoss.Add((ev.Step, ev.EvalLoss));
                WriteLine(w =>
                {
                    w.WriteNumber("step", ev.Step);
                    w.WriteNumberOrNull("eval_loss", ev.EvalLoss);
                    w.WriteNumberOrNull("eval_perplexity", ev.EvalPerplexity);
                });
                break;
            default:
                break;
        }
    }

    private void WriteLine(Action<Utf8JsonWriter> body)
    {
        _buffer.ResetWrittenCount();
        using (var w = new Utf8JsonWriter(_buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        _stream.Write(_buffer.WrittenSpan);
        _stream.WriteByte((byte)'\n');
        _stream.Flush();
    }

    public void Dispose() => _stream.Dispose();
}

/// <summary>Reads the losses back out of a metrics.jsonl (for tests and tools).</summary>
public static class MetricsFile
{
    public static IReadOnlyList<(long Step, double Loss)> ReadStepLosses(string path) => Read(path, "loss");

    public static IReadOnlyList<(long Step, double EvalLoss)> ReadEvalLosses(string path) => Read(path, "eval_loss");

    /// <summary>(step, value) of every line that has <paramref name="key"/>; null reads as NaN.</summary>
    private static List<(long, double)> Read(string path, string key)
    {
        var result = new List<(long, double)>();
        foreach (string line in File.ReadLines(path, Encoding.UTF8))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty(key, out var value))
            {
                result.Add((doc.RootElement.GetProperty("step").GetInt64(), value.ValueKind == JsonValueKind.Null ? double.NaN : value.GetDouble()));
            }
        }
        return result;
    }

    /// <summary>A number as metrics.jsonl spells it (shortest round-trip form).</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
