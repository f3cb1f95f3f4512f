using System.Globalization;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Packaging;

/// <summary>
/// The engine's packages packed from this checkout into a folder feed, as docs/packaging.md tells a user to, under a
/// version no other run uses: NuGet's global packages folder caches by id and version, so a reused version would be
/// served stale from there. <see cref="ForgetRestoredPackages"/> removes what restores from the feed left in that folder.
/// </summary>
internal sealed class LocalFeed
{
    public const string Core = "CudaFinetune.Core";
    public const string Cuda = "CudaFinetune.Cuda";
    public const string Tool = "CudaFinetune";

    private static readonly string[] Projects =
    [
        "src/CudaFinetune.Core/CudaFinetune.Core.csproj",
        "src/CudaFinetune.Cuda/CudaFinetune.Cuda.csproj",
        "src/CudaFinetune/CudaFinetune.csproj",
    ];

    private LocalFeed(string directory, string version)
    {
        Directory = directory;
        Version = version;
    }

    /// <summary>The folder holding the .nupkg and .snupkg files: a NuGet source as it is.</summary>
    public string Directory { get; }

    /// <summary>The packages' version, e.g. 0.0.0-test.20261206014500.4242.</summary>
    public string Version { get; }

    /// <summary>
    /// Packs the three projects (Release) into <paramref name="workDirectory"/>/feed. One `dotnet pack` of a throwaway
    /// solution listing them builds them together, about half the time of three packs. Only PackageVersion is set, not
    /// Version: the assemblies keep theirs, so a second run does not recompile them.
    /// </summary>
    public static LocalFeed Pack(string repositoryRoot, string workDirectory, TimeSpan timeout)
    {
        string version = string.Create(CultureInfo.InvariantCulture, $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}");
        string solution = Path.Combine(workDirectory, "packages.slnx");
        File.WriteAllLines(solution,
        [
            "<Solution>",
            .. Projects.Select(p => $"  <Project Path=\"{Path.Combine(repositoryRoot, p)}\" />"),
            "</Solution>",
        ]);
        string feed = Path.Combine(workDirectory, "feed");
        ExternalCommand.Dotnet(workDirectory, timeout, "pack", solution, "-c", "Release", "-o", feed, $"-p:PackageVersion={version}", "--disable-build-servers");
        return new LocalFeed(feed, version);
    }

    public string PackagePath(string id) => Path.Combine(Directory, $"{id}.{Version}.nupkg");

    public string SymbolPackagePath(string id) => Path.Combine(Directory, $"{id}.{Version}.snupkg");

    public PackageContents Read(string id)
    {
        string path = PackagePath(id);
        Assert.That(File.Exists(path), Is.True, $"{Path.GetFileName(path)} was not packed; the feed holds: {string.Join(", ", System.IO.Directory.EnumerateFiles(Directory).Select(Path.GetFileName))}");
        return PackageContents.Read(path);
    }

    /// <summary>
    /// Deletes this version of the packages from NuGet's global packages folder ($NUGET_PACKAGES, else ~/.nuget/packages),
    /// where restoring the sample extracted them: every run has its own version, and they would pile up there.
    /// </summary>
    public void ForgetRestoredPackages()
    {
        string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (string id in new[] { Core, Cuda, Tool })
        {
            string versions = Path.Combine(globalPackages, id.ToLowerInvariant());
            string restored = Path.Combine(versions, Version.ToLowerInvariant());
            if (System.IO.Directory.Exists(restored))
            {
                System.IO.Directory.Delete(restored, recursive: true);
                if (!System.IO.Directory.EnumerateFileSystemEntries(versions).Any())
                {
                    System.IO.Directory.Delete(versions);
                }
            }
        }
    }
}
