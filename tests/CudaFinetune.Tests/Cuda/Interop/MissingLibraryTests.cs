using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>On a machine without cuBLASLt or NCCL, using them is a user error that names the library and lists every path tried.</summary>
[TestFixture]
public sealed class MissingLibraryTests
{
    private static IEnumerable<TestCaseData> Libraries()
    {
        yield return new TestCaseData(NativeLibraries.CublasLt, "cuBLASLt", new[] { "libcublasLt.so.13", "libcublasLt.so.12" },
            new Action[] { () => CublasLtMatmul.Create(), () => CublasLtMatmul.WithWorkspace(0, 0) }).SetName("cuBLASLt");
        yield return new TestCaseData(NativeLibraries.Nccl, "NCCL", new[] { "libnccl.so.2" },
            new Action[] { () => NcclCommunicator.CreateUniqueId(), () => NcclCommunicator.Init(1, default, 0), () => NcclCommunicator.Group() }).SetName("NCCL");
    }

    [TestCaseSource(nameof(Libraries))]
    public void Without_the_library_the_error_says_so_and_lists_every_path_tried(string library, string name, string[] sonames, Action[] uses)
    {
        var probe = LibraryResolver.Probe(library);
        if (probe.Found)
        {
            Assert.Ignore($"{name} is installed here ({probe.LoadedFrom}); this checks the message on machines without it");
        }
        Assert.That(probe.Tried, Is.Not.Empty);
        foreach (var use in uses)
        {
            var error = Assert.Throws<UserErrorException>(() => use())!;
            Assert.That(error.Message, Does.Contain(name).And.Contain("not found").And.Contain("CudaFinetune devices"));
            foreach (string tried in probe.Tried)
            {
                Assert.That(error.Message, Does.Contain(tried));
            }
            foreach (string soname in sonames)
            {
                Assert.That(error.Message, Does.Contain($"{soname} (system loader"));
            }
        }
    }
}
