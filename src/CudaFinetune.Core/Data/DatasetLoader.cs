using System.Text.Json;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;

namespace CudaFinetune.Data;

/// <summary>Tokenized training and validation examples, and the format the training file was read as.</summary>
public sealed record LoadedDataset(IReadOnlyList<TokenizedExample> Train, IReadOnlyList<TokenizedExample> Validation, string Format);

/// <summary>
/// Reads a .json/.jsonl/.csv dataset into <see cref="TokenizedExample"/>s, as llama-recipes' dataset
/// classes do, and holds out a validation split.
/// </summary>
/// <remarks>
/// <para>Formats, recognised by their fields (<c>--dataset-format auto</c> takes the format of the first
/// record and requires every record to have its fields; extra fields are ignored):</para>
/// <list type="bullet">
/// <item><b>pretokenized</b> — <c>input_ids</c> (integers), optional <c>labels</c> (same length, -100 = not
/// counted; default: the input ids). Taken as is: no BOS/EOS added, no tokenizer needed.</item>
/// <item><b>chat</b> — <c>messages</c> (role and content objects), rendered by <see cref="ChatTemplates"/> (Llama 3's or
/// Llama 2's format, which need that model's tokenizer); the assistant turns count.</item>
/// <item><b>alpaca</b> — <c>instruction</c>, <c>output</c>, optional <c>input</c>: prompt = llama-recipes'
/// PROMPT_DICT <c>prompt_input</c> (or <c>prompt_no_input</c> when input is missing, null or empty), then
/// output + EOS; the prompt is masked.</item>
/// <item><b>samsum</b> — <c>dialogue</c>, <c>summary</c>: prompt "Summarize this dialog:\n{dialogue}\n---\nSummary:\n",
/// then summary + EOS; the prompt is masked.</item>
/// <item><b>grammar</b> — <c>input</c>, <c>target</c> (llama-recipes' grammar CSV): prompt <see cref="GrammarPrompt"/>,
/// then target + EOS; the prompt is masked.</item>
/// <item><b>text</b> — <c>text</c>: text + EOS, every token counted.</item>
/// <item><b>custom</b> — <c>response</c> plus either <c>--prompt-template</c> (its <c>{field}</c> placeholders
/// name fields of the record as spelled in the file, e.g. "Q: {question}\nA: "; the escapes \n, \t and \\ typed as
/// text become a newline, a tab and a backslash) or a <c>prompt</c> field:
/// prompt + response + EOS, the prompt masked. Any template makes auto choose custom.</item>
/// </list>
/// <para><c>--field-map</c> ("format_field=file_field,…", e.g. "instruction=question,output=answer" or
/// "prompt=question,response=answer") reads a format's field from a differently named field of the
/// file; the names it can map are input_ids, labels, messages, instruction, input, output, dialogue, summary,
/// target, text, prompt, response.</para>
/// <para>Prompt and response are tokenized separately and concatenated, so the mask boundary is exact.
/// A BOS id is prepended when the tokenizer has one (GPT-2 has none). Every id must be below the
/// model's vocabulary size.</para>
/// <para>Validation: <c>--validation-dataset</c> (read the same way; its format is recognised on its own),
/// else <c>--validation-fraction</c> of the records, chosen by a Philox-driven shuffle of
/// <c>--seed</c>: ceil(fraction × n) records, at least 1 and at most n−1 when the fraction is above 0
/// and there are at least 2 records; a fraction of 0 (or a single record) holds out nothing. Both parts
/// keep the file's order.</para>
/// </remarks>
public static class DatasetLoader
{
    public const string AutoFormat = "auto";
    public const string PretokenizedFormat = "pretokenized";
    public const string AlpacaFormat = "alpaca";
    public const string SamsumFormat = "samsum";
    public const string TextFormat = "text";
    public const string CustomFormat = "custom";
    public const string ChatFormat = "chat";
    public const string GrammarFormat = "grammar";

    /// <summary>The formats, in the order auto tries them.</summary>
    public static IReadOnlyList<string> Formats { get; } = [PretokenizedFormat, ChatFormat, AlpacaFormat, SamsumFormat, GrammarFormat, TextFormat, CustomFormat];

    /// <summary>llama-recipes' grammar dataset prompt (its CSV has input and target columns).</summary>
    public const string GrammarPrompt = "Correct this to standard English: {input}\n---\nCorrected: ";

    /// <summary>llama-recipes' PROMPT_DICT["prompt_input"].</summary>
    public const string AlpacaPromptInput =
        "Below is an instruction that describes a task, paired with an input that provides further context. " +
        "Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

    /// <summary>llama-recipes' PROMPT_DICT["prompt_no_input"].</summary>
    public const string AlpacaPromptNoInput =
        "Below is an instruction that describes a task. " +
        "Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\n{instruction}\n\n### Response:\n";

