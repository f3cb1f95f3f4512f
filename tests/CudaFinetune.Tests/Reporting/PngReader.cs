using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using NUnit.Framework;

namespace CudaFinetune.Tests.Reporting;

/// <summary>
/// A strict reader for the PNG files the encoder writes (8-bit RGB/RGBA, no interlace, filter 0 rows),
/// written independently of the encoder: its own bit-at-a-time CRC-32, and assertions on every structural rule.
/// </summary>
internal sealed class PngReader
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private PngReader(int width, int height, int channels, List<string> chunkTypes, byte[] scanlines, byte[] pixels)
    {
        Width = width;
        Height = height;
        Channels = channels;
        ChunkTypes = chunkTypes;
        Scanlines = scanlines;
        Pixels = pixels;
    }

    public int Width { get; }
    public int Height { get; }
    public int Channels { get; }
    public IReadOnlyList<string> ChunkTypes { get; }

    /// <summary>The decompressed IDAT stream: per row a filter-type byte and the row's bytes.</summary>
    public byte[] Scanlines { get; }

    /// <summary>The pixels with the filter bytes removed.</summary>
    public byte[] Pixels { get; }

    public (byte R, byte G, byte B) Pixel(int x, int y)
    {
        int i = ((y * Width) + x) * Channels;
        return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    /// <summary>CRC-32 computed bit by bit, straight from the definition (no table).</summary>
    public static uint ReferenceCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }
        return ~crc;
    }

    public static PngReader Parse(byte[] png)
    {
        Assert.That(png.AsSpan(0, 8).ToArray(), Is.EqualTo(Signature), "signature");
        var types = new List<string>();
        using var idat = new MemoryStream();
        int width = 0, height = 0, channels = 0;
        int offset = 8;
        while (true)
        {
            Assert.That(png.Length - offset, Is.GreaterThanOrEqualTo(12), "truncated chunk");
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            Assert.That(length, Is.GreaterThanOrEqualTo(0));
            string type = Encoding.ASCII.GetString(png, offset + 4, 4);
            ReadOnlySpan<byte> typeAndData = png.AsSpan(offset + 4, 4 + length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8 + length));
            Assert.That(stored, Is.EqualTo(ReferenceCrc(typeAndData)), $"CRC of {type} chunk at {offset}");
            ReadOnlySpan<byte> data = typeAndData[4..];
            types.Add(type);
            switch (type)
            {
                case "IHDR":
                    Assert.That(types, Has.Count.EqualTo(1), "IHDR comes first");
                    Assert.That(length, Is.EqualTo(13));
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    Assert.That(data[8], Is.EqualTo(8), "bit depth");
                    Assert.That(data[9], Is.EqualTo(2).Or.EqualTo(6), "colour type");
                    channels = data[9] == 2 ? 3 : 4;
                    Assert.That(data[10], Is.Zero, "compression method");
                    Assert.That(data[11], Is.Zero, "filter method");
                    Assert.That(data[12], Is.Zero, "interlace method");
                    break;
                case "IDAT":
                    Assert.That(types[^2], Is.EqualTo("IHDR").Or.EqualTo("IDAT"), "IDAT chunks are consecutive");
                    idat.Write(data);
                    break;
                case "IEND":
                    Assert.That(length, Is.Zero);
                    break;
                default:
                    Assert.Fail($"unexpected chunk {type}");
                    break;
            }
            offset += 12 + length;
            if (type == "IEND")
            {
                break;
            }
        }
        Assert.That(offset, Is.EqualTo(png.Length), "nothing after IEND");
        Assert.That(types[0], Is.EqualTo("IHDR"));

        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
        {
            zlib.CopyTo(inflated);
        }
        byte[] scanlines = inflated.ToArray();
        int rowBytes = width * channels;
        Assert.That(scanlines, Has.Length.EqualTo(height * (1 + rowBytes)), "decompressed size");
        var pixels = new byte[height * rowBytes];
        for (int y = 0; y < height; y++)
        {
            Assert.That(scanlines[y * (1 + rowBytes)], Is.Zero, $"filter type of row {y}");
            Array.Copy(scanlines, (y * (1 + rowBytes)) + 1, pixels, y * rowBytes, rowBytes);
        }
        return new PngReader(width, height, channels, types, scanlines, pixels);
    }
}
