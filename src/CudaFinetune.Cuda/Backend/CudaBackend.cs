using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The op interface on our kernels: a GPU through the CUDA driver ("cuda"), or the same launches run by the
/// kernel emulator ("cuda-emulated"). Each op checks dtypes and sizes on the host, then enqueues its kernels
/// on the device's one stream; nothing waits for the GPU except copies to the host and reductions.
/// Mixed precision by default: weights and activations in bf16 (<see cref="ComputeType"/>), statistics, gradients
/// of trained weights, their fp32 masters and the optimizer's moments in fp32 (<see cref="AccumulationType"/>). An
/// fp32 <see cref="ComputeType"/> is there for debugging: attention then runs its bf16 kernels on bf16 copies.
/// Scratch buffers grow to the largest call and are then reused, so a training step allocates nothing once warm.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private readonly IDevice _device;
    private readonly IDeviceGemm _gemm;
    private readonly DeviceBuffer _partials;
    private readonly float[] _hostPartials = new float[ReduceKernels.Blocks];
    private readonly List<ScratchBuffer> _scratch = [];

    private CudaBackend(IDevice device, IDeviceGemm gemm, string name, Device where, DType computeType)
    {
        if (computeType is not (DType.BF16 or DType.F32))
        {
            throw new ArgumentException($"the {name} backend computes in BF16 or F32, not {computeType}", nameof(computeType));
        }
        ComputeType = computeType;
        _device = device;
        _gemm = gemm;
        Name = name;
        Device = where;
        _partials = device.Memory.Allocate(ReduceKernels.Blocks * sizeof(float));
    }

    /// <summary>The backend on GPU <paramref name="ordinal"/>; a machine without a driver or GPU is a <see cref="UserErrorException"/>.</summary>
    public static CudaBackend OpenGpu(int ordinal = 0, DType computeType = DType.BF16)
    {
        var device = CudaDevice.Open(ordinal);
        try
        {
            return new CudaBackend(device, new CublasGemm(device), "cuda", new Device(DeviceKind.Cuda, ordinal), computeType);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>The backend on the kernel emulator (any machine; slow).</summary>
    public static CudaBackend OpenEmulated(DType computeType = DType.BF16)
    {
        var device = EmulatedDevice.Open();
        return new CudaBackend(device, new HostGemm(), "cuda-emulated", new Device(DeviceKind.CudaEmulated, 0), computeType);
    }

    public string Name { get; }

    public Device Device { get; }

    public DType ComputeType { get; }

    public DType AccumulationType => DType.F32;

    /// <summary>The device the kernels run on.</summary>
    public IDevice Kernels => _device;

    /// <summary>The device allocator's counters: bytes in use, cached, and the peak in use (tensors and scratch; not cuBLASLt's workspace).</summary>
    public AllocatorStats MemoryStats => _device.Memory.Stats;

    // ---- memory -------------------------------------------------------------------------

    public Tensor Allocate(DType dtype, Shape shape)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.I32))
        {
            throw new NotSupportedException($"the {Name} backend holds F32, BF16 and I32 tensors, not {dtype}");
        }
        var storage = new DeviceStorage(_device, Device, checked(shape.ElementCount * dtype.SizeInBytes()));
        _device.Fill(storage.Start, 0, (nuint)storage.ByteLength);
        return new Tensor(storage, dtype, shape);
    }

    public void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        CheckHostType<T>(destination, source.Length);
        MakeCurrent();
        fixed (T* s = source)
        {
            _device.CopyToDevice(destination.Address(), s, (nuint)(source.Length * sizeof(T)));
        }
    }

    public void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        CheckHostType<T>(source, destination.Length);
        MakeCurrent();
        fixed (T* d = destination)
        {
            _device.CopyToHost(d, source.Address(), (nuint)(destination.Length * sizeof(T)));
        }
    }

    public void Copy(Tensor source, Tensor destination)
    {
        SameCount(source, destination);
        long n = source.ElementCount;
        switch ((source.DType, destination.DType))
        {
            case var (s, d) when s == d: _device.CopyWithinDevice(destination.Address(), source.Address(), (nuint)(n * s.SizeInBytes())); break;
            case (DType.F32, DType.BF16): ElementwiseKernels.CastF32ToBF16(_device, source.Address(), destination.Address(), n); break;
            case (DType.BF16, DType.F32): ElementwiseKernels.CastBF16ToF32(_device, source.Address(), destination.Address(), n); break;
            default: throw new NotSupportedException($"the {Name} backend copies F32↔BF16, not {source.DType} → {destination.DType}");
        }
    }

    public void Fill(Tensor tensor, double value)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        switch (tensor.DType)
        {
            case DType.F32: ElementwiseKernels.FillF32(_device, tensor.Address(), (float)value, tensor.ElementCount); break;
            case DType.BF16: ElementwiseKernels.FillBF16(_device, tensor.Address(), (float)value, tensor.ElementCount); break;
            case DType.I32 when value == 0: _device.Fill(tensor.Address(), 0, (nuint)(tensor.ElementCount * sizeof(int))); break;
            default: throw new NotSupportedException($"the {Name} backend fills F32 and BF16 tensors (and I32 with zeros), not {tensor.DType} with {value}");
        }
    }

    // ---- linear algebra -----------------------------------------------------------------

    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0)
    {
        Expect(ComputeType, a, b);
        if (c.DType != ComputeType)
        {
            Expect(AccumulationType, c);
        }
        CheckDevice(c);
        var (m, n, k) = GemmSizes.Of(a, transposeA, b, transposeB, c);
        _gemm.Run(m, n, k, transposeA, transposeB, (float)alpha, a.Address(), b.Address(), (float)beta, c.Address(), a.DType, c.DType);
    }

    /// <summary>
    /// kernels/lora.cu when the tensors are bf16 with 16-byte rows (a forward overwriting c, without dropout; an input gradient
    /// with or without); otherwise GEMMs (and the dropout kernel through a scratch buffer).
    /// </summary>
    public void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default)
    {
        Expect(ComputeType, a, b, low, lowB, c);
        // forward: a = x [T, K], b = W [N, K], low [T, R], lowB = B [N, R], c = y [T, N];
        // backward: a = dy [T, N], b = W [N, K], low = dLow [T, R], lowB = A [R, K], c = dx [T, K].
        int tokens = a.Shape.Rows, r = low.Shape.Columns;
        int n = b.Shape.Rows, k = b.Shape.Columns;
        bool shapesAgree = transposeB
            ? a.Shape.Columns == k && c.Shape == new Shape(tokens, n) && lowB.Shape == new Shape(n, r)
            : a.Shape.Columns == n && c.Shape == new Shape(tokens, k) && lowB.Shape == new Shape(r, k);
        if (!shapesAgree || low.Shape.Rows != tokens)
        {
            throw new ArgumentException($"low-rank matmul shapes do not agree: a {a.Shape}, b {b.Shape}{(transposeB ? "ᵀ" : "")}, low {low.Shape}, lowB {lowB.Shape}, c {c.Shape}");
        }
        DevicePtr pa = a.Address(), pb = b.Address(), plow = low.Address(), plowB = lowB.Address(), pc = c.Address();
        var mask = DropoutMask.Of(lowDropout, lowDropoutKey);
        bool fused = ComputeType == DType.BF16 && LoraKernels.Fits([n, k, r], [pa, pb, plow, plowB, pc]) && !(transposeB && (accumulate || lowDropout > 0));
        if (!fused)
        {
            MatMul(a, false, b, transposeB, c, beta: accumulate ? 1 : 0);
            if (lowDropout == 0)
            {
                MatMul(low, false, lowB, transposeB, c, beta: 1);
                return;
            }
            DevicePtr scratch = Scratch(Slot.LowRank, c.ElementCount * c.DType.SizeInBytes());
            _gemm.Run(c.Shape.Rows, c.Shape.Columns, r, false, transposeB, 1, plow, plowB, 0, scratch, ComputeType, c.DType);
            bool bf16 = c.DType == DType.BF16;
            Dropout(bf16, scratch, scratch, c.ElementCount, lowDropout, lowDropoutKey);
            AddScaled(bf16, scratch, 1, pc, c.ElementCount);
        }
        else if (transposeB)
        {
            LoraKernels.ForwardBF16(_device, pa, pb, plow, plowB, pc, tokens, n, k, r);
        }
        else
        {
            LoraKernels.BackwardDxBF16(_device, pa, pb, plow, plowB, pc, tokens, n, k, r, accumulate ? 1 : 0,
                lowDropoutKey.Seed, mask.Hi0, mask.Hi1, mask.Threshold, mask.Scale);
        }
    }

    // ---- elementwise --------------------------------------------------------------------

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        bool bf16 = FloatType(a, b, output);
        SameCount(a, b);
        SameCount(a, output);
        (bf16 ? (BinaryLauncher)ElementwiseKernels.AddBF16 : ElementwiseKernels.AddF32)(_device, a.Address(), b.Address(), output.Address(), a.ElementCount);
    }

    public void AddScaled(Tensor x, double scale, Tensor accumulator)
    {
        bool bf16 = FloatType(x, accumulator);
        SameCount(x, accumulator);
        AddScaled(bf16, x.Address(), (float)scale, accumulator.Address(), x.ElementCount);
    }

    private void AddScaled(bool bf16, DevicePtr x, float scale, DevicePtr accumulator, long n)
        => (bf16 ? (AddScaledLauncher)ElementwiseKernels.AddScaledBF16 : ElementwiseKernels.AddScaledF32)(_device, x, scale, accumulator, n);

    public void Dropout(Tensor x, Tensor output, double probability, DropoutKey key)
    {
        bool bf16 = FloatType(x, output);
        SameCount(x, output);
        Dropout(bf16, x.Address(), output.Address(), x.ElementCount, probability, key);
    }

    private void Dropout(bool bf16, DevicePtr x, DevicePtr output, long n, double probability, DropoutKey key)
    {
        var mask = DropoutMask.Of(probability, key);
        (bf16 ? (DropoutLauncher)ElementwiseKernels.DropoutBF16 : ElementwiseKernels.DropoutF32)(_device, x, output, n, key.Seed, mask.Hi0, mask.Hi1, mask.Threshold, mask.Scale);
    }

    /// <summary>The kernels' form of a dropout mask: Philox counter words, keep threshold and the kept elements' scale (1 at p = 0).</summary>
    private readonly record struct DropoutMask(uint Hi0, uint Hi1, uint Threshold, float Scale)
    {
        public static DropoutMask Of(double probability, DropoutKey key)
        {
            if (probability is < 0 or >= 1)
            {
                throw new ArgumentOutOfRangeException(nameof(probability), probability, "dropout probability must be in [0, 1)");
            }
            var (hi0, hi1) = key.CounterWords();
            return new DropoutMask(hi0, hi1, DropoutKey.KeepThreshold(probability), (float)(1.0 / (1.0 - probability)));
        }
    }

    // ---- embedding ----------------------------------------------------------------------

    public void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output)
    {
        bool bf16 = FloatType(table, output);
        Expect(DType.I32, tokenIds);
        int tokens = checked((int)tokenIds.ElementCount), dim = table.Shape.Columns;
        if (output.ElementCount != (long)tokens * dim)
        {
            throw new ArgumentException($"embedding output {output.Shape} is not {tokens}×{dim}");
        }
        (bf16 ? (EmbeddingLauncher)EmbeddingKernels.ForwardBF16 : EmbeddingKernels.ForwardF32)(_device, table.Address(), tokenIds.Address(), output.Address(), tokens, dim);
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable)
    {
        bool bf16 = FloatType(dOutput);
        Expect(DType.I32, tokenIds);
        Expect(DType.F32, dTable);
        int tokens = checked((int)tokenIds.ElementCount), dim = dTable.Shape.Columns;
        if (dOutput.ElementCount != (long)tokens * dim)
        {
            throw new ArgumentException($"embedding gradient {dOutput.Shape} is not {tokens}×{dim}");
        }
        (bf16 ? (EmbeddingLauncher)EmbeddingKernels.BackwardBF16 : EmbeddingKernels.BackwardF32)(_device, dOutput.Address(), tokenIds.Address(), dTable.Address(), tokens, dim);
    }

    // ---- normalisation ------------------------------------------------------------------

    public void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd)
    {
        bool bf16 = FloatType(x, weight, output);
        Expect(DType.F32, rstd);
        var (rows, cols) = Rows(x, weight, output, rstd);
        (bf16 ? (RmsNormForwardLauncher)RmsNormKernels.ForwardBF16 : RmsNormKernels.ForwardF32)(
            _device, x.Address(), weight.Address(), output.Address(), rstd.Address(), rows, cols, (float)epsilon, 256);
    }

    public void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd)
    {
        bool bf16 = FloatType(x, delta, weight, sum, output);
        Expect(DType.F32, rstd);
        var (rows, cols) = Rows(x, weight, output, rstd);
        SameCount(x, delta);
        SameCount(x, sum);
        (bf16 ? (RmsNormResidualLauncher)RmsNormKernels.ResidualForwardBF16 : RmsNormKernels.ResidualForwardF32)(
            _device, x.Address(), delta.Address(), sum.Address(), weight.Address(), output.Address(), rstd.Address(), rows, cols, (float)epsilon, 256);
    }

    public void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight)
    {
        bool bf16 = FloatType(dOutput, x, weight, dx);
        Expect(DType.F32, rstd);
        var (rows, cols) = Rows(x, weight, dOutput, rstd);
        SameCount(x, dx);
        (bf16 ? (RmsNormDxLauncher)RmsNormKernels.BackwardDxBF16 : RmsNormKernels.BackwardDxF32)(
            _device, dOutput.Address(), x.Address(), weight.Address(), rstd.Address(), dx.Address(), rows, cols, 256);
        if (dWeight is not null)
        {
            Expect(DType.F32, dWeight);
            SameCount(weight, dWeight);
            (bf16 ? (RmsNormDWeightLauncher)RmsNormKernels.BackwardDWeightBF16 : RmsNormKernels.BackwardDWeightF32)(
                _device, dOutput.Address(), x.Address(), rstd.Address(), dWeight.Address(), rows, cols, 256);
        }
    }

    // ---- rotary position embedding ------------------------------------------------------

    public void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse)
    {
        bool bf16 = FloatType(x);
        Expect(DType.F32, cos, sin);
        int tokens = x.Shape.Rows, width = x.Shape.Columns;
        if (heads <= 0 || width % heads != 0 || width / heads % 2 != 0)
        {
            throw new ArgumentException($"rope: {width} columns do not split into {heads} heads of an even size");
        }
        int headDim = width / heads;
        if (seqLen <= 0 || tokens % seqLen != 0 || cos.ElementCount < (long)seqLen * headDim / 2 || sin.ElementCount != cos.ElementCount)
        {
            throw new ArgumentException($"rope: {tokens} tokens, sequence length {seqLen}, cos {cos.Shape} and sin {sin.Shape} do not agree with head size {headDim}");
        }
        (bf16 ? (RopeLauncher)RopeKernels.BF16 : RopeKernels.F32)(_device, x.Address(), cos.Address(), sin.Address(), tokens, heads, headDim, seqLen, inverse ? 1 : 0);
    }

    // ---- MLP activation -----------------------------------------------------------------

    public void SwiGluForward(Tensor gate, Tensor up, Tensor output)
    {
        bool bf16 = FloatType(gate, up, output);
        SameCount(gate, up);
        SameCount(gate, output);
        (bf16 ? (BinaryLauncher)ElementwiseKernels.SwiGluForwardBF16 : ElementwiseKernels.SwiGluForwardF32)(_device, gate.Address(), up.Address(), output.Address(), gate.ElementCount);
    }

    public void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp)
    {
        bool bf16 = FloatType(dOutput, gate, up, dGate, dUp);
        foreach (var t in (ReadOnlySpan<Tensor>)[gate, up, dGate, dUp])
        {
            SameCount(dOutput, t);
        }
        if (bf16)
        {
            ElementwiseKernels.SwiGluBackwardBF16(_device, dOutput.Address(), gate.Address(), up.Address(), dGate.Address(), dUp.Address(), dOutput.ElementCount);
        }
        else
        {
            ElementwiseKernels.SwiGluBackwardF32(_device, dOutput.Address(), gate.Address(), up.Address(), dGate.Address(), dUp.Address(), dOutput.ElementCount);
        }
    }

    // ---- loss ---------------------------------------------------------------------------

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale)
    {
        bool bf16 = FloatType(logits);
        Expect(DType.I32, targets);
        Expect(DType.F32, rowLoss);
        int rows = logits.Shape.Rows, vocab = logits.Shape.Columns;
        if (targets.ElementCount != rows || rowLoss.ElementCount != rows)
        {
            throw new ArgumentException($"cross-entropy: {rows} rows of logits, {targets.ElementCount} targets, {rowLoss.ElementCount} losses");
        }
        if (dLogits is not null)
        {
            Expect(logits.DType, dLogits);
            SameCount(logits, dLogits);
        }
        (bf16 ? (CrossEntropyLauncher)CrossEntropyKernels.BF16 : CrossEntropyKernels.F32)(
            _device, logits.Address(), targets.Address(), rowLoss.Address(), dLogits.AddressOrNull(), (float)gradientScale, rows, vocab, 256);
    }

    // ---- optimizer ----------------------------------------------------------------------

    /// <summary>fp32 parameter (a master, when <paramref name="roundedCopy"/>, bf16, receives it rounded) and moments; fp32 or bf16 gradient.</summary>
    public void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null)
    {
        Expect(DType.F32, parameter, firstMoment, secondMoment);
        bool bf16Gradient = FloatType(gradient);
        SameCount(parameter, gradient);
        SameCount(parameter, firstMoment);
        SameCount(parameter, secondMoment);
        if (roundedCopy is not null)
        {
            Expect(DType.BF16, roundedCopy);
            SameCount(parameter, roundedCopy);
        }
        AdamWKernels.Step(_device, bf16Gradient, parameter.Address(), gradient.Address(), firstMoment.Address(), secondMoment.Address(), roundedCopy.AddressOrNull(),
            parameter.ElementCount, AdamWKernels.Scalars.From(update));
    }

    // ---- reductions ---------------------------------------------------------------------

    public double Sum(Tensor x) => Reduce(x, squares: false);

    public double SumOfSquares(Tensor x) => Reduce(x, squares: true);

    /// <summary>Fixed partial sums on the device, added in order in double on the host: the same bits on every run.</summary>
    private double Reduce(Tensor x, bool squares)
    {
        bool bf16 = FloatType(x);
        (bf16 ? (ReduceLauncher)ReduceKernels.BF16 : ReduceKernels.F32)(_device, x.Address(), x.ElementCount, squares ? 1 : 0, _partials.Start);
        MakeCurrent();
        _device.Download(_partials.Start, _hostPartials.AsSpan());
        double sum = 0;
        foreach (float partial in _hostPartials)
        {
            sum += partial;
        }
        return sum;
    }

    // ---- inference ----------------------------------------------------------------------

    public void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        bool bf16 = FloatType(q, kCache, vCache, output);
        shape.Validate();
        int rows = q.Shape.Rows, kvWidth = shape.KvHeads * shape.HeadDim;
        if (shape.Batch != 1 || q.Shape.Columns != shape.QueryHeads * shape.HeadDim || output.ElementCount != q.ElementCount
            || kCache.Shape.Columns != kvWidth || vCache.Shape != kCache.Shape || past < 0 || past + rows > kCache.Shape.Rows)
        {
            throw new ArgumentException($"attention decode: q {q.Shape}, caches {kCache.Shape}/{vCache.Shape}, out {output.Shape}, past {past} do not match {shape}");
        }
        if (past + rows > DecodeAttentionKernels.MaxKeys)
        {
            throw new UserErrorException($"generation on {Name} attends to at most {DecodeAttentionKernels.MaxKeys} positions; {past + rows} were asked for");
        }
        (bf16 ? (DecodeLauncher)DecodeAttentionKernels.BF16 : DecodeAttentionKernels.F32)(
            _device, q.Address(), kCache.Address(), vCache.Address(), output.Address(), past, rows, shape.QueryHeads, shape.KvHeads, shape.HeadDim, (float)shape.Scale);
    }

    public void Dispose()
    {
        foreach (var buffer in _scratch)
        {
            buffer.Release(_device);
        }
        _scratch.Clear();
        _device.Memory.Free(_partials);
        _gemm.Dispose();
        _device.Dispose();
    }

    // ---- checks ---------------------------------------------------------------------------

    private delegate void BinaryLauncher(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr output, long n);

    private delegate void EmbeddingLauncher(IKernelLauncher launcher, DevicePtr a, DevicePtr ids, DevicePtr b, int tokens, int dim);

    private delegate void RopeLauncher(IKernelLauncher launcher, DevicePtr x, DevicePtr cos, DevicePtr sin, int tokens, int heads, int headDim, int seqLen, int inverse);

    private delegate void CrossEntropyLauncher(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads);

    private delegate void AddScaledLauncher(IKernelLauncher launcher, DevicePtr x, float scale, DevicePtr accumulator, long n);

    private delegate void DropoutLauncher(IKernelLauncher launcher, DevicePtr x, DevicePtr output, long n, ulong seed, uint hi0, uint hi1, uint threshold, float scale);

    private delegate void RmsNormForwardLauncher(IKernelLauncher launcher, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads);

    private delegate void RmsNormResidualLauncher(IKernelLauncher launcher, DevicePtr x, DevicePtr delta, DevicePtr sum, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads);

    private delegate void RmsNormDxLauncher(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr weight, DevicePtr invRms, DevicePtr dx, int rows, int cols, int threads);

    private delegate void RmsNormDWeightLauncher(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads);

    private delegate void DecodeLauncher(IKernelLauncher launcher, DevicePtr q, DevicePtr kCache, DevicePtr vCache, DevicePtr output, int past, int rows, int qHeads, int kvHeads, int headDim, float scale);

    private delegate void ReduceLauncher(IKernelLauncher launcher, DevicePtr x, long n, int squares, DevicePtr partials);

    private void MakeCurrent()
    {
        if (_device is CudaDevice gpu)
        {
            gpu.MakeCurrent(); // host copies may come from checkpoint threads
        }
    }

    private void CheckHostType<T>(Tensor tensor, int count) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor);
        CheckDevice(tensor);
        if (tensor.DType.HostElementType() != typeof(T) || count != tensor.ElementCount)
        {
            throw new ArgumentException($"{tensor}: a host copy needs {tensor.ElementCount} elements of {tensor.DType.HostElementType().Name}, got {count} of {typeof(T).Name}");
        }
    }

    private void CheckDevice(Tensor tensor)
    {
        if (tensor.Device != Device)
        {
            throw new ArgumentException($"{tensor} is not on {Device}");
        }
    }

    private void Expect(DType dtype, params ReadOnlySpan<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t);
            CheckDevice(t);
            if (t.DType != dtype)
            {
                throw new ArgumentException($"{t}: the {Name} backend expects {dtype} here");
            }
        }
    }

    /// <summary>All F32 (false) or all BF16 (true), on this device.</summary>
    private bool FloatType(params ReadOnlySpan<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors[0]);
        var dtype = tensors[0].DType;
        if (dtype is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"{tensors[0]}: the {Name} backend computes in F32 or BF16");
        }
        Expect(dtype, tensors);
        return dtype == DType.BF16;
    }

    private static void SameCount(Tensor a, Tensor b)
    {
        if (a.ElementCount != b.ElementCount)
        {
            throw new ArgumentException($"element counts differ: {a} and {b}");
        }
    }

    /// <summary>Rows and columns of a row op: x and y [rows, cols], weight [cols], stats [rows].</summary>
    private static (int Rows, int Cols) Rows(Tensor x, Tensor weight, Tensor y, Tensor stats)
    {
        int cols = checked((int)weight.ElementCount);
        if (cols == 0 || x.ElementCount % cols != 0)
        {
            throw new ArgumentException($"{x} does not hold rows of {cols}");
        }
        int rows = checked((int)(x.ElementCount / cols));
        if (y.ElementCount != x.ElementCount || stats.ElementCount != rows)
        {
            throw new ArgumentException($"row op sizes disagree: x {x.Shape}, weight {weight.Shape}, {y.Shape}, stats {stats.Shape}");
        }
        return (rows, cols);
    }
}
