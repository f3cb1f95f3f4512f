using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Data;

/// <summary>
/// Chat records (<c>messages</c>: objects with <c>role</c> system, user or assistant, and <c>content</c>) rendered as
/// the instruct models were trained, with the loss on the assistant turns only (their text and the token that ends
/// them), as TRL's assistant-only loss and torchtune's chat datasets do:
/// <list type="bullet">
/// <item><b>llama3</b> — BOS, then per message <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n</c>, the trimmed
/// content and <c>&lt;|eot_id|&gt;</c> (Llama 3's chat_template).</item>
/// <item><b>llama2</b> — per exchange <c>BOS [INST] user [/INST] assistant EOS</c>, a system message wrapped as
/// <c>&lt;&lt;SYS&gt;&gt;\n…\n&lt;&lt;/SYS&gt;&gt;\n\n</c> in front of the first user message (Llama 2's chat format).</item>
/// </list>
/// <c>auto</c> takes llama3 when the tokenizer has <c>&lt;|start_header_id|&gt;</c> as one token, else llama2. Each piece
/// is tokenized on its own and the pieces joined, so the loss mask falls exactly on the turn boundaries.
/// </summary>
public static class ChatTemplates
{
    public const string Auto = "auto";
    public const string Llama3 = "llama3";
    public const string Llama2 = "llama2";

    public static IReadOnlyList<string> Names { get; } = [Auto, Llama3, Llama2];

    private const string StartHeader = "<|start_header_id|>", EndHeader = "<|end_header_id|>", EndOfTurn = "<|eot_id|>";

    /// <summary>The template <paramref name="name"/> stands for with this tokenizer.</summary>
    public static string Resolve(string name, ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return name switch
        {
            Auto => tokenizer.Encode(StartHeader).Count == 1 ? Llama3 : Llama2,
            Llama3 or Llama2 => name,
            _ => throw new UserErrorException($"--chat-template must be {string.Join(", ", Names)}, got '{name}'"),
        };
    }

    /// <summary>The record's messages as (role, content); <see cref="UserErrorException"/> naming <paramref name="where"/> for a malformed conversation.</summary>
    public static List<(string Role, string Content)> ReadMessages(JsonElement messages, string where)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw new UserErrorException($"{where}: 'messages' must be an array of {{\"role\", \"content\"}} objects");
        }
        var list = new List<(string, string)>();
        int i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string? role = message.ValueKind == JsonValueKind.Object && message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            string? content = message.ValueKind == JsonValueKind.Object && message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            if (role is not ("system" or "user" or "assistant") || content is null)
            {
                throw new UserErrorException($"{where}: messages[{i}] needs a \"role\" (system, user or assistant) and a string \"content\"");
            }
            if (role == "system" && i != 0)
            {
                throw new UserErrorException($"{where}: messages[{i}] is a system message; only the first message may be one");
            }
            list.Add((role, content));
            i++;
        }
        if (!list.Any(m => m.Item1 == "assistant"))
        {
            throw new UserErrorException($"{where}: the conversation has no assistant message, so nothing would be trained");
        }
        return list;
    }

    /// <summary>Token ids and labels (-100 outside assistant turns) of one conversation.</summary>
    public static (List<int> Ids, List<int> Labels) Tokenize(IReadOnlyList<(string Role, string Content)> messages, string template, ITokenizer tokenizer, string where)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = new List<int>();
        var labels = new List<int>();
        void Add(IEnumerable<int> tokens, bool trained)
        {
            foreach (int id in tokens)
            {
                ids.Add(id);
                labels.Add(trained ? id : TokenizedExample.IgnoreIndex);
            }
        }
        int bos = tokenizer.BosId ?? throw new UserErrorException($"{where}: the {template} chat template needs a tokenizer with a BOS token; '{tokenizer.Name}' has none");
        if (template == Llama3)
        {
            Add([bos], false);
            foreach (var (role, content) in messages)
            {
                Add(tokenizer.Encode($"{StartHeader}{role}{EndHeader}\n\n"), false);
                Add(tokenizer.Encode(content.Trim() + EndOfTurn), role == "assistant");
            }
            return (ids, labels);
        }
        string? system = messages[0].Role == "system" ? messages[0].Content : null;
        bool open = false;
        foreach (var (role, content) in messages.Skip(system is null ? 0 : 1))
        {
            if (role == "user")
            {
                string text = system is null ? content.Trim() : $"<<SYS>>\n{system.Trim()}\n<</SYS>>\n\n{content.Trim()}";
                system = null;
                Add([bos], false);
                Add(tokenizer.Encode($"[INST] {text} [/INST]"), false);
                open = true;
            }
            else
            {
                if (!open)
                {
                    throw new UserErrorException($"{where}: in the llama2 chat format every assistant message answers a user message");
                }
                Add(tokenizer.Encode(" " + content.Trim()), true);
                Add([tokenizer.EosId], true);
                open = false;
            }
        }
        return (ids, labels);
    }
}
