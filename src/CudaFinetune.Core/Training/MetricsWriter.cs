using System.Buffers;
using System.Text.Json;
using CudaFinetune.IO;
using CudaFinetune.Reporting;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.Training;

/// <summary>
/// Appends <c>metrics.jsonl</c>: one JSON object per optimizer step
/// {"step","epoch","loss","lr","grad_norm","tokens_per_s"} (plus "skipped": true for a step not applied because its loss
/// or gradient norm was not finite) and per evaluation
/// {"step","eval_loss","eval_perplexity"}. Numbers round-trip exactly; non-finite values are null.
/// Each line is flushed as it is written, so a crash loses at most the line being written.
/// A line the disk refuses (full, or the file gone read-only) is held in memory — the file is cut back to its last whole
/// line — and written, in order, before the next one, so a full disk delays metrics but never garbles or loses them;
/// past <see cref="MaxHeldLines"/> held lines the write error is thrown.
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    /// <summary>Lines held in memory while the disk refuses them (a day of steps at one per second is less).</summary>
    public const int MaxHeldLines = 100_000;

    private readonly SafeFileHandle _file;
    private readonly ArrayBufferWriter<byte> _buffer = new();
    private readonly Queue<byte[]> _held = new();
    private long _length;

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
        _file = File.OpenHandle(path, append ? FileMode.OpenOrCreate : FileMode.Create, FileAccess.Write, FileShare.Read);
        _length = append ? RandomAccess.GetLength(_file) : 0;
    }

    public string Path { get; }

    /// <summary>Bytes of whole lines in the file so far (every line written is flushed).</summary>
    public long Length => _length;

    /// <summary>Lines the disk refused so far that are still held in memory.</summary>
    public int HeldLines => _held.Count;

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
                    if (s.Skipped)
                    {
                        w.WriteBoolean("skipped", true);
                    }
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
        _buffer.Write("\n"u8);
        _held.Enqueue(_buffer.WrittenSpan.ToArray());
        TryWriteHeld();
    }

    /// <summary>Writes the held lines, oldest first; those the disk still refuses stay held (<see cref="HeldLines"/>).</summary>
    public void TryWriteHeld()
    {
        while (_held.TryPeek(out byte[]? line))
        {
            try
            {
                RandomAccess.Write(_file, line, _length);
            }
            catch (IOException) when (_held.Count <= MaxHeldLines)
            {
                RandomAccess.SetLength(_file, _length); // a part-written line would garble the file; cutting back frees, so it works on a full disk
                return;
            }
            _length += line.Length;
            _held.Dequeue();
        }
    }

    public void Dispose()
    {
        TryWriteHeld();
        _file.Dispose();
    }
}
