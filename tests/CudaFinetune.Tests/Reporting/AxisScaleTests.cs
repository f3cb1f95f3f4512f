using System.Globalization;
using CudaFinetune.Reporting;
using NUnit.Framework;

namespace CudaFinetune.Tests.Reporting;

public sealed class AxisScaleTests
{
    [TestCase(0.0, 1.0, false, new[] { 0.0, 0.2, 0.4, 0.6, 0.8, 1.0 }, new[] { "0.0", "0.2", "0.4", "0.6", "0.8", "1.0" })]
    [TestCase(1.0, 1000.0, true, new[] { 0.0, 200, 400, 600, 800, 1000 }, new[] { "0", "200", "400", "600", "800", "1000" })]
    [TestCase(0.31, 2.43, false, new[] { 0.0, 0.5, 1.0, 1.5, 2.0, 2.5 }, new[] { "0.0", "0.5", "1.0", "1.5", "2.0", "2.5" })]
    public void Typical_ranges_get_round_ticks(double low, double high, bool integerSteps, double[] ticks, string[] labels)
    {
        var axis = AxisScale.Covering(low, high, integerSteps);
        Assert.That(axis.Ticks, Is.EqualTo(ticks).Within(1e-12));
        Assert.That(axis.Labels, Is.EqualTo(labels));
    }

    [Test]
    public void Over_many_ranges_ticks_cover_the_data_number_five_or_six_and_have_distinct_labels()
    {
        foreach (double low in new[] { -3.7, -0.02, 0, 0.001, 0.3, 1, 2.2, 17, 950, 123456 })
        {
            for (double span = 1e-4; span < 1e7; span *= 1.37)
            {
                foreach (bool integer in new[] { false, true })
                {
                    if (integer && span < 1)
                    {
                        continue;
                    }
                    double high = low + span;
                    var axis = AxisScale.Covering(low, high, integer);
                    string where = string.Create(CultureInfo.InvariantCulture, $"[{low}, {high}] integer={integer}");
                    Assert.That(axis.Min, Is.LessThanOrEqualTo(low + (span * 1e-9)), where);
                    Assert.That(axis.Max, Is.GreaterThanOrEqualTo(high - (span * 1e-9)), where);
                    // Integer steps on a short range cannot make 5 ticks (1..3 gives 1, 2, 3).
                    Assert.That(axis.Ticks, Has.Count.InRange(integer && span < 4 ? 2 : 5, 6), where);
                    Assert.That(axis.Labels, Is.Unique, where);
                    Assert.That(axis.Ticks, Is.Ordered.Ascending, where);
                    if (integer)
                    {
                        Assert.That(axis.Ticks.All(t => t == Math.Floor(t)), Is.True, where);
                    }
                }
            }
        }
    }

    [Test]
    public void A_single_value_is_widened_and_extreme_ranges_do_not_throw()
    {
        var constant = AxisScale.Covering(2.5, 2.5, integerSteps: false);
        Assert.That(constant.Min, Is.LessThan(2.5));
        Assert.That(constant.Max, Is.GreaterThan(2.5));
        var zero = AxisScale.Covering(0, 0, integerSteps: false);
        Assert.That(zero.Min, Is.LessThan(0));
        Assert.That(zero.Max, Is.GreaterThan(0));
        var step = AxisScale.Covering(7, 7, integerSteps: true);
        Assert.That(step.Ticks, Does.Contain(7.0));

        var huge = AxisScale.Covering(-double.MaxValue, double.MaxValue, integerSteps: false);
        Assert.That(huge.Ticks, Has.Count.GreaterThanOrEqualTo(2));
        var tiny = AxisScale.Covering(1e-12, 3e-12, integerSteps: false);
        Assert.That(tiny.Labels, Is.Unique);
        Assert.That(tiny.Labels[1], Does.Contain("e-"));
        var big = AxisScale.Covering(0, 3e8, integerSteps: true);
        Assert.That(big.Labels[^1], Does.Contain('e'));
    }
}
