using System.Text;
using System.Text.Json;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// Writes a SentencePiece BPE model (sentencepiece_model.proto's ModelProto) from a Hugging Face tokenizer.json of a
/// SentencePiece BPE (as transformers' LlamaConverter made it from Llama 2's tokenizer.model): the pieces in id order,
/// each scored by the rank of the first merge that makes it (SentencePiece merges the best-scored piece first, which
/// is the converter's merge order), control/unknown/byte types, and Llama 2's trainer and normalizer settings
/// (BPE, byte fallback, unk 0, bos 1, eos 2, no pad; a dummy prefix, whitespace escaped, extra spaces kept).
/// </summary>
internal static class SentencePieceModelFile
{
    public static void Write(string tokenizerJson, string modelPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(tokenizerJson));
        var model = doc.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject().Select(p => (Piece: p.Name, Id: p.Value.GetInt32())).OrderBy(p => p.Id).ToList();
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        int r = 0;
        foreach (var merge in model.GetProperty("merges").EnumerateArray())
        {
            string text = merge.ValueKind == JsonValueKind.Array ? merge[0].GetString() + " " + merge[1].GetString() : merge.GetString()!;
            rank.TryAdd(text.Replace(" ", "", StringComparison.Ordinal), r++);
        }
        var proto = new MemoryStream();
        foreach (var (piece, _) in vocab)
        {
            int type = piece == "<unk>" ? 2 : piece is "<s>" or "</s>" ? 3 : piece.StartsWith("<0x", StringComparison.Ordinal) && piece.Length == 6 ? 6 : 1;
            float score = rank.TryGetValue(piece, out int k) ? -k : 0;
            var message = new MemoryStream();
            String(message, 1, piece);
            Tag(message, 2, 5);
            message.Write(BitConverter.GetBytes(score));
            Varint(message, 3, type);
            Bytes(proto, 1, message.ToArray());
        }
        var trainer = new MemoryStream();
        Varint(trainer, 3, 2); // model_type BPE
        Varint(trainer, 4, vocab.Count);
        Varint(trainer, 35, 1); // byte_fallback
        Varint(trainer, 40, 0); // unk_id
        Varint(trainer, 41, 1); // bos_id
        Varint(trainer, 42, 2); // eos_id
        Varint(trainer, 43, -1); // pad_id
        Bytes(proto, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        String(normalizer, 1, "identity");
        Varint(normalizer, 3, 1); // add_dummy_prefix
        Varint(normalizer, 4, 0); // remove_extra_whitespaces
        Varint(normalizer, 5, 1); // escape_whitespaces
        Bytes(proto, 3, normalizer.ToArray());
        File.WriteAllBytes(modelPath, proto.ToArray());
    }

    private static void Tag(Stream s, int field, int wireType) => Raw(s, (ulong)((field << 3) | wireType));

    private static void Varint(Stream s, int field, long value)
    {
        Tag(s, field, 0);
        Raw(s, unchecked((ulong)value));
    }

    private static void String(Stream s, int field, string value) => Bytes(s, field, Encoding.UTF8.GetBytes(value));

    private static void Bytes(Stream s, int field, byte[] value)
    {
        Tag(s, field, 2);
        Raw(s, (ulong)value.Length);
        s.Write(value);
    }

    private static void Raw(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }
}
