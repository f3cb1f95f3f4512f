using System.Reflection;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Config;

public sealed class RunConfigFileTests : TempDirectoryFixture
{
    private static readonly FinetuneOptions Defaults = new();

    private string Write(string name, string text)
    {
        string path = Dir.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    private FinetuneOptions Yaml(string text) => RunConfigFile.Apply(Defaults, Write("run.yaml", text));

    private FinetuneOptions Json(string text) => RunConfigFile.Apply(Defaults, Write("run.json", text));

    private string YamlError(string text)
        => Assert.Throws<UserErrorException>(() => Yaml(text))!.Message;

    private string JsonError(string text)
        => Assert.Throws<UserErrorException>(() => Json(text))!.Message;

    private const string LlamaRecipesYaml = """
        # a llama-recipes train_config, as YAML
        model_name: models/tiny          # a model directory
        output_dir: "out/run 1"
        dataset: data/train.jsonl
        enable_fsdp: false
        run_validation: true
        batch_size_training: 2
        batching_strategy: Padding
        context_length: 128
        gradient_accumulation_steps: 4
        gradient_clipping: true
        gradient_clipping_threshold: 0.5
        num_epochs: 2
        max_train_step: 30
        num_workers_dataloader: 1
        lr: 3e-4
        weight_decay: 0.01
        gamma: 0.9
        seed: 7
        use_fp16: false
        mixed_precision: true
        val_batch_size: 1
        peft_method: lora
        use_peft: true
        quantization: null
        save_model: true
        use_wandb: false
        lora_config:
          r: 16
          lora_alpha: 32
          lora_dropout: 0.1
          target_modules:
            - q_proj
            - k_proj
            - v_proj
          task_type: CAUSAL_LM
          bias: none
        scheduler: COSINE
        warmup-steps: 5
        """;

    private const string LlamaRecipesJson = """
        {
          // the same settings as JSON
          "model_name": "models/tiny",
          "output_dir": "out/run 1",
          "dataset": "data/train.jsonl",
          "enable_fsdp": false,
          "run_validation": true,
          "batch_size_training": 2,
          "batching_strategy": "Padding",
          "context_length": 128,
          "gradient_accumulation_steps": 4,
          "gradient_clipping": true,
          "gradient_clipping_threshold": 0.5,
          "num_epochs": 2,
          "max_train_step": 30,
          "num_workers_dataloader": 1,
          "lr": 3e-4,
          "weight_decay": 0.01,
          "gamma": 0.9,
          "seed": 7,
          "use_fp16": false,
          "mixed_precision": true,
          "val_batch_size": 1,
          "peft_method": "lora",
          "use_peft": true,
          "quantization": null,
          "save_model": true,
          "use_wandb": false,
          "lora_config": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj"],
                          "task_type": "CAUSAL_LM", "bias": "none"},
          "scheduler": "COSINE",
          "warmup-steps": 5,
        }
        """;

    [Test]
    public void A_llama_recipes_yaml_and_the_same_json_give_identical_options()
    {
        FinetuneOptions yaml = Yaml(LlamaRecipesYaml);
        FinetuneOptions json = Json(LlamaRecipesJson);

        Assert.That(json, Is.EqualTo(yaml));
        var expected = Defaults with
        {
            Model = "models/tiny",
            OutputDir = "out/run 1",
            Dataset = "data/train.jsonl",
            BatchSize = 2,
            Batching = BatchingStrategy.Padding,
            ContextLength = 128,
            GradientAccumulationSteps = 4,
            GradientClipping = 0.5,
            NumEpochs = 2,
            MaxSteps = 30,
            Lr = 3e-4,
            WeightDecay = 0.01,
            Gamma = 0.9,
            Seed = 7,
            Peft = "lora",
            LoraR = 16,
            LoraAlpha = 32,
            LoraDropout = 0.1,
            LoraTargets = "q_proj,k_proj,v_proj",
            Scheduler = SchedulerKind.Cosine,
            WarmupSteps = 5,
        };
        Assert.That(yaml, Is.EqualTo(expected));
        Assert.DoesNotThrow(yaml.Validate);
    }

    [TestCase("batch-size: 9")]
    [TestCase("batch_size: 9")]
    [TestCase("batch_size_training: 9")]
    [TestCase("Batch_Size: 9")]
    public void Batch_size_is_accepted_in_every_spelling(string line)
        => Assert.That(Yaml(line).BatchSize, Is.EqualTo(9));

    [Test]
    public void Kebab_snake_and_llama_recipes_spellings_set_the_same_properties()
    {
        FinetuneOptions kebab = Yaml("output-dir: o\nmax-steps: 5\ncontext-length: 64\nnum-epochs: 1\nbatching: padding\nlora-r: 4\nlora-targets: q_proj, v_proj\n");
        FinetuneOptions snake = Yaml("output_dir: o\nmax_steps: 5\ncontext_length: 64\nnum_epochs: 1\nbatching: padding\nlora_r: 4\nlora_targets: [q_proj, v_proj]\n");
        FinetuneOptions llama = Yaml("output_dir: o\nmax_train_step: 5\ncontext_length: 64\nnum_epochs: 1\nbatching_strategy: padding\nlora_config: {r: 4, target_modules: 'q_proj,v_proj'}\n");

        Assert.That(snake, Is.EqualTo(kebab));
        Assert.That(llama, Is.EqualTo(kebab));
        Assert.That(kebab, Is.EqualTo(Defaults with
        {
            OutputDir = "o", MaxSteps = 5, ContextLength = 64, NumEpochs = 1, Batching = BatchingStrategy.Padding, LoraR = 4, LoraTargets = "q_proj,v_proj",
        }));
    }

    [Test]
    public void Our_own_keys_all_parse()
    {
        FinetuneOptions o = Yaml("""
            model: m
            peft: none
            lora-alpha: 16
            lora-dropout: 0
            dataset-format: Custom
            field-map: prompt=question,response=answer
            prompt-template: |
              Question: {question}
              Answer:
            validation-dataset: val.json
            validation-fraction: 0.2
            shuffle: no
            beta1: 0.8
            beta2: 0.95
            epsilon: 1e-6
            eval-every: 10
            device: CPU
            gradient-clipping: 2.5
            overwrite: true
            """);
        Assert.That(o, Is.EqualTo(Defaults with
        {
            Model = "m",
            Peft = "none",
            LoraAlpha = 16,
            LoraDropout = 0,
            DatasetFormat = "custom",
            FieldMap = "prompt=question,response=answer",
            PromptTemplate = "Question: {question}\nAnswer:\n",
            ValidationDataset = "val.json",
            ValidationFraction = 0.2,
            Shuffle = false,
            Beta1 = 0.8,
            Beta2 = 0.95,
            Epsilon = 1e-6,
            EvalEvery = 10,
            Device = "cpu",
            GradientClipping = 2.5,
            Overwrite = true,
        }));
    }

    [Test]
    public void Nested_lora_config_and_lora_section_and_top_level_lora_keys_agree()
    {
        FinetuneOptions nested = Yaml("lora_config:\n  r: 4\n  lora_alpha: 8\n  lora_dropout: 0.0\n  target_modules: q_proj,k_proj\n");
        FinetuneOptions shortSection = Json("""{"lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0, "target_modules": "q_proj, k_proj"}}""");
        FinetuneOptions topLevel = Yaml("lora_r: 4\nlora_alpha: 8\nlora_dropout: 0\nlora_targets: [q_proj, k_proj]\n");

        Assert.That(nested, Is.EqualTo(Defaults with { LoraR = 4, LoraAlpha = 8, LoraDropout = 0, LoraTargets = "q_proj,k_proj" }));
        Assert.That(shortSection, Is.EqualTo(nested));
        Assert.That(topLevel, Is.EqualTo(nested));
    }

    [Test]
    public void A_lora_setting_given_twice_is_refused()
    {
        string message = YamlError("lora_r: 4\nlora_config:\n  r: 8\n");
        Assert.That(message, Does.Contain("run.yaml:3").And.Contain("'lora_config.r'").And.Contain("'lora_r'").And.Contain("keep one"));
    }

    [Test]
    public void Two_spellings_of_one_setting_are_refused()
        => Assert.That(YamlError("batch_size: 2\nbatch_size_training: 4\n"),
            Does.Contain("'batch_size_training' sets the same thing as 'batch_size'"));

    [Test]
    public void Use_peft_false_means_full_fine_tuning_and_true_means_lora()
    {
        Assert.That(Yaml("use_peft: false").Peft, Is.EqualTo("none"));
        Assert.That(Json("""{"use_peft": true}""").Peft, Is.EqualTo("lora"));
        Assert.That(RunConfigFile.Apply(Defaults with { Peft = "none" }, Write("p.yaml", "use_peft: true")).Peft, Is.EqualTo("lora"));
    }

    [Test]
    public void A_peft_method_other_than_lora_is_not_supported_unless_peft_is_off()
    {
        string message = YamlError("use_peft: true\npeft_method: llama_adapter\n");
        Assert.That(message, Does.Contain("run.yaml:2").And.Contain("'peft_method: llama_adapter' is not supported yet").And.Contain("lora"));
        Assert.That(Yaml("use_peft: false\npeft_method: prefix\n").Peft, Is.EqualTo("none"));
    }

    [Test]
    public void Peft_and_use_peft_that_disagree_are_refused()
        => Assert.That(YamlError("peft: lora\nuse_peft: false\n"), Does.Contain("disagree"));

    [Test]
    public void Gradient_clipping_false_turns_clipping_off()
    {
        FinetuneOptions clipping = Defaults with { GradientClipping = 2 };
        Assert.That(RunConfigFile.Apply(clipping, Write("a.yaml", "gradient_clipping: false\ngradient_clipping_threshold: 3\n")).GradientClipping, Is.Zero);
        Assert.That(RunConfigFile.Apply(clipping, Write("b.json", """{"gradient_clipping": false}""")).GradientClipping, Is.Zero);
        Assert.That(RunConfigFile.Apply(clipping, Write("c.yaml", "gradient-clipping: 0")).GradientClipping, Is.Zero);
    }

    [Test]
    public void Gradient_clipping_true_uses_the_threshold_or_its_llama_recipes_default()
    {
        Assert.That(Yaml("gradient_clipping: true\ngradient_clipping_threshold: 0.25\n").GradientClipping, Is.EqualTo(0.25));
        Assert.That(Yaml("gradient_clipping: true\n").GradientClipping, Is.EqualTo(1.0), "llama-recipes' default threshold");
        Assert.That(RunConfigFile.Apply(Defaults with { GradientClipping = 3 }, Write("g.yaml", "gradient_clipping: true")).GradientClipping, Is.EqualTo(1.0));
        Assert.That(Yaml("gradient_clipping_threshold: 0.75\n").GradientClipping, Is.EqualTo(0.75));
    }

    [Test]
    public void A_numeric_gradient_clipping_with_a_threshold_is_refused()
        => Assert.That(YamlError("gradient_clipping: 2\ngradient_clipping_threshold: 1\n"), Does.Contain("already the clipping norm"));

    [Test]
    public void Run_validation_false_turns_the_held_out_split_off()
    {
        Assert.That(Yaml("run_validation: false").ValidationFraction, Is.Zero);
        Assert.That(Yaml("run_validation: true").ValidationFraction, Is.EqualTo(Defaults.ValidationFraction));
        FinetuneOptions withFile = RunConfigFile.Apply(Defaults with { ValidationDataset = "v.jsonl" }, Write("v.yaml", "run_validation: false"));
        Assert.That(withFile.ValidationFraction, Is.EqualTo(Defaults.ValidationFraction));
        Assert.That(YamlError("run_validation: false\nvalidation_dataset: v.jsonl\n"), Does.Contain("conflicts with 'validation_dataset: v.jsonl'"));
    }

    [Test]
    public void A_llama_recipes_dataset_name_is_refused_with_what_to_do()
    {
        string message = YamlError("dataset: samsum_dataset\n");
        Assert.That(message, Does.StartWith(Dir.File("run.yaml") + ":1:"));
        Assert.That(message, Does.Contain("'dataset: samsum_dataset' is a llama-recipes dataset name")
            .And.Contain(".json, .jsonl or .csv").And.Contain("alpaca").And.Contain("samsum").And.Contain("pretokenized"));
        Assert.That(YamlError("dataset: data/train.txt\n"), Does.Contain("must be the path of a .json, .jsonl or .csv file"));
        Assert.That(Yaml("dataset: data/Train.JSON").Dataset, Is.EqualTo("data/Train.JSON"));
        Assert.That(Yaml("dataset: data/train.csv").Dataset, Is.EqualTo("data/train.csv"), "CSV files are read like the --dataset flag reads them");
    }

    [Test]
    public void An_unsupported_llama_recipes_key_with_a_non_default_value_is_refused()
    {
        string message = YamlError("lr: 1e-4\nenable_fsdp: true\n");
        Assert.That(message, Does.StartWith(Dir.File("run.yaml") + ":2: 'enable_fsdp: true' is not supported yet"));
        Assert.That(message, Does.Contain("set it to 'false'"));
        Assert.That(JsonError("""{"quantization": "4bit"}"""), Does.Contain("'quantization: 4bit' is not supported yet"));
        Assert.That(YamlError("use_wandb: yes"), Does.Contain("'use_wandb: yes' is not supported yet"));
        Assert.That(YamlError("lora_config:\n  bias: all\n"), Does.Contain("'lora_config.bias: all' is not supported yet"));
    }

    [Test]
    public void Unsupported_llama_recipes_keys_at_harmless_values_are_accepted()
    {
        FinetuneOptions o = Yaml("""
            enable_fsdp: false
            low_cpu_fsdp: False
            quantization: None
            one_gpu: true
            use_fast_kernels: true
            save_optimizer: true
            dist_checkpoint_root_folder: PATH/to/save/FSDP/model
            dist_checkpoint_folder: fine-tuned
            freeze_layers: false
            num_freeze_layers: 1
            max_eval_step: 0
            tokenizer_name:
            from_peft_checkpoint: ""
            flop_counter: false
            flop_counter_start: 3
            use_profiler: false
            profiler_dir: PATH/to/save/profiler/results
            """);
        Assert.That(o, Is.EqualTo(Defaults));
    }

    [Test]
    public void An_unknown_key_is_named_with_the_closest_known_key()
    {
        string message = YamlError("lr: 1e-4\nbatch_sise: 4\n");
        Assert.That(message, Is.EqualTo(Dir.File("run.yaml") + ":2: unknown key 'batch_sise'; did you mean 'batch_size'?; the config-file keys are listed in docs/cli.md"));
        Assert.That(YamlError("gradient_acumulation_steps: 2"), Does.Contain("did you mean 'gradient_accumulation_steps'?"));
        Assert.That(YamlError("learning_rate: 0.1"), Does.Contain("unknown key 'learning_rate'; did you mean 'lr'?"));
        Assert.That(JsonError("""{"num-epoch": 2}"""), Does.Contain("did you mean 'num-epochs'?"));
        Assert.That(YamlError("lora_config:\n  lora_alpa: 8\n"), Does.Contain("unknown key 'lora_alpa' in 'lora_config'; did you mean 'lora_alpha'?"));
        Assert.That(YamlError("completely_unrelated_setting: 1"), Does.Contain("unknown key 'completely_unrelated_setting'").And.Not.Contain("did you mean"));
    }

    [TestCase("batch_size: four", "'batch_size' must be an integer, got four")]
    [TestCase("batch_size: 2.5", "'batch_size' must be an integer, got 2.5")]
    [TestCase("batch_size: \"4\"", "'batch_size' must be an integer, got the string \"4\" (remove the quotes)")]
    [TestCase("lr: fast", "'lr' must be a number, got fast")]
    [TestCase("lr: .nan", "'lr' must be a number, got .nan")]
    [TestCase("shuffle: maybe", "'shuffle' must be true or false, got maybe")]
    [TestCase("shuffle: 'true'", "'shuffle' must be true or false, got the string \"true\" (remove the quotes)")]
    [TestCase("seed: -1", "'seed' must be a non-negative integer, got -1")]
    [TestCase("scheduler: exponential", "'scheduler' must be one of steplr, cosine, linear, constant, got exponential")]
    [TestCase("batching_strategy: bucket", "'batching_strategy' must be one of packing, padding, got bucket")]
    [TestCase("output_dir: [a, b]", "'output_dir' must be a string, got a list")]
    [TestCase("output_dir:", "'output_dir' must be a string, got no value (null)")]
    [TestCase("lora_config: 8", "'lora_config' must be a mapping of r, lora_alpha, lora_dropout and target_modules, got 8")]
    [TestCase("lora_targets: [q_proj, '']", "'lora_targets' must be a non-empty list of names")]
    [TestCase("gradient_clipping: strong", "'gradient_clipping' must be a number (the clipping norm; 0: off) or true/false, got strong")]
    public void A_value_of_the_wrong_type_is_named_with_the_type_and_the_value(string yaml, string expected)
        => Assert.That(YamlError(yaml), Does.StartWith(Dir.File("run.yaml") + ":1: " + expected));

    [Test]
    public void Json_type_errors_name_the_key_and_the_value()
    {
        Assert.That(JsonError("""{"batch_size": "4"}"""), Is.EqualTo(Dir.File("run.json") + ": 'batch_size' must be an integer, got the string \"4\" (remove the quotes)"));
        Assert.That(JsonError("""{"output_dir": 3}"""), Does.Contain("'output_dir' must be a string, got 3"));
        Assert.That(JsonError("""{"use_peft": "yes"}"""), Does.Contain("'use_peft' must be true or false, got the string \"yes\""));
    }

    [Test]
    public void A_missing_file_is_a_user_error()
    {
        string path = Dir.File("absent.yaml");
        Assert.That(Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, path))!.Message, Is.EqualTo(path + ": no such config file"));
        string nested = Path.Combine(Dir.Path, "no-such-dir", "run.json");
        Assert.That(Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, nested))!.Message, Does.Contain("no such config file"));
    }

    [Test]
    public void A_directory_or_an_unknown_extension_is_a_user_error()
    {
        string directory = Path.Combine(Dir.Path, "conf.yaml");
        Directory.CreateDirectory(directory);
        Assert.That(Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, directory))!.Message, Does.Contain("is a directory"));
        string toml = Write("run.toml", "lr = 1");
        Assert.That(Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, toml))!.Message, Does.Contain("must end in .json, .yaml or .yml").And.Contain(".toml"));
    }

    [Test]
    public void Malformed_json_is_reported_with_its_line()
    {
        string message = JsonError("{\n  \"lr\": 1e-4,\n  \"batch_size\" 4\n}\n");
        Assert.That(message, Does.StartWith(Dir.File("run.json") + ":3: not valid JSON ("));
        Assert.That(message, Does.Not.Contain("LineNumber"));
    }

    [Test]
    public void Malformed_yaml_is_reported_with_its_line()
    {
        Assert.That(YamlError("lr: 1e-4\nbatch_size: 4\n  num_epochs: 2\n"), Does.StartWith(Dir.File("run.yaml") + ":3: not valid YAML ("));
        Assert.That(YamlError("lr: 1e-4\nmodel: 'unterminated\n"), Does.Contain("not valid YAML"));
        Assert.That(YamlError("lr: [1e-4\nseed: 2\n"), Does.Contain("not valid YAML"));
        Assert.That(YamlError("lr: 1\nlr: 2\n"), Does.StartWith(Dir.File("run.yaml") + ":2: not valid YAML (Duplicate key"));
    }

    [Test]
    public void A_top_level_that_is_not_a_mapping_is_a_user_error()
    {
        Assert.That(YamlError("- lr: 1\n- seed: 2\n"), Does.Contain("the top level must be a mapping").And.Contain("found a list"));
        Assert.That(YamlError("just words\n"), Does.Contain("the top level must be a mapping"));
        Assert.That(YamlError("# nothing but a comment\n"), Does.Contain("holds no settings"));
        Assert.That(YamlError("lr: 1\n---\nseed: 2\n"), Does.Contain("2 YAML documents"));
        Assert.That(JsonError("[1, 2]"), Is.EqualTo(Dir.File("run.json") + ": the top level must be a JSON object of settings ({\"key\": value, ...}), found an array"));
        Assert.That(JsonError("""{"lr": 1, "lr": 2}"""), Does.Contain("key 'lr' appears twice"));
    }

    [Test]
    public void Yaml_numbers_booleans_and_comments_follow_the_usual_rules()
    {
        FinetuneOptions o = Yaml("lr: 0.0003  # comment\nseed: 0\nshuffle: Off\nmodel: '123'\noutput_dir: 2024\nweight_decay: 1\n");
        Assert.That(o.Lr, Is.EqualTo(3e-4));
        Assert.That(o.Seed, Is.Zero);
        Assert.That(o.Shuffle, Is.False);
        Assert.That(o.Model, Is.EqualTo("123"));
        Assert.That(o.OutputDir, Is.EqualTo("2024"));
        Assert.That(o.WeightDecay, Is.EqualTo(1.0));
        Assert.That(Yaml("model: ~\n").Model, Is.Null);
        Assert.That(Yaml("model: m.yml\n").Model, Is.EqualTo("m.yml"));
    }

    [Test]
    public void Every_option_can_be_set_from_a_file()
    {
        string[] properties = typeof(FinetuneOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.Name != "EqualityContract")
            .Select(p => p.Name)
            .ToArray();
        // The key table is internal; its documentation names each key, so check through Describe()'s rows via kebab-case names.
        foreach (string property in properties)
        {
            string kebab = string.Concat(property.Select((c, i) => char.IsUpper(c) && i > 0 && !char.IsDigit(property[i - 1]) ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
            Assert.That(RunConfigFile.KnownKeys, Does.Contain(kebab), $"FinetuneOptions.{property} has no config-file key '{kebab}'");
        }
    }

    [Test]
    public void Known_keys_and_the_description_cover_every_spelling_family()
    {
        Assert.That(RunConfigFile.KnownKeys, Does.Contain("batch-size").And.Contain("batch_size").And.Contain("batch_size_training")
            .And.Contain("lora_config").And.Contain("enable_fsdp").And.Contain("max_train_step"));
        Assert.That(RunConfigFile.KnownKeys, Is.Unique);
        string doc = RunConfigFile.Describe();
        Assert.That(doc, Does.Contain("| `--batch-size N` | `batch-size` | `batch_size_training` | 4 | must stay |"));
        Assert.That(doc, Does.Contain("| `--lora-r N` | `lora-r` | `lora_config.r` | 8 |"));
        Assert.That(doc, Does.Contain("| — | — | `use_peft` |"));
        Assert.That(doc, Does.Contain("| `enable_fsdp` | `false` |"));
    }

    /// <summary>The bounds that stop alias bombs and deep nesting (see HostileInputFuzzTests) leave ordinary anchors working.</summary>
    [Test]
    public void Yaml_anchors_and_aliases_within_bounds_are_read()
    {
        FinetuneOptions o = Yaml("lr: &rate 0.001\nweight_decay: *rate\nlora_config: &lora\n  targets: &t [q_proj, k_proj]\n");
        Assert.That(o.WeightDecay, Is.EqualTo(0.001));
        Assert.That(o.LoraTargets, Is.EqualTo("q_proj,k_proj"));
    }

    [Test]
    public void Edit_distance_counts_single_character_edits()
    {
        Assert.That(RunConfigFile.EditDistance("kitten", "sitting"), Is.EqualTo(3));
        Assert.That(RunConfigFile.EditDistance("", "abc"), Is.EqualTo(3));
        Assert.That(RunConfigFile.EditDistance("lr", "lr"), Is.Zero);
    }

    [Test]
    public void A_config_that_is_not_utf8_is_refused_naming_the_byte()
    {
        string path = Dir.File("latin1.yaml");
        File.WriteAllBytes(path, [.. "output_dir: r\u00e9sultats\n"u8.ToArray()[..13], 0xE9, .. "sultats\n"u8.ToArray()]);
        var e = Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, path));
        Assert.That(e!.Message, Is.EqualTo($"{path}: is not UTF-8 text (byte 0xE9 at offset 13); save the config file as UTF-8"));

        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. "output_dir: r\u00e9sultats\n"u8.ToArray()]);
        Assert.That(RunConfigFile.Apply(Defaults, path).OutputDir, Is.EqualTo("r\u00e9sultats"), "UTF-8 with a BOM is read");
    }

    [Test]
    [Platform("Linux")]
    public void A_config_that_is_a_fifo_is_refused_not_waited_on()
    {
        string path = Dir.File("pipe.yaml");
        HostileFiles.MakeFifo(path);
        var e = Assert.Throws<UserErrorException>(() => RunConfigFile.Apply(Defaults, path));
        Assert.That(e!.Message, Does.Contain("FIFO"));
    }
}
