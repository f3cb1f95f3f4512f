using CudaFinetune.Tests.IO;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>A fixture whose every test gets a fresh temporary directory holding <see cref="LearnableTask"/>'s model and data.</summary>
public abstract class LearnableTaskFixture
{
    protected TempDirectory Dir { get; private set; } = null!;

    /// <summary>The model directory.</summary>
    protected string ModelDir { get; private set; } = null!;

    /// <summary>The training data file.</summary>
    protected string DataFile { get; private set; } = null!;

    [SetUp]
    public void WriteTask()
    {
        Dir = new TempDirectory();
        (ModelDir, DataFile) = LearnableTask.Write(Dir.Path);
    }

    [TearDown]
    public void RemoveTask() => Dir.Dispose();
}
