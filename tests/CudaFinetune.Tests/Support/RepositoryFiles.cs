using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>The repository the tests were built from: its root, found above the test assembly's directory.</summary>
internal static class RepositoryFiles
{
    /// <summary>The directory that holds CudaFinetune.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>A path under the root, from its parts ("docs", "cli.md").</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "CudaFinetune.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("the repository root (with CudaFinetune.sln) was not found above the test directory");
    }
}
