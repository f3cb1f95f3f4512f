using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Support.HostTensors;

namespace CudaFinetune.Tests.Backends.Cpu;

/// <summary>The AdamW op against PyTorch's single-tensor AdamW written out in scalars.</summary>
[TestFixture]
public sealed class OptimizerOpTests
{
    [Test]
    public void AdamW_update_matches_the_pytorch_formula_over_several_steps()
    {
        using var backend = new CpuBackend(DType.F64, threads: 2);
        var rng = new Random(1);
        int n = 50;
        double[] p = HostTensors.Random(rng, n), m = new double[n], v = new double[n];
        using var tp = FromDoubles(backend, p, n);
        using var tg = backend.Allocate(DType.F64, new Shape(n));
        using var tm = backend.Allocate(DType.F64, new Shape(n));
        using var tv = backend.Allocate(DType.F64, new Shape(n));
        double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1, scale = 0.5;
        for (int t = 1; t <= 4; t++)
        {
            double[] g = HostTensors.Random(rng, n);
            Write(backend, tg, g);
            backend.AdamWUpdate(tp, tg, tm, tv, new AdamWStep(lr, b1, b2, eps, wd, t, scale));
            for (int i = 0; i < n; i++)
            {
                double gi = g[i] * scale;
                p[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * gi;
                v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                double denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(b2, t)) + eps;
                p[i] -= lr / (1 - Math.Pow(b1, t)) * m[i] / denom;
            }
        }
        Assert.That(Read(backend, tp), Is.EqualTo(p).Within(1e-14));
        Assert.That(Read(backend, tm), Is.EqualTo(m).Within(1e-15));
        Assert.That(Read(backend, tv), Is.EqualTo(v).Within(1e-15));
    }

    [Test]
    public void Attention_decode_rows_equal_the_causal_forward()
    {
        using var backend = new CpuBackend(DType.F64, threads: 2);
        var rng = new Random(2);
        int seqLen = 9, hq = 4, hkv = 2, d = 4;
        var shape = new AttentionShape(1, seqLen, hq, hkv, d, 0.5);
        double[] q = HostTensors.Random(rng, seqLen * hq * d), k = HostTensors.Random(rng, seqLen * hkv * d), v = HostTensors.Random(rng, seqLen * hkv * d);
        using var tq = FromDoubles(backend, q, seqLen, hq * d);
        using var tk = FromDoubles(backend, k, seqLen, hkv * d);
        using var tv = FromDoubles(backend, v, seqLen, hkv * d);
        using var full = backend.Allocate(DType.F64, new Shape(seqLen, hq * d));
        using var lse = backend.Allocate(DType.F64, new Shape(hq * seqLen));
        backend.AttentionForward(tq, tk, tv, full, lse, shape);
        // Rows 6..8 as a decode of 3 new tokens after 6 cached ones.
        using var decoded = backend.Allocate(DType.F64, new Shape(3, hq * d));
        backend.AttentionDecode(tq.SliceRows(6, 3), tk, tv, decoded, past: 6, shape with { SeqLen = 3 });
        Assert.That(Read(backend, decoded), Is.EqualTo(Read(backend, full).Skip(6 * hq * d).ToArray()).Within(1e-13));
    }
}

/// <summary>The vectorised Philox against the scalar definition.</summary>
[TestFixture]
public sealed class PhiloxTests
{
    [Test]
    public void Four_block_generation_equals_the_scalar_generator_bit_for_bit()
    {
        Span<uint> words = stackalloc uint[16];
        foreach (ulong first in new ulong[] { 0, 1, 12345, (1UL << 32) - 2, (1UL << 40) + 5 })
        {
            CudaFinetune.Numerics.Philox.Generate4Blocks(first, 7, 0xABCD0003, 0x1234_5678_9ABC_DEF0, words);
            for (int i = 0; i < 16; i++)
            {
                long element = (long)(first * 4) + i;
                Assert.That(words[i], Is.EqualTo(CudaFinetune.Numerics.Philox.Word(0x1234_5678_9ABC_DEF0, 7, 0xABCD0003, element)), $"block {first}, word {i}");
            }
        }
    }

    [Test]
    public void Philox4x32_10_matches_the_published_known_answer()
    {
        // Random123's kat_vectors: philox4x32 10 rounds, counter and key all zero.
        var (r0, r1, r2, r3) = CudaFinetune.Numerics.Philox.Generate(0, 0, 0, 0, 0, 0);
        Assert.That(new[] { r0, r1, r2, r3 }, Is.EqualTo(new uint[] { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 }));
    }
}
