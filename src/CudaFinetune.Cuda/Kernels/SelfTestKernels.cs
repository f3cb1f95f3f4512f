namespace CudaFinetune.Cuda.Kernels;

/// <summary>The warp shuffles of <c>selftest_shuffle</c>.</summary>
public enum ShuffleKind
{
    Xor = 0,
    Index = 1,
    Down = 2,
    Up = 3,
}

/// <summary>
/// Launchers of native/cuemu/selftest.cu: one kernel per primitive of kernels/common.cuh (shuffles,
/// votes, barriers, dynamic shared memory, atomics, cp.async, ldmatrix, mma) and one for the floating-point
/// contraction rule (no a·b + c fused unless written as fma_rn). On the emulator they
/// test the emulator; on a GPU the same PTX shows that the emulator models the hardware.
/// </summary>
public static unsafe class SelfTestKernels
{
    private const string Module = "selftest";

    /// <summary>out[t] = what thread t reads with the shuffle, where thread t holds t.</summary>
    [KernelEntry(Module, "selftest_shuffle")]
    public static void Shuffle(IKernelLauncher launcher, DevicePtr output, int kind, int parameter, int threads = 32)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &output;
        args[1] = &kind;
        args[2] = &parameter;
        launcher.Launch(Module, "selftest_shuffle", new LaunchShape(1, threads), args);
    }

    /// <summary>out[3t..3t+2] = ballot, any, all of the predicates (t % modulus == 0); half-warps vote apart when split ≠ 0.</summary>
    [KernelEntry(Module, "selftest_vote")]
    public static void Vote(IKernelLauncher launcher, DevicePtr output, int modulus, int split, int threads = 32)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &output;
        args[1] = &modulus;
        args[2] = &split;
        launcher.Launch(Module, "selftest_vote", new LaunchShape(1, threads), args);
    }

    /// <summary>out[b·n + t] = 2·((t + 1) % n) + 1000·b, through static shared memory and a barrier.</summary>
    [KernelEntry(Module, "selftest_barrier")]
    public static void Barrier(IKernelLauncher launcher, DevicePtr output, int blocks = 1, int threads = 32)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[1];
        args[0] = &output;
        launcher.Launch(Module, "selftest_barrier", new LaunchShape(blocks, threads), args);
    }

    /// <summary>out[i] = 3·(floats − 1 − i), through <paramref name="floats"/> floats of dynamic shared memory.</summary>
    [KernelEntry(Module, "selftest_dynamic_shared")]
    public static void DynamicShared(IKernelLauncher launcher, DevicePtr output, int floats, int threads = 256)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[2];
        args[0] = &output;
        args[1] = &floats;
        launcher.Launch(Module, "selftest_dynamic_shared", new LaunchShape(1, threads, floats * sizeof(float)), args);
    }

    /// <summary>out[t] = Σ thread indices + 10⁶ · threads, by two block sums in a row.</summary>
    [KernelEntry(Module, "selftest_block_sum")]
    public static void BlockSum(IKernelLauncher launcher, DevicePtr output, int threads = 32)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[1];
        args[0] = &output;
        launcher.Launch(Module, "selftest_block_sum", new LaunchShape(1, threads), args);
    }

    /// <summary>Atomics from every thread of a <paramref name="blocksX"/> × <paramref name="blocksY"/> grid into counters[0..3] and sum.</summary>
    [KernelEntry(Module, "selftest_atomics")]
    public static void Atomics(IKernelLauncher launcher, DevicePtr counters, DevicePtr sum, int blocksX = 1, int blocksY = 1, int threads = 32)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[2];
        args[0] = &counters;
        args[1] = &sum;
        launcher.Launch(Module, "selftest_atomics", new LaunchShape(blocksX, threads, BlocksY: blocksY), args);
    }

    /// <summary>The four registers each lane gets from ldmatrix .x4 (trans ≠ 0: .trans) of a 16×16 bf16 tile; the tile must be 16-byte aligned.</summary>
    [KernelEntry(Module, "selftest_ldmatrix")]
    public static void LdMatrix(IKernelLauncher launcher, DevicePtr tile, DevicePtr output, int trans)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &tile;
        args[1] = &output;
        args[2] = &trans;
        launcher.Launch(Module, "selftest_ldmatrix", new LaunchShape(1, 32), args);
    }

    /// <summary>d = a·b + c (16×16 bf16 by 16×8 bf16 plus 16×8 fp32, all row-major) with fragments gathered by the PTX layout formulas.</summary>
    [KernelEntry(Module, "selftest_mma")]
    public static void Mma(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr d)
        => LaunchMma(launcher, "selftest_mma", a, b, c, d);

    /// <summary>The same product with a and b staged by cp.async and loaded by ldmatrix (.x4, and .x2.trans for b); a and b 16-byte aligned.</summary>
    [KernelEntry(Module, "selftest_mma_ldmatrix")]
    public static void MmaThroughLdMatrix(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr d)
        => LaunchMma(launcher, "selftest_mma_ldmatrix", a, b, c, d);

    /// <summary>
    /// out[2i] = a[i]·b[i] + c[i] as written (two roundings: the build contracts nothing) and out[2i + 1] = fma_rn(a[i], b[i], c[i])
    /// (one rounding), for i below <paramref name="n"/>.
    /// </summary>
    [KernelEntry(Module, "selftest_contraction")]
    public static void Contraction(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr output, int n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        const int threads = 128;
        void** args = stackalloc void*[5];
        args[0] = &a;
        args[1] = &b;
        args[2] = &c;
        args[3] = &output;
        args[4] = &n;
        launcher.Launch(Module, "selftest_contraction", new LaunchShape((n + threads - 1) / threads, threads), args);
    }

    private static void LaunchMma(IKernelLauncher launcher, string entry, DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr d)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[4];
        args[0] = &a;
        args[1] = &b;
        args[2] = &c;
        args[3] = &d;
        launcher.Launch(Module, entry, new LaunchShape(1, 32), args);
    }
}
