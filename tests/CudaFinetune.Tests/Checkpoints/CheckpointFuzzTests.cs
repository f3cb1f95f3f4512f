using System.Text;
using CudaFinetune.Checkpoints;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// Thousands of random mutations of a checkpoint's manifest and shard bytes: every one is refused
/// with a <see cref="CheckpointCorruptException"/> — no other exception, no hang, and no mutated
/// checkpoint accepted as valid.
/// </summary>
[TestFixture]
public sealed class CheckpointFuzzTests
{
    private TempDirectory _dir = null!;
    private string _checkpoint = null!;
    private Dictionary<string, byte[]> _pristine = null!;

    [OneTimeSetUp]
    public void OneTimeSetUp()
    {
        _dir = new TempDirectory();
        _checkpoint = TestCheckpoints.Write(_dir.File("out"), step: 5);
        _pristine = Directory.EnumerateFiles(_checkpoint, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(_checkpoint, f), File.ReadAllBytes);
    }

    [OneTimeTearDown]
    public void OneTimeTearDown() => _dir.Dispose();

    private void Restore()
    {
        foreach (var (file, bytes) in _pristine)
        {
            File.WriteAllBytes(Path.Combine(_checkpoint, file), bytes);
        }
    }

    [TestCase("manifest.json", 1500)]
    [TestCase("model/rank-00000.bin", 1000)]
    [TestCase("optimizer/rank-00000.bin", 1000)]
    [TestCase("metrics.jsonl", 300)]
    public void Every_mutation_is_refused(string file, int cases)
    {
        var rng = new Random(file.Length * 7919 + cases);
        int refusedAtOpen = 0;
        for (int n = 0; n < cases; n++)
        {
            Restore();
            byte[] mutated = ByteMutations.Mutate(_pristine[file], rng);
            Assert.That(mutated, Is.Not.EqualTo(_pristine[file]));
            File.WriteAllBytes(Path.Combine(_checkpoint, file), mutated);
            try
            {
                var checkpoint = Checkpoint.Open(_checkpoint);
                checkpoint.Verify();
                Assert.Fail($"case {n}: a mutated {file} was accepted");
            }
            catch (CheckpointCorruptException e)
            {
                Assert.That(e.Message, Does.Contain(_checkpoint));
                refusedAtOpen += e.Tensor is null ? 1 : 0;
            }
        }
        Restore();
        Assert.DoesNotThrow(() => Checkpoint.Open(_checkpoint).Verify(), "the pristine checkpoint is valid");
        TestContext.Out.WriteLine($"{cases} mutations of {file} refused ({refusedAtOpen} before any tensor was read)");
    }

    /// <summary>
    /// Manifest edits that keep valid JSON and carry a recomputed self-hash (what a buggy writer or a
    /// deliberate edit could produce) reach the field checks: values that lie (huge or negative sizes,
    /// overlapping offsets, unknown dtypes, paths outside the checkpoint) are refused, never crash.
    /// </summary>
    [Test]
    public void Resealed_manifests_with_lying_fields_are_refused_or_consistent()
    {
        string manifestPath = Path.Combine(_checkpoint, "manifest.json");
        string text = Encoding.UTF8.GetString(_pristine["manifest.json"]);
        string[] replacements = ["-1", "0", "1", "4096", "4097", "9223372036854775807", "1e308", "\"x\"", "null", "[]", "{}", "\"../../etc/passwd\"", "\"F8\"", "true"];
        var numbers = System.Text.RegularExpressions.Regex.Matches(text, "(?<!manifest_xxh128\"): (-?[0-9][0-9.e+-]*|\"[^\"]*\"|true|false|null)");
        var rng = new Random(5);
        int refused = 0, accepted = 0;
        for (int n = 0; n < 1500; n++)
        {
            Restore();
            var match = numbers[rng.Next(numbers.Count)];
            var group = match.Groups[1];
            string mutated = string.Concat(text.AsSpan(0, group.Index), replacements[rng.Next(replacements.Length)], text.AsSpan(group.Index + group.Length));
            File.WriteAllBytes(manifestPath, ManifestFuzzing.Reseal(mutated));
            try
            {
                Checkpoint.Open(_checkpoint).Verify();
                accepted++; // e.g. a changed engine_version or created time: still a consistent checkpoint
            }
            catch (CheckpointCorruptException)
            {
                refused++;
            }
        }
        Restore();
        TestContext.Out.WriteLine($"resealed manifests: {refused} refused, {accepted} consistent and accepted");
        Assert.That(refused, Is.GreaterThan(accepted));
    }
}

/// <summary>Recomputes a manifest's self-hash after an edit.</summary>
internal static class ManifestFuzzing
{
    public static byte[] Reseal(string manifest)
    {
        const string key = "\"manifest_xxh128\": \"";
        int at = manifest.LastIndexOf(key, StringComparison.Ordinal) + key.Length;
        string zeroed = string.Concat(manifest.AsSpan(0, at), new string('0', 32), manifest.AsSpan(at + 32));
        byte[] bytes = Encoding.UTF8.GetBytes(zeroed);
        string hash = CheckpointFormat.Hash(bytes);
        return Encoding.UTF8.GetBytes(string.Concat(zeroed.AsSpan(0, at), hash, zeroed.AsSpan(at + 32)));
    }
}
