using System.Globalization;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// One kernel run on one case, compared element by element with its reference: the largest absolute
/// error, the largest relative error (|got − expected| / max(1, |expected|), the measure the "rel"
/// tolerances use), the tolerance in words, and — when it failed — the first element outside it.
/// </summary>
public sealed record KernelCheckResult(string Kernel, string Case, double MaxAbsError, double MaxRelError, string Tolerance, string? Mismatch, TimeSpan Elapsed)
{
    public bool Passed => Mismatch is null;
}

/// <summary>Element-wise comparison of a kernel's output with its reference.</summary>
public static class KernelComparison
{
    /// <summary>
    /// Compares <paramref name="got"/> with <paramref name="expected"/>: element i passes when it is within
    /// <paramref name="allowed"/>[i] (NaN never passes, so outputs a kernel failed to write — poisoned
    /// with NaN first — fail). <paramref name="describe"/> names an element for the mismatch message.
    /// </summary>
    public static KernelCheckResult Compare(string kernel, string @case, ReadOnlySpan<double> got, ReadOnlySpan<double> expected,
        ReadOnlySpan<double> allowed, string tolerance, TimeSpan elapsed, Func<int, string>? describe = null)
    {
        if (got.Length != expected.Length || allowed.Length != expected.Length)
        {
            throw new ArgumentException($"{kernel} {@case}: {got.Length} results, {expected.Length} expected, {allowed.Length} tolerances");
        }
        double maxError = 0, maxRelative = 0;
        string? mismatch = null;
        for (int i = 0; i < got.Length; i++)
        {
            double error = Math.Abs(got[i] - expected[i]);
            if (double.IsNaN(error))
            {
                error = double.PositiveInfinity;
            }
            maxError = Math.Max(maxError, error);
            maxRelative = Math.Max(maxRelative, error / Math.Max(1, Math.Abs(expected[i])));
            if (mismatch is null && !(error <= allowed[i]))
            {
                string where = describe?.Invoke(i) ?? string.Create(CultureInfo.InvariantCulture, $"element {i}");
                mismatch = $"{where}: got {Format(got[i])}, expected {Format(expected[i])}";
            }
        }
        return new KernelCheckResult(kernel, @case, maxError, maxRelative, tolerance, mismatch, elapsed);
    }

    /// <summary>Within <paramref name="relative"/> · max(1, |expected|) for every element.</summary>
    public static KernelCheckResult Compare(string kernel, string @case, ReadOnlySpan<float> got, ReadOnlySpan<float> expected, double relative,
        TimeSpan elapsed, Func<int, string>? describe = null)
    {
        double[] g = ToDouble(got), e = ToDouble(expected);
        double[] allowed = [.. e.Select(x => relative * Math.Max(1, Math.Abs(x)))];
        string tolerance = relative == 0 ? "exact" : string.Create(CultureInfo.InvariantCulture, $"{relative:0e0} rel");
        return Compare(kernel, @case, g, e, allowed, tolerance, elapsed, describe);
    }

    /// <summary>Bit for bit.</summary>
    public static KernelCheckResult CompareExact(string kernel, string @case, ReadOnlySpan<uint> got, ReadOnlySpan<uint> expected, TimeSpan elapsed,
        Func<int, string>? describe = null)
    {
        double[] g = [.. got.ToArray().Select(x => (double)x)], e = [.. expected.ToArray().Select(x => (double)x)];
        return Compare(kernel, @case, g, e, new double[e.Length], "exact", elapsed, describe);
    }

    /// <summary>Shortest text that reads back as the same value, as a float when it is one (kernels compute in float).</summary>
    private static string Format(double value) => (float)value == value || double.IsNaN(value)
        ? ((float)value).ToString("R", CultureInfo.InvariantCulture)
        : value.ToString("R", CultureInfo.InvariantCulture);

    private static double[] ToDouble(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            result[i] = values[i];
        }
        return result;
    }
}
