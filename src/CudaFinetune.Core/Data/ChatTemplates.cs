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
/// <c>auto</c> takes llama3 when the tokenizer has Llama 3's header and end-of-turn tokens as single tokens, else llama2. Each piece
/// is tokenized on its own and the pieces joined, so the loss mask falls exactly on the turn boundaries.
/// </summary>
public static class ChatTemplates
{
    public const string Auto = "auto";
    public const string Llama3 = "llama3";
    public const string Llama2 = "llama2";

    public static IReadOnlyList<string> Names { get; } = [Auto, Llama3, Llama2];

    private const string BeginOfText = "<|begin_of_text|>", StartHeader = "<|start_header_id|>", EndHeader = "<|end_header_id|>", EndOfTurn = "<|eot_id|>";

    /// <summary>
    /// The template <paramref name="name"/> stands for with this tokenizer; <see cref="UserErrorException"/> naming
    /// <paramref name="source"/> when the tokenizer lacks the template's special tokens (GPT-2's has neither a BOS
    /// nor Llama 3's headers), since rendering without them would train on text the model never sees in use.
    /// </summary>
    public static string Resolve(string name, ITokenizer tokenizer, string source)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        string template = name switch
        {
            Auto => HasLlama3Tokens(tokenizer) ? Llama3 : Llama2,
            Llama3 or Llama2 => name,
            _ => throw new UserErrorException($"--chat-template must be {string.Join(", ", Names)}, got '{name}'"),
        };
        if (Missing(name, template, tokenizer) is { } missing)
        {
            throw new UserErrorException(
                $"{source}: chat records (messages) need a tokenizer with the chat template's special tokens, but tokenizer '{tokenizer.Name}' {missing}. " +
                $"--chat-template llama3 needs Llama 3's tokenizer.json ({BeginOfText}, {StartHeader}, {EndHeader}, {EndOfTurn}); " +
                "llama2 needs Llama 2's tokenizer.model (BOS <s>, EOS </s>). " +
                "Use a model directory that has such a tokenizer, or convert the records to the alpaca (instruction/input/output) or text format");
        }
        return template;
    }

    private static bool HasLlama3Tokens(ITokenizer tokenizer) =>
        new[] { StartHeader, EndHeader, EndOfTurn }.All(special => tokenizer.Encode(special).Count == 1);

    /// <summary>What the tokenizer lacks for <paramref name="template"/> (resolved from <paramref name="name"/>), or null.</summary>
    private static string? Missing(string name, string template, ITokenizer tokenizer)
    {
        if (template == Llama3 && !HasLlama3Tokens(tokenizer))
        {
            return $"does not have {StartHeader}, {EndHeader} and {EndOfTurn} as single tokens (--chat-template llama3)";
        }
        if (tokenizer.BosId is not null)
        {
            return null;
        }
        return name == Auto
            ? "has neither Llama 3's header tokens nor the BOS token that starts each exchange in Llama 2's format (--chat-template auto)"
            : $"has no BOS token (--chat-template {template})";
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
        int bos = tokenizer.BosId ?? throw new ArgumentException($"{where}: the {template} chat template needs a BOS token; {nameof(Resolve)} checks the tokenizer has one", nameof(tokenizer));
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
