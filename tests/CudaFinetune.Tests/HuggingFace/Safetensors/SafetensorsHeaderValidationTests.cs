using CudaFinetune.Errors;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.HuggingFace.Safetensors.SafetensorsTestFiles;

namespace CudaFinetune.Tests.HuggingFace.Safetensors;

/// <summary>Every malformed header is refused on open with a <see cref="UserErrorException"/> naming the file (and tensor).</summary>
public sealed class SafetensorsHeaderValidationTests : TempDirectoryFixture
{
    private static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private UserErrorException Open(byte[] file, params string[] expectedFragments)
    {
        string path = Dir.File("bad.safetensors");
        File.WriteAllBytes(path, file);
        var e = Assert.Throws<UserErrorException>(() => new SafetensorsReader(path).Dispose())!;
        Assert.That(e.Message, Does.Contain(path));
        foreach (string fragment in expectedFragments)
        {
            Assert.That(e.Message, Does.Contain(fragment));
        }
        return e;
    }

    [Test]
    public void Huge_header_length_is_refused_before_allocating()
    {
        Open(Build("{}", [], headerLength: ulong.MaxValue), "header length");
        Open(Build("{}", [], headerLength: 1UL << 40), "header length");
        Open(Build("{}", new byte[10], headerLength: 13), "header length 13 exceeds");
    }

    [Test]
    public void Files_shorter_than_the_length_prefix_are_refused()
    {
        Open([], "too short");
        Open([1, 2, 3], "too short");
    }

    [Test]
    public void Bad_json_is_refused()
    {
        Open(Build("{\"w\": {\"dtype\": ", []), "not valid JSON");
        Open(Build("[1, 2]", []), "not a JSON object");
        Open(Build("{\"w\": 5}", []), "'w'");
    }

    [Test]
    public void Overlapping_offsets_are_refused()
    {
        string json = "{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("b", "F32", "[2]", 4, 12) + "}";
        Open(Build(json, new byte[12]), "'b'", "overlap", "'a'");
    }

    [Test]
    public void Holes_in_the_data_buffer_are_refused()
    {
        string json = "{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("b", "F32", "[2]", 12, 20) + "}";
        Open(Build(json, new byte[20]), "'b'", "belong to no tensor");
        Open(Build("{" + Entry("a", "F32", "[2]", 0, 8) + "}", new byte[12]), "[8, 12)", "belong to no tensor");
    }

    [Test]
    public void Size_mismatch_between_shape_and_offsets_is_refused()
    {
        Open(Build("{" + Entry("w", "F32", "[3]", 0, 8) + "}", new byte[8]), "'w'", "needs 12");
        Open(Build("{" + Entry("w", "BF16", "[2,2]", 0, 16) + "}", new byte[16]), "'w'", "needs 8");
    }

    [Test]
    public void Negative_or_non_integer_shapes_are_refused()
    {
        Open(Build("{" + Entry("w", "F32", "[-1]", 0, 0) + "}", []), "'w'", "shape");
        Open(Build("{" + Entry("w", "F32", "[2.5]", 0, 8) + "}", new byte[8]), "'w'", "shape");
        Open(Build("{" + Entry("w", "F32", "\"2\"", 0, 8) + "}", new byte[8]), "'w'", "shape");
        Open(Build("{" + Entry("w", "F32", "[4294967296]", 0, 8) + "}", new byte[8]), "'w'", "shape");
    }

    /// <summary>Found by HostileInputFuzzTests: a corrupt byte in a tensor or metadata name was an InvalidOperationException.</summary>
    [Test]
    public void Invalid_utf8_in_the_header_is_refused()
    {
        byte[] file = Build("{\"__meta~data__\":{}," + Entry("w", "F32", "[1]", 0, 4) + "}", new byte[4]);
        file[Array.IndexOf(file, (byte)'~')] = 0x8B;
        Open(file, "not valid UTF-8");
    }

    /// <summary>The shard index had the same hole as the header.</summary>
    [Test]
    public void Invalid_utf8_in_a_shard_index_is_refused()
    {
        string index = Dir.File(SafetensorsSet.IndexFileName);
        byte[] json = "{\"weight_map\": {\"w~\": \"model-00001-of-00001.safetensors\"}}"u8.ToArray();
        json[Array.IndexOf(json, (byte)'~')] = 0x8B;
        File.WriteAllBytes(index, json);
        Assert.That(() => SafetensorsSet.Open(Dir.Path), Throws.TypeOf<UserErrorException>().With.Message.Contain(index).And.Message.Contain("UTF-8"));
    }

    [Test]
    public void Unknown_dtypes_are_refused()
    {
        Open(Build("{" + Entry("w", "Q4_K", "[2]", 0, 8) + "}", new byte[8]), "'w'", "Q4_K");
    }

    [Test]
    public void Offsets_past_the_end_are_refused()
    {
        Open(Build("{" + Entry("w", "F32", "[2]", 0, 8) + "}", new byte[4]), "'w'", "outside");
        Open(Build("{" + Entry("w", "F32", "[2]", 8, 0) + "}", new byte[8]), "'w'", "outside");
        Open(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", new byte[8]), "'w'", "data_offsets");
        Open(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", new byte[8]), "'w'", "data_offsets");
    }

    [Test]
    public void Duplicate_names_and_bad_metadata_are_refused()
    {
        string json = "{" + Entry("w", "F32", "[1]", 0, 4) + "," + Entry("w", "F32", "[1]", 4, 8) + "}";
        Open(Build(json, new byte[8]), "'w' twice");
        Open(Build("{\"__metadata__\":{\"format\":1}}", []), "__metadata__", "format");
    }

    [Test]
    public void Valid_edge_cases_open()
    {
        string path = Dir.File("ok.safetensors");
        // Empty file list, header padded with spaces.
        File.WriteAllBytes(path, Build("{}      ", []));
        using (var reader = new SafetensorsReader(path))
        {
            Assert.That(reader.Tensors, Is.Empty);
        }
        // Zero-element tensors take no bytes; entries listed out of data order are sorted.
        string json = "{" + Entry("b", "F32", "[1]", 4, 8) + "," + Entry("empty", "F32", "[0,3]", 0, 0) + "," + Entry("a", "I32", "[1]", 0, 4) + "}";
        File.WriteAllBytes(path, Build(json, new byte[8]));
        using (var reader = new SafetensorsReader(path))
        {
            Assert.That(reader.Tensors.Select(t => t.Name), Is.EqualTo(new[] { "empty", "a", "b" }));
        }
    }

    [Test]
    public void Missing_files_say_so()
    {
        string path = Dir.File("absent.safetensors");
        Assert.That(() => new SafetensorsReader(path), Throws.TypeOf<UserErrorException>().With.Message.Contain("no such file").And.Message.Contain(path));
    }
}
