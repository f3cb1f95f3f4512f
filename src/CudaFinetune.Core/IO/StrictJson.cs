using System.Text.Json;
using System.Text.Unicode;

namespace CudaFinetune.IO;

/// <summary>
/// <see cref="JsonDocument.Parse(ReadOnlyMemory{byte}, JsonDocumentOptions)"/> for files a user hands us, refusing invalid
/// UTF-8 up front. JsonDocument accepts such bytes inside strings and throws <see cref="InvalidOperationException"/> only
/// when one of them is read — far from the parse, as a crash instead of the reader's "not valid JSON" message. Here it
/// is a <see cref="JsonException"/>, which every reader already turns into its own message.
/// </summary>
internal static class StrictJson
{
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, JsonDocumentOptions options = default)
    {
        if (!Utf8.IsValid(utf8.Span))
        {
            throw new JsonException("the text is not valid UTF-8");
        }
        return JsonDocument.Parse(utf8, options);
    }
}
