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
}
