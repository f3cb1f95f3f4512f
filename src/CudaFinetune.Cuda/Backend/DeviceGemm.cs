using System.Runtime.InteropServices;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The plain GEMMs of the cuda backend on packed row-major matrices: c = alpha·op(a)·op(b) + beta·c, op(a) m×k,
/// op(b) k×n; a and b in <c>input</c> (F32 or BF16), c in <c>output</c> (F32 or BF16), fp32 arithmetic. cuBLASLt on a
/// GPU; on the emulator, whose device memory is host memory, the CPU backend's GEMM (DESIGN.md: "GEMMs on the CPU").
/// </summary>
internal interface IDeviceGemm : IDisposable
{
    void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c, DType input, DType output);
}

/// <summary>cuBLASLt on the device's compute stream (fp32 compute).</summary>
internal sealed class CublasGemm(CudaDevice device) : IDeviceGemm
{
    private readonly CublasLtMatmul _matmul = CublasLtMatmul.Create();

    private static CudaDataType Type(DType dtype) => dtype == DType.BF16 ? CudaDataType.R16BF : CudaDataType.R32F;

    public void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c, DType input, DType output)
        => _matmul.RunRowMajor(m, n, k, transposeA, transposeB, Type(input), Type(output), alpha, a.Address, b.Address, beta, c.Address, c.Address, device.Stream.Handle);

    public void Dispose() => _matmul.Dispose();
}

/// <summary>
/// The CPU backend's fp32 GEMM (<see cref="HostMatMul"/>) straight on the emulator's memory; bf16 operands are widened into host scratch first and a
/// bf16 result rounded back (to nearest even), which is what a bf16 GEMM with fp32 accumulation gives.
/// </summary>
internal sealed unsafe class HostGemm : IDeviceGemm
{
    private readonly HostMatMul _cpu = new();
    private readonly float[][] _wide = [[], [], []];

    public void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, DevicePtr a, DevicePtr b, float beta, DevicePtr c, DType input, DType output)
    {
        float* pa = Widened(0, a, (long)m * k, input), pb = Widened(1, b, (long)k * n, input);
        float* pc = output == DType.BF16 ? Widened(2, c, (long)m * n, DType.BF16, copy: beta != 0) : (float*)c.Address;
        _cpu.Run(m, n, k, transposeA, transposeB, alpha, pa, transposeA ? m : k, pb, transposeB ? k : n, beta, pc, n);
        if (output == DType.BF16)
        {
            var wide = new ReadOnlySpan<float>(pc, m * n);
            var narrow = new Span<ushort>((void*)c.Address, m * n);
            for (int i = 0; i < narrow.Length; i++)
            {
                narrow[i] = HalfPrecision.ToBFloat16(wide[i]);
            }
        }
    }

    /// <summary>The fp32 matrix at <paramref name="source"/>, or a widened copy of a bf16 one in scratch <paramref name="slot"/>.</summary>
    private float* Widened(int slot, DevicePtr source, long count, DType dtype, bool copy = true)
    {
        if (dtype == DType.F32)
        {
            return (float*)source.Address;
        }
        if (_wide[slot].Length < count)
        {
            _wide[slot] = GC.AllocateArray<float>(checked((int)count), pinned: true);
        }
        float* wide = (float*)Marshal.UnsafeAddrOfPinnedArrayElement(_wide[slot], 0);
        if (copy)
        {
            var narrow = new ReadOnlySpan<ushort>((void*)source.Address, (int)count);
            for (int i = 0; i < narrow.Length; i++)
            {
                wide[i] = HalfPrecision.FromBFloat16(narrow[i]);
            }
        }
        return wide;
    }

    public void Dispose() => _cpu.Dispose();
}
