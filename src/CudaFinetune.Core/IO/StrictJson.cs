using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace CudaFinetune.IO;

/// <summary>
/// <see cref="JsonDocument.Parse(ReadOnlyMemory{byte}, JsonDocumentOptions)"/> for files a user hands us, refusing invalid
/// UTF-8 up front. JsonDocument accepts such bytes inside strings and throws <see cref="InvalidOperationException"/> only
/// when one of them is read — far from the parse, as a crash instead of the reader's "not valid JSON" message. Here it
/// is a <see cref="JsonException"/>, which every reader already turns into its own message. The same holds for an escape
/// of half a UTF-16 surrogate pair (<c>"\ud800"</c>): valid JSON syntax, but no text, and refused here too.
/// </summary>
internal static class StrictJson
{
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, JsonDocumentOptions options = default)
    {
        if (!Utf8.IsValid(utf8.Span))
        {
            throw new JsonException("the text is not valid UTF-8");
        }
        if (LoneSurrogateEscape(utf8.Span) is { } at)
        {
            throw new JsonException($"the text escapes half a UTF-16 surrogate pair (\\u{Encoding.ASCII.GetString(utf8.Span.Slice(at + 2, 4))}) at byte {at}");
        }
        return JsonDocument.Parse(utf8, options);
    }

    /// <summary>
    /// Where a <c>\uD800</c>–<c>\uDFFF</c> escape is not half of a high-then-low pair; null when none is. Backslashes occur
    /// only inside strings in JSON, so every one starts an escape (text that is not JSON at all is the parser's to refuse).
    /// </summary>
    private static int? LoneSurrogateEscape(ReadOnlySpan<byte> json)
    {
        int? pendingHigh = null;
        for (int i = json.IndexOf((byte)'\\'); i >= 0 && i < json.Length - 1;)
        {
            int? unit = json[i + 1] == 'u' && i + 6 <= json.Length && int.TryParse(json.Slice(i + 2, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int u) ? u : null;
            bool high = unit is >= 0xD800 and <= 0xDBFF, low = unit is >= 0xDC00 and <= 0xDFFF;
            if (pendingHigh is { } h && (!low || i != h + 6))
            {
                return h; // a high half not followed at once by a low one
            }
            if (low && pendingHigh is null)
            {
                return i;
            }
            pendingHigh = high ? i : null;
            int next = json[(i + 2)..].IndexOf((byte)'\\');
            i = next < 0 ? -1 : i + 2 + next;
        }
        return pendingHigh;
    }
}
