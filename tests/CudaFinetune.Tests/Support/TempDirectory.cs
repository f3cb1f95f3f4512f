// Shared fixture: the one way a test gets a scratch directory. Use `using var dir = new TempDirectory();` inside a
// test, or derive the fixture from TempDirectoryFixture (a fresh one per test) or LearnableTaskFixture (the same,
// holding a model and data set). Nothing else in the tests builds paths under Path.GetTempPath() by hand.
namespace CudaFinetune.Tests.Support;

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cudafinetune-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
