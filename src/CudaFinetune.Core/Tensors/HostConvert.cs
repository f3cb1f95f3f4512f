using CudaFinetune.Numerics;

namespace CudaFinetune.Tensors;

/// <summary>Element-by-element conversion between host tensors of any floating dtype.</summary>
public static unsafe class HostConvert
{
    public static void Convert(Tensor source, Tensor destination)
    {
        if (source.ElementCount != destination.ElementCount)
        {
            throw new ArgumentException($"element counts differ: {source.Shape} vs {destination.Shape}");
        }
        long bytes = source.ElementCount * source.DType.SizeInBytes();
        if (source.DType == destination.DType)
        {
            Buffer.MemoryCopy(source.HostAddress, destination.HostAddress, bytes, bytes);
            return;
        }
        if (source.DType == DType.I32 || destination.DType == DType.I32)
        {
            throw new NotSupportedException($"conversion between {source.DType} and {destination.DType}");
        }
        long n = source.ElementCount;
        void* src = source.HostAddress, dst = destination.HostAddress;
        for (long i = 0; i < n; i++)
        {
            // F64 → F64 took the copy above, so going through float loses nothing the destination keeps.
            Write(destination.DType, dst, i, source.DType == DType.F64 ? ((double*)src)[i] : Read(source.DType, src, i));
        }
    }

    private static float Read(DType dtype, void* p, long i) => dtype switch
    {
        DType.F32 => ((float*)p)[i],
        DType.BF16 => HalfPrecision.FromBFloat16(((ushort*)p)[i]),
        DType.F16 => HalfPrecision.FromFloat16(((ushort*)p)[i]),
        _ => throw new NotSupportedException(dtype.ToString()),
    };

    private static void Write(DType dtype, void* p, long i, double value)
    {
        switch (dtype)
        {
            case DType.F32: ((float*)p)[i] = (float)value; break;
            case DType.F64: ((double*)p)[i] = value; break;
            case DType.BF16: ((ushort*)p)[i] = HalfPrecision.ToBFloat16((float)value); break;
            case DType.F16: ((ushort*)p)[i] = HalfPrecision.ToFloat16((float)value); break;
            default: throw new NotSupportedException(dtype.ToString());
        }
    }
}
