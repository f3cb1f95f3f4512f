using CudaFinetune.Reporting;
using NUnit.Framework;

namespace CudaFinetune.Tests.Reporting;

public sealed class PngEncoderTests
{
    private static byte[] Pattern(int length, uint seed)
    {
        var bytes = new byte[length];
        uint state = seed;
        for (int i = 0; i < bytes.Length; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            bytes[i] = (byte)state;
        }
        return bytes;
    }

    [TestCase(1, 1, 3)]
    [TestCase(7, 5, 3)]
    [TestCase(3, 2, 4)]
    [TestCase(64, 33, 4)]
    public void Encoded_image_parses_back_with_valid_chunks_and_the_same_pixels(int width, int height, int channels)
    {
        byte[] pixels = Pattern(width * height * channels, 12345);
        byte[] png = PngEncoder.Encode(pixels, width, height, channels);

        var parsed = PngReader.Parse(png);
        Assert.That(parsed.Width, Is.EqualTo(width));
        Assert.That(parsed.Height, Is.EqualTo(height));
        Assert.That(parsed.Channels, Is.EqualTo(channels));
        Assert.That(parsed.ChunkTypes, Is.EqualTo(new[] { "IHDR", "IDAT", "IEND" }));
        Assert.That(parsed.Scanlines, Has.Length.EqualTo(height * (1 + (width * channels))));
        Assert.That(parsed.Pixels, Is.EqualTo(pixels));
    }

    [Test]
    public void A_large_incompressible_image_is_split_over_several_IDAT_chunks()
    {
        const int width = 700, height = 700;
        byte[] pixels = Pattern(width * height * 3, 99);
        var parsed = PngReader.Parse(PngEncoder.Encode(pixels, width, height));
        Assert.That(parsed.ChunkTypes.Count(t => t == "IDAT"), Is.GreaterThan(1));
        Assert.That(parsed.Pixels, Is.EqualTo(pixels));
    }

    [Test]
    public void The_same_pixels_give_the_same_bytes()
    {
        byte[] pixels = Pattern(40 * 30 * 3, 5);
        byte[] first = PngEncoder.Encode(pixels, 40, 30);
        byte[] second = PngEncoder.Encode((byte[])pixels.Clone(), 40, 30);
        using var stream = new MemoryStream();
        PngEncoder.Write(stream, pixels, 40, 30);
        Assert.That(second, Is.EqualTo(first));
        Assert.That(stream.ToArray(), Is.EqualTo(first));
    }

    [Test]
    public void Bad_arguments_are_refused()
    {
        byte[] pixels = new byte[12];
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(pixels, 2, 3, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => PngEncoder.Encode(pixels, 2, 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => PngEncoder.Encode(pixels, 0, 2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => PngEncoder.Encode(pixels, 4, -1, 3));
        Assert.That(PngReader.Parse(PngEncoder.Encode(pixels, 2, 2, 3)).Width, Is.EqualTo(2));
    }
}
