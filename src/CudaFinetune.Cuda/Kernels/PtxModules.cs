using System.Text.RegularExpressions;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>One <c>.entry</c> of a PTX module: the kernel's name and its parameters' PTX types, in order.</summary>
public sealed record PtxEntry(string Module, string Name, IReadOnlyList<string> ParameterTypes);

/// <summary>
/// The PTX of kernels/*.cu, embedded in this assembly at build time (resources named
/// <c>CudaFinetune.Cuda.Kernels.&lt;file&gt;.ptx</c>), and the kernel entries each declares.
/// </summary>
public static partial class PtxModules
{
    private const string Prefix = "CudaFinetune.Cuda.Kernels.";
    private const string Suffix = ".ptx";

    /// <summary>Module names (the .cu file names without extension).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. typeof(PtxModules).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(Suffix, StringComparison.Ordinal))
        .Select(n => n[Prefix.Length..^Suffix.Length])
        .Order(StringComparer.Ordinal)];

    /// <summary>The PTX text of a module.</summary>
    public static string Read(string module)
    {
        using var stream = typeof(PtxModules).Assembly.GetManifestResourceStream(Prefix + module + Suffix)
            ?? throw new ArgumentException($"no PTX module '{module}' is embedded (modules: {string.Join(", ", Names)})", nameof(module));
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The <c>.entry</c> declarations of a module's PTX.</summary>
    public static IReadOnlyList<PtxEntry> Entries(string module) => Parse(module, Read(module));

    internal static List<PtxEntry> Parse(string module, string ptx)
    {
        var entries = new List<PtxEntry>();
        foreach (Match entry in EntryPattern().Matches(ptx))
        {
            var types = ParameterPattern().Matches(entry.Groups["params"].Value).Select(p => p.Groups["type"].Value).ToList();
            entries.Add(new PtxEntry(module, entry.Groups["name"].Value, types));
        }
        return entries;
    }

    [GeneratedRegex(@"\.entry\s+(?<name>[A-Za-z_$][\w$]*)\s*\((?<params>[^)]*)\)")]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"\.param\s+(?:\.align\s+\d+\s+)?\.(?<type>[a-z]\d+)\s")]
    private static partial Regex ParameterPattern();
}
