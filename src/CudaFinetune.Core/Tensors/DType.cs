namespace CudaFinetune.Tensors;

/// <summary>Element types a tensor can hold.</summary>
/// <remarks>
/// F32 is the CPU backend's compute type. F64 exists so that the very same CPU code paths can be
/// run in double precision for gradient verification. BF16/F16 are storage types (model files,
/// and the CUDA backend's activations); I32 holds token ids and labels.
/// </remarks>
public enum DType : byte
{
    F32,
    F64,
    BF16,
    F16,
    I32,
}

public static class DTypeExtensions
{
    /// <summary>Bytes one element occupies.</summary>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F64 => 8,
        DType.BF16 or DType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The dtype's name as the safetensors header spells it.</summary>
    public static string SafetensorsName(this DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.F64 => "F64",
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        DType.I32 => "I32",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Parses a safetensors dtype name; null when the name is not one we read.</summary>
    public static DType? FromSafetensorsName(string name) => name switch
    {
        "F32" => DType.F32,
        "F64" => DType.F64,
        "BF16" => DType.BF16,
        "F16" => DType.F16,
        "I32" => DType.I32,
        _ => null,
    };

    /// <summary>The CLR element type that stores this dtype on the host.</summary>
    public static Type HostElementType(this DType dtype) => dtype switch
    {
        DType.F32 => typeof(float),
        DType.F64 => typeof(double),
        DType.BF16 or DType.F16 => typeof(ushort),
        DType.I32 => typeof(int),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>True for the dtypes the CPU backend computes in.</summary>
    public static bool IsCpuComputeType(this DType dtype) => dtype is DType.F32 or DType.F64;
}