    /// <summary>llama-recipes' samsum prompt.</summary>
    public const string SamsumPrompt = "Summarize this dialog:\n{dialog}\n---\nSummary:\n";

    /// <summary>
    /// Reads <see cref="FinetuneOptions.Dataset"/> (and <see cref="FinetuneOptions.ValidationDataset"/>)
    /// as the options say. <paramref name="tokenizer"/> may be null when the data is pretokenized;
    /// <paramref name="vocabSize"/> is the model's. Throws <see cref="UserErrorException"/> for any
    /// problem with the files, naming the file and line.
    /// </summary>
    public static LoadedDataset Load(FinetuneOptions options, ITokenizer? tokenizer, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        string path = options.Dataset
            ?? throw new UserErrorException("no dataset given; pass --dataset with a .json or .jsonl file (or run `finetune` with no arguments for the built-in demo)");
        byte[] content = DatasetFile.Read(path, "--dataset",
            "pass --dataset with the path of an existing .json or .jsonl file (or run `finetune` with no arguments for the built-in demo)");
        return Load(options, tokenizer, vocabSize, content, path);
    }

    /// <summary>
    /// As <see cref="Load(FinetuneOptions, ITokenizer?, int)"/>, with the training data given as bytes
    /// (e.g. the built-in demo's embedded file) instead of read from <see cref="FinetuneOptions.Dataset"/>;
    /// <paramref name="sourceName"/> ends in .json or .jsonl and names the data in messages.
    /// </summary>
    public static LoadedDataset Load(FinetuneOptions options, ITokenizer? tokenizer, int vocabSize, ReadOnlyMemory<byte> content, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(sourceName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        if (options.ValidationFraction is < 0 or >= 1 || double.IsNaN(options.ValidationFraction))
        {
            throw new UserErrorException($"--validation-fraction must be in [0, 1), got {options.ValidationFraction}");
        }
        DatasetFormatSpec spec = DatasetFormatSpec.From(options);
        var (train, format) = ReadExamples(content, sourceName, spec, tokenizer, vocabSize);
        if (options.ValidationDataset is { } validationPath)
        {
            byte[] validationContent = DatasetFile.Read(validationPath, "--validation-dataset",
                "pass --validation-dataset with an existing .json or .jsonl file, or leave it out to hold out --validation-fraction of the training data");
            var (validation, _) = ReadExamples(validationContent, validationPath, spec, tokenizer, vocabSize);
            return new LoadedDataset(train, validation, format);
        }
        var (trainPart, validationPart) = Split(train, options.ValidationFraction, options.Seed);
        return new LoadedDataset(trainPart, validationPart, format);
    }

    /// <summary>The deterministic hold-out split described on the class.</summary>
    internal static (List<TokenizedExample> Train, List<TokenizedExample> Validation) Split(List<TokenizedExample> examples, double fraction, ulong seed)
    {
        int n = examples.Count;
        if (fraction <= 0 || n < 2)
        {
            return (examples, []);
        }
        int held = Math.Clamp((int)Math.Ceiling(fraction * n), 1, n - 1);
        int[] order = SeededPermutation.Create(n, seed, 0, SeededPermutation.SplitPurpose);
        var isValidation = new bool[n];
        for (int i = 0; i < held; i++)
        {
            isValidation[order[i]] = true;
        }
        var train = new List<TokenizedExample>(n - held);
        var validation = new List<TokenizedExample>(held);
        for (int i = 0; i < n; i++)
        {
            (isValidation[i] ? validation : train).Add(examples[i]);
        }
        return (train, validation);
    }

    private static (List<TokenizedExample> Examples, string Format) ReadExamples(
        ReadOnlyMemory<byte> content, string source, DatasetFormatSpec spec, ITokenizer? tokenizer, int vocabSize)
    {
        var examples = new List<TokenizedExample>();
        string? format = spec.Format == AutoFormat ? null : spec.Format;
        string? chatTemplate = null;
        foreach (DatasetRecord record in DatasetFile.Records(content, source))
        {
            string where = $"{source}, line {record.Line}";
            if (format is null)
            {
                format = spec.Detect(record.Value) ?? throw new UserErrorException(
                    $"{where}: the record's fields ({DatasetFormatSpec.FieldList(record.Value)}) match no dataset format; recognised field sets: " +
                    string.Join("; ", Formats.Select(f => $"{f} ({spec.Required(f)})")) +
                    ". Name the format with --dataset-format and point its fields at yours with --field-map (e.g. --field-map instruction=question,output=answer)");
                chatTemplate = CheckTokenizer(format, spec, source, tokenizer, vocabSize);
            }
            else if (examples.Count == 0)
            {
                chatTemplate = CheckTokenizer(format, spec, source, tokenizer, vocabSize);
            }
            if (!spec.Matches(record.Value, format))
            {
                string origin = spec.Format == AutoFormat ? $"the dataset is {format} (recognised from its first record)" : $"--dataset-format is {format}";
                throw new UserErrorException(
                    $"{where}: the record's fields ({DatasetFormatSpec.FieldList(record.Value)}) lack what {format} needs ({spec.Required(format)}); {origin}, and every record must be in that format" +
                    (spec.Format == AutoFormat ? "" : "; use --dataset-format auto to recognise the format from the fields, or map yours with --field-map"));
            }
            examples.Add(format switch
            {
                PretokenizedFormat => ReadPretokenized(record.Value, spec, vocabSize, where),
                ChatFormat => TokenizeChat(record.Value, spec, chatTemplate!, tokenizer!, vocabSize, where),
                _ => Tokenize(record.Value, format, spec, tokenizer!, vocabSize, where),
            });
        }
        if (examples.Count == 0)
        {
            throw new UserErrorException($"dataset '{source}' holds no records; a .jsonl file needs one JSON object per line, a .json file an array of objects");
        }
        return (examples, format!);
    }

    /// <summary>Checks the tokenizer can encode <paramref name="format"/>'s records; for chat, returns the template they are rendered with (once per file).</summary>
    private static string? CheckTokenizer(string format, DatasetFormatSpec spec, string source, ITokenizer? tokenizer, int vocabSize)
    {
        if (format == PretokenizedFormat)
        {
            return null;
        }
        if (tokenizer is null)
        {
            throw new UserErrorException(
                $"{source}: the records are {format} text, which needs a tokenizer, but the model directory has none CudaFinetune can use " +
                $"({HfTokenizer.TokenizerJsonFileName}, {HfTokenizer.SentencePieceFileName}, or {TokenizerCatalog.RecordFileName} with \"{TokenizerCatalog.RecordKey}\": one of {string.Join(", ", TokenizerCatalog.Names)}); " +
                "give pretokenized records instead ({\"input_ids\": [...], \"labels\": [...]}) or a model directory with its tokenizer files");
        }
        if (tokenizer.VocabSize > vocabSize)
        {
            throw new UserErrorException(
                $"tokenizer '{tokenizer.Name}' has {tokenizer.VocabSize} token ids but the model's vocabulary has only {vocabSize}, so its ids would fall outside the embedding; " +
                $"use a model with vocab_size of at least {tokenizer.VocabSize}, or pretokenized data whose ids are below {vocabSize}");
        }
        return format == ChatFormat ? ChatTemplates.Resolve(spec.ChatTemplate, tokenizer, source) : null;
    }

    private static TokenizedExample Tokenize(JsonElement record, string format, DatasetFormatSpec spec, ITokenizer tokenizer, int vocabSize, string where)
    {
        string prompt;
        string response;
        switch (format)
        {
            case AlpacaFormat:
            {
                string instruction = GetString(record, spec, "instruction", where);
                string input = spec.Has(record, "input") ? GetString(record, spec, "input", where) : "";
                prompt = input.Length == 0 ? Fill(AlpacaPromptNoInput, instruction, null) : Fill(AlpacaPromptInput, instruction, input);
                response = GetString(record, spec, "output", where);
                break;
            }
            case SamsumFormat:
                prompt = SamsumPrompt.Replace("{dialog}", GetString(record, spec, "dialogue", where), StringComparison.Ordinal);
                response = GetString(record, spec, "summary", where);
                break;
            case CustomFormat:
                prompt = spec.Template is not null ? spec.RenderTemplate(record, where) : GetString(record, spec, "prompt", where);
                response = GetString(record, spec, "response", where);
                break;
            case GrammarFormat:
                prompt = GrammarPrompt.Replace("{input}", GetString(record, spec, "input", where), StringComparison.Ordinal);
                response = GetString(record, spec, "target", where);
                break;
            case TextFormat:
                prompt = "";
                response = GetString(record, spec, "text", where);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "not a text format");
        }
        IReadOnlyList<int> promptIds = prompt.Length == 0 ? [] : tokenizer.Encode(prompt);
        IReadOnlyList<int> responseIds = tokenizer.Encode(response);
        int bos = tokenizer.BosId is null ? 0 : 1;
        int length = bos + promptIds.Count + responseIds.Count + 1;
        var ids = new int[length];
        var labels = new int[length];
        int at = 0;
        if (tokenizer.BosId is int bosId)
        {
            ids[at] = bosId;
            labels[at++] = format == TextFormat ? bosId : TokenizedExample.IgnoreIndex;
        }
        foreach (int id in promptIds)
        {
            ids[at] = id;
            labels[at++] = TokenizedExample.IgnoreIndex;
        }
        foreach (int id in responseIds)
        {
            ids[at] = id;
            labels[at++] = id;
        }
        ids[at] = tokenizer.EosId;
        labels[at] = tokenizer.EosId;
        CheckIds(ids, tokenizer, vocabSize, where);
        return new TokenizedExample(ids, labels);
    }

