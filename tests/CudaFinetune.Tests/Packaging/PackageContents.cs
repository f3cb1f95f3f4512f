using System.IO.Compression;
using System.Xml.Linq;

namespace CudaFinetune.Tests.Packaging;

/// <summary>What a .nupkg holds: its file list and its nuspec's metadata, read as a NuGet client reads them.</summary>
internal sealed class PackageContents
{
    private readonly IReadOnlyDictionary<string, string> _texts;

    private PackageContents(IReadOnlySet<string> files, XElement metadata, IReadOnlyDictionary<string, string> texts)
    {
        Files = files;
        Metadata = metadata;
        _texts = texts;
    }

    /// <summary>Every file's path inside the package, '/'-separated (NuGet's own parts such as [Content_Types].xml included).</summary>
    public IReadOnlySet<string> Files { get; }

    /// <summary>The nuspec's &lt;metadata&gt; element.</summary>
    public XElement Metadata { get; }

    public static PackageContents Read(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var files = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
        // The small text files the tests look into; binaries are only listed.
        var texts = zip.Entries
            .Where(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) || e.FullName.EndsWith(".xml", StringComparison.Ordinal)
                || e.FullName.EndsWith(".json", StringComparison.Ordinal) || e.FullName.EndsWith(".md", StringComparison.Ordinal))
            .ToDictionary(e => e.FullName, e =>
            {
                using var reader = new StreamReader(e.Open());
                return reader.ReadToEnd();
            }, StringComparer.Ordinal);
        string nuspec = texts.Keys.Single(name => !name.Contains('/', StringComparison.Ordinal) && name.EndsWith(".nuspec", StringComparison.Ordinal));
        var metadata = XDocument.Parse(texts[nuspec]).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        return new PackageContents(files, metadata, texts);
    }

    /// <summary>The text of a metadata element (nuspec namespaces vary by schema version, so by local name), or null.</summary>
    public string? Value(string element) => Element(element)?.Value;

    /// <summary>A metadata element by local name, or null.</summary>
    public XElement? Element(string element) => Metadata.Elements().FirstOrDefault(e => e.Name.LocalName == element);

    /// <summary>The text of a small text file in the package (.nuspec, .xml, .json, .md).</summary>
    public string Text(string path) => _texts.TryGetValue(path, out string? text) ? text : throw new FileNotFoundException($"no text file {path} in the package", path);

    /// <summary>The (id, version) of each dependency, over all target framework groups.</summary>
    public IEnumerable<(string Id, string Version)> Dependencies() => Element("dependencies")?.Descendants()
        .Where(e => e.Name.LocalName == "dependency")
        .Select(e => ((string)e.Attribute("id")!, (string)e.Attribute("version")!)) ?? [];

    /// <summary>The package types declared (DotnetTool for a .NET tool).</summary>
    public IEnumerable<string> PackageTypes() => Element("packageTypes")?.Elements().Select(e => (string)e.Attribute("name")!) ?? [];
}
