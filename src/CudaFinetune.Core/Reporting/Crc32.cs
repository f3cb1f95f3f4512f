namespace CudaFinetune.Reporting;

/// <summary>
/// CRC-32 as PNG (and zlib's <c>crc32</c>, gzip, zip) define it: reflected polynomial
/// <c>0xEDB88320</c>, initial value and final xor <c>0xFFFFFFFF</c>. Table-driven, one byte at a time.
/// </summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Start, data));

    /// <summary>The running value before any byte; feed it to <see cref="Append"/>, end with <see cref="Finish"/>.</summary>
    public const uint Start = 0xFFFF_FFFFu;

    public static uint Append(uint running, ReadOnlySpan<byte> data)
    {
        uint[] table = Table;
        foreach (byte b in data)
        {
            running = table[(running ^ b) & 0xFF] ^ (running >> 8);
        }
        return running;
    }

    public static uint Finish(uint running) => running ^ 0xFFFF_FFFFu;

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB8_8320u ^ (c >> 1) : c >> 1;
            }
            table[n] = c;
        }
        return table;
    }
}
