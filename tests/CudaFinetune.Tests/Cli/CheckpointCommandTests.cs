using CudaFinetune.Checkpoints;
using CudaFinetune.Cli;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Checkpoints;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>checkpoint verify / inspect / list, and finetune --resume, through <see cref="Program.Run"/>.</summary>
[TestFixture]
public sealed class CheckpointCommandTests : LearnableTaskFixture
{
    private static (int Code, string Out, string Err) Cli(string[] args, CancellationToken cancel = default) => CliRuns.Run(args, cancel);

    private string Run => Dir.File("run");

    private string[] Finetune(params string[] extra) =>
        ["finetune", "--model", ModelDir, "--dataset", DataFile, "--output-dir", Run, "--context-length", "16", "--batch-size", "4", "--device", "cpu", .. extra];

    [Test]
    public void List_verify_and_inspect_describe_the_checkpoints_and_exit_1_on_damage()
    {
        var train = Cli(Finetune("--max-steps", "5", "--save-every", "2", "--eval-every", "2"));
        Assert.That(train.Code, Is.Zero, train.Err);
        Assert.That(train.Out, Does.Contain("checkpoint  step 2").And.Contain("checkpoint  step 5"));

        var list = Cli(["checkpoint", "list", Run]);
        Assert.That(list.Code, Is.Zero, list.Out);
        Assert.That(list.Out, Does.Contain("step-00000002").And.Contain("step-00000004").And.Contain("step-00000005"));
        Assert.That(list.Out, Does.Contain("valid (latest)"));

        string step4 = Path.Combine(Run, "checkpoints", "step-00000004");
        var verify = Cli(["checkpoint", "verify", step4]);
        Assert.That(verify.Code, Is.Zero);
        Assert.That(verify.Out, Does.StartWith("valid: ").And.Contain("step 4"));

        var inspect = Cli(["checkpoint", "inspect", step4, "--tensors"]);
        Assert.That(inspect.Code, Is.Zero);
        Assert.That(inspect.Out, Does.Contain("training     step 4").And.Contain("adamw").And.Contain("exp_avg_sq").And.Contain("model/rank-00000.bin"));

        string tensor = CheckpointDamage.FlipByteInTensor(step4);
        var bad = Cli(["checkpoint", "verify", step4]);
        Assert.That(bad.Code, Is.EqualTo(Program.ExitCheckFailed));
        Assert.That(bad.Out, Does.StartWith("invalid: ").And.Contain(tensor).And.Contain("step-00000004"));
        var badList = Cli(["checkpoint", "list", Run]);
        Assert.That(badList.Code, Is.EqualTo(Program.ExitCheckFailed));
        Assert.That(badList.Out, Does.Contain("INVALID"));
        var missing = Cli(["checkpoint", "verify", Dir.File("nothing")]);
        Assert.That(missing.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(missing.Err, Does.StartWith("error: checkpoint verify '").And.Contain("no such directory"));
        Assert.That(Cli(["checkpoint", "inspect", Dir.File("nothing")]).Code, Is.EqualTo(Program.ExitUserError));
    }

    [Test]
    public void Verify_and_inspect_take_an_output_directory_as_resume_does()
    {
        Assert.That(Cli(Finetune("--max-steps", "6", "--save-every", "3")).Code, Is.Zero);
        var verify = Cli(["checkpoint", "verify", Run]);
        Assert.That(verify.Code, Is.Zero, verify.Out);
        Assert.That(verify.Out, Does.StartWith("valid: ").And.Contain("step-00000006"));
        var inspect = Cli(["checkpoint", "inspect", Run]);
        Assert.That(inspect.Code, Is.Zero);
        Assert.That(inspect.Out, Does.Contain("step-00000006").And.Contain("history      continues step-00000003"));

        CheckpointDamage.FlipByteInTensor(Path.Combine(Run, "checkpoints", "step-00000006"));
        var damaged = Cli(["checkpoint", "verify", Run]);
        Assert.That(damaged.Code, Is.EqualTo(Program.ExitCheckFailed));
        Assert.That(damaged.Out, Does.StartWith("invalid: ").And.Contain("valid: ").And.Contain("step-00000003").And.Contain("resume and export use it"));
    }

    [Test]
    public void List_and_inspect_agree_on_the_epochs_done()
    {
        // 10 batches per epoch: step 15 is half-way through the second epoch, step 20 (the end) after two whole epochs.
        Assert.That(Cli(Finetune("--num-epochs", "2", "--save-every", "15", "--keep-last", "0", "--validation-fraction", "0.25")).Code, Is.Zero);
        var list = Cli(["checkpoint", "list", Run]);
        Assert.That(list.Out, Does.Contain("step-00000015").And.Contain(" 1.50 ").And.Contain(" 2.00 "));
        var inspect = Cli(["checkpoint", "inspect", Path.Combine(Run, "checkpoints", "step-00000020")]);
        Assert.That(inspect.Out, Does.Contain("2.00 epochs done (2 epoch(s) complete)"));
        Assert.That(Cli(["checkpoint", "inspect", Path.Combine(Run, "checkpoints", "step-00000015")]).Out, Does.Contain("1.50 epochs done (in epoch 2, at batch 5 of 10)"));
    }

    [Test]
    public void Resume_continues_with_the_saved_options_and_warns_about_changes()
    {
        Assert.That(Cli(Finetune("--max-steps", "5")).Code, Is.Zero);
        var resumed = Cli(["finetune", "--resume", Run, "--max-steps", "8"]);
        Assert.That(resumed.Code, Is.Zero, resumed.Err);
        Assert.That(resumed.Out, Does.Contain("resuming from").And.Contain("step-00000005").And.Contain("warning: max_steps changed from 5 to 8"));
        Assert.That(MetricsFile.ReadStepLosses(Path.Combine(Run, "metrics.jsonl")).Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 8).Select(i => (long)i)));

