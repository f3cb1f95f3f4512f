using CudaFinetune.Cuda.Kernels;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Kernels;

/// <summary>
/// The launchers of the kernels that copy with cp.async and read with ldmatrix (attention, LoRA) refuse what those
/// instructions cannot do — a pointer off a 16-byte boundary, a row length that is not whole 16-byte pieces — before
/// launching, naming the argument.
/// </summary>
[TestFixture]
public sealed unsafe class LauncherAlignmentTests
{
    /// <summary>A launcher that must never be reached.</summary>
    private sealed class NoLaunch : IKernelLauncher
    {
        public void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments) => Assert.Fail($"{entry} was launched");
    }

    private static readonly IKernelLauncher Launcher = new NoLaunch();
    private static readonly DevicePtr Aligned = new(0x10000), Misaligned = new(0x10008);

    private static ArgumentException Refused(Action launch, string argument)
    {
        var error = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => launch()) as ArgumentException;
        Assert.That(error!.ParamName, Is.EqualTo(argument), error.Message);
        return error;
    }

    [TestCase("q")]
    [TestCase("k")]
    [TestCase("v")]
    public void Attention_forward_refuses_a_misaligned_input(string argument)
    {
        DevicePtr Pick(string name) => name == argument ? Misaligned : Aligned;
        var error = Refused(() => AttentionKernels.Forward(Launcher, Pick("q"), Pick("k"), Pick("v"), Aligned, Aligned, 1, 64, 4, 2, 64, 0.125f), argument);
        Assert.That(error.Message, Does.Contain("attention_forward_d64_bf16").And.Contain($"{argument} is 0x10008, 8 bytes past a 16-byte boundary"));
    }

    [TestCase("q")]
    [TestCase("k")]
    [TestCase("v")]
    [TestCase("dOutput")]
    public void Attention_backward_refuses_a_misaligned_input(string argument)
    {
        DevicePtr Pick(string name) => name == argument ? Misaligned : Aligned;
        Refused(() => AttentionKernels.BackwardDkDvD32BF16(Launcher, Pick("q"), Pick("k"), Pick("v"), Pick("dOutput"), Aligned, Aligned, Aligned, Aligned, 1, 64, 4, 2, 0.125f),
            argument);
        Refused(() => AttentionKernels.BackwardDqD128BF16(Launcher, Pick("q"), Pick("k"), Pick("v"), Pick("dOutput"), Aligned, Aligned, Aligned, 1, 64, 4, 2, 0.125f),
            argument);
    }

    [TestCase("x")]
    [TestCase("w")]
    [TestCase("low")]
    [TestCase("b")]
    public void Lora_forward_refuses_a_misaligned_input(string argument)
    {
        DevicePtr Pick(string name) => name == argument ? Misaligned : Aligned;
        var error = Refused(() => LoraKernels.ForwardBF16(Launcher, Pick("x"), Pick("w"), Pick("low"), Pick("b"), Aligned, 16, 64, 64, 8), argument);
        Assert.That(error.Message, Does.Contain("lora_forward_bf16"));
    }

    [TestCase("dy")]
    [TestCase("w")]
    [TestCase("dlow")]
    [TestCase("a")]
    public void Lora_backward_refuses_a_misaligned_input(string argument)
    {
        DevicePtr Pick(string name) => name == argument ? Misaligned : Aligned;
        Refused(() => LoraKernels.BackwardDxBF16(Launcher, Pick("dy"), Pick("w"), Pick("dlow"), Pick("a"), Aligned, 16, 64, 64, 8, 0, 1, 0, 0, 0, 1), argument);
    }

    [TestCase(12, 64, 8, "n")]
    [TestCase(64, 0, 8, "k")]
    [TestCase(64, 64, 4, "r")]
    public void Lora_refuses_a_row_length_that_is_not_a_multiple_of_8(int n, int k, int r, string argument)
    {
        var error = Refused(() => LoraKernels.ForwardBF16(Launcher, Aligned, Aligned, Aligned, Aligned, Aligned, 16, n, k, r), argument);
        Assert.That(error.Message, Does.Contain($"{argument} must be a positive multiple of 8"));
        Refused(() => LoraKernels.BackwardDxBF16(Launcher, Aligned, Aligned, Aligned, Aligned, Aligned, 16, n, k, r, 0, 1, 0, 0, 0, 1), argument);
    }

    [Test]
    public void Lora_refuses_no_tokens()
        => Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.ForwardBF16(Launcher, Aligned, Aligned, Aligned, Aligned, Aligned, 0, 64, 64, 8));
}
