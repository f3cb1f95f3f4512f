using System.Diagnostics;
using CudaFinetune.IO;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>What can be planted where a checkpoint (or any reader) expects a regular file.</summary>
public enum Hostile
{
    /// <summary>A link to /dev/zero: endless zeros, and a length of 0 when looked at through the link.</summary>
    LinkToDevZero,

    /// <summary>A link to /dev/null: a character device that reads as empty.</summary>
    LinkToDevNull,

    /// <summary>A link to a file outside the output directory (/etc/passwd in an attack).</summary>
    LinkOutside,

    /// <summary>A link to a good copy of the file itself: harmless content, still a link.</summary>
    LinkToGoodCopy,

    /// <summary>A FIFO: a blocking open for reading waits for a writer that never comes.</summary>
    Fifo,

    /// <summary>A directory where a file should be.</summary>
    Directory,
}

/// <summary>Replaces files by the things of <see cref="Hostile"/> (Linux: mkfifo and device links).</summary>
internal static class HostileFiles
{
    /// <summary>The content of the <see cref="Hostile.LinkOutside"/> target: a password-file line that must never be copied anywhere.</summary>
    public const string OutsideSecret = "root:x:0:0:SECRET-OUTSIDE-THE-OUTPUT-DIRECTORY:/root:/bin/bash\n";

    /// <summary>Replaces <paramref name="path"/> by <paramref name="kind"/>; link targets are written under <paramref name="outside"/>.</summary>
    public static void Plant(string path, Hostile kind, string outside)
    {
        byte[] original = File.ReadAllBytes(path);
        File.Delete(path);
        System.IO.Directory.CreateDirectory(outside);
        string target = Path.Combine(outside, Path.GetFileName(path));
        switch (kind)
        {
            case Hostile.LinkToDevZero:
                File.CreateSymbolicLink(path, "/dev/zero");
                break;
            case Hostile.LinkToDevNull:
                File.CreateSymbolicLink(path, "/dev/null");
                break;
            case Hostile.LinkOutside:
                File.WriteAllText(target, OutsideSecret);
                File.CreateSymbolicLink(path, target);
                break;
            case Hostile.LinkToGoodCopy:
                File.WriteAllBytes(target, original);
                File.CreateSymbolicLink(path, target);
                break;
            case Hostile.Fifo:
                MakeFifo(path);
                break;
            case Hostile.Directory:
                System.IO.Directory.CreateDirectory(path);
                break;
        }
        Assert.That(RegularFiles.KindOf(path), Is.EqualTo(KindOf(kind)), $"{kind} planted at {path}");
    }

    /// <summary>What <see cref="RegularFiles.KindOf"/> sees where <paramref name="kind"/> was planted.</summary>
    public static FileKind KindOf(Hostile kind) => kind switch
    {
        Hostile.Fifo => FileKind.Fifo,
        Hostile.Directory => FileKind.Directory,
        _ => FileKind.SymbolicLink,
    };

    /// <summary>Makes a FIFO with mkfifo(1).</summary>
    public static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", [path])!;
        mkfifo.WaitForExit();
        Assert.That(mkfifo.ExitCode, Is.Zero, $"mkfifo {path}");
    }
}
