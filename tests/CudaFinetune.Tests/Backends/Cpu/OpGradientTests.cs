using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Support.FiniteDifferences;
using static CudaFinetune.Tests.Support.HostTensors;

namespace CudaFinetune.Tests.Backends.Cpu;

/// <summary>
/// Every CPU op's backward against central finite differences of its forward, in double precision
/// (the CPU backend's F64 mode runs the same generic kernels as F32). Each test projects the op's
/// output onto random weights w, so the loss is L = Σ w ⊙ y and ∂L/∂y = w. Tolerance:
/// |analytic − numeric| ≤ 1e-7 + 1e-6·|numeric| (see <see cref="FiniteDifferences"/>).
/// </summary>
[TestFixture]
public sealed class OpGradientTests
{
    private CpuBackend _backend = null!;

    [SetUp]
    public void SetUp() => _backend = new CpuBackend(DType.F64, threads: 2);

    [TearDown]
    public void TearDown() => _backend.Dispose();

    [Test]
    public void RmsNorm_gradients_of_input_and_weight_match_finite_differences()
    {
        var rng = new Random(1);
        int rows = 5, cols = 7;
        double[] x = HostTensors.Random(rng, rows * cols), weight = HostTensors.Random(rng, cols), w = HostTensors.Random(rng, rows * cols);
        using var tx = FromDoubles(_backend, x, rows, cols);
        using var tw = FromDoubles(_backend, weight, cols);
        using var ty = _backend.Allocate(DType.F64, new Shape(rows, cols));
        using var rstd = _backend.Allocate(DType.F64, new Shape(rows));
        double Loss()
        {
            Write(_backend, tx, x);
            Write(_backend, tw, weight);
            _backend.RmsNormForward(tx, tw, 1e-5, ty, rstd);
            return Weighted(Read(_backend, ty), w);
        }
        Loss();
        using var dy = FromDoubles(_backend, w, rows, cols);
        using var dx = FromDoubles(_backend, new double[rows * cols], rows, cols);
        using var dw = FromDoubles(_backend, new double[cols], cols);
        _backend.RmsNormBackward(dy, tx, tw, rstd, dx, dw);
        AssertMatches("rmsnorm dx", x, Read(_backend, dx), Loss);
        AssertMatches("rmsnorm dweight", weight, Read(_backend, dw), Loss);
    }

    [Test]
    public void Linear_projection_gradients_from_matmul_match_finite_differences()
    {
        // y = x·Wᵀ; the model's backward is dx = dy·W and dW = dyᵀ·x, both MatMul calls.
        var rng = new Random(10);
        int rows = 6, inFeatures = 5, outFeatures = 4;
        double[] x = HostTensors.Random(rng, rows * inFeatures), weight = HostTensors.Random(rng, outFeatures * inFeatures), w = HostTensors.Random(rng, rows * outFeatures);
        using var tx = FromDoubles(_backend, x, rows, inFeatures);
        using var tw = FromDoubles(_backend, weight, outFeatures, inFeatures);
        using var y = _backend.Allocate(DType.F64, new Shape(rows, outFeatures));
        double Loss()
        {
            Write(_backend, tx, x);
            Write(_backend, tw, weight);
            _backend.MatMul(tx, false, tw, true, y);
            return Weighted(Read(_backend, y), w);
        }
        using var dy = FromDoubles(_backend, w, rows, outFeatures);
        using var dx = _backend.Allocate(DType.F64, new Shape(rows, inFeatures));
        using var dW = _backend.Allocate(DType.F64, new Shape(outFeatures, inFeatures));
        _backend.MatMul(dy, false, tw, false, dx);
        _backend.MatMul(dy, true, tx, false, dW);
        AssertMatches("linear dx", x, Read(_backend, dx), Loss);
        AssertMatches("linear dweight", weight, Read(_backend, dW), Loss);
    }

