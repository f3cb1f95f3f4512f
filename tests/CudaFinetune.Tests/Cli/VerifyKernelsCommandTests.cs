using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary><c>verify-kernels</c>: the table, the exit codes, and the errors a user can cause.</summary>
[TestFixture]
public sealed class VerifyKernelsCommandTests
{
    private static (int Code, string Output, string Error) Run(params string[] args) => CliRuns.Run(args);

    [Test]
    public void On_the_emulator_every_case_passes_and_the_seed_is_printed()
    {
        var (code, output, error) = Run("verify-kernels", "--device", "cuda-emulated", "--seed", "5");
        TestContext.Out.WriteLine(output);
        Assert.That(code, Is.Zero, error);
        Assert.That(output, Does.Contain("seed 5 (repeat with --seed 5)"));
        Assert.That(output, Does.Contain("the kernel emulator  rmsnorm_forward_f32").And.Contain("selftest_mma_ldmatrix"));
        Assert.That(output, Does.Match(@"all \d+ cases passed on 1 device\(s\)"));
        Assert.That(output, Does.Not.Contain("FAILED"));
    }

    [Test]
    public void The_kernel_filter_runs_only_matching_checks()
    {
        var (code, output, _) = Run("verify-kernels", "--device", "cuda-emulated", "--kernel", "ldmatrix", "--seed", "1");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("2 checks").And.Contain("selftest_ldmatrix").And.Not.Contain("rmsnorm"));
    }

    [Test]
    public void A_filter_that_matches_nothing_is_a_user_error_listing_the_checks()
    {
        var (code, _, error) = Run("verify-kernels", "--kernel", "no-such-kernel");
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(error, Does.Contain("no kernel check matches 'no-such-kernel'").And.Contain("rmsnorm_forward_f32"));
    }

    [Test]
    public void Asking_for_a_gpu_where_there_is_none_is_a_user_error()
    {
        TestDevices.RequireNoGpu();
        var (code, _, error) = Run("verify-kernels", "--device", "cuda");
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(error, Does.StartWith("error: no CUDA driver").Or.StartWith("error: the CUDA driver offers no usable GPU"));
    }
}
