using System.Runtime.CompilerServices;

namespace CudaFinetune.Numerics;

/// <summary>Conversions between float and the 16-bit storage formats BF16 and F16.</summary>
public static class HalfPrecision
{
    /// <summary>float → bfloat16 bits, rounding to nearest even (as PyTorch does); NaN stays a quiet NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToFloat16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromFloat16(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);
}
