using System.Diagnostics;
using System.Globalization;
using System.Text;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>
/// Wraps a backend and adds up the wall time and call count of every op, to see where a training
/// step spends its time. Timing needs the op to have finished, which holds for the CPU backend;
/// an asynchronous backend must be synchronised by the caller. Allocation-free per call.
/// </summary>
public sealed class ProfilingBackend : IBackend
{
    private readonly IBackend _inner;
    private readonly long[] _ticks = new long[OpNames.Length];
    private readonly long[] _calls = new long[OpNames.Length];

    private static readonly string[] OpNames = Enum.GetNames<Op>();

    private enum Op
    {
        MatMul, Add, AddScaled, Dropout, EmbeddingForward, EmbeddingBackward, RmsNormForward, RmsNormBackward,
        Rope, AttentionForward, AttentionBackward, SwiGluForward, SwiGluBackward, CrossEntropy, Sum, SumOfSquares,
        LowRankMatMul, AddRmsNormForward, LinearCrossEntropy, Fill, Copy, CopyFromHost, CopyToHost, AdamWUpdate, AttentionDecode,
    }

    public ProfilingBackend(IBackend inner) => _inner = inner ?? throw new ArgumentNullException(nameof(inner));

    public string Name => _inner.Name;

    public Device Device => _inner.Device;

    public DType ComputeType => _inner.ComputeType;

    public DType AccumulationType => _inner.AccumulationType;

    /// <summary>Clears the counters.</summary>
    public void Reset()
    {
        Array.Clear(_ticks);
        Array.Clear(_calls);
    }

    /// <summary>A table of ops by total time: calls, milliseconds, share.</summary>
    public string Report()
    {
        long total = _ticks.Sum();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"op",-18} {"calls",8} {"ms",10} {"share",7}");
        foreach (int i in Enumerable.Range(0, OpNames.Length).Where(i => _calls[i] > 0).OrderByDescending(i => _ticks[i]))
        {
            double ms = _ticks[i] * 1000.0 / Stopwatch.Frequency;
            sb.AppendLine(CultureInfo.InvariantCulture, $"{OpNames[i],-18} {_calls[i],8} {ms,10:F2} {(double)_ticks[i] / Math.Max(1, total),7:P1}");
        }
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"total",-18} {_calls.Sum(),8} {total * 1000.0 / Stopwatch.Frequency,10:F2}");
        return sb.ToString();
    }

    private readonly struct Timing(ProfilingBackend owner, Op op) : IDisposable
    {
        private readonly long _start = Stopwatch.GetTimestamp();

        public void Dispose()
        {
            owner._ticks[(int)op] += Stopwatch.GetTimestamp() - _start;
            owner._calls[(int)op]++;
        }
    }

    private Timing Time(Op op) => new(this, op);

    public Tensor Allocate(DType dtype, Shape shape) => _inner.Allocate(dtype, shape);

    public void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        using var _ = Time(Op.CopyFromHost);
        _inner.CopyFromHost(source, destination);
    }

    public void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        using var _ = Time(Op.CopyToHost);
        _inner.CopyToHost(source, destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        using var _ = Time(Op.Copy);
        _inner.Copy(source, destination);
    }

    public void Fill(Tensor tensor, double value)
    {
        using var _ = Time(Op.Fill);
        _inner.Fill(tensor, value);
    }

    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0)
    {
        using var _ = Time(Op.MatMul);
        _inner.MatMul(a, transposeA, b, transposeB, c, alpha, beta);
    }

    public void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
    {
        using var _ = Time(Op.LinearCrossEntropy);
        _inner.LinearCrossEntropy(x, head, targets, rowLoss, dX, dHead, gradientScale);
    }

    public void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd)
    {
        using var _ = Time(Op.AddRmsNormForward);
        _inner.AddRmsNormForward(x, delta, weight, epsilon, sum, output, rstd);
    }

    public void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default)
    {
        using var _ = Time(Op.LowRankMatMul);
        _inner.LowRankMatMul(a, b, low, lowB, transposeB, c, accumulate, lowDropout, lowDropoutKey);
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        using var _ = Time(Op.Add);
        _inner.Add(a, b, output);
    }

    public void AddScaled(Tensor x, double scale, Tensor accumulator)
    {
        using var _ = Time(Op.AddScaled);
        _inner.AddScaled(x, scale, accumulator);
    }

    public void Dropout(Tensor x, Tensor output, double probability, DropoutKey key)
    {
        using var _ = Time(Op.Dropout);
        _inner.Dropout(x, output, probability, key);
    }

    public void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output)
    {
        using var _ = Time(Op.EmbeddingForward);
        _inner.EmbeddingForward(table, tokenIds, output);
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable)
    {
        using var _ = Time(Op.EmbeddingBackward);
        _inner.EmbeddingBackward(dOutput, tokenIds, dTable);
    }

    public void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd)
    {
        using var _ = Time(Op.RmsNormForward);
        _inner.RmsNormForward(x, weight, epsilon, output, rstd);
    }

    public void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight)
    {
        using var _ = Time(Op.RmsNormBackward);
        _inner.RmsNormBackward(dOutput, x, weight, rstd, dx, dWeight);
    }

    public void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse)
    {
        using var _ = Time(Op.Rope);
        _inner.Rope(x, heads, cos, sin, seqLen, inverse);
    }

    public void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        using var _ = Time(Op.AttentionForward);
        _inner.AttentionForward(q, k, v, output, logSumExp, shape);
    }

    public void AttentionBackward(Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, Tensor dq, Tensor dk, Tensor dv, in AttentionShape shape)
    {
        using var _ = Time(Op.AttentionBackward);
        _inner.AttentionBackward(dOutput, q, k, v, output, logSumExp, dq, dk, dv, shape);
    }

    public void SwiGluForward(Tensor gate, Tensor up, Tensor output)
    {
        using var _ = Time(Op.SwiGluForward);
        _inner.SwiGluForward(gate, up, output);
    }

    public void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp)
    {
        using var _ = Time(Op.SwiGluBackward);
        _inner.SwiGluBackward(dOutput, gate, up, dGate, dUp);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale)
    {
        using var _ = Time(Op.CrossEntropy);
        _inner.CrossEntropy(logits, targets, rowLoss, dLogits, gradientScale);
    }

    public void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null)
    {
        using var _ = Time(Op.AdamWUpdate);
        _inner.AdamWUpdate(parameter, gradient, firstMoment, secondMoment, update, roundedCopy);
    }

    public void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        using var _ = Time(Op.AttentionDecode);
        _inner.AttentionDecode(q, kCache, vCache, output, past, shape);
    }

    public double Sum(Tensor x)
    {
        using var _ = Time(Op.Sum);
        return _inner.Sum(x);
    }

    public double SumOfSquares(Tensor x)
    {
        using var _ = Time(Op.SumOfSquares);
        return _inner.SumOfSquares(x);
    }

    /// <summary>Disposes the wrapped backend.</summary>
    public void Dispose() => _inner.Dispose();
}
