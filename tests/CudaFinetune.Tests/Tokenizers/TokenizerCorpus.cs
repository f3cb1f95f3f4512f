namespace CudaFinetune.Tests.Tokenizers;

/// <summary>Text that exercises a tokenizer's edges: unicode of many scripts, emoji, code, whitespace runs, numbers, contractions, special-token text.</summary>
internal static class TokenizerCorpus
{
    public static IReadOnlyList<string> Texts { get; } =
    [
        "Hello, my dog is cute",
        "",
        " ",
        "   leading and trailing spaces   ",
        "tabs\tand\t\tnewlines\n\n\nand\r\nwindows line ends\r\n",
        "Numbers: 0 7 42 123 1234 12345 123456789 3.14159 -2e10 1,000,000",
        "Contractions: it's, we'll, they've, I'm, you'd, DON'T, IT'S, She'S",
        "Unicode: héllo naïve café Ångström straße Ελληνικά русский текст 中文字符 日本語のテキスト 한국어 العربية עברית",
        "Emoji: 🤖🦙🔥 👩‍👩‍👧‍👦 🇫🇷 ✨",
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // C\n#include <stdio.h>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
        "Mixed-Case WORDS and ALLCAPS and camelCaseIdentifiers and snake_case_names",
        "URL https://example.com/path?query=1&x=y#frag and email someone@example.org",
        "    \n  \n\t\n",
        "Punctuation!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} \"quoted\" 'single'",
        "a\u00a0non-breaking\u2003em-space\u200bzero-width",
    ];
}
