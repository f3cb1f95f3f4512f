using System.Text;
using System.Text.Json;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cli;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>
/// Which build runs: the native entry point hands over to the build for the CPU's level, CUDAFINETUNE_ISA forces one, and
/// the two levels' paths train the same run to within rounding.
/// </summary>
[TestFixture]
public sealed class SimdBuildsTests : LearnableTaskFixture
{
    private const string V4Build = "/opt/cf/CudaFinetune-x86-64-v4";
    private const string V3Build = "/opt/cf/CudaFinetune";

    private static SimdSituation Native(SimdLevel running, SimdLevel cpu, string? request = null, bool switched = false, bool siblings = true)
        => new(running, cpu, Native: true, request, switched,
            level => !siblings || level == running ? null : level == SimdLevel.Avx512 ? V4Build : V3Build);

    private static SimdSituation Jit(SimdLevel running, SimdLevel cpu, string? request = null, bool switched = false)
        => new(running, cpu, Native: false, request, switched, _ => null);

    [Test]
    public void The_entry_point_hands_over_to_the_v4_build_on_an_avx512_cpu()
    {
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512)), Is.EqualTo(new SimdChoice.Switch(SimdLevel.Avx512, V4Build, Explicit: false)));
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512, request: "auto")), Is.EqualTo(new SimdChoice.Switch(SimdLevel.Avx512, V4Build, Explicit: false)));
    }

    [Test]
    public void The_entry_point_runs_itself_on_an_avx2_cpu_or_without_the_v4_build()
    {
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx2)), Is.SameAs(SimdChoice.RunHere));
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512, siblings: false)), Is.SameAs(SimdChoice.RunHere));
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx512, SimdLevel.Avx512)), Is.SameAs(SimdChoice.RunHere));
    }

    [Test]
    public void A_forced_level_switches_between_native_builds_either_way()
    {
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx512, SimdLevel.Avx512, request: "x86-64-v3")), Is.EqualTo(new SimdChoice.Switch(SimdLevel.Avx2, V3Build, Explicit: true)));
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512, request: "AVX512")), Is.EqualTo(new SimdChoice.Switch(SimdLevel.Avx512, V4Build, Explicit: true)));
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512, request: "avx2")), Is.SameAs(SimdChoice.RunHere));
    }

    [Test]
    public void Under_the_jit_auto_keeps_the_runtimes_choice_and_a_forced_level_restarts()
    {
        Assert.That(SimdBuilds.Choose(Jit(SimdLevel.Avx2, SimdLevel.Avx512)), Is.SameAs(SimdChoice.RunHere));
        Assert.That(SimdBuilds.Choose(Jit(SimdLevel.Avx512, SimdLevel.Avx512, request: "x86-64-v3")), Is.EqualTo(new SimdChoice.Switch(SimdLevel.Avx2, null, Explicit: true)));
    }

    [Test]
    public void A_level_the_cpu_lacks_a_missing_build_or_a_bad_value_is_refused_in_one_line()
    {
        Assert.That(Refusal(Native(SimdLevel.Avx2, SimdLevel.Avx2, request: "x86-64-v4")),
            Is.EqualTo("CUDAFINETUNE_ISA=x86-64-v4, but this CPU runs x86-64-v3 (AVX2, FMA) at most"));
        Assert.That(Refusal(Native(SimdLevel.Avx2, SimdLevel.Avx512, request: "x86-64-v4", siblings: false)),
            Does.StartWith("CUDAFINETUNE_ISA=x86-64-v4, but there is no x86-64-v4 build 'CudaFinetune-x86-64-v4' beside this one"));
        Assert.That(Refusal(Native(SimdLevel.Avx2, SimdLevel.Avx512, request: "sse")),
            Is.EqualTo("CUDAFINETUNE_ISA='sse' is not a level this engine has builds for: use auto, x86-64-v3 (avx2) or x86-64-v4 (avx512)"));
    }

    [Test]
    public void A_switched_process_never_switches_again()
    {
        Assert.That(SimdBuilds.Choose(Native(SimdLevel.Avx2, SimdLevel.Avx512, switched: true)), Is.SameAs(SimdChoice.RunHere), "auto");
        Assert.That(Refusal(Jit(SimdLevel.Avx512, SimdLevel.Avx512, request: "x86-64-v3", switched: true)),
            Is.EqualTo("CUDAFINETUNE_ISA=x86-64-v3: the process started for it runs x86-64-v4 (AVX-512)"));
    }

    private static string Refusal(SimdSituation situation)
    {
        var choice = SimdBuilds.Choose(situation);
        Assert.That(choice, Is.InstanceOf<SimdChoice.Refuse>());
        return ((SimdChoice.Refuse)choice).Message;
    }

    [Test]
    [NonParallelizable] // two training processes on two cores
    public void The_v3_and_v4_paths_train_the_same_run_to_within_rounding()
    {
        // The GEMM gives the same bits at either width (GemmTests); the reductions (norms, softmax, losses) are split over
        // 8 or 16 lanes, so they round differently and the two runs drift apart by rounding only.
        if (SimdLevels.Cpu < SimdLevel.Avx512)
        {
            Assert.Ignore("this CPU has no AVX-512: only the x86-64-v3 path runs here");
        }
        var runs = new[] { SimdLevel.Avx2, SimdLevel.Avx512 }.ToDictionary(level => level, Train);
        var v3 = runs[SimdLevel.Avx2];
        var v4 = runs[SimdLevel.Avx512];
        Assert.That(v4.Select(s => s.Step), Is.EqualTo(v3.Select(s => s.Step)));
        double worst = v3.Zip(v4, (a, b) => Math.Abs(a.Loss - b.Loss) / Math.Abs(a.Loss)).Max();
        TestContext.Out.WriteLine($"{v3.Count} steps; largest relative difference of the losses: {worst:E2}");
        Assert.That(worst, Is.LessThan(1e-5), "the paths agree to within rounding (measured: about 1e-7)");
        Assert.That(v3[^1].Loss, Is.LessThan(v3[0].Loss * 0.8), "and both learned");
    }

    /// <summary>A short run of the learnable task by the CLI forced to <paramref name="level"/>; its step losses.</summary>
    private IReadOnlyList<(long Step, double Loss)> Train(SimdLevel level)
    {
        string outputDir = Dir.File(level.Name());
        string config = CliProcess.WriteConfig(Dir.File($"{level.Name()}.json"), LearnableTask.Options(ModelDir, DataFile, outputDir) with { NumEpochs = 2 });
        var output = new StringBuilder();
        var process = CliProcess.Start(output, ["finetune", "--config", config], new Dictionary<string, string> { [SimdBuilds.Variable] = level.Name() });
        Assert.That(CliProcess.Finish(process, output, $"the {level.Name()} run"), Is.Zero, output.ToString());
        using var run = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(outputDir, "run.json")));
        Assert.That(run.RootElement.GetProperty("environment").GetProperty("simd").GetString(), Is.EqualTo(level.Name()), "the run ran at the level forced");
        return MetricsFile.ReadStepLosses(Path.Combine(outputDir, "metrics.jsonl"));
    }
}
