using CudaFinetune.Cuda.Verification;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Verification;

/// <summary>The comparison every kernel check rests on fails when it should: outside the tolerance, NaN (an unwritten output), a wrong bit.</summary>
[TestFixture]
public sealed class KernelComparisonTests
{
    [Test]
    public void Values_within_the_relative_tolerance_pass_and_report_the_largest_error()
    {
        var result = KernelComparison.Compare("k", "c", [1.0f, 200.0f], [1.000001f, 200.001f], 1e-5, TimeSpan.Zero);
        Assert.That(result.Passed, Is.True);
        Assert.That(result.MaxAbsError, Is.EqualTo(0.001).Within(1e-5));
        Assert.That(result.Tolerance, Is.EqualTo("1e-5 rel"));
    }

    [Test]
    public void The_first_element_outside_the_tolerance_is_named()
    {
        var result = KernelComparison.Compare("k", "c", [1.0f, 2.1f, 3.5f], [1.0f, 2.0f, 3.0f], 1e-5, TimeSpan.Zero, i => $"x[{i}]");
        Assert.That(result.Passed, Is.False);
        Assert.That(result.Mismatch, Does.StartWith("x[1]: got 2.1"));
    }

    [Test]
    public void An_unwritten_output_poisoned_with_nan_fails()
    {
        var result = KernelComparison.Compare("k", "c", [float.NaN], [0.0f], 1, TimeSpan.Zero);
        Assert.That(result.Passed, Is.False);
        Assert.That(result.MaxAbsError, Is.EqualTo(double.PositiveInfinity));
    }

    [Test]
    public void Exact_comparison_fails_on_one_bit()
    {
        Assert.That(KernelComparison.CompareExact("k", "c", [0x10001u], [0x10001u], TimeSpan.Zero).Passed, Is.True);
        Assert.That(KernelComparison.CompareExact("k", "c", [0x10001u], [0x10000u], TimeSpan.Zero).Passed, Is.False);
    }

    [Test]
    public void Every_check_has_a_unique_name()
        => Assert.That(KernelChecks.All.Select(c => c.Name), Is.Unique);
}
