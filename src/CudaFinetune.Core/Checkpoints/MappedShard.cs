using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace CudaFinetune.Checkpoints;

/// <summary>A read-only memory map of a whole shard file, made from the handle its checks were made on (never reopened by name).</summary>
internal sealed unsafe class MappedShard : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    public MappedShard(SafeFileHandle handle)
    {
        try
        {
            _file = MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        Pointer = pointer + _view.PointerOffset;
    }

    public byte* Pointer { get; }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
