using System.Reflection;
using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Interop;

/// <summary>What looking for one native library found: its handle and path, or every place tried and why each failed.</summary>
internal sealed record LibraryProbe(string Library, IntPtr Handle, string? LoadedFrom, IReadOnlyList<string> Tried)
{
    public bool Found => Handle != IntPtr.Zero;

    /// <summary>One message listing every path tried, for errors and <c>devices</c>.</summary>
    public string Describe() => Found
        ? $"{Library}: {LoadedFrom}"
        : $"{Library}: not found; tried:{Environment.NewLine}    {string.Join(Environment.NewLine + "    ", Tried)}";
}

/// <summary>
/// Finds the CUDA libraries for this assembly's <c>[LibraryImport]</c>s: each versioned file name
/// (<see cref="NativeLibraries"/>) through the system loader (LD_LIBRARY_PATH, ldconfig), then in
/// <c>$CUDA_HOME</c>, <c>/usr/local/cuda</c>, and the <c>nvidia/*/lib</c> folders of Python's
/// site-packages (where pip's CUDA wheels put them). Every attempt is remembered, so a missing
/// library is reported with the full list of places tried.
/// </summary>
internal static class LibraryResolver
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, LibraryProbe> Probes = [];
    private static bool _registered;

    /// <summary>Makes the runtime resolve this assembly's imports through <see cref="Probe"/>; idempotent.</summary>
    public static void Register()
    {
        lock (Gate)
        {
            if (!_registered)
            {
                NativeLibrary.SetDllImportResolver(typeof(LibraryResolver).Assembly, Resolve);
                _registered = true;
            }
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
        => name is NativeLibraries.Driver or NativeLibraries.CublasLt or NativeLibraries.Nccl ? Probe(name).Handle : IntPtr.Zero;

    /// <summary>Looks for the library once (the result is cached) and says where it was found or everywhere it was not.</summary>
    public static LibraryProbe Probe(string library)
    {
        lock (Gate)
        {
            if (Probes.TryGetValue(library, out var known))
            {
                return known;
            }
            var probe = Search(library, NativeLibraries.FileNames(library), Directories(NativeLibraries.PipPackage(library)));
            Probes[library] = probe;
            return probe;
        }
    }

    /// <summary>Tries each file name with the system loader, then in each directory; stops at the first that loads.</summary>
    internal static LibraryProbe Search(string library, IReadOnlyList<string> fileNames, IEnumerable<string> directories)
    {
        var tried = new List<string>();
        foreach (string file in fileNames)
        {
            if (NativeLibrary.TryLoad(file, out IntPtr handle))
            {
                return new LibraryProbe(library, handle, $"{file} (system loader)", tried);
            }
            tried.Add($"{file} (system loader: LD_LIBRARY_PATH, ldconfig cache, /lib, /usr/lib)");
        }
        foreach (string directory in directories)
        {
            foreach (string file in fileNames)
            {
                string path = Path.Combine(directory, file);
                if (!File.Exists(path))
                {
                    tried.Add($"{path} (no such file)");
                    continue;
                }
                if (NativeLibrary.TryLoad(path, out IntPtr handle))
                {
                    return new LibraryProbe(library, handle, path, tried);
                }
                tried.Add($"{path} (exists but does not load: wrong architecture or missing dependencies)");
            }
        }
        return new LibraryProbe(library, IntPtr.Zero, null, tried);
    }

    /// <summary>$CUDA_HOME, /usr/local/cuda, and Python's site-packages/nvidia/&lt;package&gt;/lib folders that exist.</summary>
    private static IEnumerable<string> Directories(string? pipPackage)
    {
        var directories = new List<string>();
        foreach (string? root in new[] { Environment.GetEnvironmentVariable("CUDA_HOME"), Environment.GetEnvironmentVariable("CUDA_PATH"), "/usr/local/cuda" })
        {
            if (!string.IsNullOrEmpty(root))
            {
                directories.Add(Path.Combine(root, "lib64"));
                directories.Add(Path.Combine(root, "lib"));
            }
        }
        if (pipPackage is not null)
        {
            directories.AddRange(SitePackages().Select(site => Path.Combine(site, "nvidia", pipPackage, "lib")));
        }
        return directories.Distinct(StringComparer.Ordinal);
    }

    /// <summary>Python site-packages folders: under the virtual environment, pyenv, ~/.local and the system prefixes.</summary>
    private static IEnumerable<string> SitePackages()
    {
        var prefixes = new List<string>();
        if (Environment.GetEnvironmentVariable("VIRTUAL_ENV") is { Length: > 0 } venv)
        {
            prefixes.Add(venv);
        }
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        prefixes.Add(Path.Combine(home, ".local"));
        string pyenv = Path.Combine(home, ".pyenv", "versions");
        if (Directory.Exists(pyenv))
        {
            prefixes.AddRange(Directory.EnumerateDirectories(pyenv));
        }
        prefixes.AddRange(["/usr/local", "/usr", "/opt/conda"]);
        foreach (string prefix in prefixes)
        {
            string lib = Path.Combine(prefix, "lib");
            if (!Directory.Exists(lib))
            {
                continue;
            }
            foreach (string python in Directory.EnumerateDirectories(lib, "python3*"))
            {
                foreach (string kind in new[] { "site-packages", "dist-packages" })
                {
                    string site = Path.Combine(python, kind);
                    if (Directory.Exists(site))
                    {
                        yield return site;
                    }
                }
            }
        }
    }
}
