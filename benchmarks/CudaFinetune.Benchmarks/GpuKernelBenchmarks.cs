using BenchmarkDotNet.Attributes;
using CudaFinetune.Backends;
using CudaFinetune.Cuda.Benchmarking;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// Every kernel family on GPU 0 at the sizes of a Llama-3.2-1B LoRA step (2048 tokens, hidden 2048, 32/8 heads of 128,
/// intermediate 8192, LoRA r=16): each invocation enqueues one launch (or the family's launches) and waits for it.
/// Category "Gpu": Program.cs leaves these out, saying so, where there is no GPU. Throughput is in GB/s of the
/// tensors read and written, except attention and LoRA, in TFLOP/s.
/// </summary>
[BenchmarkCategory(Category)]
public class GpuKernelBenchmarks : IThroughputBenchmark
{
    public const string Category = "Gpu";
    private const int Tokens = 2048, Hidden = 2048, Intermediate = 8192, Rank = 16, Vocab = 128256, CrossEntropyRows = 32;
    private readonly List<DeviceBuffer> _buffers = [];
    private CudaDevice _gpu = null!;
    private AttentionWorkload? _attention;
    private Action _launch = null!;

    [Params("attention_forward", "attention_backward", "lora_forward", "lora_backward_dx", "rmsnorm_forward", "rmsnorm_backward", "rope",
        "swiglu_forward", "swiglu_backward", "embedding_forward", "embedding_backward", "cross_entropy", "adamw", "reduce", "decode_attention")]
    public string Kernel { get; set; } = "";

    public string Unit => Kernel.StartsWith("attention", StringComparison.Ordinal) || Kernel.StartsWith("lora", StringComparison.Ordinal) ? "TFLOP/s" : "GB/s";

