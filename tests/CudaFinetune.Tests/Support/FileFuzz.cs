using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// The loop every hostile-file test shares: many inputs written to one path and loaded, each either loaded or refused
/// with one <see cref="UserErrorException"/> naming the file — never another exception, a hang, or an allocation sized
/// by a lying field.
/// </summary>
internal static class FileFuzz
{
    /// <summary>The inputs are a few kilobytes, so a case that allocates more has trusted a length field.</summary>
    public const long DefaultAllocationBudget = 16 << 20;

    /// <summary>A hang guard, not a speed check: every run takes a second or two, so this only trips on a loop that does not end.</summary>
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(120);

    /// <summary>Catches input that is slow without hanging (quadratic or worse in a length); a few-kilobyte case takes milliseconds.</summary>
    private static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Writes <paramref name="cases"/> inputs from <paramref name="next"/> to <paramref name="path"/> and runs
    /// <paramref name="load"/> on each. Fails, printing the input as base64, on any exception but a
    /// <see cref="UserErrorException"/> naming the file, on a case over its time or allocation budget, and when the
    /// whole run outlasts <see cref="RunLimit"/> (a hang).
    /// </summary>
    public static (int Loaded, int Refused) Run(string path, int cases, Func<byte[]> next, Action<string> load, long allocationBudget = DefaultAllocationBudget)
    {
        int loaded = 0, refused = 0, at = -1;
        byte[] input = [];
        string Case() => $"case {at} ({Convert.ToBase64String(input)})";
        var run = Task.Run(() =>
        {
            for (at = 0; at < cases; at++)
            {
                input = next();
                File.WriteAllBytes(path, input);
                var clock = Stopwatch.StartNew();
                long allocated = GC.GetAllocatedBytesForCurrentThread();
                try
                {
                    load(path);
                    loaded++;
                }
                catch (UserErrorException e)
                {
                    if (!e.Message.Contains(path, StringComparison.Ordinal))
                    {
                        return $"{Case()}: the message does not name the file: {e.Message}";
                    }
                    refused++;
                }
                catch (Exception e)
                {
                    return $"{Case()}: {e.GetType().Name}: {e.Message}";
                }
                allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
                if (allocated > allocationBudget || clock.Elapsed > CaseLimit)
                {
                    return $"{Case()}: took {clock.Elapsed.TotalSeconds:F1} s and allocated {allocated >> 20} MiB";
                }
            }
            return null;
        });
        Assert.That(run.Wait(RunLimit), Is.True, () => $"{Case()} still runs after {RunLimit.TotalSeconds} s: a hang");
        Assert.That(run.Result, Is.Null);
        TestContext.Out.WriteLine($"{cases} cases: {loaded} loaded, {refused} refused");
        return (loaded, refused);
    }

    public static void AssertBothOutcomes((int Loaded, int Refused) tally, int cases)
    {
        Assert.That(tally.Refused, Is.GreaterThan(cases / 10), "the mutations do break files");
        Assert.That(tally.Loaded, Is.GreaterThan(0), "some mutations keep the file valid");
    }

    /// <summary>Replaces the value of a random <paramref name="values"/> match with one of <paramref name="replacements"/>.</summary>
    public static byte[] ReplaceValue(string text, MatchCollection values, string[] replacements, Random random)
    {
        Group value = values[random.Next(values.Count)].Groups["value"];
        return Encoding.UTF8.GetBytes(string.Concat(text.AsSpan(0, value.Index), replacements[random.Next(replacements.Length)], text.AsSpan(value.Index + value.Length)));
    }
}
