using System.Buffers;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// GPT-2's bytes_to_unicode, the alphabet of byte-level BPE vocabularies: the printable bytes stand for themselves, the
/// other 68 for U+0100 onwards, in byte order. A token is a string of these characters, one per byte.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] CharacterOfByte = Build();

    private static readonly Dictionary<char, byte> ByteOfCharacter = Enumerable.Range(0, 256).ToDictionary(b => CharacterOfByte[b], b => (byte)b);

    /// <summary>The 256 characters, for searching.</summary>
    public static SearchValues<char> Characters { get; } = SearchValues.Create(CharacterOfByte);

    public static char CharacterOf(byte b) => CharacterOfByte[b];

    /// <summary>The byte a character stands for; false for a character outside the alphabet.</summary>
    public static bool TryGetByte(char c, out byte b) => ByteOfCharacter.TryGetValue(c, out b);

    private static char[] Build()
    {
        var characters = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            characters[b] = printable ? (char)b : (char)next++;
        }
        return characters;
    }
}
