using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The op interface on our kernels: a GPU through the CUDA driver ("cuda"), or the same launches run by the
/// kernel emulator ("cuda-emulated"). Each op checks dtypes and sizes on the host, then enqueues its kernels
/// on the device's one stream; nothing waits for the GPU except copies to the host and reductions.
/// Mixed precision by default: weights and activations in bf16 (<see cref="ComputeType"/>), statistics, gradients
/// of trained weights, their fp32 masters and the optimizer's moments in fp32 (<see cref="AccumulationType"/>). An
/// fp32 <see cref="ComputeType"/> is there for debugging: attention then runs its bf16 kernels on bf16 copies.
/// Scratch buffers grow to the largest call and are then reused, so a training step allocates nothing once warm.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private readonly IDevice _device;
    private readonly IDeviceGemm _gemm;
    private readonly DeviceBuffer _partials;
    private readonly float[] _hostPartials = new float[ReduceKernels.Blocks];
    private readonly List<ScratchBuffer> _scratch = [];
    private readonly OpChecks _checks;

    private CudaBackend(IDevice device, IDeviceGemm gemm, string name, Device where, DType computeType)
    {
        if (computeType is not (DType.BF16 or DType.F32))
        {
            throw new ArgumentException($"the {name} backend computes in BF16 or F32, not {computeType}", nameof(computeType));
        }
        ComputeType = computeType;
        _device = device;
        _gemm = gemm;
        Name = name;
        Device = where;
        _checks = new OpChecks(name, where, DType.F32, DType.BF16);
        _partials = device.Memory.Allocate(ReduceKernels.Blocks * sizeof(float));
    }

    /// <summary>The backend on GPU <paramref name="ordinal"/>; a machine without a driver or GPU is a <see cref="UserErrorException"/>.</summary>
    public static CudaBackend OpenGpu(int ordinal = 0, DType computeType = DType.BF16)
    {
        var device = CudaDevice.Open(ordinal);
        try
        {
            return new CudaBackend(device, new CublasGemm(device), "cuda", new Device(DeviceKind.Cuda, ordinal), computeType);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>The backend on the kernel emulator (any machine; slow).</summary>
    public static CudaBackend OpenEmulated(DType computeType = DType.BF16)
    {
        var device = EmulatedDevice.Open();
        return new CudaBackend(device, new HostGemm(), "cuda-emulated", new Device(DeviceKind.CudaEmulated, 0), computeType);
    }

    public string Name { get; }

    public Device Device { get; }

    public DType ComputeType { get; }

    public DType AccumulationType => DType.F32;

    /// <summary>The device the kernels run on.</summary>
    public IDevice Kernels => _device;

    /// <summary>The device allocator's counters: bytes in use, cached, and the peak in use (tensors and scratch; not cuBLASLt's workspace).</summary>
    public AllocatorStats MemoryStats => _device.Memory.Stats;

    // ---- memory -------------------------------------------------------------------------

    public Tensor Allocate(DType dtype, Shape shape)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.I32))
        {
            throw new NotSupportedException($"the {Name} backend holds F32, BF16 and I32 tensors, not {dtype}");
        }
        var storage = new DeviceStorage(_device, Device, checked(shape.ElementCount * dtype.SizeInBytes()));
        _device.Fill(storage.Start, 0, (nuint)storage.ByteLength);
        return new Tensor(storage, dtype, shape);
    }

    public void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        _checks.HostCopy<T>(destination, source.Length);
        MakeCurrent();
        fixed (T* s = source)
        {
            _device.CopyToDevice(destination.Address(), s, (nuint)(source.Length * sizeof(T)));
        }
    }

    public void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        _checks.HostCopy<T>(source, destination.Length);
        MakeCurrent();
        fixed (T* d = destination)
        {
            _device.CopyToHost(d, source.Address(), (nuint)(destination.Length * sizeof(T)));
        }
    }

    public void Copy(Tensor source, Tensor destination)
    {
        OpChecks.SameCount(source, destination);
        long n = source.ElementCount;
        switch ((source.DType, destination.DType))
        {
            case var (s, d) when s == d: _device.CopyWithinDevice(destination.Address(), source.Address(), (nuint)(n * s.SizeInBytes())); break;
            case (DType.F32, DType.BF16): ElementwiseKernels.CastF32ToBF16(_device, source.Address(), destination.Address(), n); break;
            case (DType.BF16, DType.F32): ElementwiseKernels.CastBF16ToF32(_device, source.Address(), destination.Address(), n); break;
            default: throw new NotSupportedException($"the {Name} backend copies F32↔BF16, not {source.DType} → {destination.DType}");
        }
    }

    public void Fill(Tensor tensor, double value)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        switch (tensor.DType)
        {
            case DType.F32 or DType.BF16: ElementwiseKernels.Fill(_device, tensor.DType, tensor.Address(), (float)value, tensor.ElementCount); break;
            case DType.I32 when value == 0: _device.Fill(tensor.Address(), 0, (nuint)(tensor.ElementCount * sizeof(int))); break;
            default: throw new NotSupportedException($"the {Name} backend fills F32 and BF16 tensors (and I32 with zeros), not {tensor.DType} with {value}");
        }
    }

    public void Dispose()
    {
        foreach (var buffer in _scratch)
        {
            buffer.Release(_device);
        }
        _scratch.Clear();
        _device.Memory.Free(_partials);
        _gemm.Dispose();
        _device.Dispose();
    }

    private void MakeCurrent()
    {
        if (_device is CudaDevice gpu)
        {
            gpu.MakeCurrent(); // host copies may come from checkpoint threads
        }
    }
}
