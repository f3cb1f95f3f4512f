// Shared fixture: a TempDirectoryFixture whose directory also holds LearnableTask's model and training data, for the
// tests that train (engine API, CLI runs, checkpoints, distributed runs).
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>A fixture whose every test gets a fresh temporary directory holding <see cref="LearnableTask"/>'s model and data.</summary>
public abstract class LearnableTaskFixture : TempDirectoryFixture
{
    /// <summary>The model directory (a test may write another model and point this at it).</summary>
    protected string ModelDir { get; set; } = null!;

    /// <summary>The training data file.</summary>
    protected string DataFile { get; private set; } = null!;

    [SetUp]
    public void WriteTask() => (ModelDir, DataFile) = LearnableTask.Write(Dir.Path);
}
