using System.Text.Json;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// The reference implementation of a tokenizer package fetched with <see cref="NpmPackages"/>: its bundled
/// transformers.js tokenizer, run by node on JSON input; the result comes back as JSON.
/// </summary>
internal static class TransformersJs
{
    /// <summary>
    /// Evaluates <paramref name="expression"/> — JavaScript over <c>tokenizer</c> (the package's, from its global
    /// <paramref name="globalName"/>) and <c>input</c> (<paramref name="input"/> as JSON) — and deserializes its JSON value.
    /// </summary>
    public static T Run<T>(string package, string globalName, string expression, object input)
    {
        using var dir = new TempDirectory();
        string script = dir.File("run.js"), inputFile = dir.File("input.json");
        File.WriteAllText(script, $$"""
            const fs = require("fs"), vm = require("vm");
            vm.runInThisContext(fs.readFileSync(process.argv[2], "utf8") + "\n;globalThis.__lib = {{globalName}};");
            const tokenizer = globalThis.__lib.fromPreTrained();
            const input = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
            process.stdout.write(JSON.stringify({{expression}}));
            """);
        File.WriteAllText(inputFile, JsonSerializer.Serialize(input));
        return JsonSerializer.Deserialize<T>(NpmPackages.Node(script, Path.Combine(package, "dist", "main.global.js"), inputFile))!;
    }

    /// <summary>The ids the package's tokenizer gives each text, without special tokens.</summary>
    public static int[][] Encode(string package, string globalName, IReadOnlyList<string> texts)
        => Run<int[][]>(package, globalName, "input.map(t => tokenizer.encode(t, { add_special_tokens: false }))", texts);
}
