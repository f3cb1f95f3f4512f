using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// kernels/attention.cu against the CPU backend's AttentionForward on the same bf16-rounded inputs: head
/// dimensions 32, 64 and 128, grouped-query heads, sequence lengths that are not multiples of the 64-row tiles, and tiles
/// wholly below the causal diagonal (T 130 and 192), which the kernels compute without the per-element mask.
/// Output 1e-2 relative (bf16, and P is rounded to bf16 before P·V, as on every flash kernel), lse 1e-4.
/// The backward gets the CPU forward's output (rounded to bf16, as the GPU stores it) and lse, so that it alone is
/// compared; dq, dk and dv 2e-2 relative (P and dS are rounded to bf16 before their products).
/// kernels/decode_attention.cu against AttentionDecode: fp32 1e-5, bf16 1e-2 (output rounding).
/// </summary>
internal static class AttentionChecks
{
    private static readonly (int Batch, int SeqLen, int QHeads, int KvHeads, int HeadDim)[] Shapes =
        [(1, 1, 1, 1, 64), (2, 37, 4, 2, 64), (1, 100, 4, 4, 32), (1, 130, 2, 1, 128), (2, 64, 2, 2, 128), (1, 192, 2, 1, 32)];

    public static IReadOnlyList<KernelCheck> All { get; } = [new("attention_forward", "attention", Forward), new("attention_backward", "attention", Backward), new("decode_attention", "decode_attention", Decode)];

    private static float[] Uniform(Random random, int n, double low, double high)
        => CheckRun.Stored([.. Enumerable.Range(0, n).Select(_ => (float)(low + random.NextDouble() * (high - low)))], DType.BF16);

