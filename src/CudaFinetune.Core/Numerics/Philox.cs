using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CudaFinetune.Numerics;

/// <summary>
/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"): a counter-based
/// generator. The output for a (key, counter) pair is a pure function, so any element of any
/// random stream can be computed independently, on any thread or device, with no saved state.
/// The CUDA kernels implement the same function, bit for bit.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9;
    private const uint W1 = 0xBB67AE85;

    /// <summary>Four 32-bit random words for counter (c0, c1, c2, c3) under key (k0, k1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (uint, uint, uint, uint) Generate(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
            k0 += W0;
            k1 += W1;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>Word <paramref name="index"/> of the stream (seed, hi0, hi1): counter = (index/4 as 64 bits, hi0, hi1), lane index%4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Word(ulong seed, uint hi0, uint hi1, long index)
    {
        ulong block = (ulong)index >> 2;
        var (r0, r1, r2, r3) = Generate((uint)block, (uint)(block >> 32), hi0, hi1, (uint)seed, (uint)(seed >> 32));
        return (index & 3) switch
        {
            0 => r0,
            1 => r1,
            2 => r2,
            _ => r3,
        };
    }

    /// <summary>
    /// The 16 words of blocks firstBlock..firstBlock+3 (counter words 2 and 3 = hi0, hi1) in
    /// order, computed four blocks at a time in AVX2 lanes (32×32→64-bit multiplies of the low
    /// halves), bit-identical to <see cref="Generate"/>.
    /// </summary>
    public static void Generate4Blocks(ulong firstBlock, uint hi0, uint hi1, ulong seed, Span<uint> words)
    {
        if (words.Length < 16)
        {
            throw new ArgumentException("16 words are needed", nameof(words));
        }
        if (!Avx2.IsSupported)
        {
            for (int b = 0; b < 4; b++)
            {
                ulong block = firstBlock + (ulong)b;
                var (r0, r1, r2, r3) = Generate((uint)block, (uint)(block >> 32), hi0, hi1, (uint)seed, (uint)(seed >> 32));
                words[4 * b] = r0;
                words[4 * b + 1] = r1;
                words[4 * b + 2] = r2;
                words[4 * b + 3] = r3;
            }
            return;
        }
        var low = Vector256.Create(0xFFFF_FFFFUL);
        var blocks = Vector256.Create(firstBlock, firstBlock + 1, firstBlock + 2, firstBlock + 3);
        Vector256<ulong> c0 = blocks & low, c1 = blocks >>> 32;
        Vector256<ulong> c2 = Vector256.Create((ulong)hi0), c3 = Vector256.Create((ulong)hi1);
        Vector256<ulong> k0 = Vector256.Create(seed & 0xFFFF_FFFF), k1 = Vector256.Create(seed >> 32);
        var m0 = Vector256.Create((ulong)M0).AsUInt32();
        var m1 = Vector256.Create((ulong)M1).AsUInt32();
        var w0 = Vector256.Create((ulong)W0);
        var w1 = Vector256.Create((ulong)W1);
        for (int round = 0; round < 10; round++)
        {
            Vector256<ulong> p0 = Avx2.Multiply(c0.AsUInt32(), m0);
            Vector256<ulong> p1 = Avx2.Multiply(c2.AsUInt32(), m1);
            c0 = (p1 >>> 32) ^ c1 ^ k0;
            c1 = p1 & low;
            c2 = (p0 >>> 32) ^ c3 ^ k1;
            c3 = p0 & low;
            k0 = (k0 + w0) & low;
            k1 = (k1 + w1) & low;
        }
        for (int b = 0; b < 4; b++)
        {
            words[4 * b] = (uint)c0.GetElement(b);
            words[4 * b + 1] = (uint)c1.GetElement(b);
            words[4 * b + 2] = (uint)c2.GetElement(b);
            words[4 * b + 3] = (uint)c3.GetElement(b);
        }
    }

    /// <summary>A uniform double in [0, 1) from two words (53 random bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double ToUniformDouble(uint a, uint b) => (((ulong)a << 21) ^ (b >> 11)) * (1.0 / (1UL << 53));
}
