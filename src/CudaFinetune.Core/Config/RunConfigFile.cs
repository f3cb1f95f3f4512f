using System.Globalization;
using System.Text;
using CudaFinetune.Errors;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>
/// The <c>--config FILE</c> of <c>finetune</c>: a JSON (<c>.json</c>) or YAML (<c>.yaml</c>,
/// <c>.yml</c>) mapping of settings applied over the defaults, before the flags. Every setting
/// may be spelled as its flag without dashes (<c>batch-size</c>), in snake_case
/// (<c>batch_size</c>), or by its llama-recipes <c>train_config</c> name
/// (<c>batch_size_training</c>); LoRA settings may also sit in a nested <c>lora_config:</c>
/// mapping as in llama-recipes. llama-recipes keys for features not built here are accepted at
/// their default (or a harmless value) and refused otherwise; any other key is refused with a
/// "did you mean". Every problem is a <see cref="UserErrorException"/> starting "file:line:".
/// The result is not validated here; the caller runs <see cref="FinetuneOptions.Validate"/>
/// after the flags are applied.
/// </summary>
public static class RunConfigFile
{
    private static readonly Dictionary<string, OptionKey> ByName = BuildIndex();

    private static readonly Dictionary<string, UnsupportedKey> UnsupportedByName =
        RunConfigKeys.Unsupported.ToDictionary(u => u.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every accepted top-level key spelling, in documentation order.</summary>
    public static IReadOnlyList<string> KnownKeys { get; } = RunConfigKeys.All.SelectMany(k => k.Spellings)
        .Concat(RunConfigKeys.LoraSectionNames)
        .Concat(RunConfigKeys.Unsupported.Select(u => u.Name))
        .Distinct(StringComparer.Ordinal)
        .ToArray();

    /// <summary>Reads <paramref name="path"/> and returns <paramref name="options"/> with its settings applied.</summary>
    public static FinetuneOptions Apply(FinetuneOptions options, string path)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(path);
        return Apply(options, ConfigFileParser.Read(path), path);
    }

    /// <summary>As <see cref="Apply(FinetuneOptions, string)"/> for text already in memory; <paramref name="source"/> names it in messages.</summary>
    internal static FinetuneOptions ApplyText(FinetuneOptions options, string text, string source, bool yaml)
        => Apply(options, yaml ? ConfigFileParser.ParseYaml(text, source) : ConfigFileParser.ParseJson(text, source), source);

    private static FinetuneOptions Apply(FinetuneOptions options, ConfigMap map, string source)
    {
        var found = new Dictionary<OptionKey, ConfigValue>();
        var order = new List<OptionKey>();
        foreach (ConfigEntry entry in map.Entries)
        {
            var value = new ConfigValue(source, entry.Key, entry.Value, entry.Line);
            string key = entry.Key.Trim();
            if (RunConfigKeys.LoraSectionNames.Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                ReadLoraSection(value, found, order);
            }
            else if (ByName.TryGetValue(key, out OptionKey? option))
            {
                Add(found, order, option, value);
            }
            else if (UnsupportedByName.TryGetValue(key, out UnsupportedKey? unsupported))
            {
                CheckHarmless(unsupported, value);
            }
            else
            {
                throw value.Error($"unknown key '{entry.Key}'{Suggestion(key, KnownKeys)}; the config-file keys are listed in docs/cli.md");
            }
        }
        foreach (OptionKey option in order)
        {
            if (option.Set is { } set)
            {
                options = set(options, found[option]);
            }
        }
        options = ApplyPeft(options, found);
        options = ApplyGradientClipping(options, found);
        return ApplyValidation(options, found);
    }

    private static void Add(Dictionary<OptionKey, ConfigValue> found, List<OptionKey> order, OptionKey option, ConfigValue value)
    {
        if (found.TryGetValue(option, out ConfigValue earlier))
        {
            throw value.Error($"'{value.Key}' sets the same thing as '{earlier.Key}' ({ConfigFileParser.Where(earlier.Source, earlier.Line)}); keep one");
        }
        found.Add(option, value);
        order.Add(option);
    }

    private static void CheckHarmless(UnsupportedKey key, ConfigValue value)
    {
        if (!key.Harmless(value))
        {
            throw value.Error($"'{value.Key}: {value.Text}' is not supported yet ({key.Hint}); remove the key or set it to {key.Accepted.Replace('`', '\'')}");
        }
    }

