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

    private static readonly Dictionary<(string From, string To), string> Edges = NamespaceReferences.Read(
        new[] { "CudaFinetune.Core.dll", "CudaFinetune.Cuda.dll", "CudaFinetune.dll" }.Select(f => Path.Combine(AppContext.BaseDirectory, f)), "CudaFinetune");

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
        var graph = Edges.Keys.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList());
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
                    cycles.Add(string.Join(" → ", path.Reverse().SkipWhile(n => n != next).Append(next)) + $"   ({Edges[(node, next)]})");
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
