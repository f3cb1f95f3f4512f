using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Reporting;

public sealed class LossChartTests : TempDirectoryFixture
{
    /// <summary>A decaying, slightly wiggly training loss over 300 steps and an eval loss every 50 steps.</summary>
    private static (List<(double Step, double Value)> Train, List<(double Step, double Value)> Eval) Run()
    {
        var train = new List<(double Step, double Value)>();
        for (int step = 1; step <= 300; step++)
        {
            train.Add((step, 0.6 + (1.8 * Math.Exp(-step / 60.0)) + (0.05 * Math.Sin(step * 0.7))));
        }
        var eval = new List<(double Step, double Value)>();
        for (int step = 50; step <= 300; step += 50)
        {
            eval.Add((step, 0.75 + (1.6 * Math.Exp(-step / 70.0))));
        }
        return (train, eval);
    }

    private static bool Near(Canvas canvas, int x, int y, Rgb color, int reach)
    {
        for (int dy = -reach; dy <= reach; dy++)
        {
            for (int dx = -reach; dx <= reach; dx++)
            {
                int px = x + dx, py = y + dy;
                if (px >= 0 && py >= 0 && px < canvas.Width && py < canvas.Height && canvas.GetPixel(px, py) == color)
                {
                    return true;
                }
            }
        }
        return false;
    }

    [Test]
    public void Written_file_is_an_800_by_500_png_holding_the_rendered_pixels()
    {
        var (train, eval) = Run();
        string path = Dir.File("loss.png");
        LossChart.Write(path, train, eval, "finetune tiny: LoRA r=8, lr 2e-4 (demo)");
        var parsed = PngReader.Parse(File.ReadAllBytes(path));
        Assert.That((parsed.Width, parsed.Height), Is.EqualTo((800, 500)));
        Assert.That(parsed.Pixels, Is.EqualTo(LossChart.Render(train, eval, "finetune tiny: LoRA r=8, lr 2e-4 (demo)").Pixels.ToArray()));
        Assert.That(Directory.GetFiles(Dir.Path), Has.Length.EqualTo(1), "no temporary file left behind");
    }

    [Test]
    public void Train_loss_is_blue_along_the_curve_and_eval_loss_orange_at_its_points()
    {
        var (train, eval) = Run();
        var canvas = LossChart.Render(train, eval, "run", out ChartFrame frame);

        foreach ((double step, double value) in train)
        {
            int x = frame.PixelX(step), y = frame.PixelY(value);
            Assert.That(x, Is.InRange(frame.Left, frame.Right));
            Assert.That(y, Is.InRange(frame.Top, frame.Bottom));
            bool underMarker = eval.Any(e => Math.Abs(frame.PixelX(e.Step) - x) <= 6);
            if (!underMarker)
            {
                Assert.That(canvas.GetPixel(x, y), Is.EqualTo(LossChart.TrainColor), $"train point at step {step}");
            }
        }
        foreach ((double step, double value) in eval)
        {
            int x = frame.PixelX(step), y = frame.PixelY(value);
            foreach ((int dx, int dy) in new[] { (0, 0), (-3, 0), (3, 0), (0, -3), (0, 3) })
            {
                Assert.That(canvas.GetPixel(x + dx, y + dy), Is.EqualTo(LossChart.EvalColor), $"eval marker at step {step}");
            }
        }

        // Every pixel column the training curve spans holds blue inside the plot (or orange, where the eval line
        // crosses over it); no blue or orange strays outside the plot apart from the legend row above it.
        int firstX = frame.PixelX(train[0].Step), lastX = frame.PixelX(train[^1].Step);
        for (int x = firstX; x <= lastX; x++)
        {
            bool blue = false, orange = false;
            for (int y = frame.Top; y <= frame.Bottom; y++)
            {
                blue |= canvas.GetPixel(x, y) == LossChart.TrainColor;
                orange |= canvas.GetPixel(x, y) == LossChart.EvalColor;
            }
            Assert.That(blue || orange, Is.True, $"column {x}");
            Assert.That(blue || eval.Any(e => Math.Abs(frame.PixelX(e.Step) - x) <= 5) || x > frame.PixelX(eval[0].Step), Is.True, $"column {x}");
        }
        for (int y = frame.Top + 1; y < canvas.Height; y++)
        {
            for (int x = 0; x < canvas.Width; x++)
            {
                bool inside = x >= frame.Left - 5 && x <= frame.Right + 5 && y <= frame.Bottom + 5;
                if (!inside)
                {
                    Rgb c = canvas.GetPixel(x, y);
                    Assert.That(c, Is.Not.EqualTo(LossChart.TrainColor).And.Not.EqualTo(LossChart.EvalColor), $"({x}, {y})");
                }
            }
        }
    }

