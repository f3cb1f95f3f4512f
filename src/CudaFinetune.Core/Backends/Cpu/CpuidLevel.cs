using System.Runtime.Intrinsics.X86;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// The x86-64 level this CPU and OS can run, from the CPU's CPUID bits. Wider registers also need the operating system
/// to save them across context switches (XCR0, read by XGETBV, which .NET does not expose); on Linux the kernel drops
/// "avx2" and "avx512f" from the flags of /proc/cpuinfo when it does not, so there the level is also capped by them.
/// </summary>
internal static class CpuidLevel
{
    public static SimdLevel Detect()
    {
        if (!X86Base.IsSupported)
        {
            return SimdLevel.Baseline;
        }
        var level = FromCpuid(X86Base.CpuId);
        if (level > SimdLevel.Baseline && KernelFlags() is { } flags)
        {
            level = (SimdLevel)Math.Min((int)level, (int)FromKernelFlags(flags));
        }
        return level;
    }

    /// <summary>The level the CPUID leaves give (<paramref name="cpuid"/>(leaf, subleaf) → eax, ebx, ecx, edx).</summary>
    internal static SimdLevel FromCpuid(Func<int, int, (int Eax, int Ebx, int Ecx, int Edx)> cpuid)
    {
        static bool Has(int register, params int[] bits) => bits.All(bit => (register & (1 << bit)) != 0);
        int maxLeaf = cpuid(0, 0).Eax, maxExtended = cpuid(unchecked((int)0x8000_0000), 0).Eax;
        if (maxLeaf < 7 || (uint)maxExtended < 0x8000_0001)
        {
            return SimdLevel.Baseline;
        }
        int leaf1 = cpuid(1, 0).Ecx, leaf7 = cpuid(7, 0).Ebx, extended1 = cpuid(unchecked((int)0x8000_0001), 0).Ecx;
        bool v3 = Has(leaf1, 12, 22, 27, 28, 29)  // FMA, MOVBE, OSXSAVE, AVX, F16C
            && Has(leaf7, 3, 5, 8)                 // BMI1, AVX2, BMI2
            && Has(extended1, 5);                  // LZCNT
        bool v4 = v3 && Has(leaf7, 16, 17, 28, 30, 31); // AVX-512 F, DQ, CD, BW, VL
        return v4 ? SimdLevel.Avx512 : v3 ? SimdLevel.Avx2 : SimdLevel.Baseline;
    }

    /// <summary>The highest level the kernel's flags allow: the flags of the register state it must save.</summary>
    internal static SimdLevel FromKernelFlags(IReadOnlySet<string> flags)
        => !flags.Contains("avx2") ? SimdLevel.Baseline : flags.Contains("avx512f") ? SimdLevel.Avx512 : SimdLevel.Avx2;

    /// <summary>The first processor's flags in /proc/cpuinfo; null where there is none (not Linux, or /proc not mounted).</summary>
    private static HashSet<string>? KernelFlags()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        try
        {
            using var reader = new StreamReader("/proc/cpuinfo");
            while (reader.ReadLine() is { } line)
            {
                int colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0 && line.AsSpan(0, colon).Trim() is "flags")
                {
                    return [.. line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }
}