    public double UnitScale => Unit == "TFLOP/s" ? 1e12 : 1e9;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters)
    {
        string kernel = (string)parameters[nameof(Kernel)];
        double attentionForward = 4.0 * 1 * 32 * (double)Tokens * Tokens * 128 / 2;
        return kernel switch
        {
            "attention_forward" => attentionForward,
            "attention_backward" => 2.5 * attentionForward,
            "lora_forward" or "lora_backward_dx" => 2.0 * Tokens * Hidden * (Hidden + Rank),
            "rmsnorm_forward" => 2.0 * Tokens * Hidden * 2,
            "rmsnorm_backward" => 4.0 * Tokens * Hidden * 2,
            "rope" => 2.0 * Tokens * Hidden * 2,
            "swiglu_forward" => 3.0 * Tokens * Intermediate * 2,
            "swiglu_backward" => 5.0 * Tokens * Intermediate * 2,
            "embedding_forward" => 2.0 * Tokens * Hidden * 2,
            "embedding_backward" => Tokens * Hidden * 2.0 + (double)Hidden * Tokens * 4,
            "cross_entropy" => 2.0 * CrossEntropyRows * Vocab * 2,
            "adamw" => 4.0 * Tokens * Hidden * 4 + Tokens * Hidden * 2.0,
            "reduce" => 4.0 * Tokens * Intermediate,
            "decode_attention" => 2.0 * Tokens * 8 * 128 * 2,
            _ => 0,
        };
    }

    [GlobalSetup]
    public void Setup()
    {
        _gpu = CudaDevice.Open();
        int threads = 256;
        switch (Kernel)
        {
            case "attention_forward" or "attention_backward":
                _attention = new AttentionWorkload(_gpu, 1, Tokens, 32, 8, 128);
                _launch = Kernel == "attention_forward" ? _attention.Forward : _attention.Backward;
                break;
            case "lora_forward":
            {
                DevicePtr x = Bf16(Tokens * Hidden), w = Bf16(Hidden * Hidden), low = Bf16(Tokens * Rank), b = Bf16(Hidden * Rank), y = Bf16(Tokens * Hidden);
                _launch = () => LoraKernels.ForwardBF16(_gpu, x, w, low, b, y, Tokens, Hidden, Hidden, Rank);
                break;
            }
            case "lora_backward_dx":
            {
                DevicePtr dy = Bf16(Tokens * Hidden), w = Bf16(Hidden * Hidden), dlow = Bf16(Tokens * Rank), a = Bf16(Rank * Hidden), dx = Bf16(Tokens * Hidden);
                _launch = () => LoraKernels.BackwardDxBF16(_gpu, dy, w, dlow, a, dx, Tokens, Hidden, Hidden, Rank, 1, 7, 1, 2, DropoutKey.KeepThreshold(0.05), 1 / 0.95f);
                break;
            }
            case "rmsnorm_forward":
            {
                DevicePtr x = Bf16(Tokens * Hidden), w = Bf16(Hidden), y = Bf16(Tokens * Hidden), inv = F32(Tokens);
                _launch = () => RmsNormKernels.Forward(_gpu, DType.BF16, x, w, y, inv, Tokens, Hidden, 1e-5f, threads);
                break;
            }
            case "rmsnorm_backward":
            {
                DevicePtr dy = Bf16(Tokens * Hidden), x = Bf16(Tokens * Hidden), w = Bf16(Hidden), inv = F32(Tokens), dx = Bf16(Tokens * Hidden), dw = F32(Hidden);
                _launch = () =>
                {
                    RmsNormKernels.BackwardDx(_gpu, DType.BF16, dy, x, w, inv, dx, Tokens, Hidden, threads);
                    RmsNormKernels.BackwardDWeight(_gpu, DType.BF16, dy, x, inv, dw, Tokens, Hidden, threads);
                };
                break;
            }
            case "rope":
            {
                DevicePtr x = Bf16(Tokens * Hidden), cos = F32(Tokens * 64), sin = F32(Tokens * 64);
                _launch = () => RopeKernels.Apply(_gpu, DType.BF16, x, cos, sin, Tokens, 16, 128, Tokens, 0);
                break;
            }
            case "swiglu_forward":
            {
                DevicePtr gate = Bf16(Tokens * Intermediate), up = Bf16(Tokens * Intermediate), output = Bf16(Tokens * Intermediate);
                _launch = () => SwiGluKernels.Forward(_gpu, DType.BF16, gate, up, output, (long)Tokens * Intermediate);
                break;
            }
            case "swiglu_backward":
            {
                DevicePtr dy = Bf16(Tokens * Intermediate), gate = Bf16(Tokens * Intermediate), up = Bf16(Tokens * Intermediate);
                DevicePtr dGate = Bf16(Tokens * Intermediate), dUp = Bf16(Tokens * Intermediate);
                _launch = () => SwiGluKernels.Backward(_gpu, DType.BF16, dy, gate, up, dGate, dUp, (long)Tokens * Intermediate);
                break;
            }
            case "embedding_forward" or "embedding_backward":
            {
                var random = new Random(1);
                var ids = _gpu.Upload<int>([.. Enumerable.Range(0, Tokens).Select(_ => random.Next(Vocab))]);
                _buffers.Add(ids);
                DevicePtr rows = Bf16(Tokens * Hidden), table = Kernel == "embedding_forward" ? Bf16(Vocab * Hidden) : F32(Vocab * Hidden);
                _launch = Kernel == "embedding_forward"
                    ? () => EmbeddingKernels.Forward(_gpu, DType.BF16, table, ids.Start, rows, Tokens, Hidden)
                    : () => EmbeddingKernels.Backward(_gpu, DType.BF16, rows, ids.Start, table, Tokens, Hidden);
                break;
            }
            case "cross_entropy":
            {
                var random = new Random(1);
                var targets = _gpu.Upload<int>([.. Enumerable.Range(0, CrossEntropyRows).Select(_ => random.Next(Vocab))]);
                _buffers.Add(targets);
                DevicePtr logits = Bf16(CrossEntropyRows * Vocab), loss = F32(CrossEntropyRows);
                _launch = () => CrossEntropyKernels.Loss(_gpu, DType.BF16, logits, targets.Start, loss, logits, 1f / CrossEntropyRows, CrossEntropyRows, Vocab, threads);
                break;
            }
            case "adamw":
            {
                long n = (long)Tokens * Hidden;
                DevicePtr p = F32(n), g = F32(n), m = F32(n), v = F32(n), weights = Bf16(n);
                var scalars = AdamWKernels.Scalars.From(new AdamWStep(1e-4, 0.9, 0.999, 1e-8, 0.01, 10, 1));
                _launch = () => AdamWKernels.Step(_gpu, DType.F32, p, g, m, v, weights, n, scalars);
                break;
            }
            case "reduce":
            {
                DevicePtr x = F32((long)Tokens * Intermediate), partials = F32(ReduceKernels.Blocks);
                _launch = () => ReduceKernels.PartialSums(_gpu, DType.F32, x, (long)Tokens * Intermediate, 1, partials);
                break;
            }
            case "decode_attention":
            {
                DevicePtr q = Bf16(32 * 128), k = Bf16(Tokens * 8 * 128), v = Bf16(Tokens * 8 * 128), output = Bf16(32 * 128);
                _launch = () => DecodeAttentionKernels.Attend(_gpu, DType.BF16, q, k, v, output, Tokens - 1, 1, 32, 8, 128, 1 / MathF.Sqrt(128));
                break;
            }
            default:
                throw new InvalidOperationException($"no GPU benchmark for kernel '{Kernel}'");
        }
    }

    [Benchmark]
    public void Launch()
    {
        _launch();
        _gpu.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _attention?.Dispose();
        foreach (var buffer in _buffers)
        {
            _gpu.Memory.Free(buffer);
        }
        _buffers.Clear();
        _gpu.Dispose();
    }

    /// <summary>A bf16 buffer of small values (0.01), so that no kernel meets NaN or overflows.</summary>
    private DevicePtr Bf16(long count)
    {
        var buffer = _gpu.Memory.Allocate(count * sizeof(ushort));
        _buffers.Add(buffer);
        ElementwiseKernels.Fill(_gpu, DType.BF16, buffer.Start, 0.01f, count);
        return buffer.Start;
    }

    private DevicePtr F32(long count)
    {
        var buffer = _gpu.Memory.Allocate(count * sizeof(float));
        _buffers.Add(buffer);
        ElementwiseKernels.Fill(_gpu, DType.F32, buffer.Start, 0.01f, count);
        return buffer.Start;
    }
}
