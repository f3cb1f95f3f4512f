using System.Diagnostics;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// A real, small file system (tmpfs) mounted for one test, which it can fill to the last byte and free again — a disk
/// that runs full as a real one does (ENOSPC from the kernel), not a simulated error. Mounting needs root (as in CI and
/// the development machine); elsewhere the test is ignored with that reason.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    private readonly string _filler;

    private SmallDisk(string path)
    {
        Path = path;
        _filler = System.IO.Path.Combine(path, ".filler");
    }

    /// <summary>The mount point: an empty directory on the small file system.</summary>
    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="megabytes"/> MiB at a new directory <paramref name="path"/>.</summary>
    public static SmallDisk Mount(string path, int megabytes)
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("a small disk is mounted as tmpfs, which needs Linux");
        }
        Directory.CreateDirectory(path);
        var (code, output) = RunMount("mount", "-t", "tmpfs", "-o", $"size={megabytes}m", "tmpfs", path);
        if (code != 0)
        {
            Directory.Delete(path);
            Assert.Ignore($"cannot mount a small tmpfs here (needs root): {output.Trim()}");
        }
        return new SmallDisk(path);
    }

    /// <summary>Takes every free byte (the kernel refuses the next write with ENOSPC).</summary>
    public void Fill()
    {
        var chunk = new byte[1 << 16];
        using var stream = new FileStream(_filler, FileMode.Append, FileAccess.Write, FileShare.None, bufferSize: 0);
        try
        {
            while (true)
            {
                stream.Write(chunk);
            }
        }
        catch (IOException)
        {
            // Full: now the last bytes, so that not even a small write fits.
            for (int size = chunk.Length / 2; size > 0; size /= 2)
            {
                try
                {
                    stream.Write(chunk.AsSpan(0, size));
                }
                catch (IOException)
                {
                }
            }
        }
    }

    /// <summary>Gives the space <see cref="Fill"/> took back.</summary>
    public void Free() => File.Delete(_filler);

    public void Dispose()
    {
        var (code, output) = RunMount("umount", "-l", Path);
        if (code == 0)
        {
            Directory.Delete(Path);
        }
        else
        {
            TestContext.Out.WriteLine($"umount {Path}: {output}");
        }
    }

    private static (int Code, string Output) RunMount(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        try
        {
            using var process = Process.Start(start)!;
            string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
