using System.Diagnostics;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>The device memory of one check: inputs uploaded, outputs poisoned with NaN bytes, everything freed at the end; and a stopwatch.</summary>
internal sealed class CheckRun(IDevice device) : IDisposable
{
    private readonly List<DeviceBuffer> _buffers = [];
    private readonly Stopwatch _clock = new();

    public IDevice Device { get; } = device;

    public DevicePtr Put<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var buffer = Device.Upload(values);
        _buffers.Add(buffer);
        return buffer.Start;
    }

    /// <summary>Room for <paramref name="count"/> elements, every byte 0xFF (NaN as floats), so that what a kernel does not write shows.</summary>
    public unsafe DevicePtr Poisoned<T>(int count)
        where T : unmanaged
    {
        var buffer = Device.Memory.Allocate((long)count * sizeof(T));
        Device.Fill(buffer.Start, 0xFF, (nuint)buffer.Bytes);
        _buffers.Add(buffer);
        return buffer.Start;
    }

    public T[] Get<T>(DevicePtr source, int count)
        where T : unmanaged => Device.Download<T>(source, count);

    /// <summary>Values stored as <paramref name="dtype"/> (F32, or BF16 rounded to nearest even).</summary>
    public DevicePtr PutAs(float[] values, DType dtype) => dtype == DType.BF16
        ? Put<ushort>(Array.ConvertAll(values, HalfPrecision.ToBFloat16))
        : Put<float>(values);

    public DevicePtr PoisonedAs(int count, DType dtype) => dtype == DType.BF16 ? Poisoned<ushort>(count) : Poisoned<float>(count);

    /// <summary>A tensor of <paramref name="dtype"/> read back as floats.</summary>
    public float[] GetAs(DevicePtr source, int count, DType dtype) => dtype == DType.BF16
        ? Array.ConvertAll(Get<ushort>(source, count), HalfPrecision.FromBFloat16)
        : Get<float>(source, count);

    /// <summary>The values as <paramref name="dtype"/> holds them (bf16: rounded), for the reference's inputs.</summary>
    public static float[] Stored(float[] values, DType dtype) => dtype == DType.BF16
        ? Array.ConvertAll(values, v => HalfPrecision.FromBFloat16(HalfPrecision.ToBFloat16(v)))
        : values;

    /// <summary>Relative tolerance by dtype: fp32 1e-5, bf16 1e-2 (one bf16 ulp is 2^-8).</summary>
    public static double Tolerance(DType dtype) => dtype == DType.BF16 ? 1e-2 : 1e-5;

    /// <summary>Starts timing the kernel launches that follow (after the inputs are on the device).</summary>
    public void StartClock()
    {
        Device.Synchronize();
        _clock.Restart();
    }

    /// <summary>The time since <see cref="StartClock"/>, once the launches have finished.</summary>
    public TimeSpan StopClock()
    {
        Device.Synchronize();
        _clock.Stop();
        return _clock.Elapsed;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers)
        {
            Device.Memory.Free(buffer);
        }
        _buffers.Clear();
    }
}
