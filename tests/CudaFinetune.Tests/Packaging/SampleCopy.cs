using System.Security;

namespace CudaFinetune.Tests.Packaging;

/// <summary>A sample project copied out of the repository, as a user would copy it, and pointed at a local feed.</summary>
internal static class SampleCopy
{
    /// <summary>
    /// Copies samples/<paramref name="name"/> (sources only, no bin/ or obj/ a local build left) to <paramref name="destination"/>,
    /// outside the repository so no Directory.Build.props of ours applies, and writes a nuget.config beside it that adds
    /// <paramref name="feed"/> as a source.
    /// </summary>
    public static string Create(string repositoryRoot, string name, string destination, LocalFeed feed)
    {
        string source = Path.Combine(repositoryRoot, "samples", name);
        foreach (string file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith("bin" + Path.DirectorySeparatorChar, StringComparison.Ordinal) || relative.StartsWith("obj" + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                continue;
            }
            string target = Path.Combine(destination, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        // No <clear/>: NuGet merges this file with the user's and the machine's configuration, so the feed comes on top of
        // whatever sources this machine restores from, and the engine's dependencies restore from there as usual.
        File.WriteAllText(Path.Combine(destination, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="cudafinetune-local-feed" value="{SecurityElement.Escape(feed.Directory)}" />
              </packageSources>
            </configuration>
            """);
        return destination;
    }
}