    [Test]
    public void Legend_and_title_are_drawn_above_the_plot()
    {
        var (train, eval) = Run();
        var canvas = LossChart.Render(train, eval, "title", out ChartFrame frame);
        int blue = 0, orange = 0, text = 0;
        for (int y = 0; y < frame.Top; y++)
        {
            for (int x = 0; x < canvas.Width; x++)
            {
                Rgb c = canvas.GetPixel(x, y);
                blue += c == LossChart.TrainColor ? 1 : 0;
                orange += c == LossChart.EvalColor ? 1 : 0;
                text += c == LossChart.TextColor ? 1 : 0;
            }
        }
        Assert.That(blue, Is.GreaterThan(20), "train legend sample");
        Assert.That(orange, Is.GreaterThan(20), "eval legend sample");
        Assert.That(text, Is.GreaterThan(200), "title and legend labels");
    }

    [Test]
    public void The_same_inputs_give_the_same_bytes_and_other_inputs_other_bytes()
    {
        var (train, eval) = Run();
        string a = Dir.File("a.png"), b = Dir.File("b.png"), c = Dir.File("c.png");
        LossChart.Write(a, train, eval, "same");
        LossChart.Write(b, train.ToList(), eval.ToList(), "same");
        LossChart.Write(c, train, eval.Take(3).ToList(), "same");
        Assert.That(File.ReadAllBytes(b), Is.EqualTo(File.ReadAllBytes(a)));
        Assert.That(File.ReadAllBytes(c), Is.Not.EqualTo(File.ReadAllBytes(a)));
    }

    private static IEnumerable<TestCaseData> EdgeCases()
    {
        (double, double)[] none = [];
        yield return new TestCaseData(none, none, "").SetName("both series empty");
        yield return new TestCaseData(new[] { (1.0, 2.3) }, none, "one point").SetName("a single train point");
        yield return new TestCaseData(none, new[] { (10.0, 1.7) }, "eval only").SetName("a single eval point only");
        yield return new TestCaseData(new[] { (0.0, 2.0), (1.0, 2.0), (2.0, 2.0) }, new[] { (1.0, 2.0) }, "constant").SetName("constant series");
        yield return new TestCaseData(new[] { (5.0, 0.0), (6.0, 0.0) }, none, "zero").SetName("constant zero loss");
        yield return new TestCaseData(
            new[] { (1.0, 2.0), (2.0, double.NaN), (3.0, double.PositiveInfinity), (double.NaN, 1.0), (5.0, 1.5) },
            new[] { (2.0, double.NegativeInfinity), (4.0, 1.8) }, "non-finite").SetName("NaN and infinite values");
        yield return new TestCaseData(new[] { (1.0, double.NaN), (2.0, double.NaN) }, new[] { (1.0, double.PositiveInfinity) }, "all NaN").SetName("nothing finite");
        yield return new TestCaseData(new[] { (1.0, -double.MaxValue), (2.0, double.MaxValue) }, none, "extreme").SetName("values at the ends of double");
        yield return new TestCaseData(new[] { (1.0, 1e-12), (2.0, 3e-12) }, none, "tiny").SetName("tiny values");
        yield return new TestCaseData(new[] { (3.0, -1.0), (1.0, 4.0), (2.0, -2.5) }, none, "unsorted").SetName("unsorted steps and negative values");
        yield return new TestCaseData(new[] { (0.5, 1.0), (1.25, 0.9) }, none, new string('W', 200) + " ünïcödé \t").SetName("fractional steps and an over-long non-ASCII title");
        yield return new TestCaseData(new[] { (1e12, 1.0), (2e12, 0.5) }, none, "huge steps").SetName("huge step numbers");
    }

