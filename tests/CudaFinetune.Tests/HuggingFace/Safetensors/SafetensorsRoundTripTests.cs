using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.HuggingFace.Safetensors.SafetensorsTestFiles;

namespace CudaFinetune.Tests.HuggingFace.Safetensors;

public sealed class SafetensorsRoundTripTests : TempDirectoryFixture
{
    [Test]
    public void F32_round_trip_keeps_names_order_shapes_and_values()
    {
        using var a = HostTensor([1.5f, -2.25f, 3e-8f, float.MaxValue, -0f, 7f], 2, 3);
        using var b = HostTensor([42f], 1);
        using var scalar = HostTensor([0.125f]);
        string path = Dir.File("t.safetensors");

        SafetensorsWriter.Write(path, [("z.first", a), ("a.second", b), ("scalar", scalar)], DType.F32);

        using var reader = new SafetensorsReader(path);
        Assert.That(reader.Tensors.Select(t => t.Name), Is.EqualTo(new[] { "z.first", "a.second", "scalar" }));
        Assert.That(reader.Tensors.Select(t => t.Shape), Is.EqualTo(new[] { new Shape(2, 3), new Shape(1), new Shape() }));
        Assert.That(reader.Tensors.Select(t => t.DType), Is.All.EqualTo(DType.F32));
        Assert.That(reader.Metadata, Is.EqualTo(new Dictionary<string, string> { ["format"] = "pt" }));
        Assert.That(reader.DataStart % 8, Is.Zero, "header padded so the data starts 8-byte aligned");

        using var back = HostTensor(DType.F32, 2, 3);
        reader.ReadInto("z.first", back);
        Assert.That(back.HostSpan<float>().ToArray(), Is.EqualTo(a.HostSpan<float>().ToArray()));
        using var backScalar = HostTensor(DType.F32);
        reader.ReadInto("scalar", backScalar);
        Assert.That(backScalar.HostSpan<float>()[0], Is.EqualTo(0.125f));
    }

