using System.Globalization;

namespace CudaFinetune.Reporting;

/// <summary>
/// The loss curve a fine-tuning run writes as <c>loss.png</c>: 800×500 pixels, white background, the
/// training loss as a blue line and the evaluation loss as orange markers joined by a line, against the
/// optimizer step, with nice ticks on both axes, a legend and a title. Points whose step or value is NaN
/// or infinite are left out (and counted in a note); with no points at all the axes are still drawn, with
/// a "no data" note. The same inputs always give the same bytes.
/// </summary>
public static class LossChart
{
    public const int Width = 800;
    public const int Height = 500;

    /// <summary>matplotlib's default blue ("tab:blue").</summary>
    public static Rgb TrainColor => new(31, 119, 180);

    /// <summary>matplotlib's default orange ("tab:orange").</summary>
    public static Rgb EvalColor => new(255, 127, 14);

    internal static Rgb TextColor => new(33, 33, 33);
    internal static Rgb AxisColor => new(68, 68, 68);
    internal static Rgb GridColor => new(228, 228, 228);
    internal static Rgb NoteColor => new(120, 120, 120);

    private const int LabelScale = 2;
    private const int TickLength = 5;
    private const int MarkerRadius = 4;
    private const int LineThickness = 2;

    /// <summary>Renders the chart and writes it to <paramref name="path"/> as PNG, atomically (temporary file, then rename).</summary>
    public static void Write(
        string path,
        IReadOnlyList<(double Step, double Value)> trainLoss,
        IReadOnlyList<(double Step, double Value)> evalLoss,
        string title)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Render(trainLoss, evalLoss, title).WritePng(path);
    }

    /// <summary>Renders the chart onto a new <see cref="Width"/>×<see cref="Height"/> canvas.</summary>
    public static Canvas Render(
        IReadOnlyList<(double Step, double Value)> trainLoss,
        IReadOnlyList<(double Step, double Value)> evalLoss,
        string title) => Render(trainLoss, evalLoss, title, out _);

    internal static Canvas Render(
        IReadOnlyList<(double Step, double Value)> trainLoss,
        IReadOnlyList<(double Step, double Value)> evalLoss,
        string title,
        out ChartFrame frame)
    {
        ArgumentNullException.ThrowIfNull(trainLoss);
        ArgumentNullException.ThrowIfNull(evalLoss);
        title ??= "";

        var train = Finite(trainLoss, out int trainSkipped);
        var eval = Finite(evalLoss, out int evalSkipped);
        int skipped = trainSkipped + evalSkipped;
        bool hasData = train.Count + eval.Count > 0;

        (AxisScale xAxis, AxisScale yAxis) = Scales(train, eval);
        var canvas = new Canvas(Width, Height, Rgb.White);

        // Vertical layout: title, legend row, plot, x tick labels, x-axis title.
        int titleScale = Canvas.MeasureText(title, 3) <= Width - 40 ? 3 : 2;
        string shownTitle = Fit(title, titleScale, Width - 40);
        const int titleTop = 12;
        int legendTop = titleTop + Canvas.TextHeight(titleScale) + 8;
        int plotTop = legendTop + Canvas.TextHeight(LabelScale) + 14;
        int xTitleTop = Height - 12 - Canvas.TextHeight(LabelScale);
        int xLabelTop = xTitleTop - 8 - Canvas.TextHeight(LabelScale);
        int plotBottom = xLabelTop - 6 - TickLength;

        // Horizontal layout: y-axis title (turned), y tick labels, plot, room for the last x label.
        int yLabelWidth = 0;
        foreach (string label in yAxis.Labels)
        {
            yLabelWidth = Math.Max(yLabelWidth, Canvas.MeasureText(label, LabelScale));
        }
        const int yTitleLeft = 14;
        int plotLeft = yTitleLeft + Canvas.TextHeight(LabelScale) + 10 + yLabelWidth + 6 + TickLength;
        int plotRight = Width - 1 - Math.Max(24, (Canvas.MeasureText(xAxis.Labels[^1], LabelScale) / 2) + 8);
        frame = new ChartFrame(plotLeft, plotTop, plotRight, plotBottom, xAxis, yAxis);

        // Grid and ticks.
        for (int i = 0; i < xAxis.Ticks.Count; i++)
        {
            int x = frame.PixelX(xAxis.Ticks[i]);
            canvas.FillRect(x, plotTop, 1, plotBottom - plotTop + 1, GridColor);
            canvas.FillRect(x, plotBottom + 1, 1, TickLength, AxisColor);
            string label = xAxis.Labels[i];
            canvas.DrawText(x - (Canvas.MeasureText(label, LabelScale) / 2), xLabelTop, label, TextColor, LabelScale);
        }
        for (int i = 0; i < yAxis.Ticks.Count; i++)
        {
            int y = frame.PixelY(yAxis.Ticks[i]);
            canvas.FillRect(plotLeft, y, plotRight - plotLeft + 1, 1, GridColor);
            canvas.FillRect(plotLeft - TickLength, y, TickLength, 1, AxisColor);
            string label = yAxis.Labels[i];
            int labelRight = plotLeft - TickLength - 6;
            canvas.DrawText(labelRight - Canvas.MeasureText(label, LabelScale), y - (Canvas.CapHeight(LabelScale) / 2), label, TextColor, LabelScale);
        }

        // Axes: the left and bottom edges of the plot.
        canvas.FillRect(plotLeft, plotTop, 1, plotBottom - plotTop + 1, AxisColor);
        canvas.FillRect(plotLeft, plotBottom, plotRight - plotLeft + 1, 1, AxisColor);

        // Axis titles.
        const string xTitle = "step", yTitle = "loss";
        canvas.DrawText(((plotLeft + plotRight) / 2) - (Canvas.MeasureText(xTitle, LabelScale) / 2), xTitleTop, xTitle, TextColor, LabelScale);
        canvas.DrawTextVertical(yTitleLeft, ((plotTop + plotBottom) / 2) - (Canvas.MeasureText(yTitle, LabelScale) / 2), yTitle, TextColor, LabelScale);

        // Data: the training line, then the evaluation line and its markers on top.
        DrawPolyline(canvas, frame, train, TrainColor);
        if (train.Count == 1)
        {
            canvas.FillCircle(frame.PixelX(train[0].Step), frame.PixelY(train[0].Value), 3, TrainColor);
        }
        DrawPolyline(canvas, frame, eval, EvalColor);
        foreach ((double step, double value) in eval)
        {
            canvas.FillCircle(frame.PixelX(step), frame.PixelY(value), MarkerRadius, EvalColor);
        }

        if (!hasData)
        {
            const string noData = "no data";
            canvas.DrawText(
                ((plotLeft + plotRight) / 2) - (Canvas.MeasureText(noData, LabelScale) / 2),
                ((plotTop + plotBottom) / 2) - (Canvas.CapHeight(LabelScale) / 2),
                noData, NoteColor, LabelScale);
        }

        // Title, then the legend row under it (only the series that have points, and the skipped-points note).
        canvas.DrawText((Width - Canvas.MeasureText(shownTitle, titleScale)) / 2, titleTop, shownTitle, TextColor, titleScale);
        DrawLegend(canvas, legendTop, train.Count > 0, eval.Count > 0, skipped);
        return canvas;
    }

    private static List<(double Step, double Value)> Finite(IReadOnlyList<(double Step, double Value)> series, out int skipped)
    {
        var finite = new List<(double Step, double Value)>(series.Count);
        skipped = 0;
        for (int i = 0; i < series.Count; i++)
        {
            (double step, double value) = series[i];
            if (double.IsFinite(step) && double.IsFinite(value))
            {
                finite.Add((step, value));
            }
            else
            {
                skipped++;
            }
        }
        return finite;
    }

    private static (AxisScale X, AxisScale Y) Scales(List<(double Step, double Value)> train, List<(double Step, double Value)> eval)
    {
        double xMin = double.PositiveInfinity, xMax = double.NegativeInfinity;
        double yMin = double.PositiveInfinity, yMax = double.NegativeInfinity;
        bool integerSteps = true;
        foreach (var series in (ReadOnlySpan<List<(double Step, double Value)>>)[train, eval])
        {
            foreach ((double step, double value) in series)
            {
                xMin = Math.Min(xMin, step);
                xMax = Math.Max(xMax, step);
                yMin = Math.Min(yMin, value);
                yMax = Math.Max(yMax, value);
                integerSteps &= step == Math.Floor(step);
            }
        }
        if (xMin > xMax)
        {
            return (AxisScale.Covering(0, 10, integerSteps: true), AxisScale.Covering(0, 1, integerSteps: false));
        }
        // A little room above and below the values; the x axis only gets rounded out to its ticks.
        double margin = (yMax - yMin) * 0.05;
        if (double.IsFinite(yMin - margin) && double.IsFinite(yMax + margin))
        {
            yMin -= margin;
            yMax += margin;
        }
        return (AxisScale.Covering(xMin, xMax, integerSteps), AxisScale.Covering(yMin, yMax, integerSteps: false));
    }

    private static void DrawPolyline(Canvas canvas, ChartFrame frame, List<(double Step, double Value)> points, Rgb color)
    {
        for (int i = 1; i < points.Count; i++)
        {
            canvas.DrawLine(
                frame.PixelX(points[i - 1].Step), frame.PixelY(points[i - 1].Value),
                frame.PixelX(points[i].Step), frame.PixelY(points[i].Value),
                color, LineThickness);
        }
    }

    private static void DrawLegend(Canvas canvas, int top, bool train, bool eval, int skipped)
    {
        const int sample = 28, gapAfterSample = 10, gapBetween = 28;
        const string trainLabel = "train loss", evalLabel = "eval loss";
        string note = skipped == 0 ? ""
            : string.Create(CultureInfo.InvariantCulture, $"({skipped} non-finite {(skipped == 1 ? "point" : "points")} skipped)");

        int width = 0;
        void Add(int w) => width += width == 0 ? w : gapBetween + w;
        if (train)
        {
            Add(sample + gapAfterSample + Canvas.MeasureText(trainLabel, LabelScale));
        }
        if (eval)
        {
            Add(sample + gapAfterSample + Canvas.MeasureText(evalLabel, LabelScale));
        }
        if (note.Length > 0)
        {
            Add(Canvas.MeasureText(note, LabelScale));
        }

        int x = Math.Max(4, (Width - width) / 2);
        int middle = top + (Canvas.CapHeight(LabelScale) / 2);
        if (train)
        {
            canvas.DrawLine(x, middle, x + sample - 1, middle, TrainColor, LineThickness);
            x += sample + gapAfterSample;
            canvas.DrawText(x, top, trainLabel, TextColor, LabelScale);
            x += Canvas.MeasureText(trainLabel, LabelScale) + gapBetween;
        }
        if (eval)
        {
            canvas.DrawLine(x, middle, x + sample - 1, middle, EvalColor, LineThickness);
            canvas.FillCircle(x + (sample / 2), middle, MarkerRadius, EvalColor);
            x += sample + gapAfterSample;
            canvas.DrawText(x, top, evalLabel, TextColor, LabelScale);
            x += Canvas.MeasureText(evalLabel, LabelScale) + gapBetween;
        }
        if (note.Length > 0)
        {
            canvas.DrawText(x, top, note, NoteColor, LabelScale);
        }
    }

    /// <summary><paramref name="text"/>, cut and ended with "..." when wider than <paramref name="maxWidth"/>.</summary>
    private static string Fit(string text, int scale, int maxWidth)
    {
        if (Canvas.MeasureText(text, scale) <= maxWidth)
        {
            return text;
        }
        int keep = text.Length;
        while (keep > 0 && Canvas.MeasureText(string.Concat(text.AsSpan(0, keep), "..."), scale) > maxWidth)
        {
            keep--;
        }
        return string.Concat(text.AsSpan(0, keep), "...");
    }
}

/// <summary>Where the plot area lies on the canvas and how data maps onto it.</summary>
internal sealed class ChartFrame(int left, int top, int right, int bottom, AxisScale x, AxisScale y)
{
    public int Left { get; } = left;
    public int Top { get; } = top;
    public int Right { get; } = right;
    public int Bottom { get; } = bottom;
    public AxisScale X { get; } = x;
    public AxisScale Y { get; } = y;

    public int PixelX(double step) => Left + (int)Math.Round((step - X.Min) / (X.Max - X.Min) * (Right - Left));

    public int PixelY(double value) => Bottom - (int)Math.Round((value - Y.Min) / (Y.Max - Y.Min) * (Bottom - Top));
}
