using System.Text;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Errors;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// One GPU through the driver API: its primary context (made current on the thread that opens it),
/// our embedded PTX modules JIT-compiled on first use (a compile error carries the JIT's log), and
/// kernel launches with arguments passed as <c>void**</c>. Functions are cached per (module, entry),
/// so a launch allocates nothing. Used from one thread at a time.
/// </summary>
public sealed unsafe class CudaDevice : IKernelLauncher, IDisposable
{
    private const int LogBytes = 16 << 10;
    private const int DefaultSharedLimit = 48 << 10;

    private readonly CuDevice _device;
    private readonly Dictionary<string, CuModule> _modules = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Module, string Entry), (CuFunction Function, int SharedLimit)> _functions = [];
    private bool _disposed;

    private CudaDevice(CuDevice device, CuContext context, GpuInfo info)
    {
        _device = device;
        Context = context;
        Info = info;
    }

    internal CuContext Context { get; }

    public GpuInfo Info { get; }

    /// <summary>Opens GPU <paramref name="ordinal"/>; a machine without a driver or GPU is a <see cref="UserErrorException"/> that says what was looked for.</summary>
    public static CudaDevice Open(int ordinal = 0)
    {
        var report = CudaEnvironment.Probe();
        if (!report.Driver.Found)
        {
            throw new UserErrorException($"no CUDA driver on this machine (run 'CudaFinetune devices' for details); looked for:{Environment.NewLine}{report.Driver.Where}");
        }
        if (report.DriverError is not null || ordinal < 0 || ordinal >= report.Gpus.Count)
        {
            throw new UserErrorException(report.DriverError is not null
                ? $"the CUDA driver offers no usable GPU: {report.DriverError}"
                : $"GPU {ordinal} does not exist; this machine has {report.Gpus.Count}");
        }
        CuDevice device;
        CuContext context;
        CudaException.ThrowIfFailed(CudaDriver.DeviceGet(&device, ordinal));
        CudaException.ThrowIfFailed(CudaDriver.DevicePrimaryCtxRetain(&context, device));
        CudaException.ThrowIfFailed(CudaDriver.CtxSetCurrent(context));
        return new CudaDevice(device, context, report.Gpus[ordinal]);
    }

    /// <summary>Makes this GPU's context current on the calling thread.</summary>
    public void MakeCurrent() => CudaException.ThrowIfFailed(CudaDriver.CtxSetCurrent(Context));

    /// <summary>Waits for all work on this GPU; a kernel fault surfaces here.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        CudaException.ThrowIfFailed(CudaDriver.CtxSynchronize());
    }

    public void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (function, sharedLimit) = Function(ptxModule, entry);
        if (shape.DynamicSharedBytes > sharedLimit)
        {
            // Above 48 KiB a kernel must opt in to more dynamic shared memory.
            CudaException.ThrowIfFailed(CudaDriver.FuncSetAttribute(function, CuFunctionAttribute.MaxDynamicSharedSizeBytes, shape.DynamicSharedBytes));
            _functions[(ptxModule, entry)] = (function, shape.DynamicSharedBytes);
        }
        CudaException.ThrowIfFailed(CudaDriver.LaunchKernel(function, (uint)shape.Blocks, 1, 1, (uint)shape.ThreadsPerBlock, 1, 1,
            (uint)shape.DynamicSharedBytes, default, arguments, null));
    }

    private (CuFunction Function, int SharedLimit) Function(string ptxModule, string entry)
    {
        if (_functions.TryGetValue((ptxModule, entry), out var known))
        {
            return known;
        }
        var module = Module(ptxModule);
        CuFunction function;
        byte[] name = Encoding.ASCII.GetBytes(entry + "\0");
        fixed (byte* n = name)
        {
            CudaException.ThrowIfFailed(CudaDriver.ModuleGetFunction(&function, module, n));
        }
        _functions[(ptxModule, entry)] = (function, DefaultSharedLimit);
        return (function, DefaultSharedLimit);
    }

    /// <summary>Loads an embedded PTX module, surfacing the JIT's error log when it does not compile.</summary>
    private CuModule Module(string name)
    {
        if (_modules.TryGetValue(name, out var loaded))
        {
            return loaded;
        }
        byte[] image = Encoding.ASCII.GetBytes(PtxModules.Read(name) + "\0");
        byte[] errorLog = new byte[LogBytes];
        CuModule module;
        CuResult result;
        fixed (byte* ptx = image)
        fixed (byte* log = errorLog)
        {
            CuJitOption* options = stackalloc CuJitOption[2];
            void** values = stackalloc void*[2];
            options[0] = CuJitOption.ErrorLogBuffer;
            values[0] = log;
            options[1] = CuJitOption.ErrorLogBufferSizeBytes;
            values[1] = (void*)LogBytes;
            result = CudaDriver.ModuleLoadDataEx(&module, ptx, 2, options, values);
        }
        if (result != CuResult.Success)
        {
            string text = Encoding.UTF8.GetString(errorLog).TrimEnd('\0').Trim();
            throw new CudaException($"loading PTX module '{name}' on {Info.Name} failed: {CudaDriver.Describe(result)}{(text.Length > 0 ? Environment.NewLine + text : "")}");
        }
        _modules[name] = module;
        return module;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var module in _modules.Values)
        {
            _ = CudaDriver.ModuleUnload(module); // teardown: nothing useful to do with a failure
        }
        _ = CudaDriver.DevicePrimaryCtxRelease(_device);
    }
}
