using CudaFinetune.Tensors;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// A tensor of a checkpoint, or one stretch of it: <see cref="Data"/> holds elements [Start, Start + Data.ElementCount) of
/// the flattened tensor <see cref="Name"/>, whose whole shape is <see cref="Shape"/>. What is saved (the sources) and what
/// a resume fills (the destinations) are both lists of pieces, so a tensor a ZeRO rank owns a part of is saved as that
/// part, and loaded into any other cut of it: that is all resharding needs.
/// </summary>
public sealed record CheckpointPiece(string Name, string Group, Tensor Data, Shape Shape, long Start)
{
    /// <summary>The whole tensor.</summary>
    public static CheckpointPiece Whole(string name, string group, Tensor data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new(name, group, data, data.Shape, 0);
    }

    /// <summary>Elements of the whole tensor.</summary>
    public long TotalElements => Shape.ElementCount;

    public bool IsWhole => Start == 0 && Data.ElementCount == Shape.ElementCount;

    /// <summary>The stretch as the manifest records it (null for a whole tensor).</summary>
    public TensorSlice? Slice => IsWhole ? null : new TensorSlice(Start, Data.ElementCount);
}

/// <summary>Elements [Start, Start + Count) of a flattened tensor.</summary>
public readonly record struct TensorSlice(long Start, long Count)
{
    public long End => Start + Count;
}
