using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace.Safetensors;

/// <summary>
/// Writes tensors (host ones directly, device ones staged through their backend) as a safetensors file that Hugging Face tools load: tensors in the order
/// given, packed back to back (the format allows no holes), the JSON header padded with spaces so
/// the data buffer starts at a multiple of 8, and <c>__metadata__</c> {"format": "pt"} as PyTorch
/// writers do. The output is a pure function of the inputs (same tensors, same bytes), and the
/// file is written atomically, so a crash never leaves half a file under the final name.
/// </summary>
public static unsafe class SafetensorsWriter
{
    private const int ChunkBytes = 1 << 20;

    /// <summary>The metadata written when the caller gives none.</summary>
    public static IReadOnlyDictionary<string, string> DefaultMetadata { get; } = new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> as <paramref name="fileDType"/>
    /// (F32, F64, BF16 or F16), converting from the host tensors' floating dtypes with
    /// round-to-nearest-even; a tensor already in <paramref name="fileDType"/> (I32 too) is copied.
    /// Metadata keys are written in ordinal order. Tensors not in host memory are copied out through
    /// <paramref name="backend"/>, one at a time.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, DType fileDType,
        IReadOnlyDictionary<string, string>? metadata = null, IBackend? backend = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        CheckInputs(tensors, fileDType, backend);
        byte[] header = BuildHeader(tensors, fileDType, metadata ?? DefaultMetadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            byte[] chunk = ArrayPool<byte>.Shared.Rent(ChunkBytes);
            try
            {
                foreach (var (_, tensor) in tensors)
                {
                    if (tensor.Storage is HostStorage)
                    {
                        WriteData(stream, tensor, fileDType, chunk);
                        continue;
                    }
                    using var staged = new Tensor(new HostStorage(tensor.DType, tensor.ElementCount), tensor.DType, tensor.Shape);
                    TensorBytes.CopyOut(backend!, tensor, (byte*)staged.HostAddress);
                    WriteData(stream, staged, fileDType, chunk);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
        });
    }

    private static void CheckInputs(IReadOnlyList<(string Name, Tensor Tensor)> tensors, DType fileDType, IBackend? backend)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor);
            if (string.IsNullOrEmpty(name) || name == SafetensorsHeader.MetadataKey || !names.Add(name))
            {
                throw new ArgumentException($"tensor name '{name}' is empty, reserved or given twice", nameof(tensors));
            }
            if (tensor.Storage is not HostStorage && backend?.Device != tensor.Device)
            {
                throw new ArgumentException($"tensor '{name}' lives on {tensor.Device}; give its backend to copy it to the host", nameof(tensors));
            }
            if (tensor.DType != fileDType && !(ElementConvert.IsFloating(tensor.DType) && ElementConvert.IsFloating(fileDType)))
            {
                throw new ArgumentException($"tensor '{name}' is {tensor.DType} and cannot be written as {fileDType}", nameof(tensors));
            }
        }
    }

    /// <summary>The header JSON, padded with spaces to a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(IReadOnlyList<(string Name, Tensor Tensor)> tensors, DType fileDType, IReadOnlyDictionary<string, string> metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var key in metadata.Keys.Order(StringComparer.Ordinal))
                {
                    json.WriteString(key, metadata[key]);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                long length = checked(tensor.ElementCount * fileDType.SizeInBytes());
                json.WriteStartObject(name);
                json.WriteString("dtype", fileDType.SafetensorsName());
                json.WriteStartArray("shape");
                foreach (int d in tensor.Shape.Dimensions)
                {
                    json.WriteNumberValue(d);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += length;
            }
            json.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteData(FileStream stream, Tensor tensor, DType fileDType, byte[] chunk)
    {
        int sourceSize = tensor.DType.SizeInBytes(), fileSize = fileDType.SizeInBytes();
        long perChunk = chunk.Length / fileSize;
        byte* source = (byte*)tensor.HostAddress;
        fixed (byte* destination = chunk)
        {
            for (long done = 0; done < tensor.ElementCount; done += perChunk)
            {
                long count = Math.Min(perChunk, tensor.ElementCount - done);
                ElementConvert.Convert(source + done * sourceSize, tensor.DType, destination, fileDType, count);
                stream.Write(chunk, 0, (int)(count * fileSize));
            }
        }
    }
}
