using System.Text;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>The on-disk format: what is written, that it reads back exactly, and that every kind of damage is refused by name.</summary>
[TestFixture]
public sealed class CheckpointFormatTests : TempDirectoryFixture
{
    [Test]
    public void A_checkpoint_loads_back_bit_for_bit_with_its_manifest()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 7);
        Assert.That(Path.GetFileName(checkpoint), Is.EqualTo("step-00000007"));
        Assert.That(CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(Dir.File("out"))), Is.EqualTo("step-00000007"));
        var opened = Checkpoint.Open(checkpoint);
        var m = opened.Manifest;
        var expected = TestCheckpoints.Manifest(7);
        Assert.That(m.Training, Is.EqualTo(expected.Training));
        Assert.That(m.Scheduler, Is.EqualTo(expected.Scheduler));
        Assert.That(m.Optimizer, Is.EqualTo(expected.Optimizer));
        Assert.That(m.Fingerprints, Is.EqualTo(expected.Fingerprints));
        Assert.That(m.Sampler, Is.EqualTo(expected.Sampler));
        Assert.That(m.Reason, Is.EqualTo(CheckpointReason.Periodic));
        Assert.That(m.Tensors.Select(t => t.Offset % CheckpointFormat.Alignment), Is.All.EqualTo(0), "every tensor 4 KiB-aligned");
        Assert.That(m.Shards.Select(s => s.File), Is.EquivalentTo(new[] { "model/rank-00000.bin", "optimizer/rank-00000.bin" }));
        Assert.That(Encoding.UTF8.GetString(opened.ReadFile(CheckpointFormat.MetricsFileName)), Does.StartWith("{\"step\":1"));

        using var backend = new CpuBackend(threads: 2);
        var originals = TestCheckpoints.Tensors(backend, seed: 1);
        var targets = TestCheckpoints.Tensors(backend, seed: 2);
        opened.Load(targets, backend);
        for (int i = 0; i < originals.Count; i++)
        {
            Assert.That(targets[i].Data.HostSpan<float>().ToArray(), Is.EqualTo(originals[i].Data.HostSpan<float>().ToArray()), targets[i].Name);
        }
    }

    [Test]
    public void Loading_into_tensors_of_another_shape_names_the_tensor_and_both_shapes()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        using var backend = new CpuBackend(threads: 1);
        var targets = TestCheckpoints.Tensors(backend, seed: 2);
        int b = targets.FindIndex(t => t.Name == "layers.0.q.lora_B.weight");
        targets[b] = CheckpointPiece.Whole(targets[b].Name, targets[b].Group, backend.Allocate(DType.F32, new Shape(40, 4)));
        var e = Assert.Throws<CudaFinetune.Errors.UserErrorException>(() => Checkpoint.Open(checkpoint).Load(targets, backend));
        Assert.That(e!.Message, Does.Contain("lora_B").And.Contain("[40, 8]").And.Contain("[40, 4]"));
    }

    private static string Refusal(string checkpoint) => Assert.Throws<CheckpointCorruptException>(() => Checkpoint.Open(checkpoint).Verify())!.Message;

    [Test]
    public void A_flipped_bit_in_a_tensor_is_refused_naming_checkpoint_file_and_tensor()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        string tensor = CheckpointDamage.FlipByteInTensor(checkpoint);
        Assert.That(Refusal(checkpoint), Does.Contain(checkpoint).And.Contain("model/rank-00000.bin").And.Contain(tensor).And.Contain("hash"));
    }

    [Test]
    public void A_changed_padding_byte_is_refused()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        var first = Checkpoint.Open(checkpoint).Manifest.Tensors.First(t => t.Group == CheckpointFormat.ModelGroup);
        CheckpointDamage.FlipBit(Path.Combine(checkpoint, first.File), first.Offset + first.Length + 5);
        Assert.That(Refusal(checkpoint), Does.Contain("padding"));
    }

    [Test]
    public void A_truncated_shard_is_refused()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        string shard = TestCheckpoints.OptimizerShard(checkpoint);
        using (var stream = new FileStream(shard, FileMode.Open))
        {
            stream.SetLength(stream.Length - 100);
        }
        Assert.That(Refusal(checkpoint), Does.Contain("optimizer/rank-00000.bin").And.Contain("truncated"));
    }

    [Test]
    public void A_missing_shard_is_refused()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        File.Delete(TestCheckpoints.ModelShard(checkpoint));
        Assert.That(Refusal(checkpoint), Does.Contain("model/rank-00000.bin").And.Contain("missing"));
    }

    [Test]
    public void An_edited_manifest_is_refused()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        string path = Path.Combine(checkpoint, "manifest.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"step\": 1,", "\"step\": 2,", StringComparison.Ordinal));
        Assert.That(Refusal(checkpoint), Does.Contain("manifest.json").And.Contain("changed after it was written"));
    }

    [Test]
    public void A_shard_from_another_checkpoint_is_refused()
    {
        string a = TestCheckpoints.Write(Dir.File("a"), step: 1);
        string b = TestCheckpoints.Write(Dir.File("b"), step: 1); // same tensors, same bytes: only the id tells them apart
        File.Copy(TestCheckpoints.ModelShard(b), TestCheckpoints.ModelShard(a), overwrite: true);
        Assert.That(Refusal(a), Does.Contain("model/rank-00000.bin").And.Contain("another checkpoint"));
    }

    [Test]
    public void A_changed_metrics_file_is_refused()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        string metrics = Path.Combine(checkpoint, "metrics.jsonl");
        File.WriteAllText(metrics, File.ReadAllText(metrics).Replace("2.25", "2.26", StringComparison.Ordinal));
        Assert.That(Refusal(checkpoint), Does.Contain("metrics.jsonl").And.Contain("hash"));
    }

    [Test]
    public void A_directory_without_manifest_is_not_a_checkpoint()
    {
        Directory.CreateDirectory(Dir.File("x"));
        Assert.That(Refusal(Dir.File("x")), Does.Contain("manifest.json").And.Contain("missing"));
        // Not there at all: what a reader also meets when retention removes a listed checkpoint, so it is not called damage.
        Assert.That(Assert.Throws<CheckpointRemovedException>(() => Checkpoint.Open(Dir.File("nowhere")))!.Message, Does.Contain("no such directory"));
    }

    [Test]
    public void A_newer_format_version_is_refused_with_both_versions()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        string path = Path.Combine(checkpoint, "manifest.json");
        int newer = CheckpointFormat.Version + 1;
        File.WriteAllText(path, File.ReadAllText(path).Replace($"\"format_version\": {CheckpointFormat.Version}", $"\"format_version\": {newer}", StringComparison.Ordinal));
        Assert.That(Refusal(checkpoint), Does.Contain("format_version").And.Contain($"is {newer}").And.Contain($"versions {CheckpointFormat.OldestReadableVersion} to {CheckpointFormat.Version}"));
    }

    /// <summary>Rewrites a checkpoint as version 1 wrote it: format_version 1 in the manifest and in every shard header.</summary>
    private static void MakeVersion1(string checkpoint, Func<string, string>? edit = null)
    {
        var shards = Checkpoint.Open(checkpoint).Manifest.Shards;
        string path = Path.Combine(checkpoint, "manifest.json");
        string text = File.ReadAllText(path).Replace($"\"format_version\": {CheckpointFormat.Version}", "\"format_version\": 1", StringComparison.Ordinal);
        File.WriteAllBytes(path, ManifestFuzzing.Reseal(edit?.Invoke(text) ?? text));
        foreach (var shard in shards)
        {
            using var file = File.OpenWrite(Path.Combine(checkpoint, shard.File));
            file.Position = 8;
            file.Write(BitConverter.GetBytes(1u));
        }
    }

    [Test]
    public void A_version_1_checkpoint_still_reads_and_may_not_hold_slices()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 1);
        MakeVersion1(checkpoint);
        Assert.DoesNotThrow(() => Checkpoint.Open(checkpoint).Verify());

        string sliced = TestCheckpoints.Write(Dir.File("sliced"), step: 1);
        MakeVersion1(sliced, text => text.Replace("\"name\": \"big\",", "\"slice\": {\"start\": 0, \"count\": 3000}, \"name\": \"big\",", StringComparison.Ordinal));
        Assert.That(Refusal(sliced), Does.Contain("big").And.Contain("slice"));
    }

    [Test]
    public void Saving_the_same_step_again_replaces_it_and_leaves_nothing_behind()
    {
        TestCheckpoints.Write(Dir.File("out"), step: 3, seed: 1);
        string again = TestCheckpoints.Write(Dir.File("out"), step: 3, seed: 5);
        Assert.DoesNotThrow(() => Checkpoint.Open(again).Verify());
        Assert.That(Directory.GetDirectories(CheckpointStore.CheckpointsDirectory(Dir.File("out"))).Select(Path.GetFileName), Is.EqualTo(new[] { "step-00000003" }));
    }

    [Test]
    public void Interrupted_writes_are_never_listed_and_are_cleaned_up()
    {
        TestCheckpoints.Write(Dir.File("out"), step: 2);
        string checkpoints = CheckpointStore.CheckpointsDirectory(Dir.File("out"));
        Directory.CreateDirectory(Path.Combine(checkpoints, ".tmp-step-00000004-abc"));
        Directory.CreateDirectory(Path.Combine(checkpoints, ".deleting-step-00000001-abc"));
        Assert.That(CheckpointStore.Directories(checkpoints).Select(Path.GetFileName), Is.EqualTo(new[] { "step-00000002" }));
        CheckpointStore.RemoveIncomplete(checkpoints);
        Assert.That(Directory.GetDirectories(checkpoints).Select(Path.GetFileName), Is.EqualTo(new[] { "step-00000002" }));
    }
}
