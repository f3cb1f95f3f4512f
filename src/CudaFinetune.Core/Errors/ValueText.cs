using System.Globalization;

namespace CudaFinetune.Errors;

/// <summary>
/// How a value a user wrote is read as a number, and how an integer's allowed range is said in a message: the rules
/// shared by the JSON files' reader (IO's JsonFields) and the config files' values (Config's ConfigValue), so that "4", "4.0", "1e3", "-0" and "NaN" mean the same in every file.
/// Integers have an optional sign and digits only (no fraction, no exponent); numbers are finite.
/// </summary>
internal static class ValueText
{
    /// <summary>An integer: optional sign, digits, nothing else (invariant culture).</summary>
    public static bool TryParseInteger(string text, out long value)
        => long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    /// <summary>A non-negative integer that may need all 64 bits (a seed).</summary>
    public static bool TryParseUnsigned(string text, out ulong value)
        => ulong.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    /// <summary>A finite number (decimal or exponent form); NaN, infinities and overflows are not numbers here.</summary>
    public static bool TryParseNumber(string text, out double value)
        => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    /// <summary>
    /// "an integer", "an integer ≥ 0", "an integer ≤ 9" or "an integer from 0 to 10000000": what an integer in
    /// [<paramref name="min"/>, <paramref name="max"/>] is called in a message (an end at the 64-bit limit is left unsaid).
    /// </summary>
    public static string Integer(long min, long max) => (min, max) switch
    {
        (long.MinValue, long.MaxValue) => "an integer",
        (_, long.MaxValue) => $"an integer ≥ {min}",
        (long.MinValue, _) => $"an integer ≤ {max}",
        _ => $"an integer from {min} to {max}",
    };
}
