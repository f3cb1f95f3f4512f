using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// The x86-64 microarchitecture levels the CPU backend's kernels are built for. The kernels are written once over
/// <c>Vector256</c>/<c>Vector512</c> and <c>TensorPrimitives</c>; which width they run at is decided by the compiler:
/// at run time by the JIT, when compiling by NativeAOT (which is why the native release ships one build per level, see
/// docs/packaging.md).
/// </summary>
public enum SimdLevel
{
    /// <summary>Below x86-64-v3, or not an x86-64 CPU: the kernels' scalar or 128-bit fallbacks.</summary>
    Baseline,

    /// <summary>x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE — 256-bit kernels. Every x86-64 server CPU since 2013–2015.</summary>
    Avx2,

    /// <summary>x86-64-v4: v3 plus AVX-512 F/BW/CD/DQ/VL — 512-bit kernels.</summary>
    Avx512,
}

/// <summary>What this process runs at, and what this CPU can run.</summary>
public static class SimdLevels
{
    /// <summary>The level the code of this process was compiled to use (by the JIT now, or by NativeAOT before).</summary>
    public static SimdLevel Running { get; } =
        Vector512.IsHardwareAccelerated ? SimdLevel.Avx512
        : Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported ? SimdLevel.Avx2
        : SimdLevel.Baseline;

    /// <summary>
    /// The highest level this CPU and operating system can run, whatever this process was compiled for (a build for
    /// x86-64-v3 cannot ask the compiler's <c>IsSupported</c>: NativeAOT answers those when compiling).
    /// </summary>
    public static SimdLevel Cpu { get; } = CpuidLevel.Detect();

    /// <summary>The level's name as compilers and NativeAOT's <c>IlcInstructionSet</c> spell it.</summary>
    public static string Name(this SimdLevel level) => level switch
    {
        SimdLevel.Avx512 => "x86-64-v4",
        SimdLevel.Avx2 => "x86-64-v3",
        _ => "baseline",
    };

    /// <summary>The name with what it means: "x86-64-v4 (AVX-512)".</summary>
    public static string Describe(this SimdLevel level) => level switch
    {
        SimdLevel.Avx512 => "x86-64-v4 (AVX-512)",
        SimdLevel.Avx2 => "x86-64-v3 (AVX2, FMA)",
        _ => "baseline (below AVX2)",
    };

    /// <summary>Reads "x86-64-v4" / "avx512" or "x86-64-v3" / "avx2" (any case); null for anything else.</summary>
    public static SimdLevel? Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "x86-64-v4" or "avx512" or "avx-512" => SimdLevel.Avx512,
        "x86-64-v3" or "avx2" => SimdLevel.Avx2,
        _ => null,
    };
}