    [Test]
    public void RmsNorm_backward_accumulates_into_dx()
    {
        var rng = new Random(2);
        using var x = FromDoubles(_backend, HostTensors.Random(rng, 6), 2, 3);
        using var weight = FromDoubles(_backend, HostTensors.Random(rng, 3), 3);
        using var y = _backend.Allocate(DType.F64, new Shape(2, 3));
        using var rstd = _backend.Allocate(DType.F64, new Shape(2));
        using var dy = FromDoubles(_backend, HostTensors.Random(rng, 6), 2, 3);
        _backend.RmsNormForward(x, weight, 1e-6, y, rstd);
        using var fresh = _backend.Allocate(DType.F64, new Shape(2, 3));
        _backend.RmsNormBackward(dy, x, weight, rstd, fresh, null);
        double[] start = [1, 2, 3, 4, 5, 6];
        using var acc = FromDoubles(_backend, start, 2, 3);
        _backend.RmsNormBackward(dy, x, weight, rstd, acc, null);
        double[] expected = [.. Read(_backend, fresh).Zip(start, (a, b) => a + b)];
        Assert.That(Read(_backend, acc), Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Rope_backward_is_the_gradient_of_the_forward()
    {
        var rng = new Random(3);
        int seqLen = 4, batch = 2, heads = 3, headDim = 6;
        int n = batch * seqLen, count = n * heads * headDim;
        double[] x = HostTensors.Random(rng, count), w = HostTensors.Random(rng, count);
        double[] cos = new double[seqLen * headDim / 2], sin = new double[cos.Length];
        for (int i = 0; i < cos.Length; i++)
        {
            double angle = rng.NextDouble() * 6;
            cos[i] = Math.Cos(angle);
            sin[i] = Math.Sin(angle);
        }
        using var tcos = FromDoubles(_backend, cos, seqLen, headDim / 2);
        using var tsin = FromDoubles(_backend, sin, seqLen, headDim / 2);
        using var tx = FromDoubles(_backend, x, n, heads * headDim);
        double Loss()
        {
            Write(_backend, tx, x);
            _backend.Rope(tx, heads, tcos, tsin, seqLen, inverse: false);
            return Weighted(Read(_backend, tx), w);
        }
        using var dy = FromDoubles(_backend, w, n, heads * headDim);
        _backend.Rope(dy, heads, tcos, tsin, seqLen, inverse: true);
        AssertMatches("rope dx", x, Read(_backend, dy), Loss);
    }

    [Test]
    public void Rope_inverse_undoes_forward()
    {
        var rng = new Random(4);
        double[] x = HostTensors.Random(rng, 3 * 8);
        double[] cos = [.. Enumerable.Range(0, 3 * 4).Select(i => Math.Cos(i * 0.7))];
        double[] sin = [.. Enumerable.Range(0, 3 * 4).Select(i => Math.Sin(i * 0.7))];
        using var tx = FromDoubles(_backend, x, 3, 8);
        using var tcos = FromDoubles(_backend, cos, 3, 4);
        using var tsin = FromDoubles(_backend, sin, 3, 4);
        _backend.Rope(tx, 1, tcos, tsin, 3, inverse: false);
        Assert.That(Read(_backend, tx), Is.Not.EqualTo(x).Within(1e-6));
        _backend.Rope(tx, 1, tcos, tsin, 3, inverse: true);
        Assert.That(Read(_backend, tx), Is.EqualTo(x).Within(1e-12));
    }

    [TestCase(4, 4, 1, 5)]
    [TestCase(4, 2, 2, 7)]
    [TestCase(6, 2, 1, 3)]
    [TestCase(2, 1, 3, 4)]
    [TestCase(2, 1, 1, 150, Description = "several 64-row query blocks, a partial last block")]
    public void Attention_gradients_of_q_k_v_match_finite_differences(int queryHeads, int kvHeads, int batch, int seqLen)
    {
        var rng = new Random(queryHeads * 100 + kvHeads * 10 + seqLen);
        int headDim = 4, n = batch * seqLen;
        var shape = new AttentionShape(batch, seqLen, queryHeads, kvHeads, headDim, 1.0 / Math.Sqrt(headDim));
        double[] q = HostTensors.Random(rng, n * queryHeads * headDim, 1.5);
        double[] k = HostTensors.Random(rng, n * kvHeads * headDim, 1.5);
        double[] v = HostTensors.Random(rng, n * kvHeads * headDim);
        double[] w = HostTensors.Random(rng, n * queryHeads * headDim);
        using var tq = FromDoubles(_backend, q, n, queryHeads * headDim);
        using var tk = FromDoubles(_backend, k, n, kvHeads * headDim);
        using var tv = FromDoubles(_backend, v, n, kvHeads * headDim);
        using var output = _backend.Allocate(DType.F64, new Shape(n, queryHeads * headDim));
        using var lse = _backend.Allocate(DType.F64, new Shape(batch * queryHeads * seqLen));
        double Loss()
        {
            Write(_backend, tq, q);
            Write(_backend, tk, k);
            Write(_backend, tv, v);
            _backend.AttentionForward(tq, tk, tv, output, lse, shape);
            return Weighted(Read(_backend, output), w);
        }
        Loss();
        using var dOut = FromDoubles(_backend, w, n, queryHeads * headDim);
        using var dq = FromDoubles(_backend, Enumerable.Repeat(double.NaN, q.Length).ToArray(), n, queryHeads * headDim);
        using var dk = FromDoubles(_backend, Enumerable.Repeat(double.NaN, k.Length).ToArray(), n, kvHeads * headDim);
        using var dv = FromDoubles(_backend, Enumerable.Repeat(double.NaN, v.Length).ToArray(), n, kvHeads * headDim);
        _backend.AttentionBackward(dOut, tq, tk, tv, output, lse, dq, dk, dv, shape);
        // Long sequences: a reproducible sample of coordinates, always including the first and last rows.
        IEnumerable<int> Coordinates(int length) => seqLen <= 16
            ? Enumerable.Range(0, length)
            : Sample(rng, length, 40).Concat([0, length - 1]).Distinct();
        AssertMatches("attention dq", q, Read(_backend, dq), Loss, indices: Coordinates(q.Length));
        AssertMatches("attention dk", k, Read(_backend, dk), Loss, indices: Coordinates(k.Length));
        AssertMatches("attention dv", v, Read(_backend, dv), Loss, indices: Coordinates(v.Length));
    }

    [Test]
    public void Attention_is_causal_and_first_row_copies_first_value()
    {
        var rng = new Random(5);
        int seqLen = 4, d = 2;
        var shape = new AttentionShape(1, seqLen, 1, 1, d, 0.5);
        double[] q = HostTensors.Random(rng, seqLen * d), k = HostTensors.Random(rng, seqLen * d), v = HostTensors.Random(rng, seqLen * d);
        using var tq = FromDoubles(_backend, q, seqLen, d);
        using var tk = FromDoubles(_backend, k, seqLen, d);
        using var tv = FromDoubles(_backend, v, seqLen, d);
        using var o1 = _backend.Allocate(DType.F64, new Shape(seqLen, d));
        using var lse = _backend.Allocate(DType.F64, new Shape(seqLen));
        _backend.AttentionForward(tq, tk, tv, o1, lse, shape);
        double[] before = Read(_backend, o1);
        Assert.That(before.Take(d), Is.EqualTo(v.Take(d)).Within(1e-12), "position 0 sees only itself");
        // Changing the last key and value must not change earlier outputs.
        k[^1] += 3;
        v[^1] -= 2;
        Write(_backend, tk, k);
        Write(_backend, tv, v);
        _backend.AttentionForward(tq, tk, tv, o1, lse, shape);
        double[] after = Read(_backend, o1);
        Assert.That(after.Take((seqLen - 1) * d), Is.EqualTo(before.Take((seqLen - 1) * d)).Within(1e-15));
        Assert.That(after.Skip((seqLen - 1) * d), Is.Not.EqualTo(before.Skip((seqLen - 1) * d)));
    }

    [TestCase(1, 1, 2, 150)]
    [TestCase(4, 2, 1, 64)]
    [TestCase(3, 3, 1, 65)]
    public void Attention_forward_equals_a_naive_causal_softmax(int queryHeads, int kvHeads, int batch, int seqLen)
    {
        var rng = new Random(seqLen);
        int d = 8, n = batch * seqLen;
        var shape = new AttentionShape(batch, seqLen, queryHeads, kvHeads, d, 0.3);
        double[] q = HostTensors.Random(rng, n * queryHeads * d), k = HostTensors.Random(rng, n * kvHeads * d), v = HostTensors.Random(rng, n * kvHeads * d);
        using var tq = FromDoubles(_backend, q, n, queryHeads * d);
        using var tk = FromDoubles(_backend, k, n, kvHeads * d);
        using var tv = FromDoubles(_backend, v, n, kvHeads * d);
        using var output = _backend.Allocate(DType.F64, new Shape(n, queryHeads * d));
        using var lse = _backend.Allocate(DType.F64, new Shape(batch * queryHeads * seqLen));
        _backend.AttentionForward(tq, tk, tv, output, lse, shape);
        double[] o = Read(_backend, output), l = Read(_backend, lse);
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < queryHeads; h++)
            {
                int kvh = h / (queryHeads / kvHeads);
                for (int t = 0; t < seqLen; t++)
                {
                    double Dot(int j) => Enumerable.Range(0, d).Sum(c => q[((b * seqLen + t) * queryHeads + h) * d + c] * k[((b * seqLen + j) * kvHeads + kvh) * d + c]);
                    double[] s = [.. Enumerable.Range(0, t + 1).Select(j => 0.3 * Dot(j))];
                    double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                    Assert.That(l[(b * queryHeads + h) * seqLen + t], Is.EqualTo(max + Math.Log(sum)).Within(1e-12));
                    for (int c = 0; c < d; c++)
                    {
                        double expected = Enumerable.Range(0, t + 1).Sum(j => Math.Exp(s[j] - max) / sum * v[((b * seqLen + j) * kvHeads + kvh) * d + c]);
                        Assert.That(o[((b * seqLen + t) * queryHeads + h) * d + c], Is.EqualTo(expected).Within(1e-12), $"b {b} h {h} t {t} c {c}");
                    }
                }
            }
        }
    }

