using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The plain GEMMs of the cuda backend on packed row-major fp32 matrices: c = alpha·op(a)·op(b) + beta·c,
/// op(a) m×k, op(b) k×n. cuBLASLt on a GPU; on the emulator, whose device memory is host memory, the CPU
/// backend's GEMM (DESIGN.md: "GEMMs on the CPU").
/// </summary>
internal interface IDeviceGemm : IDisposable
{
    void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c);
}

/// <summary>cuBLASLt on the device's compute stream (fp32 in, fp32 out, fp32 compute).</summary>
internal sealed class CublasGemm(CudaDevice device) : IDeviceGemm
{
    private readonly CublasLtMatmul _matmul = CublasLtMatmul.Create();

    public void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c)
        => _matmul.RunRowMajor(m, n, k, transposeA, transposeB, CudaDataType.R32F, CudaDataType.R32F, alpha, a.Address, b.Address, beta, c.Address, c.Address, device.Stream.Handle);

    public void Dispose() => _matmul.Dispose();
}

/// <summary>The CPU backend's GEMM straight on the emulator's memory.</summary>
internal sealed unsafe class HostGemm : IDeviceGemm
{
    private readonly CpuBackend _cpu = new();

    public void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c)
        => _cpu.MatMul(m, n, k, transposeA, transposeB, alpha, (float*)a.Address, transposeA ? m : k, (float*)b.Address, transposeB ? k : n, beta, (float*)c.Address, n);

    public void Dispose() => _cpu.Dispose();
}
