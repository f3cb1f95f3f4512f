using BenchmarkDotNet.Attributes;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// fp32 GEMM at the training shapes of bench-tiny (batch 8 × seq 256 = 2048 tokens):
/// the q/o projections (2048×256×256), gate/up (2048×768×256), down's weight gradient
/// (768×256 over 2048 tokens, transposed A), and the head (2048×8192×256).
/// </summary>
[MemoryDiagnoser]
public class GemmBenchmarks : IThroughputBenchmark
{
    private CpuBackend _backend = null!;
    private Tensor _a = null!, _b = null!, _c = null!;

    [Params("2048x256x256", "2048x768x256", "768x256x2048T", "2048x8192x256")]
    public string Shape { get; set; } = "2048x256x256";

    public string Unit => "GFLOP/s";

    public double UnitScale => 1e9;

    private static (int M, int N, int K, bool TransA) Parse(string shape)
    {
        bool transA = shape.EndsWith('T');
        var dims = shape.TrimEnd('T').Split('x').Select(int.Parse).ToArray();
        return (dims[0], dims[1], dims[2], transA);
    }

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters)
    {
        var (m, n, k, _) = Parse((string)parameters[nameof(Shape)]);
        return 2.0 * m * n * k;
    }

    [GlobalSetup]
    public void Setup()
    {
        var (m, n, k, transA) = Parse(Shape);
        _backend = new CpuBackend();
        _a = _backend.Allocate(DType.F32, transA ? new Shape(k, m) : new Shape(m, k));
        _b = _backend.Allocate(DType.F32, new Shape(n, k));
        _c = _backend.Allocate(DType.F32, new Shape(m, n));
        var rng = new Random(1);
        foreach (var t in new[] { _a, _b })
        {
            var span = t.HostSpan<float>();
            for (int i = 0; i < span.Length; i++)
            {
                span[i] = (float)(rng.NextDouble() - 0.5);
            }
        }
    }

    [Benchmark]
    public void MatMul()
    {
        bool transA = Shape.EndsWith('T');
        _backend.MatMul(_a, transA, _b, true, _c);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
        _backend.Dispose();
    }
}
