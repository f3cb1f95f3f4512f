using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace.Safetensors;

/// <summary>One tensor entry of a safetensors header, already validated against the file.</summary>
/// <param name="Name">The tensor's name (a Hugging Face parameter name for model files).</param>
/// <param name="DType">The element type stored in the file.</param>
/// <param name="Shape">The tensor's shape.</param>
/// <param name="Offset">Byte offset of the first element, relative to the start of the data buffer (as in the header).</param>
/// <param name="Length">Byte length of the tensor's data: element count × dtype size.</param>
public sealed record SafetensorsTensorInfo(string Name, DType DType, Shape Shape, long Offset, long Length)
{
    public long ElementCount => Shape.ElementCount;
}
