using BenchmarkDotNet.Attributes;
using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// Each CPU op other than the GEMM at its bench-tiny shape (batch 8 × seq 256 = 2048 tokens, hidden 256, intermediate
/// 768, 8 query and 4 key/value heads of 32, vocabulary 8192), as one training step calls it. Throughput: GB/s of the
/// tensors the op reads and writes once (attention and the head also do FLOP-bound work; their time is what counts).
/// </summary>
[MemoryDiagnoser]
public class CpuOpBenchmarks : IThroughputBenchmark
{
    private const int Tokens = 2048, Hidden = 256, Inter = 768, Heads = 8, KvHeads = 4, HeadDim = 32, Vocab = 8192, Seq = 256;
    private static readonly AttentionShape Attention = new(Tokens / Seq, Seq, Heads, KvHeads, HeadDim, 1 / Math.Sqrt(HeadDim));

    private CpuBackend _backend = null!;
    private readonly List<Tensor> _tensors = [];
    private Tensor _x = null!, _dx = null!, _out = null!, _weight = null!, _rstd = null!, _dWeight = null!;
    private Tensor _gate = null!, _up = null!, _act = null!, _dGate = null!, _dUp = null!;
    private Tensor _q = null!, _k = null!, _v = null!, _o = null!, _lse = null!, _dq = null!, _dk = null!, _dv = null!;
    private Tensor _cos = null!, _sin = null!, _ids = null!, _table = null!, _dTable = null!, _head = null!, _dHead = null!, _rowLoss = null!;
    private Tensor _param = null!, _grad = null!, _m = null!, _v2 = null!;

    [Params("rmsnorm-forward", "rmsnorm-backward", "rope", "swiglu-forward", "swiglu-backward", "attention-forward", "attention-backward",
        "linear-cross-entropy", "embedding-forward", "embedding-backward", "dropout", "adamw-1m")]
    public string Op { get; set; } = "rmsnorm-forward";

    public string Unit => "GB/s";

    public double UnitScale => 1e9;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => 4.0 * ((string)parameters[nameof(Op)] switch
    {
        "rmsnorm-forward" => 2.0 * Tokens * Hidden,
        "rmsnorm-backward" => 3.0 * Tokens * Hidden,
        "rope" => 2.0 * Tokens * Hidden,
        "swiglu-forward" => 3.0 * Tokens * Inter,
        "swiglu-backward" => 5.0 * Tokens * Inter,
        "attention-forward" => 3.0 * Tokens * Hidden,
        "attention-backward" => 7.0 * Tokens * Hidden,
        "linear-cross-entropy" => (double)Tokens * Hidden * 2 + (double)Vocab * Hidden * 2,
        "embedding-forward" => 2.0 * Tokens * Hidden,
        "embedding-backward" => 2.0 * Tokens * Hidden,
        "dropout" => 2.0 * Tokens * Hidden,
        _ => 5.0 * (1 << 20),
    });

    private Tensor New(DType dtype, params int[] shape)
    {
        var t = _backend.Allocate(dtype, new Shape(shape));
        if (dtype == DType.F32)
        {
            var span = t.HostSpan<float>();
            var random = new Random(_tensors.Count + 1);
            for (int i = 0; i < span.Length; i++)
            {
                span[i] = (float)(random.NextDouble() - 0.5);
            }
        }
        _tensors.Add(t);
        return t;
    }

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        (_x, _dx, _out, _weight, _rstd, _dWeight) = (New(DType.F32, Tokens, Hidden), New(DType.F32, Tokens, Hidden), New(DType.F32, Tokens, Hidden), New(DType.F32, Hidden), New(DType.F32, Tokens), New(DType.F32, Hidden));
        (_gate, _up, _act, _dGate, _dUp) = (New(DType.F32, Tokens, Inter), New(DType.F32, Tokens, Inter), New(DType.F32, Tokens, Inter), New(DType.F32, Tokens, Inter), New(DType.F32, Tokens, Inter));
        (_q, _k, _v, _o) = (New(DType.F32, Tokens, Heads * HeadDim), New(DType.F32, Tokens, KvHeads * HeadDim), New(DType.F32, Tokens, KvHeads * HeadDim), New(DType.F32, Tokens, Heads * HeadDim));
        (_lse, _dq, _dk, _dv) = (New(DType.F32, Tokens / Seq, Heads, Seq), New(DType.F32, Tokens, Heads * HeadDim), New(DType.F32, Tokens, KvHeads * HeadDim), New(DType.F32, Tokens, KvHeads * HeadDim));
        (_cos, _sin) = (New(DType.F32, Seq, HeadDim / 2), New(DType.F32, Seq, HeadDim / 2));
        _ids = New(DType.I32, Tokens);
        var ids = _ids.HostSpan<int>();
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (i * 7919) % Vocab;
        }
        (_table, _dTable, _head, _dHead, _rowLoss) = (New(DType.F32, Vocab, Hidden), New(DType.F32, Vocab, Hidden), New(DType.F32, Vocab, Hidden), New(DType.F32, Vocab, Hidden), New(DType.F32, Tokens));
        (_param, _grad, _m, _v2) = (New(DType.F32, 1 << 20), New(DType.F32, 1 << 20), New(DType.F32, 1 << 20), New(DType.F32, 1 << 20));
        _backend.Fill(_v2, 0.01);
        _backend.AttentionForward(_q, _k, _v, _o, _lse, Attention);
        _backend.RmsNormForward(_x, _weight, 1e-5, _out, _rstd);
    }

    [Benchmark]
    public void Run()
    {
        switch (Op)
        {
            case "rmsnorm-forward": _backend.RmsNormForward(_x, _weight, 1e-5, _out, _rstd); break;
            case "rmsnorm-backward": _backend.RmsNormBackward(_dx, _x, _weight, _rstd, _out, _dWeight); break;
            case "rope": _backend.Rope(_q, Heads, _cos, _sin, Seq, inverse: false); break;
            case "swiglu-forward": _backend.SwiGluForward(_gate, _up, _act); break;
            case "swiglu-backward": _backend.SwiGluBackward(_act, _gate, _up, _dGate, _dUp); break;
            case "attention-forward": _backend.AttentionForward(_q, _k, _v, _o, _lse, Attention); break;
            case "attention-backward": _backend.AttentionBackward(_dq, _q, _k, _v, _o, _lse, _dx, _dk, _dv, Attention); break;
            case "linear-cross-entropy": _backend.LinearCrossEntropy(_x, _head, _ids, _rowLoss, _dx, _dHead, 1.0 / Tokens); break;
            case "embedding-forward": _backend.EmbeddingForward(_table, _ids, _out); break;
            case "embedding-backward": _backend.EmbeddingBackward(_dx, _ids, _dTable); break;
            case "dropout": _backend.Dropout(_x, _out, 0.05, new DropoutKey(1, 2, 3, 4)); break;
            default: _backend.AdamWUpdate(_param, _grad, _m, _v2, new AdamWStep(1e-4, 0.9, 0.999, 1e-8, 0.01, 10, 1)); break;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _tensors.ForEach(t => t.Dispose());
        _backend.Dispose();
    }
}
