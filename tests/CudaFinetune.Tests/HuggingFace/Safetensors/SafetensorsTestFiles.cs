using System.Buffers.Binary;
using System.Text;
using CudaFinetune.Tensors;

namespace CudaFinetune.Tests.HuggingFace.Safetensors;

/// <summary>Builds safetensors files byte by byte, so tests control every field, including the wrong ones.</summary>
internal static class SafetensorsTestFiles
{
    /// <summary>8-byte length (or <paramref name="headerLength"/> when given), the JSON, then <paramref name="data"/>.</summary>
    public static byte[] Build(string json, byte[] data, ulong? headerLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, headerLength ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    public static Tensor HostTensor(float[] values, params int[] shape)
    {
        var tensor = new Tensor(new HostStorage(DType.F32, values.Length), DType.F32, new Shape(shape));
        values.CopyTo(tensor.HostSpan<float>());
        return tensor;
    }

    public static Tensor HostTensor(DType dtype, params int[] shape)
    {
        var s = new Shape(shape);
        return new Tensor(new HostStorage(dtype, s.ElementCount), dtype, s);
    }
}