    [Test]
    public void SwiGlu_gradients_match_finite_differences()
    {
        var rng = new Random(6);
        int count = 40;
        double[] gate = HostTensors.Random(rng, count, 4), up = HostTensors.Random(rng, count, 2), w = HostTensors.Random(rng, count);
        using var tg = FromDoubles(_backend, gate, count);
        using var tu = FromDoubles(_backend, up, count);
        using var y = _backend.Allocate(DType.F64, new Shape(count));
        double Loss()
        {
            Write(_backend, tg, gate);
            Write(_backend, tu, up);
            _backend.SwiGluForward(tg, tu, y);
            return Weighted(Read(_backend, y), w);
        }
        using var dy = FromDoubles(_backend, w, count);
        using var dg = _backend.Allocate(DType.F64, new Shape(count));
        using var du = _backend.Allocate(DType.F64, new Shape(count));
        Loss();
        _backend.SwiGluBackward(dy, tg, tu, dg, du);
        AssertMatches("swiglu dgate", gate, Read(_backend, dg), Loss);
        AssertMatches("swiglu dup", up, Read(_backend, du), Loss);
    }

    [Test]
    public void Embedding_backward_sums_repeated_ids_and_matches_finite_differences()
    {
        var rng = new Random(7);
        int vocab = 6, cols = 5;
        int[] ids = [3, 1, 3, 0, 5, 3, 1];
        double[] table = HostTensors.Random(rng, vocab * cols), w = HostTensors.Random(rng, ids.Length * cols);
        using var tt = FromDoubles(_backend, table, vocab, cols);
        using var tids = FromInts(_backend, ids);
        using var y = _backend.Allocate(DType.F64, new Shape(ids.Length, cols));
        double Loss()
        {
            Write(_backend, tt, table);
            _backend.EmbeddingForward(tt, tids, y);
            return Weighted(Read(_backend, y), w);
        }
        using var dy = FromDoubles(_backend, w, ids.Length, cols);
        using var dt = _backend.Allocate(DType.F64, new Shape(vocab, cols));
        _backend.EmbeddingBackward(dy, tids, dt);
        double[] grad = Read(_backend, dt);
        AssertMatches("embedding dtable", table, grad, Loss);
        Assert.That(grad.Skip(2 * cols).Take(cols), Is.All.EqualTo(0.0), "id 2 never appears");
    }

