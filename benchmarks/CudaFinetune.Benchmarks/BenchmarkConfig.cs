using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace CudaFinetune.Benchmarks;

/// <summary>Markdown and CSV exports plus a throughput column, so results read as GFLOP/s or tokens/s.</summary>
internal static class BenchmarkConfig
{
    public static IConfig Create() => DefaultConfig.Instance
        .AddExporter(MarkdownExporter.GitHub, CsvExporter.Default)
        .AddColumn(new ThroughputColumn());
}

/// <summary>A benchmark that knows how much work one invocation does.</summary>
internal interface IThroughputBenchmark
{
    /// <summary>Units of work per invocation for the given parameter values (e.g. FLOPs, tokens).</summary>
    double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters);

    /// <summary>The unit's name per second, e.g. "GFLOP/s" (work is divided by <see cref="UnitScale"/>).</summary>
    string Unit { get; }

    double UnitScale { get; }
}

/// <summary>Reports work / mean time using the benchmark class's <see cref="IThroughputBenchmark"/>.</summary>
internal sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "Throughput";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Work per second (GFLOP/s for GEMMs, tokens/s for training steps, GB/s of shard bytes for checkpoint I/O)";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats
            || Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not IThroughputBenchmark bench)
        {
            return "-";
        }
        var parameters = benchmarkCase.Parameters.Items.ToDictionary(p => p.Name, p => p.Value);
        double perSecond = bench.WorkPerInvocation(parameters) / (stats.Mean * 1e-9) / bench.UnitScale;
        return $"{perSecond:N1} {bench.Unit}";
    }
}
