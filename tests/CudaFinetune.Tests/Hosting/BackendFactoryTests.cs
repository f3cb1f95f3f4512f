using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Hosting;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Model;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Hosting;

/// <summary>--device to backend: auto takes the GPU only when there is one and it can run the model.</summary>
[TestFixture]
[NonParallelizable] // the factory's provider is process-wide
public sealed class BackendFactoryTests
{
    private sealed class FakeAccelerators(bool gpu) : IAcceleratorProvider
    {
        public List<string> Opened { get; } = [];

        public bool GpuPresent => gpu;

        public string? Unsupported(LlamaConfig model) => model.HeadSize == 64 ? null : "head size";

        public IBackend Create(string device, int ordinal = 0)
        {
            Opened.Add(device);
            return new CpuBackend(threads: 1);
        }

        public byte[] NewCollectiveId(IBackend backend) => throw new NotSupportedException("no collectives in this fake");

        public CudaFinetune.Distributed.IProcessGroup JoinCollective(IBackend backend, int worldSize, int rank, byte[] collectiveId)
            => throw new NotSupportedException("no collectives in this fake");
    }

    [TearDown]
    public void RestoreRealProvider() => CudaAccelerators.Install();

    [Test]
    public void Auto_picks_the_gpu_only_when_present_and_the_model_fits_its_kernels()
    {
        var withGpu = new FakeAccelerators(gpu: true);
        BackendFactory.Install(withGpu);
        BackendFactory.Create("auto", LearnableTask.KernelSizedConfig).Dispose();
        BackendFactory.Create("auto", LearnableTask.Config).Dispose();
        BackendFactory.Create("auto").Dispose();
        Assert.That(withGpu.Opened, Is.EqualTo(new[] { "cuda", "cuda" }), "a 64-wide model and an unknown one go to the GPU; an 8-wide one stays on the CPU");

        var noGpu = new FakeAccelerators(gpu: false);
        BackendFactory.Install(noGpu);
        using var backend = BackendFactory.Create("auto", LearnableTask.KernelSizedConfig);
        Assert.That(backend.Name, Is.EqualTo("cpu"));
        Assert.That(noGpu.Opened, Is.Empty);
    }

    [Test]
    public void An_explicit_cuda_device_refuses_a_model_its_kernels_cannot_run()
    {
        BackendFactory.Install(new FakeAccelerators(gpu: true));
        var e = Assert.Throws<UserErrorException>(() => BackendFactory.Create("cuda-emulated", LearnableTask.Config));
        Assert.That(e!.Message, Is.EqualTo("--device cuda-emulated: head size"));
        Assert.Throws<UserErrorException>(() => BackendFactory.Create("tpu"));
    }
}