    private static void ReadLoraSection(ConfigValue section, Dictionary<OptionKey, ConfigValue> found, List<OptionKey> order)
    {
        if (section.IsNull)
        {
            return;
        }
        if (section.Node is not ConfigMap map)
        {
            throw section.TypeError("a mapping of r, lora_alpha, lora_dropout and target_modules");
        }
        string[] names = RunConfigKeys.LoraNested.Select(n => n.Name).Concat(RunConfigKeys.LoraUnsupported.Select(u => u.Name)).ToArray();
        foreach (ConfigEntry entry in map.Entries)
        {
            string name = entry.Key.Trim();
            var value = new ConfigValue(section.Source, $"{section.Key}.{entry.Key}", entry.Value, entry.Line);
            int nested = IndexOf(RunConfigKeys.LoraNested, name);
            if (nested >= 0)
            {
                Add(found, order, ByName[RunConfigKeys.LoraNested[nested].Key], value);
                continue;
            }
            UnsupportedKey? unsupported = RunConfigKeys.LoraUnsupported.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
            if (unsupported is null)
            {
                throw value.Error($"unknown key '{entry.Key}' in '{section.Key}'{Suggestion(name, names)}; it takes r, lora_alpha, lora_dropout and target_modules");
            }
            CheckHarmless(unsupported, value);
        }
    }

