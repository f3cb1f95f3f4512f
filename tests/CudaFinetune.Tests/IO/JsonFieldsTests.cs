using System.Text;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tests.Checkpoints;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.IO;

/// <summary>The checked-field JSON reader: one wording for every JSON file, naming the file and the field's path.</summary>
[TestFixture]
public sealed class JsonFieldsTests
{
    private static string Message(string json, Func<JsonFields, object?> read)
    {
        using var doc = JsonFields.Parse(Encoding.UTF8.GetBytes(json), "f.json");
        var e = Assert.Throws<UserErrorException>(() => read(JsonFields.Root(doc, "f.json")))!;
        return e.Message;
    }

    [TestCase("""{}""", "f.json: 'a' is missing")]
    [TestCase("""{"a": null}""", "f.json: 'a' must be an integer, found null")]
    [TestCase("""{"a": 2.5}""", "f.json: 'a' must be an integer, found 2.5")]
    [TestCase("""{"a": 1e3}""", "f.json: 'a' must be an integer, found 1e3")]
    [TestCase("""{"a": "4"}""", "f.json: 'a' must be an integer, found \"4\"")]
    [TestCase("""{"a": 3000000000}""", "f.json: 'a' must be an integer from -2147483648 to 2147483647, found 3000000000")]
    public void Integers_are_checked_in_one_wording(string json, string expected)
        => Assert.That(Message(json, r => r.Int("a")), Is.EqualTo(expected));

    [Test]
    public void Every_kind_names_the_path_and_what_was_found()
    {
        Assert.That(Message("""{"a": {"b": [1, {"c": true}]}}""", r => r.Object("a").Array("b")[1].String("c")),
            Is.EqualTo("f.json: 'a.b[1].c' must be a string, found true"));
        Assert.That(Message("""{"a": -1}""", r => r.Long("a", 0)), Is.EqualTo("f.json: 'a' must be an integer ≥ 0, found -1"));
        Assert.That(Message("""{"a": 1e400}""", r => r.Number("a")), Is.EqualTo("f.json: 'a' must be a finite number, found 1e400"));
        Assert.That(Message("""{"a": "yes"}""", r => r.Bool("a")), Is.EqualTo("f.json: 'a' must be true or false, found \"yes\""));
        Assert.That(Message("""{"a": 1}""", r => r.OptionalArray("a")), Is.EqualTo("f.json: 'a' must be an array, found 1"));
        Assert.That(Message("""{"a": "z"}""", r => r.Choice("a", new[] { "x", "y" }, s => s)), Is.EqualTo("f.json: 'a' must be one of x, y, found \"z\""));
        Assert.That(Message("""{"m": {"k\n": 5}}""", r => r.Object("m").Entries()[0].Value.AsString()), Is.EqualTo("f.json: 'm[\"k\\n\"]' must be a string, found 5"));
        Assert.That(Message("{\"a\": {\"long\": \"" + new string('x', 50) + "\"}}", r => r.String("a")), Is.EqualTo("f.json: 'a' must be a string, found an object"));
        Assert.That(Message("[1]", r => r), Is.EqualTo("f.json: the top level must be a JSON object, found [1]"));
        Assert.That(() => JsonFields.Parse("{\"a\": "u8.ToArray(), "f.json"), Throws.TypeOf<UserErrorException>().With.Message.StartWith("f.json: not valid JSON ("));
    }

    [Test]
    public void Optional_members_read_absent_and_null_as_not_given()
    {
        using var doc = JsonFields.Parse("""{"n": null, "i": 7}"""u8.ToArray(), "f.json");
        var r = JsonFields.Root(doc, "f.json");
        Assert.That((r.OptionalInt("n"), r.OptionalInt("absent"), r.OptionalInt("i"), r.Has("n"), r.Has("i")), Is.EqualTo(((int?)null, (int?)null, (int?)7, false, true)));
    }

    [Test]
    public void Config_json_uses_the_shared_wording()
    {
        var e = Assert.Throws<UserErrorException>(() => LlamaConfigJson.Parse("""{"model_type": "llama", "hidden_size": 2048.5}"""u8.ToArray(), "m/config.json"))!;
        Assert.That(e.Message, Is.EqualTo("m/config.json: 'hidden_size' must be an integer, found 2048.5"));
    }

    [Test]
    public void A_resealed_manifest_names_the_field_in_the_shared_wording()
    {
        using var dir = new TempDirectory();
        string checkpoint = TestCheckpoints.Write(dir.File("out"), step: 1);
        string path = Path.Combine(checkpoint, CheckpointFormat.ManifestFileName);
        File.WriteAllBytes(path, ManifestFuzzing.Reseal(File.ReadAllText(path).Replace("\"micro_batches\": ", "\"micro_batches\": -", StringComparison.Ordinal)));
        var e = Assert.Throws<CheckpointCorruptException>(() => Checkpoint.Open(checkpoint))!;
        Assert.That(e.Message, Does.StartWith($"checkpoint '{checkpoint}' is not valid: manifest.json: 'training.micro_batches' must be an integer ≥ 0, found -"));
    }
}
