using System.Buffers.Binary;
using System.IO.Compression;

namespace CudaFinetune.Reporting;

/// <summary>
/// Writes 8-bit RGB or RGBA images as PNG files: signature, <c>IHDR</c>, the zlib-compressed
/// scanlines (filter type 0 on every row) in one or more <c>IDAT</c> chunks, <c>IEND</c>, each
/// chunk with its CRC-32. No ancillary chunks (no time stamp, no gamma), so the same pixels always
/// give the same bytes.
/// </summary>
public static class PngEncoder
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The most data one <c>IDAT</c> chunk carries; longer streams are split over several chunks.</summary>
    internal const int MaxIdatLength = 1 << 20;

    /// <summary>Encodes the image as PNG bytes.</summary>
    /// <param name="pixels">Row-major, top row first, <paramref name="channels"/> bytes per pixel (R, G, B[, A]).</param>
    /// <param name="width">Pixels per row, at least 1.</param>
    /// <param name="height">Rows, at least 1.</param>
    /// <param name="channels">3 for RGB, 4 for RGBA (alpha not premultiplied).</param>
    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height, int channels = 3)
    {
        using var output = new MemoryStream();
        Write(output, pixels, width, height, channels);
        return output.ToArray();
    }

    /// <summary>Writes the PNG to <paramref name="stream"/> (which is left open).</summary>
    /// <inheritdoc cref="Encode" path="/param"/>
    public static void Write(Stream stream, ReadOnlySpan<byte> pixels, int width, int height, int channels = 3)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (channels is not (3 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "PNG images here have 3 (RGB) or 4 (RGBA) channels.");
        }
        long rowBytes = (long)width * channels;
        if (rowBytes + 1 > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "A row of this width is too long to encode.");
        }
        if (pixels.Length != rowBytes * height)
        {
            throw new ArgumentException(
                $"Expected {rowBytes * height} bytes for a {width}x{height} image with {channels} channels, got {pixels.Length}.",
                nameof(pixels));
        }

        stream.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8;                                  // bit depth
        header[9] = (byte)(channels == 3 ? 2 : 6);      // colour type: truecolour (2) or truecolour with alpha (6)
        header[10] = 0;                                 // compression: deflate
        header[11] = 0;                                 // filter method 0
        header[12] = 0;                                 // no interlace
        WriteChunk(stream, "IHDR"u8, header);

        byte[] compressed = Compress(pixels, (int)rowBytes, height);
        for (int offset = 0; offset < compressed.Length; offset += MaxIdatLength)
        {
            WriteChunk(stream, "IDAT"u8, compressed.AsSpan(offset, Math.Min(MaxIdatLength, compressed.Length - offset)));
        }

        WriteChunk(stream, "IEND"u8, []);
    }

    private static byte[] Compress(ReadOnlySpan<byte> pixels, int rowBytes, int height)
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            ReadOnlySpan<byte> filterNone = [0];
            for (int y = 0; y < height; y++)
            {
                zlib.Write(filterNone);
                zlib.Write(pixels.Slice(y * rowBytes, rowBytes));
            }
        }
        return compressed.ToArray();
    }

    private static void WriteChunk(Stream stream, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        stream.Write(word);
        stream.Write(type);
        stream.Write(data);
        var crc = new System.IO.Hashing.Crc32(); // PNG's CRC-32 (ISO-HDLC, as zlib's): over the chunk type and data
        crc.Append(type);
        crc.Append(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        stream.Write(word);
    }
}
