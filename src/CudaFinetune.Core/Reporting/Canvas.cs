using CudaFinetune.IO;

namespace CudaFinetune.Reporting;

/// <summary>
/// A small RGB raster (row-major, top row first, 3 bytes per pixel) with the drawing operations a
/// chart needs: rectangles, thick lines, filled circles and text in a built-in 5×7 bitmap font. No
/// anti-aliasing: every pixel drawn has exactly the colour asked for. Drawing outside the canvas is
/// clipped, never an error.
/// </summary>
public sealed class Canvas
{
    private readonly byte[] _pixels;

    public Canvas(int width, int height) : this(width, height, Rgb.White)
    {
    }

    public Canvas(int width, int height, Rgb background)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if ((long)width * height * 3 > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(height), height, "The canvas would be too large.");
        }
        Width = width;
        Height = height;
        _pixels = new byte[width * height * 3];
        Clear(background);
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>The pixels, R, G, B per pixel, row-major from the top-left corner.</summary>
    public ReadOnlySpan<byte> Pixels => _pixels;

    /// <summary>Height in pixels of a line of text at <paramref name="scale"/>, descender included.</summary>
    public static int TextHeight(int scale) => BitmapFont.CellHeight * scale;

    /// <summary>Height in pixels of capital letters and digits at <paramref name="scale"/>.</summary>
    public static int CapHeight(int scale) => BitmapFont.GlyphHeight * scale;

    /// <summary>Width in pixels of <paramref name="text"/> drawn at <paramref name="scale"/>.</summary>
    public static int MeasureText(string text, int scale = 2)
    {
        ArgumentNullException.ThrowIfNull(text);
        return BitmapFont.MeasureWidth(text, scale);
    }

    public Rgb GetPixel(int x, int y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(x);
        ArgumentOutOfRangeException.ThrowIfNegative(y);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(x, Width);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(y, Height);
        int i = ((y * Width) + x) * 3;
        return new Rgb(_pixels[i], _pixels[i + 1], _pixels[i + 2]);
    }

    /// <summary>Sets one pixel; coordinates outside the canvas are ignored.</summary>
    public void SetPixel(int x, int y, Rgb color)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
        {
            return;
        }
        int i = ((y * Width) + x) * 3;
        _pixels[i] = color.R;
        _pixels[i + 1] = color.G;
        _pixels[i + 2] = color.B;
    }

    public void Clear(Rgb color) => FillRect(0, 0, Width, Height, color);

    /// <summary>Fills the rectangle with top-left corner (<paramref name="x"/>, <paramref name="y"/>), clipped to the canvas.</summary>
    public void FillRect(int x, int y, int width, int height, Rgb color)
    {
        int x0 = Math.Max(x, 0), y0 = Math.Max(y, 0);
        int x1 = (int)Math.Min((long)x + width, Width), y1 = (int)Math.Min((long)y + height, Height);
        if (x0 >= x1 || y0 >= y1)
        {
            return;
        }
        Span<byte> row = _pixels.AsSpan(((y0 * Width) + x0) * 3, (x1 - x0) * 3);
        for (int i = 0; i < row.Length; i += 3)
        {
            row[i] = color.R;
            row[i + 1] = color.G;
            row[i + 2] = color.B;
        }
        for (int yy = y0 + 1; yy < y1; yy++)
        {
            row.CopyTo(_pixels.AsSpan(((yy * Width) + x0) * 3));
        }
    }

    /// <summary>The one-pixel outline of a rectangle (its outermost pixels).</summary>
    public void DrawRect(int x, int y, int width, int height, Rgb color)
    {
        if (width <= 0 || height <= 0)
        {
            return;
        }
        FillRect(x, y, width, 1, color);
        FillRect(x, y + height - 1, width, 1, color);
        FillRect(x, y, 1, height, color);
        FillRect(x + width - 1, y, 1, height, color);
    }

    /// <summary>
    /// A line from (<paramref name="x0"/>, <paramref name="y0"/>) to (<paramref name="x1"/>, <paramref name="y1"/>), both
    /// ends included (Bresenham). A thickness above 1 stamps a 2×2 square (thickness 2) or a disc of radius
    /// thickness / 2 (3 and up) at every point, so joins between consecutive segments are round and gap-free.
    /// </summary>
    public void DrawLine(int x0, int y0, int x1, int y1, Rgb color, int thickness = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(thickness, 1);
        // Clip far-away end points first so a wild coordinate cannot make the walk below take forever.
        if (!ClipLine(ref x0, ref y0, ref x1, ref y1, thickness))
        {
            return;
        }
        int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
        int dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
        int error = dx + dy;
        while (true)
        {
            Stamp(x0, y0, color, thickness);
            if (x0 == x1 && y0 == y1)
            {
                break;
            }
            int twice = 2 * error;
            if (twice >= dy)
            {
                error += dy;
                x0 += sx;
            }
            if (twice <= dx)
            {
                error += dx;
                y0 += sy;
            }
        }
    }

    /// <summary>A filled disc: every pixel whose centre is within <paramref name="radius"/> of (<paramref name="cx"/>, <paramref name="cy"/>).</summary>
    public void FillCircle(int cx, int cy, int radius, Rgb color)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(radius);
        long limit = ((long)radius * radius) + radius; // the "+ radius" rounds the outline the way people expect
        int top = (int)Math.Max((long)cy - radius, 0), bottom = (int)Math.Min((long)cy + radius, Height - 1L);
        for (int y = top; y <= bottom; y++)
        {
            long dy = (long)y - cy;
            int half = (int)Math.Sqrt(limit - (dy * dy));
            while ((long)half * half > limit - (dy * dy))
            {
                half--;
            }
            while ((long)(half + 1) * (half + 1) <= limit - (dy * dy))
            {
                half++;
            }
            FillRect((int)Math.Clamp((long)cx - half, int.MinValue / 2, int.MaxValue / 2), y, (2 * half) + 1, 1, color);
        }
    }

    /// <summary>
    /// Draws <paramref name="text"/> with its cell's top-left corner at (<paramref name="x"/>, <paramref name="y"/>),
    /// each font pixel a <paramref name="scale"/>×<paramref name="scale"/> square. One line; characters without a
    /// glyph (anything beyond printable ASCII, control characters) are drawn as <c>?</c>.
    /// </summary>
    public void DrawText(int x, int y, string text, Rgb color, int scale = 2)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        for (int i = 0; i < text.Length; i++)
        {
            ReadOnlySpan<byte> glyph = BitmapFont.Glyph(text[i]);
            int left = x + (i * BitmapFont.Advance * scale);
            for (int row = 0; row < glyph.Length; row++)
            {
                for (int column = 0; column < BitmapFont.GlyphWidth; column++)
                {
                    if ((glyph[row] & (1 << (BitmapFont.GlyphWidth - 1 - column))) != 0)
                    {
                        FillRect(left + (column * scale), y + (row * scale), scale, scale, color);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Draws <paramref name="text"/> turned a quarter-turn counter-clockwise, reading bottom to top (as a y-axis
    /// title does). (<paramref name="x"/>, <paramref name="y"/>) is the top-left corner of the turned text's bounding
    /// box, which is <see cref="TextHeight"/> wide and <see cref="MeasureText"/> tall.
    /// </summary>
    public void DrawTextVertical(int x, int y, string text, Rgb color, int scale = 2)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        int bottom = y + MeasureText(text, scale) - 1;
        for (int i = 0; i < text.Length; i++)
        {
            ReadOnlySpan<byte> glyph = BitmapFont.Glyph(text[i]);
            int along = i * BitmapFont.Advance * scale;
            for (int row = 0; row < glyph.Length; row++)
            {
                for (int column = 0; column < BitmapFont.GlyphWidth; column++)
                {
                    if ((glyph[row] & (1 << (BitmapFont.GlyphWidth - 1 - column))) != 0)
                    {
                        // Unturned (u, v) = (along + column, row) maps to (x + v, bottom - u).
                        FillRect(x + (row * scale), bottom - along - (column * scale) - (scale - 1), scale, scale, color);
                    }
                }
            }
        }
    }

    /// <summary>The canvas as PNG bytes (RGB, 8 bits per channel); the same pixels always give the same bytes.</summary>
    public byte[] EncodePng() => PngEncoder.Encode(_pixels, Width, Height, channels: 3);

    /// <summary>Writes the canvas as a PNG file, atomically (temporary file in the same directory, then rename).</summary>
    public void WritePng(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        AtomicFile.Write(path, stream => PngEncoder.Write(stream, _pixels, Width, Height, channels: 3));
    }

    private void Stamp(int x, int y, Rgb color, int thickness)
    {
        if (thickness == 1)
        {
            SetPixel(x, y, color);
        }
        else if (thickness == 2)
        {
            FillRect(x, y, 2, 2, color);
        }
        else
        {
            FillCircle(x, y, thickness / 2, color);
        }
    }

    /// <summary>
    /// Cohen–Sutherland clipping against the canvas grown by the stamp size. Returns false when nothing of the
    /// line is visible. Clipped end points are rounded, which moves the visible part by at most a pixel.
    /// </summary>
    private bool ClipLine(ref int x0, ref int y0, ref int x1, ref int y1, int thickness)
    {
        double minX = -thickness, minY = -thickness, maxX = Width + thickness, maxY = Height + thickness;
        double ax = x0, ay = y0, bx = x1, by = y1;
        int codeA = Code(ax, ay), codeB = Code(bx, by);
        while (true)
        {
            if ((codeA | codeB) == 0)
            {
                break;
            }
            if ((codeA & codeB) != 0)
            {
                return false;
            }
            int outside = codeA != 0 ? codeA : codeB;
            double x, y;
            if ((outside & 8) != 0)
            {
                x = ax + ((bx - ax) * (maxY - ay) / (by - ay));
                y = maxY;
            }
            else if ((outside & 4) != 0)
            {
                x = ax + ((bx - ax) * (minY - ay) / (by - ay));
                y = minY;
            }
            else if ((outside & 2) != 0)
            {
                y = ay + ((by - ay) * (maxX - ax) / (bx - ax));
                x = maxX;
            }
            else
            {
                y = ay + ((by - ay) * (minX - ax) / (bx - ax));
                x = minX;
            }
            if (outside == codeA)
            {
                ax = x;
                ay = y;
                codeA = Code(ax, ay);
            }
            else
            {
                bx = x;
                by = y;
                codeB = Code(bx, by);
            }
        }
        x0 = (int)Math.Round(ax);
        y0 = (int)Math.Round(ay);
        x1 = (int)Math.Round(bx);
        y1 = (int)Math.Round(by);
        return true;

        int Code(double px, double py) =>
            (px < minX ? 1 : 0) | (px > maxX ? 2 : 0) | (py < minY ? 4 : 0) | (py > maxY ? 8 : 0);
    }
}
