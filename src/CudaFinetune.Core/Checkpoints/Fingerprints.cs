using System.IO.Hashing;
using System.Runtime.InteropServices;
using CudaFinetune.Data;
using CudaFinetune.IO;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Cheap identities of what a run trains on, stored in every checkpoint so that a resume can tell
/// "the same model and data" from "something else". The model's is a hash of its config.json and
/// of each weight file's name, length and safetensors header (names, dtypes, shapes, offsets) —
/// not of the gigabytes of weights. The data's is a hash of the tokenized examples themselves. Model files are read only
/// when they are (or link to) regular files: Hugging Face's cache links them to blobs, but a FIFO or device would hang or
/// never end.
/// </summary>
public static class Fingerprints
{
    private const long MaxHeaderBytes = 100L << 20;

    public static string Model(string modelDir)
    {
        var hash = new XxHash128();
        AppendFile(hash, Path.Combine(modelDir, "config.json"), long.MaxValue);
        string index = Path.Combine(modelDir, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            AppendFile(hash, index, long.MaxValue);
        }
        foreach (string file in Directory.EnumerateFiles(modelDir, "*.safetensors").Order(StringComparer.Ordinal))
        {
            hash.Append(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(file)));
            hash.Append(BitConverter.GetBytes(new FileInfo(file).Length));
            AppendSafetensorsHeader(hash, file);
        }
        return CheckpointFormat.HashText(hash.GetCurrentHash());
    }

    /// <summary>Hash of the examples in order: each one's length, input ids and labels.</summary>
    public static string Data(IReadOnlyList<TokenizedExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var hash = new XxHash128();
        foreach (var example in examples)
        {
            hash.Append(BitConverter.GetBytes(example.Length));
            hash.Append(MemoryMarshal.AsBytes(example.InputIds.AsSpan()));
            hash.Append(MemoryMarshal.AsBytes(example.Labels.AsSpan()));
        }
        return CheckpointFormat.HashText(hash.GetCurrentHash());
    }

    /// <summary>Hash of a batch order (the sampler's permutation of an epoch).</summary>
    public static string Order(int[] order) => CheckpointFormat.Hash(MemoryMarshal.AsBytes(order.AsSpan()));

    private static void AppendFile(XxHash128 hash, string path, long limit)
    {
        using var stream = RegularFiles.OpenRead(path, followLinks: true);
        byte[] buffer = new byte[1 << 16];
        long left = limit;
        int read;
        while (left > 0 && (read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left))) > 0)
        {
            hash.Append(buffer.AsSpan(0, read));
            left -= read;
        }
    }

    private static void AppendSafetensorsHeader(XxHash128 hash, string path)
    {
        using var stream = RegularFiles.OpenRead(path, followLinks: true);
        Span<byte> prefix = stackalloc byte[8];
        if (stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
        {
            return;
        }
        hash.Append(prefix);
        ulong length = BitConverter.ToUInt64(prefix);
        if (length <= MaxHeaderBytes)
        {
            AppendFile(hash, path, 8 + (long)length);
        }
    }
}
