using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// kernels/rope.cu, embedding.cu, cross_entropy.cu, adamw.cu and reduce.cu against the CPU backend's Rope,
/// EmbeddingForward/Backward, CrossEntropy, AdamWUpdate and Sum/SumOfSquares, for fp32 and bf16 where the
/// kernel takes both, at shapes that are not multiples of a block.
/// </summary>
internal static class LayerChecks
{
    private static readonly DType[] Types = [DType.F32, DType.BF16];

    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("rope", "rope", Rope),
        new("embedding", "embedding", Embedding),
        new("cross_entropy", "cross_entropy", CrossEntropy),
        new("cross_entropy_chunked", "cross_entropy", ChunkedCrossEntropy),
        new("cross_entropy_chunked_dx", "cross_entropy", ChunkedCrossEntropyDx),
        new("adamw", "adamw", AdamW),
        new("reduce", "reduce", Reduce),
    ];

    private static string Text(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string Suffix(DType dtype) => dtype == DType.BF16 ? "bf16" : "f32";

    private static float[] Uniform(Random random, int n, double low, double high)
        => [.. Enumerable.Range(0, n).Select(_ => (float)(low + random.NextDouble() * (high - low)))];

    /// <summary>Forward and inverse rotation of [batch·seqLen, heads·headDim] by random angle tables.</summary>
    private static List<KernelCheckResult> Rope(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (var (batch, seqLen, heads, headDim) in new[] { (1, 5, 2, 8), (3, 17, 4, 64), (2, 33, 3, 128) })
            {
                foreach (bool inverse in new[] { false, true })
                {
                    int tokens = batch * seqLen, half = headDim / 2, n = tokens * heads * headDim;
                    float[] x = CheckRun.Stored(Uniform(random, n, -2, 2), dtype);
                    double[] angles = [.. Enumerable.Range(0, seqLen * half).Select(_ => random.NextDouble() * 20 - 10)];
                    float[] cos = [.. angles.Select(a => (float)Math.Cos(a))], sin = [.. angles.Select(a => (float)Math.Sin(a))];
                    using var reference = new CpuReference();
                    var xt = reference.F32(x, tokens, heads * headDim);
                    reference.Backend.Rope(xt, heads, reference.F32(cos, seqLen, half), reference.F32(sin, seqLen, half), seqLen, inverse);
                    using var run = new CheckRun(device);
                    DevicePtr px = run.PutAs(x, dtype), pc = run.Put<float>(cos), ps = run.Put<float>(sin);
                    run.StartClock();
                    RopeKernels.Apply(device, dtype, px, pc, ps, tokens, heads, headDim, seqLen, inverse ? 1 : 0);
                    var elapsed = run.StopClock();
                    results.Add(KernelComparison.Compare($"rope_{Suffix(dtype)}{(inverse ? " inverse" : "")}", Text($"{tokens}x{heads}x{headDim}, seq {seqLen}"),
                        run.GetAs(px, n, dtype), CpuReference.Values(xt), CheckRun.Tolerance(dtype), elapsed));
                }
            }
        }
        return results;
    }

    /// <summary>
    /// Lookup, and the backward with repeated ids (their rows summed in token order) onto a random start: bit for bit, since
    /// each row of the table is summed in the CPU backend's order; widths with 16-byte aligned rows (64) and without (5, 130).
    /// </summary>
    private static List<KernelCheckResult> Embedding(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (var (vocab, dim, tokens) in new[] { (7, 5, 9), (50, 130, 300), (1000, 64, 77) })
            {
                float[] table = CheckRun.Stored(Uniform(random, vocab * dim, -1, 1), dtype);
                int[] ids = [.. Enumerable.Range(0, tokens).Select(_ => random.Next(Math.Min(vocab, 10)))]; // few ids: many repeats
                float[] dOut = CheckRun.Stored(Uniform(random, tokens * dim, -1, 1), dtype), dStart = Uniform(random, vocab * dim, -1, 1);
                using var reference = new CpuReference();
                var output = reference.F32(new float[tokens * dim], tokens, dim);
                var idTensor = reference.I32(ids);
                reference.Backend.EmbeddingForward(reference.F32(table, vocab, dim), idTensor, output);
                var dTable = reference.F32(dStart, vocab, dim);
                reference.Backend.EmbeddingBackward(reference.F32(dOut, tokens, dim), idTensor, dTable);
                using var run = new CheckRun(device);
                DevicePtr pt = run.PutAs(table, dtype), pi = run.Put<int>(ids), po = run.PoisonedAs(tokens * dim, dtype);
                DevicePtr pd = run.PutAs(dOut, dtype), pdt = run.Put<float>(dStart);
                run.StartClock();
                EmbeddingKernels.Forward(device, dtype, pt, pi, po, tokens, dim);
                EmbeddingKernels.Backward(device, dtype, pd, pi, pdt, tokens, dim);
                var elapsed = run.StopClock();
                string name = Text($"vocab {vocab}, dim {dim}, {tokens} tokens");
                results.Add(KernelComparison.Compare($"embedding_forward_{Suffix(dtype)}", name, run.GetAs(po, tokens * dim, dtype), CpuReference.Values(output), 0, elapsed));
                results.Add(KernelComparison.Compare($"embedding_backward_{Suffix(dtype)}", name, run.Get<float>(pdt, vocab * dim), CpuReference.Values(dTable), 0, elapsed));
            }
        }
        return results;
    }

    /// <summary>
    /// Random logits (as <paramref name="dtype"/> stores them) and targets, every fourth row from the second ignored, and the CPU
    /// backend's row losses and (softmax − onehot)/rows.
    /// </summary>
    private static (float[] Logits, int[] Targets, float Scale, float[] Loss, float[] DLogits) CrossEntropyCase(Random random, DType dtype, int rows, int vocab)
    {
        float[] logits = CheckRun.Stored(Uniform(random, rows * vocab, -8, 8), dtype);
        int[] targets = [.. Enumerable.Range(0, rows).Select(r => r % 4 == 1 ? IBackend.IgnoreIndex : random.Next(vocab))];
        float scale = (float)(1.0 / rows);
        using var reference = new CpuReference();
        var lt = reference.F32(logits, rows, vocab);
        var loss = reference.F32(new float[rows]);
        reference.Backend.CrossEntropy(lt, reference.I32(targets), loss, lt, scale);
        return (logits, targets, scale, CpuReference.Values(loss), CpuReference.Values(lt));
    }

    /// <summary>Loss and gradient (written over the logits, as the model does), with ignored rows.</summary>
    private static List<KernelCheckResult> CrossEntropy(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (var (rows, vocab, threads) in new[] { (3, 7, 32), (9, 1000, 128), (4, 5003, 256) })
            {
                var (logits, targets, scale, loss, lt) = CrossEntropyCase(random, dtype, rows, vocab);
                using var run = new CheckRun(device);
                DevicePtr pl = run.PutAs(logits, dtype), pt = run.Put<int>(targets), ploss = run.Poisoned<float>(rows);
                run.StartClock();
                CrossEntropyKernels.Loss(device, dtype, pl, pt, ploss, pl, scale, rows, vocab, threads);
                var elapsed = run.StopClock();
                string name = Text($"{rows}x{vocab}, {threads} threads");
                results.Add(KernelComparison.Compare($"cross_entropy_{Suffix(dtype)} loss", name, run.Get<float>(ploss, rows), loss, 1e-5, elapsed,
                    i => Text($"row {i}")));
                // Gradients are scaled by 1/rows: compare them relative to the scale.
                results.Add(KernelComparison.Compare($"cross_entropy_{Suffix(dtype)} dlogits (in place)", name,
                    [.. run.GetAs(pl, rows * vocab, dtype).Select(g => g * rows)], [.. lt.Select(g => g * rows)],
                    dtype == DType.BF16 ? 1e-2 : 1e-5, elapsed, i => Text($"dlogits[{i / vocab},{i % vocab}]")));
            }
        }
        return results;
    }

    /// <summary>
    /// The vocabulary-chunk entries (stats per chunk, finish, grad per chunk) on logits cut into chunks that do not divide the
    /// vocabulary, against the CPU backend's CrossEntropy on the whole rows, with ignored rows.
    /// </summary>
    private static List<KernelCheckResult> ChunkedCrossEntropy(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (var (rows, vocab, chunk) in new[] { (3, 7, 7), (9, 1000, 300), (5, 5003, 2048) })
            {
                var (logits, targets, scale, loss, lt) = CrossEntropyCase(random, dtype, rows, vocab);

                using var run = new CheckRun(device);
                bool bf16 = dtype == DType.BF16;
                DevicePtr pt = run.Put<int>(targets), pmax = run.Poisoned<float>(rows), psum = run.Poisoned<float>(rows), ptarget = run.Poisoned<float>(rows);
                DevicePtr ploss = run.Poisoned<float>(rows);
                var chunks = Enumerable.Range(0, (vocab + chunk - 1) / chunk).Select(c => (Col0: c * chunk, Cols: Math.Min(chunk, vocab - c * chunk))).ToList();
                var pieces = chunks.Select(c => run.PutAs([.. Enumerable.Range(0, rows * c.Cols).Select(i => logits[i / c.Cols * vocab + c.Col0 + i % c.Cols])], dtype)).ToList();
                run.StartClock();
                for (int c = 0; c < chunks.Count; c++)
                {
                    CrossEntropyKernels.ChunkStats(
                        device, dtype, pieces[c], pt, pmax, psum, ptarget, chunks[c].Col0, chunks[c].Cols, rows, c == 0 ? 1 : 0, 128);
                }
                CrossEntropyKernels.ChunkFinish(device, pmax, psum, ptarget, pt, ploss, rows, vocab);
                for (int c = 0; c < chunks.Count; c++)
                {
                    CrossEntropyKernels.ChunkGrad(
                        device, dtype, pieces[c], pt, pmax, psum, scale, chunks[c].Col0, chunks[c].Cols, rows, 128);
                }
                var elapsed = run.StopClock();
                var gradient = new float[rows * vocab];
                for (int c = 0; c < chunks.Count; c++)
                {
                    float[] piece = run.GetAs(pieces[c], rows * chunks[c].Cols, dtype);
                    for (int i = 0; i < piece.Length; i++)
                    {
                        gradient[i / chunks[c].Cols * vocab + chunks[c].Col0 + i % chunks[c].Cols] = piece[i] * rows;
                    }
                }
                string name = Text($"{rows}x{vocab}, chunks of {chunk}");
                results.Add(KernelComparison.Compare($"cross_entropy_chunk_{Suffix(dtype)} loss", name, run.Get<float>(ploss, rows), loss, 1e-5, elapsed,
                    i => Text($"row {i}")));
                results.Add(KernelComparison.Compare($"cross_entropy_chunk_{Suffix(dtype)} dlogits", name, gradient, [.. lt.Select(g => g * rows)],
                    bf16 ? 1e-2 : 1e-5, elapsed, i => Text($"dlogits[{i / vocab},{i % vocab}]")));
            }
        }
        return results;
    }

    /// <summary>
    /// The one-pass entries for dX alone, on chunks that do not divide the vocabulary and widths with and without 16-byte
    /// aligned rows: per chunk, exp (statistics merged, the chunk turned into e^(x − m′), the rescale factors), the fp32
    /// accumulator's rows rescaled, and e^(x − m′)·head_chunk added to it (here on the host: the backend's GEMM); then the loss,
    /// and dX finished from the accumulator; against the CPU backend's CrossEntropy and dlogits·head.
    /// </summary>
    private static List<KernelCheckResult> ChunkedCrossEntropyDx(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (var (rows, vocab, hidden, chunk) in new[] { (3, 7, 8, 7), (9, 1000, 36, 300), (5, 5003, 64, 2048) })
            {
                var (logits, targets, scale, loss, lt) = CrossEntropyCase(random, dtype, rows, vocab);
                float[] head = CheckRun.Stored(Uniform(random, vocab * hidden, -1, 1), dtype);
                using var reference = new CpuReference();
                var dx = reference.F32(new float[rows * hidden], rows, hidden);
                reference.Backend.MatMul(reference.F32(lt, rows, vocab), false, reference.F32(head, vocab, hidden), false, dx);
                float[] expected = [.. CpuReference.Values(dx).Select(g => g * rows)];

                using var run = new CheckRun(device);
                DevicePtr pt = run.Put<int>(targets), pmax = run.Poisoned<float>(rows), psum = run.Poisoned<float>(rows), ptarget = run.Poisoned<float>(rows);
                DevicePtr prescale = run.Poisoned<float>(rows), ploss = run.Poisoned<float>(rows), pacc = run.Poisoned<float>(rows * hidden);
                DevicePtr phead = run.PutAs(head, dtype), pdx = run.PoisonedAs(rows * hidden, dtype);
                var chunks = Enumerable.Range(0, (vocab + chunk - 1) / chunk).Select(c => (Col0: c * chunk, Cols: Math.Min(chunk, vocab - c * chunk))).ToList();
                var pieces = chunks.Select(c => run.PutAs([.. Enumerable.Range(0, rows * c.Cols).Select(i => logits[i / c.Cols * vocab + c.Col0 + i % c.Cols])], dtype)).ToList();
                var elapsed = TimeSpan.Zero;
                for (int c = 0; c < chunks.Count; c++)
                {
                    var (col0, cols) = chunks[c];
                    run.StartClock();
                    CrossEntropyKernels.ChunkExp(device, dtype, pieces[c], pt, pmax, psum, ptarget, prescale, col0, cols, rows, c == 0 ? 1 : 0, 128);
                    if (c > 0)
                    {
                        CrossEntropyKernels.RescaleRows(device, pacc, prescale, rows, hidden, 64);
                    }
                    elapsed += run.StopClock();
                    float[] p = run.GetAs(pieces[c], rows * cols, dtype), acc = c == 0 ? new float[rows * hidden] : run.Get<float>(pacc, rows * hidden);
                    for (int r = 0; r < rows; r++)
                    {
                        for (int h = 0; h < hidden; h++)
                        {
                            double sum = acc[r * hidden + h];
                            for (int k = 0; k < cols; k++)
                            {
                                sum += (double)p[r * cols + k] * head[(col0 + k) * hidden + h];
                            }
                            acc[r * hidden + h] = (float)sum;
                        }
                    }
                    device.Upload<float>(acc, pacc);
                }
                run.StartClock();
                CrossEntropyKernels.ChunkFinish(device, pmax, psum, ptarget, pt, ploss, rows, vocab);
                CrossEntropyKernels.DxFinish(device, dtype, pacc, phead, pt, psum, pdx, scale, rows, hidden, vocab, 64);
                elapsed += run.StopClock();
                string name = Text($"{rows}x{vocab}, hidden {hidden}, chunks of {chunk}");
                results.Add(KernelComparison.Compare($"cross_entropy_chunk_exp_{Suffix(dtype)} loss", name, run.Get<float>(ploss, rows), loss, 1e-5, elapsed,
                    i => Text($"row {i}")));
                results.Add(KernelComparison.Compare($"cross_entropy_dx_finish_{Suffix(dtype)} dX", name, [.. run.GetAs(pdx, rows * hidden, dtype).Select(g => g * rows)], expected,
                    dtype == DType.BF16 ? 1e-2 : 1e-5, elapsed, i => Text($"dX[{i / hidden},{i % hidden}]")));
            }
        }
        return results;
    }

    /// <summary>Three steps from random moments, fp32 and bf16 gradients, with the bf16 copy of the weights.</summary>
    private static List<KernelCheckResult> AdamW(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var gradType in Types)
        {
            foreach (int n in new[] { 1, 1000, 70_001 })
            {
                float[] p = Uniform(random, n, -1, 1), m = Uniform(random, n, -0.01, 0.01), v = Uniform(random, n, 0, 1e-4);
                using var reference = new CpuReference();
                Tensor pt = reference.F32(p), mt = reference.F32(m), vt = reference.F32(v);
                using var run = new CheckRun(device);
                DevicePtr pp = run.Put<float>(p), pm = run.Put<float>(m), pv = run.Put<float>(v), pw = run.Poisoned<ushort>(n);
                var elapsed = TimeSpan.Zero;
                for (long step = 1; step <= 3; step++)
                {
                    float[] g = CheckRun.Stored(Uniform(random, n, -1, 1), gradType);
                    var update = new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0.01, step, 0.5);
                    reference.Backend.AdamWUpdate(pt, reference.F32(g), mt, vt, update);
                    var s = AdamWKernels.Scalars.From(update);
                    DevicePtr pg = run.PutAs(g, gradType);
                    run.StartClock();
                    AdamWKernels.Step(device, gradType, pp, pg, pm, pv, pw, n, s);
                    elapsed += run.StopClock();
                }
                string kernel = gradType == DType.BF16 ? "adamw_bf16_grad" : "adamw_f32", name = Text($"n={n}, 3 steps");
                results.Add(KernelComparison.Compare($"{kernel} weights", name, run.Get<float>(pp, n), CpuReference.Values(pt), 1e-5, elapsed));
                results.Add(KernelComparison.Compare($"{kernel} exp_avg", name, run.Get<float>(pm, n), CpuReference.Values(mt), 1e-5, elapsed));
                results.Add(KernelComparison.Compare($"{kernel} exp_avg_sq", name, run.Get<float>(pv, n), CpuReference.Values(vt), 1e-5, elapsed));
                results.Add(KernelComparison.Compare($"{kernel} bf16 weights", name, run.GetAs(pw, n, DType.BF16), CheckRun.Stored(CpuReference.Values(pt), DType.BF16), 1e-2, elapsed));
            }
        }
        return results;
    }

    /// <summary>Σx and Σx² from the partial sums, added in order in double as the backend will.</summary>
    private static List<KernelCheckResult> Reduce(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in Types)
        {
            foreach (int n in new[] { 1, 255, 70_001, 1_000_003 })
            {
                float[] x = CheckRun.Stored(Uniform(random, n, -1, 1), dtype);
                using var reference = new CpuReference();
                var xt = reference.F32(x);
                double[] expected = [reference.Backend.Sum(xt), reference.Backend.SumOfSquares(xt)];
                using var run = new CheckRun(device);
                DevicePtr px = run.PutAs(x, dtype), partials = run.Poisoned<float>(ReduceKernels.Blocks * 2);
                run.StartClock();
                for (int squares = 0; squares < 2; squares++)
                {
                    ReduceKernels.PartialSums(device, dtype, px, n, squares, partials.Offset(squares * ReduceKernels.Blocks * sizeof(float)));
                }
                var elapsed = run.StopClock();
                float[] sums = run.Get<float>(partials, ReduceKernels.Blocks * 2);
                double[] got = [sums.Take(ReduceKernels.Blocks).Sum(s => (double)s), sums.Skip(ReduceKernels.Blocks).Sum(s => (double)s)];
                // Σx of random signs cancels: allow 1e-5 of Σ|x| (= the scale of the rounding), Σx² 1e-5 relative.
                double magnitude = x.Sum(v => (double)Math.Abs(v));
                results.Add(KernelComparison.Compare($"reduce_{Suffix(dtype)}", Text($"n={n}"), got, expected, [1e-5 * Math.Max(1, magnitude), 1e-5 * Math.Max(1, expected[1])],
                    "1e-5 of Σ|x|", elapsed, i => i == 0 ? "sum" : "sum of squares"));
            }
        }
        return results;
    }
}
