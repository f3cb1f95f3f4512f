using System.Globalization;

namespace CudaFinetune.Reporting;

/// <summary>
/// A linear axis from <see cref="Min"/> to <see cref="Max"/> with "nice" ticks: multiples of a step
/// 1, 2, 2.5, 4 or 5 × 10^k, 5 or 6 of them where the step choice allows (4 to 7 otherwise). The axis
/// ends are rounded out to ticks where that wastes little room, else they are the data's ends.
/// </summary>
internal sealed class AxisScale
{
    private static readonly double[] Mantissas = [1, 2, 2.5, 4, 5];

    private AxisScale(double min, double max, double[] ticks, string[] labels)
    {
        Min = min;
        Max = max;
        Ticks = ticks;
        Labels = labels;
    }

    public double Min { get; }

    public double Max { get; }

    public IReadOnlyList<double> Ticks { get; }

    public IReadOnlyList<string> Labels { get; }

    /// <summary>
    /// The nice axis covering [<paramref name="low"/>, <paramref name="high"/>] (finite, low ≤ high; an empty
    /// range is widened first). <paramref name="integerSteps"/> keeps the step at 1 or more (optimizer steps).
    /// </summary>
    public static AxisScale Covering(double low, double high, bool integerSteps)
    {
        if (!double.IsFinite(low) || !double.IsFinite(high) || low > high)
        {
            throw new ArgumentException($"Cannot scale an axis over [{low}, {high}].");
        }
        double magnitude = Math.Max(Math.Abs(low), Math.Abs(high));
        if (high - low <= magnitude * 1e-9)
        {
            // One value (or values equal to the last few bits): show it in the middle of a small range.
            double pad = integerSteps ? Math.Max(2, Math.Round(magnitude * 0.05)) : (magnitude > 0 ? magnitude * 0.1 : 0.5);
            low -= pad;
            high += pad;
        }
        if (!double.IsFinite(high - low))
        {
            return Plain(low, high);
        }

        double span = high - low;
        int exponent = (int)Math.Floor(Math.Log10(span));
        double bestScore = double.PositiveInfinity;
        (double Step, int Exponent, int Mantissa, long First, long Last, bool Loose) best = default;
        for (int e = exponent - 2; e <= exponent + 1; e++)
        {
            double power = Math.Pow(10, e);
            for (int m = 0; m < Mantissas.Length; m++)
            {
                double step = Mantissas[m] * power;
                if (integerSteps && (step < 1 || (Mantissas[m] == 2.5 && e == 0)))
                {
                    continue;
                }
                double outerFirst = Math.Floor((low / step) + 1e-9), outerLast = Math.Ceiling((high / step) - 1e-9);
                if (Math.Abs(outerFirst) > 1e15 || Math.Abs(outerLast) > 1e15)
                {
                    continue;
                }
                // Loose: the axis is rounded out to the ticks just outside the data. Tight: the axis ends at the
                // data and the ticks are those inside it. The aim is 5 or 6 ticks; then a loose axis that wastes
                // little room, or else a tight one; then the plainer step (earlier mantissa).
                Consider(step, e, m, (long)outerFirst, (long)outerLast, loose: true, ((((outerLast - outerFirst) * step) - span) / span) + (m * 0.01));
                double innerFirst = Math.Ceiling((low / step) - 1e-9), innerLast = Math.Floor((high / step) + 1e-9);
                Consider(step, e, m, (long)innerFirst, (long)innerLast, loose: false, 0.25 + (m * 0.01));
            }
        }
        if (double.IsPositiveInfinity(bestScore))
        {
            return Plain(low, high);
        }

        int tickCount = (int)(best.Last - best.First + 1);
        var ticks = new double[tickCount];
        for (int i = 0; i < tickCount; i++)
        {
            ticks[i] = (best.First + i) * best.Step;
        }
        string[] labels = Format(ticks, best.Exponent, Mantissas[best.Mantissa]);
        return best.Loose
            ? new AxisScale(ticks[0], ticks[^1], ticks, labels)
            : new AxisScale(Math.Min(low, ticks[0]), Math.Max(high, ticks[^1]), ticks, labels);

        void Consider(double step, int e, int m, long first, long last, bool loose, double cost)
        {
            long count = last - first + 1;
            if (count < 2)
            {
                return;
            }
            double score = (count is 5 or 6 ? 0 : Math.Abs(count - 5.5) * 10) + cost;
            if (score < bestScore)
            {
                bestScore = score;
                best = (step, e, m, first, last, loose);
            }
        }
    }

    /// <summary>Axis ends as given, ticked at both ends only: the fallback for ranges too wide to subdivide.</summary>
    private static AxisScale Plain(double low, double high)
    {
        double[] ticks = [low, high];
        return new AxisScale(low, high, ticks, [Exponential(low), Exponential(high)]);
    }

    /// <summary>Labels with just enough decimals for the step; exponent notation for very large or small values.</summary>
    internal static string[] Format(double[] ticks, int exponent, double mantissa)
    {
        double largest = 0;
        foreach (double t in ticks)
        {
            largest = Math.Max(largest, Math.Abs(t));
        }
        var labels = new string[ticks.Length];
        // A step of m × 10^e needs -e decimals, one more when m is 2.5.
        int decimals = Math.Max(0, -exponent + (mantissa == 2.5 ? 1 : 0));
        // Exponent notation for very large or very small values (or a step far below the values' size), with
        // as many significant digits as the step needs.
        bool exponential = largest >= 1e6 || largest < 1e-3 || decimals > 10;
        int significant = Math.Clamp((int)Math.Floor(Math.Log10(largest) + 1e-9) - exponent + 1 + (mantissa == 2.5 ? 1 : 0), 1, 15);
        for (int i = 0; i < ticks.Length; i++)
        {
            labels[i] = exponential
                ? Exponential(ticks[i], significant)
                : ticks[i].ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        }
        return labels;
    }

    private static string Exponential(double value, int significant = 4) =>
        value == 0 ? "0" : value.ToString("0." + new string('#', significant - 1) + "e-0", CultureInfo.InvariantCulture);
}