    private static TokenizedExample TokenizeChat(JsonElement record, DatasetFormatSpec spec, string template, ITokenizer tokenizer, int vocabSize, string where)
    {
        spec.TryGet(record, "messages", out JsonElement messages);
        var (ids, labels) = ChatTemplates.Tokenize(ChatTemplates.ReadMessages(messages, where), template, tokenizer, where);
        CheckIds(ids, tokenizer, vocabSize, where);
        return new TokenizedExample([.. ids], [.. labels]);
    }

    private static void CheckIds(IEnumerable<int> ids, ITokenizer tokenizer, int vocabSize, string where)
    {
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)vocabSize)
            {
                throw new UserErrorException($"{where}: tokenizer '{tokenizer.Name}' produced id {id}, outside the model's vocabulary of {vocabSize}; the tokenizer and the model do not belong together");
            }
        }
    }

    /// <summary>Fills an alpaca prompt's placeholders in one left-to-right pass, so braces inside the values stay as they are.</summary>
    private static string Fill(string template, string instruction, string? input)
    {
        var text = new System.Text.StringBuilder(template.Length + instruction.Length + (input?.Length ?? 0));
        int at = 0;
        while (at < template.Length)
        {
            if (string.CompareOrdinal(template, at, "{instruction}", 0, 13) == 0)
            {
                text.Append(instruction);
                at += 13;
            }
            else if (input is not null && string.CompareOrdinal(template, at, "{input}", 0, 7) == 0)
            {
                text.Append(input);
                at += 7;
            }
            else
            {
                text.Append(template[at++]);
            }
        }
        return text.ToString();
    }

    private static string GetString(JsonElement record, DatasetFormatSpec spec, string canonical, string where)
    {
        if (!spec.TryGet(record, canonical, out JsonElement value))
        {
            throw new UserErrorException($"{where}: the record has no field {spec.Describe(canonical)}");
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            throw new UserErrorException($"{where}: field {spec.Describe(canonical)} must be a string, not {Kind(value)}");
        }
        return value.GetString()!;
    }

    private static TokenizedExample ReadPretokenized(JsonElement record, DatasetFormatSpec spec, int vocabSize, string where)
    {
        int[] ids = ReadIds(record, spec, "input_ids", vocabSize, allowIgnore: false, where);
        if (ids.Length == 0)
        {
            throw new UserErrorException($"{where}: {spec.Describe("input_ids")} is empty; every example needs at least one token");
        }
        if (!spec.Has(record, "labels"))
        {
            return new TokenizedExample(ids, (int[])ids.Clone());
        }
        int[] labels = ReadIds(record, spec, "labels", vocabSize, allowIgnore: true, where);
        if (labels.Length != ids.Length)
        {
            throw new UserErrorException($"{where}: {spec.Describe("labels")} has {labels.Length} entries but {spec.Describe("input_ids")} has {ids.Length}; labels are aligned with the input ids (the model shifts them), so the lengths must match");
        }
        return new TokenizedExample(ids, labels);
    }

    private static int[] ReadIds(JsonElement record, DatasetFormatSpec spec, string canonical, int vocabSize, bool allowIgnore, string where)
    {
        spec.TryGet(record, canonical, out JsonElement array);
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw new UserErrorException($"{where}: field {spec.Describe(canonical)} must be an array of token ids, not {Kind(array)}");
        }
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (JsonElement element in array.EnumerateArray())
        {
            if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out int id))
            {
                throw new UserErrorException($"{where}: {spec.Describe(canonical)}[{i}] is {element.GetRawText()}, not an integer token id");
            }
            if ((uint)id >= (uint)vocabSize && !(allowIgnore && id == TokenizedExample.IgnoreIndex))
            {
                throw new UserErrorException(allowIgnore
                    ? $"{where}: {spec.Describe(canonical)}[{i}] is {id}, neither a token id below the model's vocabulary size {vocabSize} nor {TokenizedExample.IgnoreIndex} (not counted)"
                    : $"{where}: {spec.Describe(canonical)}[{i}] is token id {id}, outside the model's vocabulary of {vocabSize} (ids must be 0 to {vocabSize - 1}); the data was tokenized for another model");
            }
            ids[i++] = id;
        }
        return ids;
    }

    private static string Kind(JsonElement value) => JsonFields.KindName(value.ValueKind);
}