        var refused = Cli(["finetune", "--resume", Run, "--lora-r", "4", "--max-steps", "9"]);
        Assert.That(refused.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(refused.Err, Does.Contain("lora_r was 8 and is now 4"));
    }

    [Test]
    public void An_interrupted_finetune_writes_a_checkpoint_prints_the_resume_command_and_exits_0()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel(); // as if SIGTERM arrived during the first step
        var stopped = Cli(Finetune("--max-steps", "6"), cancel.Token);
        Assert.That(stopped.Code, Is.Zero, stopped.Err);
        Assert.That(stopped.Out, Does.Contain("interrupted after step 1").And.Contain($"resume with: CudaFinetune finetune --resume {Run}"));
        Assert.That(Directory.Exists(Path.Combine(Run, "adapter")), Is.False);
        Assert.That(Checkpoint.Open(Path.Combine(Run, "checkpoints", "step-00000001")).Manifest.Reason, Is.EqualTo(CheckpointReason.Interrupted));
    }

    [Test]
    public void Force_and_strict_need_resume()
    {
        var e = Cli(Finetune("--force"));
        Assert.That(e.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(e.Err, Does.Contain("--resume"));
    }

    [Test]
    public void A_resume_of_a_finished_run_says_there_is_nothing_to_do_and_a_branch_says_where_the_old_one_goes()
    {
        Assert.That(Cli(Finetune("--max-steps", "6", "--save-every", "3", "--scheduler", "cosine")).Code, Is.Zero);
        var nothing = Cli(["finetune", "--resume", Run, "--max-steps", "6"]);
        Assert.That(nothing.Code, Is.Zero, nothing.Err);
        Assert.That(nothing.Out, Does.Contain("nothing to do: the run finished at step 6").And.Not.Contain("resuming from"));

        var branched = Cli(["finetune", "--resume", Path.Combine(Run, "checkpoints", "step-00000003"), "--lr", "5e-3"]);
        Assert.That(branched.Code, Is.Zero, branched.Err);
        Assert.That(branched.Out, Does.Contain("this run branches from step-00000003").And.Contain("branches").And.Contain("learning rate: cosine: lr"));
        var list = Cli(["checkpoint", "list", Run]);
        Assert.That(list.Out, Does.Contain("branch set aside: branches"));
    }

    [Test]
    public void Training_data_whose_every_label_is_masked_is_refused_in_one_line()
    {
        File.WriteAllLines(DataFile, Enumerable.Range(0, 8).Select(_ => "{\"input_ids\": [" + string.Join(", ", Enumerable.Range(1, 20)) + "], \"labels\": [" + string.Join(", ", Enumerable.Repeat(-100, 20)) + "]}"));
        var run = Cli(Finetune("--validation-fraction", "0"));
        Assert.That(run.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(run.Err.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(run.Err, Does.StartWith("error: the training data gives no token to learn from"));
    }
}
