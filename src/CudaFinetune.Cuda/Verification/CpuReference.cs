using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>Runs a CPU backend op on fp32 copies of host arrays and hands back the tensors' contents: the kernels' numerical reference.</summary>
internal sealed class CpuReference : IDisposable
{
    private readonly CpuBackend _cpu = new(threads: 1);
    private readonly List<Tensor> _tensors = [];

    public CpuBackend Backend => _cpu;

    /// <summary>An fp32 tensor holding <paramref name="values"/>, shaped <paramref name="shape"/> (default: a vector).</summary>
    public Tensor F32(float[] values, params int[] shape)
    {
        var tensor = _cpu.Allocate(DType.F32, shape.Length == 0 ? new Shape(values.Length) : new Shape(shape));
        _cpu.CopyFromHost<float>(values, tensor);
        _tensors.Add(tensor);
        return tensor;
    }

    public Tensor I32(int[] values)
    {
        var tensor = _cpu.Allocate(DType.I32, new Shape(values.Length));
        _cpu.CopyFromHost<int>(values, tensor);
        _tensors.Add(tensor);
        return tensor;
    }

    public static float[] Values(Tensor tensor) => tensor.HostSpan<float>().ToArray();

    public void Dispose()
    {
        foreach (var tensor in _tensors)
        {
            tensor.Dispose();
        }
        _cpu.Dispose();
    }
}
