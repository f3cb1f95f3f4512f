using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace.Safetensors;

/// <summary>
/// Reads a safetensors file (Hugging Face's weight format): an 8-byte little-endian header length
/// N, N bytes of JSON describing each tensor, then the raw little-endian data. The header is read
/// and validated in full on open (see <see cref="SafetensorsHeader"/>), with its length checked
/// against the file size before anything is allocated; the data is memory-mapped so that a
/// multi-gigabyte model is paged in only as tensors are copied out. <see cref="ReadInto"/> may be
/// called from several threads at once.
/// </summary>
public sealed unsafe class SafetensorsReader : IDisposable
{
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="UserErrorException"/> for a missing or malformed file.</summary>
    public SafetensorsReader(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Path = path;
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UserErrorException($"{path}: no such file", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{path}: cannot open ({e.Message})", e);
        }
        try
        {
            SafetensorsHeader header = ReadHeader(stream, path, out long dataStart);
            Tensors = header.Tensors;
            Metadata = header.Metadata;
            DataStart = dataStart;
            _byName = Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
            _map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
            _base += _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _map.Dispose();
            throw;
        }
    }

    public string Path { get; }

    /// <summary>The tensors, in the order their data appears in the file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Byte position in the file where the data buffer starts (8 + header length).</summary>
    public long DataStart { get; }

    public bool TryGetTensor(string name, out SafetensorsTensorInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>The named tensor's entry; <see cref="UserErrorException"/> when the file has none.</summary>
    public SafetensorsTensorInfo GetTensor(string name) => _byName.TryGetValue(name, out var info)
        ? info
        : throw new UserErrorException($"{Path}: has no tensor named '{name}'");

    /// <summary>
    /// Copies the named tensor into a host tensor with the same element count, converting between
    /// floating dtypes (F32, F64, BF16, F16) where the file's dtype and the destination's differ.
    /// </summary>
    public void ReadInto(string name, Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ObjectDisposedException.ThrowIf(_base == null, this);
        SafetensorsTensorInfo info = GetTensor(name);
        if (destination.Device.Kind != DeviceKind.Cpu)
        {
            throw new ArgumentException($"ReadInto needs a host tensor; '{name}' was asked into one on {destination.Device}", nameof(destination));
        }
        if (info.ElementCount != destination.ElementCount)
        {
            throw new UserErrorException($"{Path}: tensor '{name}' has shape {info.Shape} ({info.ElementCount} elements), but shape {destination.Shape} ({destination.ElementCount} elements) was expected");
        }
        if (info.DType != destination.DType && !(ElementConvert.IsFloating(info.DType) && ElementConvert.IsFloating(destination.DType)))
        {
            throw new UserErrorException($"{Path}: tensor '{name}' holds {info.DType}, which cannot be read as {destination.DType}");
        }
        ElementConvert.Convert(_base + DataStart + info.Offset, info.DType, (byte*)destination.HostAddress, destination.DType, info.ElementCount);
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
        }
    }

    private static SafetensorsHeader ReadHeader(FileStream stream, string path, out long dataStart)
    {
        long fileLength = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (fileLength < 8 || stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) != 8)
        {
            throw new UserErrorException($"{path}: not a valid safetensors file: {fileLength} bytes is too short to hold the 8-byte header length");
        }
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(fileLength - 8))
        {
            throw new UserErrorException($"{path}: not a valid safetensors file: the header length {headerLength} exceeds the {fileLength - 8} bytes that follow it (truncated or not a safetensors file)");
        }
        if (headerLength > SafetensorsHeader.MaxHeaderLength)
        {
            throw new UserErrorException($"{path}: not a valid safetensors file: the header length {headerLength} exceeds the {SafetensorsHeader.MaxHeaderLength}-byte limit");
        }
        var json = new byte[(int)headerLength];
        stream.ReadExactly(json);
        dataStart = 8 + (long)headerLength;
        return SafetensorsHeader.Parse(json, fileLength - dataStart, path);
    }
}
