using System.Numerics;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// The managed CPU backend: SIMD kernels on a fixed worker pool, F32 for training and F64 for
/// verification (the same generic code runs in both). Every op checks its tensors' dtypes, devices
/// and sizes (<see cref="OpChecks"/>), then hands raw pointers to a kernel in this folder, through an
/// op struct written once over the element type (<see cref="IFloatOp"/>).
/// </summary>
public sealed unsafe partial class CpuBackend : IBackend
{
    private readonly CpuWorkerPool _pool;
    private readonly object _gemmGate = new();
    private readonly OpChecks _checks = new("cpu", Device.Cpu, DType.F32, DType.F64);
    private byte[] _gemmScratch = [];
    private double[] _partials = [];
    private readonly RowChunkedHeadLoss _headLoss = new();
    private Tensor? _lowRankScratch;
    private readonly Dictionary<Tensor, Tensor> _lowRankViews = [];

    /// <param name="computeType">F32 (the default) or F64.</param>
    /// <param name="threads">Worker threads, the caller included; defaults to the processor count. Results do not depend on it.</param>
    public CpuBackend(DType computeType = DType.F32, int? threads = null)
    {
        if (!computeType.IsCpuComputeType())
        {
            throw new ArgumentException($"the CPU backend computes in F32 or F64, not {computeType}", nameof(computeType));
        }
        ComputeType = computeType;
        _pool = new CpuWorkerPool(threads ?? Environment.ProcessorCount);
    }

    public string Name => "cpu";

    public Device Device => Device.Cpu;

    public DType ComputeType { get; }

    public DType AccumulationType => ComputeType;

    /// <summary>Threads that run each op.</summary>
    public int Threads => _pool.Threads;

    public Tensor Allocate(DType dtype, Shape shape) => new(new HostStorage(dtype, shape.ElementCount), dtype, shape);

    public void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        _checks.OnDevice(destination);
        source.CopyTo(destination.HostSpan<T>());
    }

    public void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        _checks.OnDevice(source);
        source.HostSpan<T>().CopyTo(destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        _checks.OnDevice(source);
        _checks.OnDevice(destination);
        OpChecks.SameCount(source, destination);
        ElementConvert.Convert((byte*)source.HostAddress, source.DType, (byte*)destination.HostAddress, destination.DType, source.ElementCount);
    }

    public void Fill(Tensor tensor, double value)
    {
        _checks.OnDevice(tensor);
        switch (tensor.DType)
        {
            case DType.F32: tensor.HostSpan<float>().Fill((float)value); break;
            case DType.F64: tensor.HostSpan<double>().Fill(value); break;
            case DType.I32: tensor.HostSpan<int>().Fill(checked((int)value)); break;
            case DType.BF16: tensor.HostSpan<ushort>().Fill(HalfPrecision.ToBFloat16((float)value)); break;
            case DType.F16: tensor.HostSpan<ushort>().Fill(HalfPrecision.ToFloat16((float)value)); break;
            default: throw new NotSupportedException($"fill of {tensor.DType}");
        }
    }

    public void Dispose()
    {
        _lowRankScratch?.Dispose();
        _headLoss.Dispose();
        _pool.Dispose();
    }

    /// <summary>An op's computation, written once over the element type: float for F32 tensors, double for F64.</summary>
    private interface IFloatOp
    {
        void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>;
    }

    /// <summary><see cref="IFloatOp"/> for an op with a result.</summary>
    private interface IFloatFunction
    {
        double Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>;
    }

    /// <summary>Runs <paramref name="op"/> on the elements <paramref name="dtype"/> (F32 or F64) holds; a struct, so nothing is boxed or allocated.</summary>
    private static void Compute<TOp>(DType dtype, TOp op) where TOp : struct, IFloatOp
    {
        if (dtype == DType.F32)
        {
            op.Run<float>();
        }
        else
        {
            op.Run<double>();
        }
    }

    /// <summary><see cref="Compute{TOp}"/> for an op with a result.</summary>
    private static double Evaluate<TFunction>(DType dtype, TFunction function) where TFunction : struct, IFloatFunction
        => dtype == DType.F32 ? function.Run<float>() : function.Run<double>();
}
