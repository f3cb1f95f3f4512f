namespace CudaFinetune.IO;

/// <summary>What a path names, looked at without following a symbolic link.</summary>
public enum FileKind
{
    Missing,
    Regular,
    Directory,
    SymbolicLink,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,
}
