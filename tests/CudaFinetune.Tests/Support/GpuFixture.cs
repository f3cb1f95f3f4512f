// Shared fixture: a test fixture that runs on GPU 0 for all its tests (ignored, with the reason, where there is no GPU
// or no library the tests need; see TestDevices), makes it current before each test and frees each test's buffers after it.
using CudaFinetune.Cuda.Runtime;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>A fixture on GPU 0, with <see cref="Upload{T}"/> and <see cref="Download{T}"/> for the tests' buffers.</summary>
/// <param name="library">The library the tests need besides the GPU (cuBLASLt, NCCL), or null.</param>
public abstract class GpuFixture(Func<CudaEnvironmentReport, LibraryInfo>? library = null)
{
    private TestBuffers _buffers = null!;

    /// <summary>GPU 0, open for the whole fixture.</summary>
    protected CudaDevice Gpu { get; private set; } = null!;

    [OneTimeSetUp]
    public void OpenGpu()
    {
        Gpu = TestDevices.OpenGpu(library);
        _buffers = new TestBuffers(Gpu);
    }

    [OneTimeTearDown]
    public void CloseGpu() => Gpu?.Dispose();

    [SetUp]
    public void MakeCurrent() => Gpu.MakeCurrent();

    [TearDown]
    public void FreeBuffers() => _buffers.FreeAll();

    protected ulong Upload<T>(T[] values)
        where T : unmanaged => _buffers.Upload(values);

    protected T[] Download<T>(ulong address, int count)
        where T : unmanaged => _buffers.Download<T>(address, count);
}
