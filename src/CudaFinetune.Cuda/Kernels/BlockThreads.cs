namespace CudaFinetune.Cuda.Kernels;

/// <summary>The block size of kernels that reduce over a block (block_sum, block_max): a multiple of 32 from 32 to 1024.</summary>
internal static class BlockThreads
{
    public static void Check(int threads)
    {
        if (threads is < 32 or > 1024 || threads % 32 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "a multiple of 32 from 32 to 1024");
        }
    }
}
