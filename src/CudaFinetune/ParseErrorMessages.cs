using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace CudaFinetune.Cli;

/// <summary>
/// One line per mistake on the command line, saying what the flag takes, or which flag or command was probably
/// meant. The lines are worked out from the parse itself (its tokens, the options they matched, the options'
/// types and choices) rather than taken from System.CommandLine's messages, which can spend several lines on one
/// mistake ("--lrr 1" is two unmatched tokens, a wrong choice lists one value per line) and name .NET types.
/// </summary>
internal static class ParseErrorMessages
{
    private const string Executable = "CudaFinetune";

    /// <summary>What a value of each option type the verbs use must look like, and whether a token is one (other types get the library's message).</summary>
    private static readonly Dictionary<Type, ValueKind> Kinds = new()
    {
        [typeof(bool)] = new("true or false", text => bool.TryParse(text, out _)),
        [typeof(int)] = WholeNumber<int>(),
        [typeof(long)] = WholeNumber<long>(),
        [typeof(ulong)] = WholeNumber<ulong>(),
        [typeof(double)] = new("a number such as 0.5 or 2e-4", text => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _)),
    };

    /// <summary>The messages (without "error: "), in the order of the command line.</summary>
    public static List<string> Describe(ParseResult parse)
    {
        var tokens = new TokenOwners(parse);
        var messages = new List<(int At, string Text)>();
        var described = new HashSet<SymbolResult>();
        foreach (ParseError error in parse.Errors)
        {
            switch (error.SymbolResult)
            {
                case OptionResult option when described.Add(option):
                    messages.Add((tokens.IndexOf(option.IdentifierToken), DescribeOption(option, error.Message)));
                    break;
                case ArgumentResult { Parent: OptionResult option } when described.Add(option):
                    messages.Add((tokens.IndexOf(option.IdentifierToken), DescribeOption(option, error.Message)));
                    break;
                case ArgumentResult argument when described.Add(argument):
                    messages.Add((int.MaxValue, DescribeArgument(argument, error.Message)));
                    break;
                case OptionResult or ArgumentResult:
                    break; // that option or argument has its line already
                case CommandResult { Command.Validators.Count: 0 }:
                    break; // without validators of its own, a command reports only unmatched tokens and a missing subcommand: both described below
                default:
                    messages.Add((int.MaxValue, OneLine(error.Message)));
                    break;
            }
        }
        bool namedCommand = DescribeUnmatched(parse, tokens, messages);
        if (NeedsSubcommand(parse.CommandResult.Command) && !namedCommand)
        {
            var names = parse.CommandResult.Command.Subcommands.Select(c => c.Name).ToList();
            messages.Add((int.MaxValue, $"{Name(parse.CommandResult)} needs a command: {Or(names)}"));
        }
        if (messages.Count == 0)
        {
            // Never swallow an error this class has no description for.
            messages.AddRange(parse.Errors.Select(e => (int.MaxValue, OneLine(e.Message))));
        }
        return [.. messages.OrderBy(m => m.At).Select(m => m.Text)];
    }

    /// <summary>"CudaFinetune", "CudaFinetune finetune", "CudaFinetune bench attention": the command as it is typed.</summary>
    public static string CommandLine(CommandResult command)
    {
        string verb = Verb(command);
        return verb.Length == 0 ? Executable : $"{Executable} {verb}";
    }

    /// <summary>"finetune", "bench attention"; "" for the root (whose own name is the host's, a test runner's in tests).</summary>
    private static string Verb(CommandResult command)
    {
        var names = new List<string>();
        for (CommandResult? c = command; c?.Parent is CommandResult parent; c = parent)
        {
            names.Insert(0, c.Command.Name);
        }
        return string.Join(' ', names);
    }

    /// <summary>How messages name a command: its verb, or the executable for the root.</summary>
    private static string Name(CommandResult command) => Verb(command) is { Length: > 0 } verb ? verb : Executable;

    private static bool NeedsSubcommand(Command command) => command.Subcommands.Count > 0 && command.Action is null;

    private static string DescribeOption(OptionResult result, string message)
    {
        Option option = result.Option;
        if (result.IdentifierToken is null && result.Tokens.Count == 0 && option.Required)
        {
            return $"{Name((CommandResult)result.Parent!)} needs {option.Name} ({option.Description})";
        }
        return DescribeValues(option.Name, option.ValueType, option.Arity, result.Tokens, Choices(option.ValueType, option.GetCompletions(CompletionContext.Empty)), message);
    }

    private static string DescribeArgument(ArgumentResult result, string message)
    {
        Argument argument = result.Argument;
        if (result.Tokens.Count < argument.Arity.MinimumNumberOfValues && result.Parent is CommandResult command)
        {
            return $"{Name(command)} needs {argument.Name} ({argument.Description})";
        }
        return DescribeValues(argument.Name, argument.ValueType, argument.Arity, result.Tokens, Choices(argument.ValueType, argument.GetCompletions(CompletionContext.Empty)), message);
    }

    /// <summary>The first thing wrong with the values given for <paramref name="name"/>; a validator's own <paramref name="message"/> when the values parse.</summary>
    private static string DescribeValues(string name, Type type, ArgumentArity arity, IReadOnlyList<Token> values, List<string> choices, string message)
    {
        ValueKind? kind = Kinds.GetValueOrDefault(Nullable.GetUnderlyingType(type) ?? type);
        string? expected = kind?.Expectation ?? (choices.Count > 0 ? Or(choices) : null);
        if (values.Count < arity.MinimumNumberOfValues)
        {
            return expected is null ? $"{name} needs a value" : $"{name} needs a value: {expected}";
        }
        if (values.Count > arity.MaximumNumberOfValues)
        {
            return $"{name} was given {values.Count} times ({string.Join(", ", values.Select(v => $"'{v.Value}'"))}); give it once";
        }
        foreach (Token value in values)
        {
            if (kind is not null && !kind.Parses(value.Value))
            {
                return $"{name} takes {expected}, got '{value.Value}'";
            }
            if (choices.Count > 0 && !choices.Contains(value.Value, StringComparer.Ordinal))
            {
                return $"{name} takes {expected}, got '{value.Value}'{Suggestion(value.Value, choices)}";
            }
        }
        return OneLine(message);
    }

    /// <summary>The values a string option accepts (System.CommandLine keeps AcceptOnlyFromAmong's list as its completions); none for other types.</summary>
    private static List<string> Choices(Type type, IEnumerable<CompletionItem> completions) =>
        type == typeof(string) ? [.. completions.Select(c => c.Label)] : [];

    /// <summary>Adds a line for each token nothing took; true when one of them was taken for a misspelt command.</summary>
    private static bool DescribeUnmatched(ParseResult parse, TokenOwners owners, List<(int At, string Text)> messages)
    {
        CommandResult where = parse.CommandResult;
        bool namedCommand = false, literal = false;
        for (int i = 0; i < parse.Tokens.Count; i++)
        {
            Token token = parse.Tokens[i];
            literal |= token.Type == TokenType.DoubleDash; // after "--" every token is an argument, even "--lr"
            if (token.Type != TokenType.Argument || owners.Consumed(token))
            {
                continue;
            }
            Token? previous = i > 0 ? parse.Tokens[i - 1] : null;
            string text = token.Value;
            if (owners.OptionNamedBy(previous) is { Option.ValueType: var type, Tokens.Count: 0 } flag && type == typeof(bool))
            {
                // A bool flag takes its value only when it parses, so "--shuffle maybe" leaves "maybe" unmatched.
                messages.Add((i, $"{flag.Option.Name} takes true or false, got '{text}'"));
            }
            else if (!literal && LooksLikeOption(text))
            {
                string name = text.Split('=')[0];
                messages.Add((i, $"unknown option '{name}'{Suggestion(name, OptionNames(where))}"));
                if (!text.Contains('=') && i + 1 < parse.Tokens.Count && parse.Tokens[i + 1] is { Type: TokenType.Argument } next
                    && !owners.Consumed(next) && !LooksLikeOption(next.Value))
                {
                    i++; // the unknown option's value: one mistake, one line
                }
            }
            else if (where.Command.Subcommands.Count > 0)
            {
                namedCommand = true;
                var names = where.Command.Subcommands.Select(c => c.Name).ToList();
                string suggestion = Suggestion(text, names);
                messages.Add((i, $"unknown command '{text}'{(suggestion.Length > 0 ? suggestion : $"; the commands are {Or(names)}")}"));
            }
            else if (owners.OptionValued(previous) is { } owner)
            {
                messages.Add((i, $"unexpected argument '{text}' after {owner.Option.Name} {previous!.Value} (put quotes around a value that contains spaces)"));
            }
            else
            {
                messages.Add((i, where.Command.Arguments.Count == 0
                    ? $"unexpected argument '{text}': {Name(where)} takes only --flags"
                    : $"unexpected argument '{text}'"));
            }
        }
        return namedCommand;
    }

    private static bool LooksLikeOption(string text) =>
        text.Length > 1 && text[0] == '-' && !double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>The flags that can follow <paramref name="command"/>: its own and its ancestors' recursive ones (--help).</summary>
    private static List<string> OptionNames(CommandResult command)
    {
        var options = command.Command.Options.AsEnumerable();
        for (var parent = command.Parent as CommandResult; parent is not null; parent = parent.Parent as CommandResult)
        {
            options = options.Concat(parent.Command.Options.Where(o => o.Recursive));
        }
        return [.. options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name))];
    }

    /// <summary>"; did you mean 'x'?" for the candidate closest to <paramref name="typed"/> within a few edits, else "".</summary>
    private static string Suggestion(string typed, IEnumerable<string> candidates)
    {
        int limit = Math.Clamp((typed.TrimStart('-').Length + 2) / 4, 1, 3);
        var best = candidates
            .Select(c => (Candidate: c, Distance: CudaFinetune.Config.RunConfigFile.EditDistance(typed.ToLowerInvariant(), c.ToLowerInvariant())))
            .OrderBy(c => c.Distance)
            .FirstOrDefault();
        return best.Candidate is not null && best.Distance <= limit ? $"; did you mean '{best.Candidate}'?" : "";
    }

    /// <summary>"a", "a or b", "a, b or c".</summary>
    private static string Or(List<string> items) =>
        items.Count <= 1 ? string.Concat(items) : $"{string.Join(", ", items.Take(items.Count - 1))} or {items[^1]}";

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static ValueKind WholeNumber<T>() where T : IBinaryInteger<T>, IMinMaxValue<T> =>
        new(string.Create(CultureInfo.InvariantCulture, $"a whole number from {T.MinValue} to {T.MaxValue}"),
            text => T.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out _));

    private sealed record ValueKind(string Expectation, Func<string, bool> Parses);

    /// <summary>Which tokens of the command line the parse gave to an option, argument or command, and to which option.</summary>
    private sealed class TokenOwners
    {
        private readonly IReadOnlyList<Token> _tokens;
        private readonly HashSet<Token> _consumed = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<Token, OptionResult> _namedBy = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<Token, OptionResult> _valueOf = new(ReferenceEqualityComparer.Instance);

        public TokenOwners(ParseResult parse)
        {
            _tokens = parse.Tokens;
            Add(parse.RootCommandResult);
        }

        // Tokens are compared by reference: "--lr 1 1" has two equal tokens "1", of which only the first is the option's.
        public bool Consumed(Token token) => _consumed.Contains(token);

        public OptionResult? OptionNamedBy(Token? token) => token is null ? null : _namedBy.GetValueOrDefault(token);

        public OptionResult? OptionValued(Token? token) => token is null ? null : _valueOf.GetValueOrDefault(token);

        /// <summary>The token's place on the command line, to order the messages; last when it has none.</summary>
        public int IndexOf(Token? token)
        {
            for (int i = 0; token is not null && i < _tokens.Count; i++)
            {
                if (ReferenceEquals(_tokens[i], token))
                {
                    return i;
                }
            }
            return int.MaxValue;
        }

        private void Add(SymbolResult result)
        {
            _consumed.UnionWith(result.Tokens);
            switch (result)
            {
                case OptionResult option when option.IdentifierToken is { } name:
                    _consumed.Add(name);
                    _namedBy[name] = option;
                    foreach (Token value in option.Tokens)
                    {
                        _valueOf[value] = option;
                    }
                    break;
                case CommandResult command:
                    if (command.IdentifierToken is { } identifier)
                    {
                        _consumed.Add(identifier);
                    }
                    foreach (SymbolResult child in command.Children)
                    {
                        Add(child);
                    }
                    break;
            }
        }
    }
}
