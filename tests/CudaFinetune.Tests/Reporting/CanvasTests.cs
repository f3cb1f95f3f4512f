using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Reporting;

public sealed class CanvasTests
{
    private static readonly Rgb Red = new(255, 0, 0);

    private static int Count(Canvas canvas, Rgb color)
    {
        int n = 0;
        for (int y = 0; y < canvas.Height; y++)
        {
            for (int x = 0; x < canvas.Width; x++)
            {
                n += canvas.GetPixel(x, y) == color ? 1 : 0;
            }
        }
        return n;
    }

    [Test]
    public void Fill_rect_is_clipped_to_the_canvas()
    {
        var canvas = new Canvas(10, 8);
        canvas.FillRect(-5, 6, 8, 100, Red);
        Assert.That(Count(canvas, Red), Is.EqualTo(3 * 2));
        Assert.That(canvas.GetPixel(2, 7), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(3, 7), Is.EqualTo(Rgb.White));
        canvas.FillRect(int.MaxValue - 2, int.MinValue, 100, 100, Red);
        Assert.That(Count(canvas, Red), Is.EqualTo(6));
    }

    [Test]
    public void Lines_include_both_ends_and_thickness_widens_them()
    {
        var canvas = new Canvas(20, 20);
        canvas.DrawLine(2, 3, 12, 3, Red);
        Assert.That(Count(canvas, Red), Is.EqualTo(11));
        canvas.Clear(Rgb.White);
        canvas.DrawLine(0, 0, 9, 9, Red);
        Assert.That(Count(canvas, Red), Is.EqualTo(10));
        Assert.That(canvas.GetPixel(5, 5), Is.EqualTo(Red));
        canvas.Clear(Rgb.White);
        canvas.DrawLine(2, 10, 17, 10, Red, thickness: 3);
        for (int x = 2; x <= 17; x++)
        {
            Assert.That(canvas.GetPixel(x, 9), Is.EqualTo(Red));
            Assert.That(canvas.GetPixel(x, 10), Is.EqualTo(Red));
            Assert.That(canvas.GetPixel(x, 11), Is.EqualTo(Red));
        }
        Assert.That(canvas.GetPixel(10, 8), Is.EqualTo(Rgb.White));
        Assert.That(canvas.GetPixel(10, 12), Is.EqualTo(Rgb.White));
    }

    [Test]
    public void Lines_far_outside_the_canvas_are_clipped_quickly()
    {
        var canvas = new Canvas(50, 50);
        canvas.DrawLine(-1_000_000_000, 25, 1_000_000_000, 25, Red, thickness: 2);
        Assert.That(canvas.GetPixel(0, 25), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(49, 25), Is.EqualTo(Red));
        canvas.DrawLine(-10, -10, -5, 200, Red);
        Assert.That(Count(canvas, Red), Is.EqualTo(100));
    }

    [Test]
    public void Filled_circle_is_symmetric_and_within_its_radius()
    {
        var canvas = new Canvas(21, 21);
        canvas.FillCircle(10, 10, 4, Red);
        for (int y = 0; y < 21; y++)
        {
            for (int x = 0; x < 21; x++)
            {
                bool red = canvas.GetPixel(x, y) == Red;
                Assert.That(canvas.GetPixel(20 - x, y) == Red, Is.EqualTo(red));
                Assert.That(canvas.GetPixel(y, x) == Red, Is.EqualTo(red));
                if (red)
                {
                    Assert.That(((x - 10) * (x - 10)) + ((y - 10) * (y - 10)), Is.LessThanOrEqualTo(4 * 4 + 4));
                }
            }
        }
        Assert.That(canvas.GetPixel(14, 10), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(15, 10), Is.EqualTo(Rgb.White));
    }

    [Test]
    public void Every_printable_ascii_character_has_its_own_glyph_and_others_draw_as_a_question_mark()
    {
        for (char c = ' '; c <= '~'; c++)
        {
            Assert.That(BitmapFont.HasGlyph(c), Is.True, $"'{c}'");
        }
        var expected = new Canvas(30, 20);
        expected.DrawText(1, 1, "?", Red, 2);
        foreach (string other in new[] { "é", "\u0001", "\u4e2d" })
        {
            var actual = new Canvas(30, 20);
            actual.DrawText(1, 1, other, Red, 2);
            Assert.That(actual.Pixels.ToArray(), Is.EqualTo(expected.Pixels.ToArray()), other);
        }
    }

    [Test]
    public void Text_draws_the_glyph_bitmap_scaled()
    {
        var canvas = new Canvas(20, 20);
        canvas.DrawText(2, 3, "1", Red, scale: 1);
        // '1' is "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."
        Assert.That(canvas.GetPixel(2 + 2, 3), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(2 + 1, 3), Is.EqualTo(Rgb.White));
        Assert.That(canvas.GetPixel(2 + 1, 4), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(2 + 1, 9), Is.EqualTo(Red));
        Assert.That(canvas.GetPixel(2 + 3, 9), Is.EqualTo(Red));
        Assert.That(Count(canvas, Red), Is.EqualTo(1 + 2 + 1 + 1 + 1 + 1 + 3));

        var scaled = new Canvas(20, 20);
        scaled.DrawText(0, 0, "1", Red, scale: 2);
        Assert.That(Count(scaled, Red), Is.EqualTo(10 * 4));
        Assert.That(Canvas.MeasureText("abc", 2), Is.EqualTo(((3 * 6) - 1) * 2));
        Assert.That(Canvas.MeasureText("", 2), Is.Zero);
    }

    [Test]
    public void Vertical_text_is_the_horizontal_text_turned_counter_clockwise()
    {
        const string text = "Ag1";
        int w = Canvas.MeasureText(text, 2), h = Canvas.TextHeight(2);
        var flat = new Canvas(w, h);
        flat.DrawText(0, 0, text, Red, 2);
        var turned = new Canvas(h, w);
        turned.DrawTextVertical(0, 0, text, Red, 2);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                Assert.That(turned.GetPixel(y, w - 1 - x), Is.EqualTo(flat.GetPixel(x, y)), $"({x}, {y})");
            }
        }
    }

    [Test]
    public void Write_png_replaces_the_file_atomically_and_leaves_no_temporary_files()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.png");
        File.WriteAllText(path, "old");
        var canvas = new Canvas(4, 3, Red);
        canvas.WritePng(path);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(canvas.EncodePng()));
        Assert.That(Directory.GetFiles(dir.Path), Has.Length.EqualTo(1));
        var parsed = PngReader.Parse(File.ReadAllBytes(path));
        Assert.That(parsed.Pixel(3, 2), Is.EqualTo(((byte)255, (byte)0, (byte)0)));
    }
}