    [Test]
    public void Embedding_rejects_ids_outside_the_vocabulary()
    {
        using var table = _backend.Allocate(DType.F64, new Shape(4, 2));
        using var ids = FromInts(_backend, [1, 4]);
        using var y = _backend.Allocate(DType.F64, new Shape(2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => _backend.EmbeddingForward(table, ids, y));
    }

    [Test]
    public void CrossEntropy_loss_and_gradient_match_finite_differences_and_ignore_minus_100()
    {
        var rng = new Random(8);
        int rows = 5, vocab = 9;
        int[] targets = [2, IBackend.IgnoreIndex, 8, 0, 2];
        double[] logits = HostTensors.Random(rng, rows * vocab, 3);
        using var tl = FromDoubles(_backend, logits, rows, vocab);
        using var tt = FromInts(_backend, targets);
        using var loss = _backend.Allocate(DType.F64, new Shape(rows));
        double scale = 0.25;
        double Loss()
        {
            Write(_backend, tl, logits);
            _backend.CrossEntropy(tl, tt, loss, null, 0);
            return Read(_backend, loss).Sum() * scale;
        }
        double total = Loss();
        // Reference: −log softmax at the target, written out directly.
        double expected = 0;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
            {
                continue;
            }
            var row = logits.Skip(r * vocab).Take(vocab).ToArray();
            expected += Math.Log(row.Sum(Math.Exp)) - row[targets[r]];
        }
        Assert.That(total, Is.EqualTo(expected * scale).Within(1e-12));
        Assert.That(Read(_backend, loss)[1], Is.EqualTo(0.0));

        using var dl = _backend.Allocate(DType.F64, new Shape(rows, vocab));
        _backend.CrossEntropy(tl, tt, loss, dl, scale);
        double[] grad = Read(_backend, dl);
        AssertMatches("cross-entropy dlogits", logits, grad, Loss);
        Assert.That(grad.Skip(vocab).Take(vocab), Is.All.EqualTo(0.0), "ignored row has no gradient");

        // In place: dLogits may be the logits tensor.
        Write(_backend, tl, logits);
        _backend.CrossEntropy(tl, tt, loss, tl, scale);
        Assert.That(Read(_backend, tl), Is.EqualTo(grad).Within(1e-15));
    }

