using System.Globalization;
using System.Text;
using CudaFinetune.Cuda.Interop;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>One GPU as the driver describes it.</summary>
public sealed record GpuInfo(int Ordinal, string Name, long TotalMemoryBytes, int ComputeMajor, int ComputeMinor, int Multiprocessors);

/// <summary>A native library of the CUDA stack: where it was found and its version, or where it was looked for.</summary>
public sealed record LibraryInfo(string Name, bool Found, string? Version, string Where);

/// <summary>What the machine offers the CUDA backend: the driver and its GPUs, cuBLASLt and NCCL.</summary>
public sealed record CudaEnvironmentReport(LibraryInfo Driver, string? DriverVersion, string? DriverError, IReadOnlyList<GpuInfo> Gpus, LibraryInfo CublasLt, LibraryInfo Nccl);

/// <summary>Probes the CUDA driver, the GPUs and the libraries without requiring any of them (for <c>CudaFinetune devices</c>).</summary>
public static unsafe class CudaEnvironment
{
    public static CudaEnvironmentReport Probe()
    {
        var driverProbe = LibraryResolver.Probe(NativeLibraries.Driver);
        var driver = Info(driverProbe, null);
        string? version = null, error = null;
        var gpus = new List<GpuInfo>();
        if (driverProbe.Found)
        {
            try
            {
                (version, error) = QueryDevices(gpus);
            }
            catch (EntryPointNotFoundException e)
            {
                error = $"the driver library lacks an entry point ({e.Message}); it is too old";
            }
        }
        var cublasProbe = LibraryResolver.Probe(NativeLibraries.CublasLt);
        var cublas = Info(cublasProbe, cublasProbe.Found ? CublasLtVersion() : null);
        var ncclProbe = LibraryResolver.Probe(NativeLibraries.Nccl);
        var nccl = Info(ncclProbe, ncclProbe.Found ? NcclVersion() : null);
        return new CudaEnvironmentReport(driver, version, error, gpus, cublas, nccl);
    }

    private static LibraryInfo Info(LibraryProbe probe, string? version)
        => new(probe.Library, probe.Found, version, probe.Found ? probe.LoadedFrom! : string.Join(Environment.NewLine, probe.Tried));

    private static (string? Version, string? Error) QueryDevices(List<GpuInfo> gpus)
    {
        var init = CudaDriver.Init(0);
        int driverVersion = 0;
        string? version = CudaDriver.DriverGetVersion(&driverVersion) == CuResult.Success
            ? string.Create(CultureInfo.InvariantCulture, $"{driverVersion / 1000}.{driverVersion % 1000 / 10}")
            : null;
        if (init != CuResult.Success)
        {
            return (version, $"cuInit failed: {CudaDriver.Describe(init)}");
        }
        int count = 0;
        CudaException.ThrowIfFailed(CudaDriver.DeviceGetCount(&count));
        byte* name = stackalloc byte[256];
        for (int i = 0; i < count; i++)
        {
            CuDevice device;
            CudaException.ThrowIfFailed(CudaDriver.DeviceGet(&device, i));
            new Span<byte>(name, 256).Clear();
            CudaException.ThrowIfFailed(CudaDriver.DeviceGetName(name, 256, device));
            nuint memory = 0;
            CudaException.ThrowIfFailed(CudaDriver.DeviceTotalMem(&memory, device));
            int major = 0, minor = 0, sms = 0;
            CudaException.ThrowIfFailed(CudaDriver.DeviceGetAttribute(&major, CuDeviceAttribute.ComputeCapabilityMajor, device));
            CudaException.ThrowIfFailed(CudaDriver.DeviceGetAttribute(&minor, CuDeviceAttribute.ComputeCapabilityMinor, device));
            CudaException.ThrowIfFailed(CudaDriver.DeviceGetAttribute(&sms, CuDeviceAttribute.MultiprocessorCount, device));
            gpus.Add(new GpuInfo(i, Encoding.UTF8.GetString(new ReadOnlySpan<byte>(name, 256).TrimEnd((byte)0)), (long)memory, major, minor, sms));
        }
        return (version, null);
    }

    private static string CublasLtVersion() => CublasLt.FormatVersion(CublasLt.GetVersion());

    private static string NcclVersion()
    {
        int v = 0;
        return Nccl.GetVersion(&v) == NcclResult.Success ? Nccl.FormatVersion(v) : "unknown";
    }
}
