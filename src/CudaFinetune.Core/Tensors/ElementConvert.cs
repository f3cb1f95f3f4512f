using System.Runtime.CompilerServices;
using CudaFinetune.Numerics;

namespace CudaFinetune.Tensors;

/// <summary>
/// Converts raw little-endian element bytes between the floating dtypes a safetensors file and a
/// host tensor may use. Works on raw pointers (memory-mapped file bytes are not tensors) and reads
/// and writes unaligned, because other writers do not align tensor data.
/// </summary>
internal static unsafe class ElementConvert
{
    public static bool IsFloating(DType dtype) => dtype is DType.F32 or DType.F64 or DType.BF16 or DType.F16;

    /// <summary>Copies <paramref name="count"/> elements, converting when the dtypes differ (both floating then).</summary>
    public static void Convert(byte* source, DType sourceType, byte* destination, DType destinationType, long count)
    {
        if (sourceType == destinationType)
        {
            long bytes = count * sourceType.SizeInBytes();
            Buffer.MemoryCopy(source, destination, bytes, bytes);
            return;
        }
        if (!IsFloating(sourceType) || !IsFloating(destinationType))
        {
            throw new NotSupportedException($"conversion from {sourceType} to {destinationType}");
        }
        int sourceSize = sourceType.SizeInBytes(), destinationSize = destinationType.SizeInBytes();
        for (long i = 0; i < count; i++)
        {
            Write(destinationType, destination + i * destinationSize, Read(sourceType, source + i * sourceSize));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Read(DType dtype, byte* p) => dtype switch
    {
        DType.F32 => Unsafe.ReadUnaligned<float>(p),
        DType.F64 => Unsafe.ReadUnaligned<double>(p),
        DType.BF16 => HalfPrecision.FromBFloat16(Unsafe.ReadUnaligned<ushort>(p)),
        DType.F16 => HalfPrecision.FromFloat16(Unsafe.ReadUnaligned<ushort>(p)),
        _ => throw new NotSupportedException(dtype.ToString()),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Write(DType dtype, byte* p, double value)
    {
        // F64 → 16-bit goes through float first: one rounding to float, then round-to-nearest-even
        // to 16 bits. Values that are exactly representable in float (all F32 weights) round once.
        switch (dtype)
        {
            case DType.F32: Unsafe.WriteUnaligned(p, (float)value); break;
            case DType.F64: Unsafe.WriteUnaligned(p, value); break;
            case DType.BF16: Unsafe.WriteUnaligned(p, HalfPrecision.ToBFloat16((float)value)); break;
            case DType.F16: Unsafe.WriteUnaligned(p, HalfPrecision.ToFloat16((float)value)); break;
            default: throw new NotSupportedException(dtype.ToString());
        }
    }
}
