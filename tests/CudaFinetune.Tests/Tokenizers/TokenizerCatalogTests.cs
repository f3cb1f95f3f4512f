using System.Text;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;

namespace CudaFinetune.Tests.Tokenizers;

public sealed class TokenizerCatalogTests
{
    [Test]
    public void Creates_gpt2_by_name()
    {
        Assert.That(TokenizerCatalog.Names, Is.EqualTo(new[] { "gpt2" }));
        Assert.That(TokenizerCatalog.Create("gpt2"), Is.InstanceOf<Gpt2Tokenizer>());
    }

    [Test]
    public void An_unknown_name_lists_the_known_ones()
    {
        var e = Assert.Throws<UserErrorException>(() => TokenizerCatalog.Create("llama3"));
        Assert.That(e!.Message, Does.Contain("llama3").And.Contain("gpt2"));
    }

    [Test]
    public void The_record_is_written_deterministically_and_read_back()
    {
        using var dir = new TempDirectory();
        TokenizerCatalog.WriteRecord(dir.Path, new Gpt2Tokenizer());
        string path = dir.File("tokenizer_config.json");
        byte[] first = File.ReadAllBytes(path);
        Assert.That(Encoding.UTF8.GetString(first), Is.EqualTo("""
            {
              "add_bos_token": false,
              "add_eos_token": false,
              "cudafinetune_tokenizer": "gpt2",
              "eos_token": "<|endoftext|>",
              "model_max_length": 1024,
              "tokenizer_class": "GPT2Tokenizer"
            }

            """.ReplaceLineEndings("\n")));
        TokenizerCatalog.WriteRecord(dir.Path, new Gpt2Tokenizer());
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(first));
        Assert.That(TokenizerCatalog.TryLoadForModel(dir.Path), Is.InstanceOf<Gpt2Tokenizer>());
        Assert.That(Directory.GetFiles(dir.Path), Has.Length.EqualTo(1), "no temporary files left behind");
    }

    [Test]
    public void Model_max_length_follows_the_model_config_or_the_argument()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), """{"model_type": "llama", "max_position_embeddings": 2048}""");
        TokenizerCatalog.WriteRecord(dir.Path, new Gpt2Tokenizer());
        Assert.That(File.ReadAllText(dir.File("tokenizer_config.json")), Does.Contain("\"model_max_length\": 2048"));
        TokenizerCatalog.WriteRecord(dir.Path, new Gpt2Tokenizer(), modelMaxLength: 300);
        Assert.That(File.ReadAllText(dir.File("tokenizer_config.json")), Does.Contain("\"model_max_length\": 300"));
    }

    [Test]
    public void A_directory_without_a_record_has_no_tokenizer()
    {
        using var dir = new TempDirectory();
        Assert.That(TokenizerCatalog.TryLoadForModel(dir.Path), Is.Null);
        Assert.That(TokenizerCatalog.TryLoadForModel(dir.File("missing-subdir")), Is.Null);
        // A plain Hugging Face tokenizer_config.json does not say which CudaFinetune tokenizer matches it.
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"tokenizer_class": "LlamaTokenizer", "eos_token": "</s>"}""");
        Assert.That(TokenizerCatalog.TryLoadForModel(dir.Path), Is.Null);
    }

    [Test]
    public void A_bad_record_is_a_user_error()
    {
        using var dir = new TempDirectory();
        string path = dir.File("tokenizer_config.json");
        File.WriteAllText(path, "{\"cudafinetune_tokenizer\": ");
        Assert.That(Assert.Throws<UserErrorException>(() => TokenizerCatalog.TryLoadForModel(dir.Path))!.Message, Does.Contain("tokenizer_config.json").And.Contain("not valid JSON"));
        File.WriteAllText(path, """{"cudafinetune_tokenizer": "sentencepiece-9"}""");
        Assert.That(Assert.Throws<UserErrorException>(() => TokenizerCatalog.TryLoadForModel(dir.Path))!.Message, Does.Contain("sentencepiece-9").And.Contain("gpt2"));
        File.WriteAllText(path, """{"cudafinetune_tokenizer": 7}""");
        Assert.Throws<UserErrorException>(() => TokenizerCatalog.TryLoadForModel(dir.Path));
    }
}
