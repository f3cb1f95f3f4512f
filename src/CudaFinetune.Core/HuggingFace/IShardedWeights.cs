using CudaFinetune.Backends;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace;

/// <summary>Base weights held in shards (ZeRO stage 3): views the model reads them through, filled from the weights file by <see cref="Load"/>.</summary>
public interface IShardedWeights
{
    /// <summary>The view the model reads tensor <paramref name="name"/> through, or null when that tensor is not sharded.</summary>
    Tensor? View(string name);

    /// <summary>Reads this rank's shards from the file, checking each tensor's shape and type.</summary>
    void Load(SafetensorsSet reader, IBackend backend);
}
