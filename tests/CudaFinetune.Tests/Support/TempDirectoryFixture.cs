// Shared fixture: a test fixture whose every test gets a fresh TempDirectory, created before the fixture's own [SetUp]
// and deleted after its own [TearDown] (NUnit runs a base class's SetUp first and its TearDown last).
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>A fixture whose every test gets a fresh temporary directory, <see cref="Dir"/>.</summary>
public abstract class TempDirectoryFixture
{
    /// <summary>This test's directory; deleted with everything in it when the test ends.</summary>
    protected TempDirectory Dir { get; private set; } = null!;

    [SetUp]
    public void CreateTempDirectory() => Dir = new TempDirectory();

    [TearDown]
    public void DeleteTempDirectory() => Dir.Dispose();
}
