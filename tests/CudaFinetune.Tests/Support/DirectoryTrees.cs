namespace CudaFinetune.Tests.Support;

/// <summary>Whole directory trees, as a user's <c>cp -r</c> handles them.</summary>
internal static class DirectoryTrees
{
    /// <summary>Copies every file under <paramref name="from"/> to the same place under <paramref name="to"/>.</summary>
    public static void Copy(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    /// <summary>Every file under <paramref name="root"/> (relative path) with its length and last write time: what "nothing changed" compares.</summary>
    public static SortedDictionary<string, (long Length, DateTime Written)> Snapshot(string root)
        => new(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => (new FileInfo(f).Length, File.GetLastWriteTimeUtc(f))), StringComparer.Ordinal);
}