    private static List<KernelCheckResult> Forward(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var (batch, seqLen, qHeads, kvHeads, headDim) in Shapes)
        {
            var shape = new AttentionShape(batch, seqLen, qHeads, kvHeads, headDim, 1 / Math.Sqrt(headDim));
            int tokens = batch * seqLen, qWidth = qHeads * headDim, kvWidth = kvHeads * headDim;
            float[] q = Uniform(random, tokens * qWidth, -2, 2), k = Uniform(random, tokens * kvWidth, -2, 2), v = Uniform(random, tokens * kvWidth, -1, 1);
            using var reference = new CpuReference();
            var output = reference.F32(new float[tokens * qWidth], tokens, qWidth);
            var lse = reference.F32(new float[batch * qHeads * seqLen]);
            reference.Backend.AttentionForward(reference.F32(q, tokens, qWidth), reference.F32(k, tokens, kvWidth), reference.F32(v, tokens, kvWidth), output, lse, shape);

            using var run = new CheckRun(device);
            DevicePtr pq = run.PutAs(q, DType.BF16), pk = run.PutAs(k, DType.BF16), pv = run.PutAs(v, DType.BF16);
            DevicePtr po = run.PoisonedAs(tokens * qWidth, DType.BF16), plse = run.Poisoned<float>(batch * qHeads * seqLen);
            run.StartClock();
            AttentionKernels.Forward(device, pq, pk, pv, po, plse, batch, seqLen, qHeads, kvHeads, headDim, (float)shape.Scale);
            var elapsed = run.StopClock();
            string name = string.Create(CultureInfo.InvariantCulture, $"b{batch} T{seqLen} h{qHeads}/{kvHeads} d{headDim}");
            string kernel = $"attention_forward_d{headDim}_bf16";
            results.Add(KernelComparison.Compare($"{kernel} out", name, run.GetAs(po, tokens * qWidth, DType.BF16), CpuReference.Values(output), 1e-2, elapsed,
                i => string.Create(CultureInfo.InvariantCulture, $"out[token {i / qWidth}, head {i % qWidth / headDim}, {i % headDim}]")));
            results.Add(KernelComparison.Compare($"{kernel} lse", name, run.Get<float>(plse, batch * qHeads * seqLen), CpuReference.Values(lse), 1e-4, elapsed,
                i => string.Create(CultureInfo.InvariantCulture, $"lse[b {i / (qHeads * seqLen)}, head {i / seqLen % qHeads}, t {i % seqLen}]")));
        }
        return results;
    }

    private static List<KernelCheckResult> Backward(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var (batch, seqLen, qHeads, kvHeads, headDim) in Shapes)
        {
            var shape = new AttentionShape(batch, seqLen, qHeads, kvHeads, headDim, 1 / Math.Sqrt(headDim));
            int tokens = batch * seqLen, qWidth = qHeads * headDim, kvWidth = kvHeads * headDim, lseCount = batch * qHeads * seqLen;
            float[] q = Uniform(random, tokens * qWidth, -2, 2), k = Uniform(random, tokens * kvWidth, -2, 2), v = Uniform(random, tokens * kvWidth, -1, 1);
            float[] dOut = Uniform(random, tokens * qWidth, -1, 1);
            using var reference = new CpuReference();
            Tensor tq = reference.F32(q, tokens, qWidth), tk = reference.F32(k, tokens, kvWidth), tv = reference.F32(v, tokens, kvWidth);
            var output = reference.F32(new float[tokens * qWidth], tokens, qWidth);
            var lse = reference.F32(new float[lseCount]);
            reference.Backend.AttentionForward(tq, tk, tv, output, lse, shape);
            float[] storedOutput = CheckRun.Stored(CpuReference.Values(output), DType.BF16);
            Tensor dq = reference.F32(new float[tokens * qWidth], tokens, qWidth);
            Tensor dk = reference.F32(new float[tokens * kvWidth], tokens, kvWidth), dv = reference.F32(new float[tokens * kvWidth], tokens, kvWidth);
            reference.Backend.AttentionBackward(reference.F32(dOut, tokens, qWidth), tq, tk, tv, reference.F32(storedOutput, tokens, qWidth), lse, dq, dk, dv, shape);

            using var run = new CheckRun(device);
            DevicePtr pq = run.PutAs(q, DType.BF16), pk = run.PutAs(k, DType.BF16), pv = run.PutAs(v, DType.BF16);
            DevicePtr po = run.PutAs(storedOutput, DType.BF16), pdo = run.PutAs(dOut, DType.BF16), plse = run.Put<float>(CpuReference.Values(lse));
            DevicePtr pdelta = run.Poisoned<float>(lseCount);
            DevicePtr pdq = run.PoisonedAs(tokens * qWidth, DType.BF16), pdk = run.PoisonedAs(tokens * kvWidth, DType.BF16), pdv = run.PoisonedAs(tokens * kvWidth, DType.BF16);
            run.StartClock();
            AttentionKernels.Backward(device, pq, pk, pv, po, pdo, plse, pdelta, pdq, pdk, pdv, batch, seqLen, qHeads, kvHeads, headDim, (float)shape.Scale);
            var elapsed = run.StopClock();
            string name = string.Create(CultureInfo.InvariantCulture, $"b{batch} T{seqLen} h{qHeads}/{kvHeads} d{headDim}");
            foreach (var (label, where, expected, width) in new[] { ("dq", pdq, dq, qWidth), ("dk", pdk, dk, kvWidth), ("dv", pdv, dv, kvWidth) })
            {
                results.Add(KernelComparison.Compare($"attention_backward_d{headDim}_bf16 {label}", name, run.GetAs(where, tokens * width, DType.BF16),
                    CpuReference.Values(expected), 2e-2, elapsed,
                    i => string.Create(CultureInfo.InvariantCulture, $"{label}[token {i / width}, head {i % width / headDim}, {i % headDim}]")));
            }
        }
        return results;
    }

    private static List<KernelCheckResult> Decode(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var dtype in new[] { DType.F32, DType.BF16 })
        {
            foreach (var (past, rows, qHeads, kvHeads, headDim, capacity) in new[] { (0, 5, 4, 2, 32, 8), (37, 1, 2, 1, 64, 64), (100, 3, 8, 8, 128, 110) })
            {
                var shape = new AttentionShape(1, past + rows, qHeads, kvHeads, headDim, 1 / Math.Sqrt(headDim));
                int qWidth = qHeads * headDim, kvWidth = kvHeads * headDim;
                float[] q = CheckRun.Stored(Uniform(random, rows * qWidth, -2, 2), dtype);
                float[] k = CheckRun.Stored(Uniform(random, capacity * kvWidth, -2, 2), dtype), v = CheckRun.Stored(Uniform(random, capacity * kvWidth, -1, 1), dtype);
                using var reference = new CpuReference();
                var output = reference.F32(new float[rows * qWidth], rows, qWidth);
                reference.Backend.AttentionDecode(reference.F32(q, rows, qWidth), reference.F32(k, capacity, kvWidth), reference.F32(v, capacity, kvWidth), output, past, shape);

                using var run = new CheckRun(device);
                DevicePtr pq = run.PutAs(q, dtype), pk = run.PutAs(k, dtype), pv = run.PutAs(v, dtype), po = run.PoisonedAs(rows * qWidth, dtype);
                run.StartClock();
                DecodeAttentionKernels.Attend(device, dtype, pq, pk, pv, po, past, rows, qHeads, kvHeads, headDim, (float)shape.Scale);
                var elapsed = run.StopClock();
                string suffix = dtype == DType.BF16 ? "bf16" : "f32";
                results.Add(KernelComparison.Compare($"decode_attention_{suffix}", string.Create(CultureInfo.InvariantCulture, $"past {past}, n {rows}, h{qHeads}/{kvHeads} d{headDim}"),
                    run.GetAs(po, rows * qWidth, dtype), CpuReference.Values(output), CheckRun.Tolerance(dtype), elapsed, i => $"out[{i / qWidth}, head {i % qWidth / headDim}, {i % headDim}]"));
            }
        }
        return results;
    }
}