    private static int IndexOf(IReadOnlyList<(string Name, string Key)> list, string name)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i].Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }
        return -1;
    }

    // ---- settings that involve more than one key ------------------------------------------

    /// <summary>peft, llama-recipes' use_peft (bool) and peft_method (only "lora").</summary>
    private static FinetuneOptions ApplyPeft(FinetuneOptions options, Dictionary<OptionKey, ConfigValue> found)
    {
        string? peft = found.TryGetValue(RunConfigKeys.Peft, out ConfigValue peftValue) ? peftValue.String().Trim().ToLowerInvariant() : null;
        bool? usePeft = found.TryGetValue(RunConfigKeys.UsePeft, out ConfigValue usePeftValue) ? usePeftValue.Bool() : null;
        if (peft is not null && usePeft is { } use && peft != (use ? "lora" : "none"))
        {
            throw usePeftValue.Error($"'{peftValue.Key}: {peft}' and '{usePeftValue.Key}: {usePeftValue.Text}' disagree; keep one");
        }
        string? effective = peft ?? (usePeft is { } u ? (u ? "lora" : "none") : null);
        if (effective is not null)
        {
            options = options with { Peft = effective };
        }
        if (found.TryGetValue(RunConfigKeys.PeftMethod, out ConfigValue method))
        {
            string? name = method.NullableString()?.Trim();
            if (!string.Equals(name, "lora", StringComparison.OrdinalIgnoreCase) && options.Peft != "none")
            {
                throw method.Error($"'{method.Key}: {name ?? "null"}' is not supported yet; only lora adapters are built (or set use_peft: false for full fine-tuning)");
            }
        }
        return options;
    }

    /// <summary>llama-recipes' default gradient_clipping_threshold.</summary>
    private const double LlamaRecipesThreshold = 1.0;

    /// <summary>
    /// gradient_clipping is our clipping norm (a number, 0: off) or llama-recipes' switch (a
    /// boolean) with gradient_clipping_threshold as the norm.
    /// </summary>
    private static FinetuneOptions ApplyGradientClipping(FinetuneOptions options, Dictionary<OptionKey, ConfigValue> found)
    {
        double? threshold = found.TryGetValue(RunConfigKeys.GradientClippingThreshold, out ConfigValue thresholdValue) ? thresholdValue.Double() : null;
        if (!found.TryGetValue(RunConfigKeys.GradientClipping, out ConfigValue clipping))
        {
            return threshold is { } t ? options with { GradientClipping = t } : options;
        }
        if (clipping.TryBool() is { } enabled)
        {
            return options with { GradientClipping = enabled ? threshold ?? LlamaRecipesThreshold : 0 };
        }
        if (clipping.TryDouble() is not { } value)
        {
            throw clipping.TypeError("a number (the clipping norm; 0: off) or true/false");
        }
        if (threshold is not null)
        {
            throw thresholdValue.Error($"'{clipping.Key}: {clipping.Text}' is already the clipping norm; remove '{thresholdValue.Key}' or write '{clipping.Key}: true'");
        }
        return options with { GradientClipping = value };
    }

    /// <summary>llama-recipes' run_validation: false turns the held-out split off.</summary>
    private static FinetuneOptions ApplyValidation(FinetuneOptions options, Dictionary<OptionKey, ConfigValue> found)
    {
        if (!found.TryGetValue(RunConfigKeys.RunValidation, out ConfigValue run) || run.Bool())
        {
            return options;
        }
        if (found.TryGetValue(RunConfigKeys.ValidationDataset, out ConfigValue file) && !file.IsNull)
        {
            throw run.Error($"'{run.Key}: false' conflicts with '{file.Key}: {file.Text}'; keep one");
        }
        if (found.TryGetValue(RunConfigKeys.ValidationFraction, out ConfigValue fraction) && fraction.Double() > 0)
        {
            throw run.Error($"'{run.Key}: false' conflicts with '{fraction.Key}: {fraction.Text}'; keep one");
        }
        return options.ValidationDataset is null ? options with { ValidationFraction = 0 } : options;
    }

    // ---- documentation ----------------------------------------------------------------------

    /// <summary>docs/cli.md's option table: header, rule and one row per key of the registry, in its order.</summary>
    public static IReadOnlyList<string> OptionTable()
    {
        static string Code(string? text) => text is null ? "—" : $"`{text.Replace("|", "\\|", StringComparison.Ordinal)}`";
        static string Resume(OptionKey key) => !key.Saved ? "—" : key.Resume switch
        {
            ResumeRule.MustMatch => "must stay",
            ResumeRule.MayChange => "may change (warned)",
            _ => "may change",
        };
        var rows = new List<string> { OptionTableHeader, "|---|---|---|---|---|---|" };
        foreach (OptionKey key in RunConfigKeys.All)
        {
            string flag = key.Flag is null ? "—" : Code(key.ValueName is { Length: > 0 } value ? $"{key.Flag} {value}" : key.Flag);
            string meaning = key.Details switch
            {
                null => key.Meaning,
                ['(', ..] => $"{key.Meaning} {key.Details}",
                _ => $"{key.Meaning}. {key.Details}",
            };
            rows.Add($"| {flag} | {(key.Flag is null ? "—" : Code(key.Name))} | {Code(key.LlamaRecipes)} | {key.DefaultText ?? ""} | {Resume(key)} | {meaning} |");
        }
        return rows;
    }

    public const string OptionTableHeader = "| flag | config key | llama-recipes | default | on resume | meaning |";

    /// <summary>A Markdown description of the keys: the option table, the nested LoRA form, and the llama-recipes keys accepted only at harmless values.</summary>
    public static string Describe()
    {
        var s = new StringBuilder();
        s.Append("`--config FILE` reads a JSON (`.json`) or YAML (`.yaml`, `.yml`) mapping of settings; flags given on the\n")
         .Append("command line override it. Each key may be written in kebab-case (`batch-size`), in snake_case\n")
         .Append("(`batch_size`) or by its llama-recipes `train_config` name (`batch_size_training`).\n\n");
        foreach (string row in OptionTable())
        {
            s.Append(row).Append('\n');
        }
        s.Append("\nThe LoRA settings may also be nested as in llama-recipes, under `lora_config:` (or `lora:`):\n")
         .Append("`r`, `lora_alpha`, `lora_dropout` and `target_modules` (a list or a comma-separated string);\n")
         .Append("there `bias` is accepted only as `none`, `task_type` only as `CAUSAL_LM` and `inference_mode` only as `false`.\n\n")
         .Append("llama-recipes keys for features CudaFinetune does not have are accepted when their value changes\n")
         .Append("nothing, and refused otherwise:\n\n")
         .Append("| llama-recipes key | accepted | why |\n")
         .Append("|---|---|---|\n");
        foreach (UnsupportedKey key in RunConfigKeys.Unsupported)
        {
            s.Append(CultureInfo.InvariantCulture, $"| `{key.Name}` | {key.Accepted} | {key.Hint} |\n");
        }
        s.Append("\nAny other key is an error that names it (with the closest known key, where one is close).\n");
        return s.ToString();
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static Dictionary<string, OptionKey> BuildIndex()
    {
        var index = new Dictionary<string, OptionKey>(StringComparer.OrdinalIgnoreCase);
        foreach (OptionKey key in RunConfigKeys.All)
        {
            foreach (string spelling in key.Spellings)
            {
                index.Add(spelling, key);
            }
        }
        return index;
    }

    /// <summary>"; did you mean 'x'?" for a known synonym or the closest candidate within a few edits, else "".</summary>
    internal static string Suggestion(string key, IReadOnlyCollection<string> candidates)
    {
        if (RunConfigKeys.Synonyms.TryGetValue(key, out string? synonym) && candidates.Contains(synonym, StringComparer.OrdinalIgnoreCase))
        {
            return $"; did you mean '{synonym}'?";
        }
        string lower = key.ToLowerInvariant();
        int limit = Math.Clamp((lower.Length + 2) / 4, 1, 3);
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in candidates)
        {
            // The distance is at least the difference in length; skipping saves comparing a huge key letter by letter.
            if (Math.Abs(candidate.Length - lower.Length) > limit)
            {
                continue;
            }
            int distance = EditDistance(lower, candidate.ToLowerInvariant());
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        return best is not null && bestDistance <= limit ? $"; did you mean '{best}'?" : "";
    }

    /// <summary>Levenshtein distance (insert, delete, substitute; each costs 1): what "did you mean" suggestions rank by, here and in the CLI.</summary>
    public static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitute, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
