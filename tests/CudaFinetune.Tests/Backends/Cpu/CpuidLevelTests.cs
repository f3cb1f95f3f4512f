using System.Runtime.Intrinsics.X86;
using CudaFinetune.Backends.Cpu;
using NUnit.Framework;

namespace CudaFinetune.Tests.Backends.Cpu;

/// <summary>The x86-64 level read from CPUID and the kernel's flags, which decides which native build runs.</summary>
[TestFixture]
public sealed class CpuidLevelTests
{
    // Registers of a CPU with every x86-64-v3 and v4 bit this check reads.
    private const int Leaf1Ecx = (1 << 12) | (1 << 22) | (1 << 27) | (1 << 28) | (1 << 29);
    private const int Leaf7EbxV3 = (1 << 3) | (1 << 5) | (1 << 8);
    private const int Leaf7EbxV4 = Leaf7EbxV3 | (1 << 16) | (1 << 17) | (1 << 28) | (1 << 30) | (1 << 31);
    private const int Extended1Ecx = 1 << 5;

    private static Func<int, int, (int, int, int, int)> Cpu(int leaf1Ecx, int leaf7Ebx, int extended1Ecx, int maxLeaf = 0x16) => (leaf, _) => leaf switch
    {
        0 => (maxLeaf, 0, 0, 0),
        1 => (0, 0, leaf1Ecx, 0),
        7 => (0, leaf7Ebx, 0, 0),
        unchecked((int)0x8000_0000) => (unchecked((int)0x8000_0008), 0, 0, 0),
        unchecked((int)0x8000_0001) => (0, 0, extended1Ecx, 0),
        _ => (0, 0, 0, 0),
    };

    [Test]
    public void Every_v4_bit_gives_v4_and_every_v3_bit_gives_v3()
    {
        Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx, Leaf7EbxV4, Extended1Ecx)), Is.EqualTo(SimdLevel.Avx512));
        Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx, Leaf7EbxV3, Extended1Ecx)), Is.EqualTo(SimdLevel.Avx2));
    }

    [TestCase(12, TestName = "No FMA: below v3")]
    [TestCase(27, TestName = "OS without XSAVE enabled: below v3")]
    [TestCase(28, TestName = "No AVX: below v3")]
    public void A_missing_leaf_1_bit_is_below_v3(int bit)
        => Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx & ~(1 << bit), Leaf7EbxV4, Extended1Ecx)), Is.EqualTo(SimdLevel.Baseline));

    [TestCase(5, SimdLevel.Baseline, TestName = "No AVX2: below v3")]
    [TestCase(8, SimdLevel.Baseline, TestName = "No BMI2: below v3")]
    [TestCase(16, SimdLevel.Avx2, TestName = "No AVX-512 F: v3")]
    [TestCase(30, SimdLevel.Avx2, TestName = "No AVX-512 BW: v3")]
    [TestCase(31, SimdLevel.Avx2, TestName = "No AVX-512 VL: v3")]
    public void A_missing_leaf_7_bit_lowers_the_level(int bit, SimdLevel expected)
        => Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx, Leaf7EbxV4 & ~(1 << bit), Extended1Ecx)), Is.EqualTo(expected));

    [Test]
    public void No_lzcnt_or_no_leaf_7_is_below_v3()
    {
        Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx, Leaf7EbxV4, 0)), Is.EqualTo(SimdLevel.Baseline));
        Assert.That(CpuidLevel.FromCpuid(Cpu(Leaf1Ecx, Leaf7EbxV4, Extended1Ecx, maxLeaf: 6)), Is.EqualTo(SimdLevel.Baseline));
    }

    [Test]
    public void The_kernel_caps_the_level_at_the_registers_it_saves()
    {
        Assert.That(CpuidLevel.FromKernelFlags(new HashSet<string> { "fma", "avx", "avx2", "avx512f", "avx512bw" }), Is.EqualTo(SimdLevel.Avx512));
        Assert.That(CpuidLevel.FromKernelFlags(new HashSet<string> { "fma", "avx", "avx2" }), Is.EqualTo(SimdLevel.Avx2));
        Assert.That(CpuidLevel.FromKernelFlags(new HashSet<string> { "sse4_2" }), Is.EqualTo(SimdLevel.Baseline));
    }

    [Test]
    public void On_this_machine_the_level_agrees_with_the_runtime()
    {
        // The JIT asks the CPU and the OS (XGETBV) itself: the level read without it must agree, unless the runtime was
        // told to hold back (a DOTNET_Enable* switch) — then the CPU still has what the runtime does not use.
        if (Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("DOTNET_Enable", StringComparison.Ordinal)))
        {
            Assert.Ignore("a DOTNET_Enable* switch holds the runtime back from what the CPU has");
        }
        var runtime = Avx512F.IsSupported && Avx512BW.IsSupported && Avx512CD.IsSupported && Avx512DQ.IsSupported && Avx512F.VL.IsSupported ? SimdLevel.Avx512
            : Avx2.IsSupported && Fma.IsSupported && Bmi1.IsSupported && Bmi2.IsSupported && Lzcnt.IsSupported ? SimdLevel.Avx2
            : SimdLevel.Baseline;
        Assert.That(SimdLevels.Cpu, Is.EqualTo(runtime));
    }
}
