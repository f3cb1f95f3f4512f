using CudaFinetune.Numerics;

namespace CudaFinetune.Data;

/// <summary>
/// Fisher–Yates shuffles driven by Philox4x32-10, so an order is a pure function of
/// (seed, stream, purpose) that no runtime or library update can change (unlike System.Random).
/// </summary>
internal static class SeededPermutation
{
    /// <summary>Purpose tag for the batch order of an epoch ("SAMP").</summary>
    public const uint SamplerPurpose = 0x53414D50;

    /// <summary>Purpose tag for the train/validation split ("SPLT").</summary>
    public const uint SplitPurpose = 0x53504C54;

    /// <summary>A permutation of 0..count-1 for (seed, stream, purpose).</summary>
    public static int[] Create(int count, ulong seed, uint stream, uint purpose)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        for (int i = 0; i < count; i++)
        {
            order[i] = i;
        }
        // Step k (k = 0, 1, ...) swaps position i = count-1-k with j uniform in [0, i], drawn from words 2k and 2k+1:
        // j = floor(r · (i+1) / 2^64) with r a 64-bit word (bias below 2^-32 for any int count).
        long k = 0;
        for (int i = count - 1; i > 0; i--, k++)
        {
            ulong r = ((ulong)Philox.Word(seed, stream, purpose, 2 * k) << 32) | Philox.Word(seed, stream, purpose, (2 * k) + 1);
            int j = (int)Math.BigMul(r, (ulong)(i + 1), out _);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
