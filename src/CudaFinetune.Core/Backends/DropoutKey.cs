namespace CudaFinetune.Backends;

/// <summary>
/// Identifies one dropout mask: the counter-based RNG is keyed by the run's seed and counted by
/// (step, layer, use), so the mask is recomputed in the backward and after a resume without any
/// saved state. Element i of the mask depends only on this key and i.
/// </summary>
public readonly record struct DropoutKey(ulong Seed, long Step, int Layer, int Use)
{
    /// <summary>The Philox counter's upper two words for this mask.</summary>
    public (uint Hi0, uint Hi1) CounterWords()
    {
        // Step in the third word, (layer, use) packed in the fourth: 65536 layers × 65536 uses.
        return ((uint)Step, ((uint)Layer << 16) | (uint)(ushort)Use);
    }

    /// <summary>An element is kept when the top 24 bits of its Philox word are ≥ this threshold.</summary>
    public static uint KeepThreshold(double probability) => (uint)Math.Round(probability * (1 << 24));
}
