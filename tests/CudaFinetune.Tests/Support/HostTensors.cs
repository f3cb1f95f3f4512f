using CudaFinetune.Backends;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Tests.Support;

/// <summary>Moves test data between host arrays and backend tensors, and makes reproducible random inputs.</summary>
internal static class HostTensors
{
    public static Tensor FromDoubles(IBackend backend, double[] values, params int[] shape)
    {
        var t = backend.Allocate(backend.ComputeType, new Shape(shape));
        Write(backend, t, values);
        return t;
    }

    public static Tensor FromInts(IBackend backend, int[] values)
    {
        var t = backend.Allocate(DType.I32, new Shape(values.Length));
        backend.CopyFromHost<int>(values, t);
        return t;
    }

    public static void Write(IBackend backend, Tensor t, double[] values)
    {
        if (t.DType == DType.F64)
        {
            backend.CopyFromHost<double>(values, t);
        }
        else if (t.DType == DType.BF16)
        {
            backend.CopyFromHost<ushort>(values.Select(v => HalfPrecision.ToBFloat16((float)v)).ToArray(), t);
        }
        else
        {
            backend.CopyFromHost<float>(values.Select(v => (float)v).ToArray(), t);
        }
    }

    public static double[] Read(IBackend backend, Tensor t)
    {
        if (t.DType == DType.F64)
        {
            var d = new double[t.ElementCount];
            backend.CopyToHost<double>(t, d);
            return d;
        }
        if (t.DType == DType.BF16)
        {
            var h = new ushort[t.ElementCount];
            backend.CopyToHost<ushort>(t, h);
            return [.. h.Select(v => (double)HalfPrecision.FromBFloat16(v))];
        }
        var f = new float[t.ElementCount];
        backend.CopyToHost<float>(t, f);
        return [.. f.Select(v => (double)v)];
    }

    public static double[] Random(Random rng, int count, double scale = 1.0)
        => [.. Enumerable.Range(0, count).Select(_ => (rng.NextDouble() * 2 - 1) * scale)];
}