    [Test]
    public void Dropout_is_deterministic_scaled_and_keyed()
    {
        using var backend = new CpuBackend(DType.F32, threads: 2);
        int count = 100_003;
        using var ones = backend.Allocate(DType.F32, new Shape(count));
        backend.Fill(ones, 1);
        using var a = backend.Allocate(DType.F32, new Shape(count));
        using var b = backend.Allocate(DType.F32, new Shape(count));
        var key = new DropoutKey(7, 3, 1, 2);
        backend.Dropout(ones, a, 0.25, key);
        backend.Dropout(ones, b, 0.25, key);
        var first = Read(backend, a);
        Assert.That(Read(backend, b), Is.EqualTo(first), "same key, same mask");
        double keptFraction = first.Count(v => v != 0) / (double)count;
        Assert.That(keptFraction, Is.EqualTo(0.75).Within(0.01));
        Assert.That(first.Where(v => v != 0), Is.All.EqualTo(1 / 0.75f).Within(1e-6));
        foreach (var other in new[] { key with { Seed = 8 }, key with { Step = 4 }, key with { Layer = 2 }, key with { Use = 3 } })
        {
            backend.Dropout(ones, b, 0.25, other);
            Assert.That(Read(backend, b), Is.Not.EqualTo(first), $"{other} gives another mask");
        }
    }

    [Test]
    public void Dropout_masks_agree_between_the_vectorised_float_path_and_the_scalar_double_path()
    {
        using var f32 = new CpuBackend(DType.F32, threads: 2);
        int count = 40_003;
        var key = new DropoutKey(99, 12, 3, 5);
        using var ones32 = f32.Allocate(DType.F32, new Shape(count));
        using var out32 = f32.Allocate(DType.F32, new Shape(count));
        f32.Fill(ones32, 1);
        f32.Dropout(ones32, out32, 0.4, key);
        using var ones64 = _backend.Allocate(DType.F64, new Shape(count));
        using var out64 = _backend.Allocate(DType.F64, new Shape(count));
        _backend.Fill(ones64, 1);
        _backend.Dropout(ones64, out64, 0.4, key);
        bool[] kept32 = [.. Read(f32, out32).Select(v => v != 0)], kept64 = [.. Read(_backend, out64).Select(v => v != 0)];
        Assert.That(kept32, Is.EqualTo(kept64));
    }

    [Test]
    public void Dropout_backward_applies_the_same_mask()
    {
        var rng = new Random(9);
        int count = 64;
        double[] x = HostTensors.Random(rng, count), w = HostTensors.Random(rng, count);
        var key = new DropoutKey(1, 2, 3, 4);
        using var tx = FromDoubles(_backend, x, count);
        using var y = _backend.Allocate(DType.F64, new Shape(count));
        double Loss()
        {
            Write(_backend, tx, x);
            _backend.Dropout(tx, y, 0.3, key);
            return Weighted(Read(_backend, y), w);
        }
        using var dy = FromDoubles(_backend, w, count);
        _backend.Dropout(dy, dy, 0.3, key);
        AssertMatches("dropout dx", x, Read(_backend, dy), Loss);
    }

    [Test]
    public void Sum_and_sum_of_squares_are_exact_on_integers_and_order_fixed()
    {
        using var backend = new CpuBackend(DType.F32, threads: 2);
        int count = 70_001;
        var values = Enumerable.Range(0, count).Select(i => (double)(i % 7 - 3)).ToArray();
        using var t = FromDoubles(backend, values, count);
        Assert.That(backend.Sum(t), Is.EqualTo(values.Sum()));
        Assert.That(backend.SumOfSquares(t), Is.EqualTo(values.Sum(v => v * v)));
    }
}
