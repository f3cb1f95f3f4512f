using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>Tensor memory on a GPU or the emulator, taken from the device's caching allocator and returned to it on dispose.</summary>
public sealed class DeviceStorage : TensorStorage
{
    private readonly IDevice _device;
    private readonly DeviceBuffer _buffer;

    public DeviceStorage(IDevice device, Device where, long byteLength)
        : base(where, byteLength)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        _buffer = device.Memory.Allocate(Math.Max(1, byteLength));
    }

    /// <summary>Address of byte 0.</summary>
    public DevicePtr Start => IsDisposed ? throw new ObjectDisposedException(nameof(DeviceStorage)) : _buffer.Start;

    protected override void Release() => _device.Memory.Free(_buffer);
}

/// <summary>Device addresses of tensor views.</summary>
public static class DeviceTensors
{
    /// <summary>The address of the tensor's first element; the tensor must live in <see cref="DeviceStorage"/>.</summary>
    public static DevicePtr Address(this Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Storage is not DeviceStorage storage)
        {
            throw new ArgumentException($"{tensor} is not in device memory");
        }
        return storage.Start.Offset(tensor.ElementOffset * tensor.DType.SizeInBytes());
    }

    /// <summary>The address of <paramref name="tensor"/>, or null for no tensor (a kernel's optional output).</summary>
    public static DevicePtr AddressOrNull(this Tensor? tensor) => tensor is null ? DevicePtr.Null : tensor.Address();
}
