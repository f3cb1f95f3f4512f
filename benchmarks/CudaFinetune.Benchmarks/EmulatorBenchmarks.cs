using BenchmarkDotNet.Attributes;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// What the kernel emulator (native/cuemu) costs, so that tests of the cuda-emulated path can be sized:
/// a launch dominated by fiber switches (block sums: 2 barriers and 10 shuffles per thread, twice),
/// RMSNorm forward on a Llama-width activation, and one warp's ldmatrix + mma.
/// </summary>
[MemoryDiagnoser]
public class EmulatorBenchmarks
{
    private readonly List<DeviceBuffer> _buffers = [];
    private EmulatedDevice _emulator = null!;
    private DevicePtr _x, _w, _y, _inv, _a, _b, _c, _d, _sums;

    [Params(256)]
    public int Rows { get; set; }

    [Params(4096)]
    public int Cols { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _emulator = EmulatedDevice.Open();
        var random = new Random(1);
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)random.NextDouble())];
        DevicePtr Put(float[] values)
        {
            var buffer = _emulator.Upload<float>(values);
            _buffers.Add(buffer);
            return buffer.Start;
        }
        (_x, _w, _y, _inv) = (Put(Values(Rows * Cols)), Put(Values(Cols)), Put(new float[Rows * Cols]), Put(new float[Rows]));
        (_a, _b, _c, _d) = (Put(new float[128]), Put(new float[64]), Put(new float[128]), Put(new float[128]));
        _sums = Put(new float[1024]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var buffer in _buffers)
        {
            _emulator.Memory.Free(buffer);
        }
        _emulator.Dispose();
    }

    /// <summary>One block of 1024 threads: 4 barriers and 20 shuffles each, about 25,000 fiber switches.</summary>
    [Benchmark]
    public void BlockSum1024() => SelfTestKernels.BlockSum(_emulator, _sums, 1024);

    /// <summary>Rows blocks of 256 threads over Cols columns.</summary>
    [Benchmark]
    public void RmsNormForward() => RmsNormKernels.Forward(_emulator, DType.F32, _x, _w, _y, _inv, Rows, Cols, 1e-5f, 256);

    /// <summary>cp.async, ldmatrix .x4 and .x2.trans, one mma.m16n8k16, for one warp.</summary>
    [Benchmark]
    public void MmaThroughLdMatrix() => SelfTestKernels.MmaThroughLdMatrix(_emulator, _a, _b, _c, _d);
}
