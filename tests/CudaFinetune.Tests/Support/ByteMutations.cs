namespace CudaFinetune.Tests.Support;

/// <summary>
/// Random edits of a valid file, shared by the fuzz tests so they all break files the same ways
/// and every failing case can be replayed from its test's seed alone.
/// </summary>
internal static class ByteMutations
{
    /// <summary>
    /// <paramref name="original"/> after <paramref name="edits"/> random edits, each one of: a flipped bit, a byte
    /// replaced by a different one, an inserted byte, a deleted byte, or a cut of up to <paramref name="maxCut"/> bytes.
    /// Every single edit changes the bytes (a run of several could, rarely, undo itself).
    /// </summary>
    /// <param name="interesting">
    /// Bytes to insert (a format's delimiters, quotes, digits); any byte when null. Random bytes
    /// rarely hit the characters a parser branches on, so format-aware insertions go deeper.
    /// </param>
    public static byte[] Mutate(byte[] original, Random random, int edits = 1, byte[]? interesting = null, int maxCut = 64)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(random);
        var bytes = new List<byte>(original);
        for (int e = 0; e < edits; e++)
        {
            // An empty file can only grow.
            int kind = bytes.Count == 0 ? 3 : random.Next(5);
            switch (kind)
            {
                case 0:
                    int flip = random.Next(bytes.Count);
                    bytes[flip] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    int replace = random.Next(bytes.Count);
                    bytes[replace] = (byte)((bytes[replace] + random.Next(1, 256)) & 0xFF);
                    break;
                case 2:
                    bytes.RemoveAt(random.Next(bytes.Count));
                    break;
                case 3:
                    byte inserted = interesting is { Length: > 0 } ? interesting[random.Next(interesting.Length)] : (byte)random.Next(256);
                    bytes.Insert(random.Next(bytes.Count + 1), inserted);
                    break;
                default:
                    int from = random.Next(bytes.Count);
                    bytes.RemoveRange(from, Math.Min(random.Next(1, maxCut + 1), bytes.Count - from));
                    break;
            }
        }
        return [.. bytes];
    }
}
