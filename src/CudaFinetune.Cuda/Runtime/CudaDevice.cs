using System.Text;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Errors;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// One GPU through the driver API: its primary context (made current on the thread that opens it),
/// one compute stream that every launch, fill and copy goes to in order, the caching allocator,
/// and our embedded PTX modules JIT-compiled on first use (a compile error carries the JIT's log).
/// Functions are cached per (module, entry), so a launch allocates nothing. Used from one thread at a time.
/// </summary>
public sealed unsafe class CudaDevice : IDevice
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
        Name = $"{info.Name} (GPU {info.Ordinal})";
        Stream = CudaStream.Create();
        Memory = new DeviceAllocator(this);
    }

    internal CuContext Context { get; }

    public GpuInfo Info { get; }

    public string Name { get; }

    /// <summary>The stream all of this device's work goes to.</summary>
    public CudaStream Stream { get; }

    public DeviceAllocator Memory { get; }

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

    public bool TryAllocate(nuint bytes, out DevicePtr address)
    {
        ulong raw;
        var result = CudaDriver.MemAlloc(&raw, bytes);
        address = new DevicePtr(raw);
        if (result == CuResult.OutOfMemory)
        {
            return false;
        }
        CudaException.ThrowIfFailed(result);
        return true;
    }

    public void Free(DevicePtr address) => CudaException.ThrowIfFailed(CudaDriver.MemFree(address.Address));

    /// <summary>Queues the copy on the stream; the source is pageable, so the driver stages it and it may be reused at once.</summary>
    public void CopyToDevice(DevicePtr destination, void* source, nuint bytes)
        => CudaException.ThrowIfFailed(CudaDriver.MemcpyHtoDAsync(destination.Address, source, bytes, Stream.Handle));

    /// <summary>Copies after everything queued before it, and waits for the copy.</summary>
    public void CopyToHost(void* destination, DevicePtr source, nuint bytes)
    {
        CudaException.ThrowIfFailed(CudaDriver.MemcpyDtoHAsync(destination, source.Address, bytes, Stream.Handle));
        Stream.Synchronize();
    }

    public void CopyWithinDevice(DevicePtr destination, DevicePtr source, nuint bytes)
        => CudaException.ThrowIfFailed(CudaDriver.MemcpyDtoDAsync(destination.Address, source.Address, bytes, Stream.Handle));

    public void Fill(DevicePtr destination, byte value, nuint bytes)
        => CudaException.ThrowIfFailed(CudaDriver.MemsetD8Async(destination.Address, value, bytes, Stream.Handle));

    /// <summary>Free and total memory of this GPU as the driver sees it (other processes' use included).</summary>
    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        CudaException.ThrowIfFailed(CudaDriver.MemGetInfo(&free, &total));
        return ((long)free, (long)total);
    }

    public void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        shape.Check();
        if (shape.Blocks == 0)
        {
            return; // an empty grid is valid for us, not for the driver
        }
        var (function, sharedLimit) = Function(ptxModule, entry);
        if (shape.DynamicSharedBytes > sharedLimit)
        {
            // Above 48 KiB a kernel must opt in to more dynamic shared memory.
            CudaException.ThrowIfFailed(CudaDriver.FuncSetAttribute(function, CuFunctionAttribute.MaxDynamicSharedSizeBytes, shape.DynamicSharedBytes));
            _functions[(ptxModule, entry)] = (function, shape.DynamicSharedBytes);
        }
        CudaException.ThrowIfFailed(CudaDriver.LaunchKernel(function, (uint)shape.Blocks, (uint)shape.BlocksY, (uint)shape.BlocksZ,
            (uint)shape.ThreadsPerBlock, 1, 1, (uint)shape.DynamicSharedBytes, Stream.Handle, arguments, null));
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
        MakeCurrent();
        _ = CudaDriver.CtxSynchronize(); // let queued work finish before its memory goes
        Memory.ReleaseAll();
        Stream.Dispose();
        foreach (var module in _modules.Values)
        {
            _ = CudaDriver.ModuleUnload(module); // teardown: nothing useful to do with a failure
        }
        _ = CudaDriver.DevicePrimaryCtxRelease(_device);
    }
}