    [TestCaseSource(nameof(EdgeCases))]
    public void Edge_cases_render_a_valid_chart(ValueTuple<double, double>[] train, ValueTuple<double, double>[] eval, string title)
    {
        var trainSeries = train.Select(p => (Step: p.Item1, Value: p.Item2)).ToList();
        var evalSeries = eval.Select(p => (Step: p.Item1, Value: p.Item2)).ToList();
        string path = Dir.File("loss.png");
        LossChart.Write(path, trainSeries, evalSeries, title);
        var parsed = PngReader.Parse(File.ReadAllBytes(path));
        Assert.That((parsed.Width, parsed.Height), Is.EqualTo((800, 500)));

        var canvas = LossChart.Render(trainSeries, evalSeries, title, out ChartFrame frame);
        Assert.That(frame.X.Ticks, Has.Count.GreaterThanOrEqualTo(2));
        Assert.That(frame.Y.Ticks, Has.Count.GreaterThanOrEqualTo(2));
        Assert.That(canvas.GetPixel(frame.Left, (frame.Top + frame.Bottom) / 2), Is.Not.EqualTo(Rgb.White), "y axis drawn");
        Assert.That(canvas.GetPixel((frame.Left + frame.Right) / 2, frame.Bottom), Is.Not.EqualTo(Rgb.White), "x axis drawn");
        foreach (var (step, value) in trainSeries.Where(p => double.IsFinite(p.Step) && double.IsFinite(p.Value)))
        {
            int x = frame.PixelX(step), y = frame.PixelY(value);
            bool shown = Near(canvas, x, y, LossChart.TrainColor, 2) || canvas.GetPixel(x, y) == LossChart.EvalColor; // or under an eval marker
            Assert.That(shown, Is.True, $"train point ({step}, {value})");
        }
        foreach (var (step, value) in evalSeries.Where(p => double.IsFinite(p.Step) && double.IsFinite(p.Value)))
        {
            Assert.That(canvas.GetPixel(frame.PixelX(step), frame.PixelY(value)), Is.EqualTo(LossChart.EvalColor), $"eval point ({step}, {value})");
        }
    }

    [Test]
    public void Without_data_the_axes_are_drawn_with_a_no_data_note()
    {
        var canvas = LossChart.Render([], [(1, double.NaN)], "empty", out ChartFrame frame);
        int note = 0;
        int cx = (frame.Left + frame.Right) / 2, cy = (frame.Top + frame.Bottom) / 2;
        for (int y = cy - 20; y <= cy + 20; y++)
        {
            for (int x = cx - 60; x <= cx + 60; x++)
            {
                note += canvas.GetPixel(x, y) == LossChart.NoteColor ? 1 : 0;
            }
        }
        Assert.That(note, Is.GreaterThan(50));
        Assert.That(frame.X.Labels, Has.Count.GreaterThanOrEqualTo(5));
        Assert.That(frame.Y.Labels, Has.Count.GreaterThanOrEqualTo(5));
    }

    [Test]
    public void A_long_run_renders_quickly()
    {
        var train = new List<(double Step, double Value)>();
        for (int step = 1; step <= 200_000; step++)
        {
            train.Add((step, 3.0 / Math.Sqrt(step) + (0.1 * Math.Sin(step))));
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        byte[] png = LossChart.Render(train, [], "long").EncodePng();
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(PngReader.Parse(png).Width, Is.EqualTo(800));
    }
}
