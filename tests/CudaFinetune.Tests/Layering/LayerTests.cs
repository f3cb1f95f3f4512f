using NUnit.Framework;

namespace CudaFinetune.Tests.Layering;

/// <summary>
/// The layers of docs/architecture.md, checked on the compiled assemblies (Core, Cuda and the CLI): a namespace may use
/// the namespaces of its own layer and the layers below it, never one above, and the namespaces use each other without
/// cycles. A new namespace must be given its layer here.
/// </summary>
[TestFixture]
public sealed class LayerTests
{
    /// <summary>Lowest first. CudaFinetune.X.Y belongs to the layer of the longest prefix listed.</summary>
    private static readonly (string Layer, string[] Namespaces)[] Layers =
    [
        ("foundation", ["Errors", "Numerics", "Tensors", "IO", "Reporting"]),
        ("backends", ["Backends", "Backends.Cpu", "Cuda.Interop", "Cuda.Runtime", "Cuda.Kernels", "Cuda.Backend", "Cuda.Benchmarking"]),
        ("model", ["Model", "Lora"]),
        ("options", ["Config"]),
        ("data", ["Tokenizers", "Data"]),
        ("formats", ["HuggingFace"]),
        ("checkpoints", ["Checkpoints"]),
        ("distributed", ["Distributed"]),
        ("training", ["Training"]),
        ("composition", ["Hosting", "Cuda.Hosting", "Cuda.Verification"]),
        ("cli", ["Cli"]),
    ];

    private static readonly IReadOnlyList<NamespaceReferences.Use> Uses = NamespaceReferences.Read(
        new[] { "CudaFinetune.Core.dll", "CudaFinetune.Cuda.dll", "CudaFinetune.dll" }.Select(f => Path.Combine(AppContext.BaseDirectory, f)), "CudaFinetune");

    /// <summary>(from namespace, to namespace) → one use that makes the edge, for messages.</summary>
    private static readonly Dictionary<(string From, string To), string> Edges = Uses.GroupBy(u => (u.From, u.To))
        .ToDictionary(g => g.Key, g => string.Join(", ", g.Select(u => $"{u.FromType} → {u.ToType}").Order(StringComparer.Ordinal).Take(3)));

    /// <summary>The concrete backends; elsewhere a backend is an <c>IBackend</c>, asked for what it can do.</summary>
    private static readonly string[] ConcreteBackends = ["CudaFinetune.Backends.Cpu.CpuBackend", "CudaFinetune.Cuda.Backend.CudaBackend"];

    [Test]
    public void Only_composition_and_the_cli_name_a_concrete_backend()
    {
        int composition = Array.FindIndex(Layers, l => l.Layer == "composition");
        var naming = Uses.Where(u => ConcreteBackends.Contains(u.ToType) && LayerOf(u.From) < composition && !u.ToType.StartsWith(u.From + ".", StringComparison.Ordinal))
            .Select(u => $"{u.FromType} names {u.ToType}").Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.That(naming, Is.Empty, string.Join("\n", naming));
    }

    [Test]
    public void No_namespace_uses_a_layer_above_its_own()
    {
        var upward = Edges.Where(e => LayerOf(e.Key.To) > LayerOf(e.Key.From))
            .Select(e => $"{e.Key.From} ({Layers[LayerOf(e.Key.From)].Layer}) → {e.Key.To} ({Layers[LayerOf(e.Key.To)].Layer}): {e.Value}")
            .Order(StringComparer.Ordinal).ToList();
        Assert.That(upward, Is.Empty, string.Join("\n", upward));
    }

    [Test]
    public void Namespaces_use_each_other_without_cycles()
    {
        // Over the units the layer table names (CudaFinetune.Cli and CudaFinetune.Cli.Commands are one unit, the CLI).
        var unitEdges = Edges.Select(e => (From: UnitOf(e.Key.From), To: UnitOf(e.Key.To), Example: e.Value)).Where(e => e.From != e.To)
            .GroupBy(e => (e.From, e.To)).ToDictionary(g => g.Key, g => g.First().Example);
        var graph = unitEdges.Keys.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList());
        var cycles = new List<string>();
        var state = new Dictionary<string, int>(); // 1 visiting, 2 done
        var path = new Stack<string>();
        void Visit(string node)
        {
            state[node] = 1;
            path.Push(node);
            foreach (string next in graph.GetValueOrDefault(node, []))
            {
                if (state.GetValueOrDefault(next) == 1)
                {
                    cycles.Add(string.Join(" → ", path.Reverse().SkipWhile(n => n != next).Append(next)) + $"   ({unitEdges[(node, next)]})");
                }
                else if (state.GetValueOrDefault(next) == 0)
                {
                    Visit(next);
                }
            }
            path.Pop();
            state[node] = 2;
        }
        foreach (string node in graph.Keys.Order(StringComparer.Ordinal).Where(n => state.GetValueOrDefault(n) == 0))
        {
            Visit(node);
        }
        Assert.That(cycles, Is.Empty, string.Join("\n", cycles));
    }

    [Test]
    public void Every_namespace_has_a_layer()
    {
        var unknown = Edges.Keys.SelectMany(e => new[] { e.From, e.To }).Distinct().Where(n => LayerIndex(n) < 0).ToList();
        Assert.That(unknown, Is.Empty, "give these namespaces a layer in LayerTests.Layers and docs/architecture.md");
    }

    /// <summary>The longest prefix of the layer table that <paramref name="ns"/> falls under.</summary>
    private static string UnitOf(string ns) => Layers.SelectMany(l => l.Namespaces).Select(n => "CudaFinetune." + n)
        .Where(p => ns == p || ns.StartsWith(p + ".", StringComparison.Ordinal)).MaxBy(p => p.Length) ?? ns;

    private static int LayerOf(string ns) => LayerIndex(ns) is >= 0 and var i ? i : throw new AssertionException($"{ns} has no layer");

    private static int LayerIndex(string ns)
    {
        int best = -1, bestLength = -1;
        for (int i = 0; i < Layers.Length; i++)
        {
            foreach (string prefix in Layers[i].Namespaces.Select(n => "CudaFinetune." + n))
            {
                if ((ns == prefix || ns.StartsWith(prefix + ".", StringComparison.Ordinal)) && prefix.Length > bestLength)
                {
                    (best, bestLength) = (i, prefix.Length);
                }
            }
        }
        return best;
    }
}
