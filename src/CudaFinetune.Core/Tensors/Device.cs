namespace CudaFinetune.Tensors;

public enum DeviceKind : byte
{
    Cpu,
    Cuda,
    CudaEmulated,
}

/// <summary>Where a tensor's memory lives.</summary>
public readonly record struct Device(DeviceKind Kind, int Ordinal)
{
    public static Device Cpu { get; } = new(DeviceKind.Cpu, 0);

    public override string ToString() => Kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.Cuda => $"cuda:{Ordinal}",
        DeviceKind.CudaEmulated => $"cuda-emulated:{Ordinal}",
        _ => Kind.ToString(),
    };
}