    [Test]
    public void Header_is_compact_json_padded_with_spaces_to_a_multiple_of_8()
    {
        using var a = HostTensor([1f, 2f, 3f], 3);
        string path = Dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("w", a)], DType.F32);

        byte[] bytes = File.ReadAllBytes(path);
        int n = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        string header = Encoding.UTF8.GetString(bytes, 8, n);
        Assert.That(n % 8, Is.Zero);
        Assert.That(header.TrimEnd(' '), Is.EqualTo("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}"));
        Assert.That(bytes.Length, Is.EqualTo(8 + n + 12));
        Assert.That(BitConverter.ToSingle(bytes, 8 + n + 4), Is.EqualTo(2f));
    }

    [Test]
    public void F64_host_tensors_are_written_as_F32_and_read_back_into_F64()
    {
        using var a = HostTensor(DType.F64, 2);
        a.HostSpan<double>()[0] = 0.1;
        a.HostSpan<double>()[1] = -3.0;
        string path = Dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("w", a)], DType.F32);

        using var reader = new SafetensorsReader(path);
        Assert.That(reader.GetTensor("w").DType, Is.EqualTo(DType.F32));
        using var back = HostTensor(DType.F64, 2);
        reader.ReadInto("w", back);
        Assert.That(back.HostSpan<double>().ToArray(), Is.EqualTo(new[] { (double)0.1f, -3.0 }));
    }

    [Test]
    public void BF16_rounds_to_nearest_even()
    {
        float halfwayDown = 1f + MathF.Pow(2, -8);                 // halfway between 1 and 1+2^-7: even is 1
        float halfwayUp = 1f + 3 * MathF.Pow(2, -8);               // halfway between 1+2^-7 and 1+2^-6: even is 1+2^-6
        float aboveHalfway = 1f + MathF.Pow(2, -8) + MathF.Pow(2, -20);
        using var a = HostTensor([1f, halfwayDown, halfwayUp, aboveHalfway, -2.5f, 3.0e38f], 6);
        string path = Dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("w", a)], DType.BF16);

        using var reader = new SafetensorsReader(path);
        SafetensorsTensorInfo info = reader.GetTensor("w");
        Assert.That(info.DType, Is.EqualTo(DType.BF16));
        Assert.That(info.Length, Is.EqualTo(12));
        byte[] bytes = File.ReadAllBytes(path);
        var raw = Enumerable.Range(0, 6).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan((int)reader.DataStart + 2 * i))).ToArray();
        Assert.That(raw, Is.EqualTo(new ushort[] { 0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020, 0x7F62 }));

        using var back = HostTensor(DType.F32, 2, 3);
        reader.ReadInto("w", back);
        Assert.That(back.HostSpan<float>().ToArray(), Is.EqualTo(new[] { 1f, 1f, 1.015625f, 1.0078125f, -2.5f, BitConverter.UInt32BitsToSingle(0x7F620000) }));
    }

    [Test]
    public void F16_files_written_by_others_are_read_and_converted()
    {
        Half[] values = [(Half)1.5f, (Half)(-0.099975586f), Half.MaxValue, (Half)0f];
        byte[] data = values.SelectMany(v => BitConverter.GetBytes(v)).ToArray();
        string path = Dir.File("f16.safetensors");
        // Unpadded header (legal): tensor data starts at an odd file offset.
        File.WriteAllBytes(path, Build("{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", data));

        using var reader = new SafetensorsReader(path);
        Assert.That(reader.Metadata, Is.Empty);
        using var f32 = HostTensor(DType.F32, 4);
        reader.ReadInto("h", f32);
        Assert.That(f32.HostSpan<float>().ToArray(), Is.EqualTo(values.Select(v => (float)v).ToArray()));
        using var f64 = HostTensor(DType.F64, 2, 2);
        reader.ReadInto("h", f64);
        Assert.That(f64.HostSpan<double>().ToArray(), Is.EqualTo(values.Select(v => (double)v).ToArray()));
    }

    [Test]
    public void ReadInto_a_tensor_of_another_size_names_both_shapes()
    {
        using var a = HostTensor([1f, 2f, 3f, 4f], 2, 2);
        string path = Dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("w", a)], DType.F32);
        using var reader = new SafetensorsReader(path);
        using var wrong = HostTensor(DType.F32, 3, 2);

        var e = Assert.Throws<UserErrorException>(() => reader.ReadInto("w", wrong))!;
        Assert.That(e.Message, Does.Contain("'w'").And.Contain("[2, 2]").And.Contain("[3, 2]").And.Contain(path));
        Assert.That(() => reader.ReadInto("nope", wrong), Throws.TypeOf<UserErrorException>().With.Message.Contain("'nope'"));
    }

    [Test]
    public void Same_inputs_give_identical_bytes_and_no_temporary_file_is_left()
    {
        using var a = HostTensor([1f, 2f, 3f], 3);
        using var b = HostTensor([4f, 5f], 2);
        SafetensorsWriter.Write(Dir.File("one.safetensors"), [("a", a), ("b", b)], DType.BF16);
        SafetensorsWriter.Write(Dir.File("two.safetensors"), [("a", a), ("b", b)], DType.BF16);

        Assert.That(File.ReadAllBytes(Dir.File("one.safetensors")), Is.EqualTo(File.ReadAllBytes(Dir.File("two.safetensors"))));
        Assert.That(Directory.GetFiles(Dir.Path).Select(Path.GetFileName), Is.EquivalentTo(new[] { "one.safetensors", "two.safetensors" }));
    }

    [Test]
    public void Rewriting_replaces_the_file_and_metadata_is_written_sorted()
    {
        using var a = HostTensor([1f], 1);
        string path = Dir.File("t.safetensors");
        File.WriteAllText(path, "old contents");
        SafetensorsWriter.Write(path, [("a", a)], DType.F32, new Dictionary<string, string> { ["z"] = "1", ["b"] = "2" });

        using var reader = new SafetensorsReader(path);
        Assert.That(reader.Metadata, Is.EqualTo(new Dictionary<string, string> { ["b"] = "2", ["z"] = "1" }));
        byte[] bytes = File.ReadAllBytes(path);
        using JsonDocument header = JsonDocument.Parse(bytes.AsMemory(8, (int)reader.DataStart - 8));
        Assert.That(header.RootElement.GetProperty("__metadata__").EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "b", "z" }));
    }
}
