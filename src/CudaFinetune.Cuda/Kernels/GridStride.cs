using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>The launch of a grid-stride kernel over n elements: 256-thread blocks, enough of them to cover n, at most 65,536 (each thread then loops).</summary>
internal static class GridStride
{
    public const int Threads = 256;
    private const long MaxBlocks = 1 << 16;

    public static LaunchShape For(long elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        return new LaunchShape((int)Math.Min(MaxBlocks, (elements + Threads - 1) / Threads), Threads);
    }

    /// <summary>The launch of a kernel that strides over n elements in vectors of <paramref name="perVector"/> (kernels/common.cuh, grid_vectorised): a thread per vector.</summary>
    public static LaunchShape ForVectors(long elements, int perVector)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perVector);
        return For((elements + perVector - 1) / perVector);
    }

    /// <summary><see cref="ForVectors"/> for 16-byte vectors of <paramref name="dtype"/> elements (8 bf16, 4 fp32).</summary>
    public static LaunchShape For(long elements, DType dtype) => ForVectors(elements, 16 / dtype.SizeInBytes());
}
