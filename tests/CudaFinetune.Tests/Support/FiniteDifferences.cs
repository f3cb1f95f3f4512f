using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// Central finite differences in double precision: ∂L/∂x_i ≈ (L(x + h e_i) − L(x − h e_i)) / 2h.
/// With h = 1e-5 and smooth L the truncation error is O(h²) ≈ 1e-10 and the rounding error
/// O(ε/h) ≈ 1e-11, so analytic gradients must agree to |Δ| ≤ 1e-7 + 1e-6·|g| (the tolerance every
/// gradient test states through <see cref="AbsoluteTolerance"/> and <see cref="RelativeTolerance"/>).
/// </summary>
internal static class FiniteDifferences
{
    public const double Step = 1e-5;
    public const double AbsoluteTolerance = 1e-7;
    public const double RelativeTolerance = 1e-6;

    /// <summary>
    /// Compares <paramref name="analytic"/> with central differences of <paramref name="loss"/> for the
    /// given coordinates of <paramref name="x"/> (all of them when <paramref name="indices"/> is null).
    /// <paramref name="loss"/> reads x afresh on every call; x is restored afterwards.
    /// </summary>
    public static void AssertMatches(string what, double[] x, double[] analytic, Func<double> loss, Action? afterWrite = null, IEnumerable<int>? indices = null)
    {
        Assert.That(analytic, Has.Length.EqualTo(x.Length), $"{what}: gradient length");
        int checkedCount = 0;
        double worst = 0;
        foreach (int i in indices ?? Enumerable.Range(0, x.Length))
        {
            double saved = x[i];
            x[i] = saved + Step;
            afterWrite?.Invoke();
            double plus = loss();
            x[i] = saved - Step;
            afterWrite?.Invoke();
            double minus = loss();
            x[i] = saved;
            afterWrite?.Invoke();
            double numeric = (plus - minus) / (2 * Step);
            double error = Math.Abs(numeric - analytic[i]);
            double allowed = AbsoluteTolerance + RelativeTolerance * Math.Abs(numeric);
            worst = Math.Max(worst, error / allowed);
            Assert.That(error, Is.LessThanOrEqualTo(allowed), $"{what}[{i}]: analytic {analytic[i]:R}, numeric {numeric:R}");
            checkedCount++;
        }
        Assert.That(checkedCount, Is.GreaterThan(0), $"{what}: no coordinate checked");
        TestContext.Out.WriteLine($"{what}: {checkedCount} coordinates, worst error {worst:P1} of tolerance");
    }

    /// <summary>Up to <paramref name="count"/> distinct indices below <paramref name="length"/>, chosen reproducibly.</summary>
    public static IEnumerable<int> Sample(Random rng, int length, int count)
        => length <= count ? Enumerable.Range(0, length) : Enumerable.Range(0, length).OrderBy(_ => rng.Next()).Take(count).Order();

    /// <summary>Σ w ⊙ y: a scalar whose gradient with respect to y is w.</summary>
    public static double Weighted(double[] y, double[] w)
    {
        double s = 0;
        for (int i = 0; i < y.Length; i++)
        {
            s += y[i] * w[i];
        }
        return s;
    }
}
