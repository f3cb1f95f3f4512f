using System.Text;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// manifest.json: writes a <see cref="CheckpointManifest"/> (ManifestJson.Write.cs) and reads one back with every field
/// checked (ManifestJson.Read.cs). The last property, <c>manifest_xxh128</c>, is the XxHash128 of the file with that
/// property's value written as 32 zeros, so any edit of the manifest is detected.
/// </summary>
internal static partial class ManifestJson
{
    private const string FormatName = "cudafinetune-checkpoint";
    private const string SelfHashKey = "manifest_xxh128";
    private static readonly string ZeroHash = new('0', 32);

    /// <summary>Index of the self-hash value inside the manifest bytes (-1 when absent).</summary>
    private static int SelfHashPosition(ReadOnlySpan<byte> bytes, string value)
    {
        byte[] needle = Encoding.ASCII.GetBytes($"\"{SelfHashKey}\": \"{value}\"");
        int at = bytes.LastIndexOf(needle);
        return at < 0 ? -1 : at + needle.Length - 33;
    }
}
