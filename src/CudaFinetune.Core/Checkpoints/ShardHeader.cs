using System.Buffers.Binary;
using System.Text;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// The first 4 KiB of every shard file: magic "CFTSHARD", format version, rank, the checkpoint id
/// (which ties the shard to its manifest, so a shard copied in from another checkpoint is refused),
/// and the group name; the rest of the block is zero.
/// </summary>
internal static class ShardHeader
{
    public const int Length = CheckpointFormat.Alignment;
    private static readonly byte[] Magic = "CFTSHARD"u8.ToArray();

    public static void Write(Span<byte> header, string checkpointId, string group, int rank, int version = CheckpointFormat.Version)
    {
        header[..Length].Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)version);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)rank);
        Convert.FromHexString(checkpointId).CopyTo(header[16..32]);
        int nameLength = Encoding.UTF8.GetBytes(group, header[36..68]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[32..], (uint)nameLength);
    }

    /// <summary>Null when <paramref name="actual"/> is exactly the header this shard of a <paramref name="version"/> checkpoint should have, else what differs.</summary>
    public static string? Check(ReadOnlySpan<byte> actual, string checkpointId, string group, int rank, int version)
    {
        if (actual.Length < Length)
        {
            return "is shorter than its 4 KiB header";
        }
        if (!actual[..8].SequenceEqual(Magic))
        {
            return "does not start with the shard magic 'CFTSHARD'";
        }
        uint written = BinaryPrimitives.ReadUInt32LittleEndian(actual[8..]);
        if (written != version)
        {
            return $"has format version {written}, but its manifest's is {version}";
        }
        Span<byte> expected = stackalloc byte[Length];
        Write(expected, checkpointId, group, rank, version);
        if (!actual[16..32].SequenceEqual(expected[16..32]))
        {
            return $"belongs to another checkpoint (its id is {Convert.ToHexStringLower(actual[16..32])}, the manifest's is {checkpointId})";
        }
        return actual[..Length].SequenceEqual(expected) ? null : "has a damaged header (rank, group or reserved bytes differ)";
    }
}
