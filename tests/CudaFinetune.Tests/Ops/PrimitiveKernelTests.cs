using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Ops;

/// <summary>
/// The primitives of kernels/common.cuh (native/cuemu/selftest.cu), each against a scalar reference:
/// shuffles, votes, barriers, shared memory, atomics, cp.async, ldmatrix and mma fragment layouts as
/// the PTX ISA gives them. On the emulator this tests the emulator; on a GPU, that it models the hardware.
/// </summary>
[TestFixture(KernelDevice.Emulator)]
[TestFixture(KernelDevice.Gpu)]
public sealed class PrimitiveKernelTests(KernelDevice kind)
{
    private readonly List<DeviceBuffer> _buffers = [];
    private IDevice _device = null!;

    [OneTimeSetUp]
    public void Open() => _device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void Close() => _device?.Dispose();

    [TearDown]
    public void Free() => _device.FreeAll(_buffers);

    [TestCase(ShuffleKind.Xor, 1)]
    [TestCase(ShuffleKind.Xor, 16)]
    [TestCase(ShuffleKind.Xor, 31)]
    [TestCase(ShuffleKind.Index, 0)]
    [TestCase(ShuffleKind.Index, 29)]
    [TestCase(ShuffleKind.Down, 1)]
    [TestCase(ShuffleKind.Down, 8)]
    [TestCase(ShuffleKind.Up, 3)]
    [TestCase(ShuffleKind.Up, 16)]
    public void Shuffles_read_the_lane_the_ptx_isa_names(ShuffleKind shuffle, int parameter)
    {
        const int threads = 128;
        var output = _device.Poisoned<float>(_buffers, threads);
        SelfTestKernels.Shuffle(_device, output, (int)shuffle, parameter, threads);
        var expected = Enumerable.Range(0, threads).Select(t =>
        {
            int lane = t % 32, warpBase = t - lane;
            int source = shuffle switch
            {
                ShuffleKind.Xor => lane ^ parameter,
                ShuffleKind.Index => parameter,
                ShuffleKind.Down => lane + parameter < 32 ? lane + parameter : lane, // out of range: own value
                _ => lane - parameter >= 0 ? lane - parameter : lane,
            };
            return (float)(warpBase + source);
        });
        Assert.That(_device.Download<float>(output, threads), Is.EqualTo(expected));
    }

    [TestCase(1, 0)]
    [TestCase(3, 0)]
    [TestCase(64, 0)]
    [TestCase(5, 1)]
    [TestCase(16, 1)]
    public void Ballot_any_and_all_count_only_the_lanes_in_the_mask(int modulus, int split)
    {
        const int threads = 64;
        var output = _device.Poisoned<uint>(_buffers, 3 * threads);
        SelfTestKernels.Vote(_device, output, modulus, split, threads);
        uint[] got = _device.Download<uint>(output, 3 * threads);
        for (int t = 0; t < threads; t++)
        {
            int lane = t % 32, warpBase = t - lane;
            uint mask = split == 0 ? 0xFFFFFFFFu : lane < 16 ? 0x0000FFFFu : 0xFFFF0000u;
            uint ballot = 0;
            for (int l = 0; l < 32; l++)
            {
                if ((mask >> l & 1) != 0 && (warpBase + l) % modulus == 0)
                {
                    ballot |= 1u << l;
                }
            }
            Assert.That(got[3 * t], Is.EqualTo(ballot), $"ballot of thread {t}");
            Assert.That(got[3 * t + 1], Is.EqualTo(ballot != 0 ? 1u : 0u), $"any of thread {t}");
            Assert.That(got[3 * t + 2], Is.EqualTo(ballot == mask ? 1u : 0u), $"all of thread {t}");
        }
    }

    [TestCase(1, 32)]
    [TestCase(3, 256)]
    [TestCase(2, 1024)]
    [TestCase(5, 96)]
    public void The_barrier_makes_every_shared_write_visible(int blocks, int threads)
    {
        var output = _device.Poisoned<float>(_buffers, blocks * threads);
        SelfTestKernels.Barrier(_device, output, blocks, threads);
        var expected = Enumerable.Range(0, blocks * threads).Select(i => 2.0f * ((i % threads + 1) % threads) + 1000.0f * (i / threads));
        Assert.That(_device.Download<float>(output, blocks * threads), Is.EqualTo(expected));
    }

    [TestCase(1000)]
    [TestCase(20000)] // 80 KB: more than the 48 KiB a kernel gets without opting in
    public void Dynamic_shared_memory_holds_what_the_block_wrote(int floats)
    {
        var output = _device.Poisoned<float>(_buffers, floats);
        SelfTestKernels.DynamicShared(_device, output, floats);
        Assert.That(_device.Download<float>(output, floats), Is.EqualTo(Enumerable.Range(0, floats).Select(i => 3.0f * (floats - 1 - i))));
    }

    [TestCase(32)]
    [TestCase(96)]
    [TestCase(1024)]
    public void Block_sum_gives_every_thread_the_total_and_can_be_repeated(int threads)
    {
        var output = _device.Poisoned<float>(_buffers, threads);
        SelfTestKernels.BlockSum(_device, output, threads);
        float expected = threads * (threads - 1) / 2.0f + 1e6f * threads;
        Assert.That(_device.Download<float>(output, threads), Is.All.EqualTo(expected));
    }

    [Test]
    public void Atomics_from_every_thread_of_a_two_dimensional_grid_all_land()
    {
        const int blocksX = 37, blocksY = 5, threads = 64, total = blocksX * blocksY * threads;
        var counters = _device.Put<int>(_buffers, new int[4]);
        var sum = _device.Put<float>(_buffers, new float[1]);
        SelfTestKernels.Atomics(_device, counters, sum, blocksX, blocksY, threads);
        Assert.That(_device.Download<int>(counters, 4), Is.EqualTo(new[] { total, total - 1, 1, 1 }), "count, max index, CAS winners, CAS target");
        Assert.That(_device.Download<float>(sum, 1)[0], Is.EqualTo((float)total), "float sum of ones (exact below 2^24)");
    }

    /// <summary>A 16×16 tile whose element (r, c) is the bf16 bit pattern r·16 + c + 1, so each fragment names its source.</summary>
    private static ushort[] NumberedTile() => [.. Enumerable.Range(0, 256).Select(i => (ushort)(i + 1))];

    [TestCase(false)]
    [TestCase(true)]
    public void Ldmatrix_x4_hands_each_lane_the_fragments_of_the_ptx_layout(bool trans)
    {
        ushort[] tile = NumberedTile();
        var output = _device.Poisoned<uint>(_buffers, 32 * 4);
        SelfTestKernels.LdMatrix(_device, _device.Put<ushort>(_buffers, tile), output, trans ? 1 : 0);
        uint[] got = _device.Download<uint>(output, 128);
        for (int lane = 0; lane < 32; lane++)
        {
            for (int i = 0; i < 4; i++)
            {
                // Matrix i is the quarter at rows 8(i%2), columns 8(i/2) (lanes 8i..8i+7 gave its rows).
                int row0 = 8 * (i % 2), col0 = 8 * (i / 2);
                (int r, int c, int r2, int c2) = trans
                    ? (row0 + 2 * (lane % 4), col0 + lane / 4, row0 + 2 * (lane % 4) + 1, col0 + lane / 4)
                    : (row0 + lane / 4, col0 + 2 * (lane % 4), row0 + lane / 4, col0 + 2 * (lane % 4) + 1);
                uint expected = tile[r * 16 + c] | (uint)tile[r2 * 16 + c2] << 16;
                Assert.That(got[4 * lane + i], Is.EqualTo(expected), $"lane {lane}, register {i}");
            }
        }
    }

    [TestCase(false, 1)]
    [TestCase(false, 2)]
    [TestCase(true, 3)]
    [TestCase(true, 4)]
    public void Mma_bf16_16816_matches_a_scalar_product(bool throughLdMatrix, int seed)
    {
        var rng = new Random(seed);
        // Seed 1 and 3: small integers (every product and sum exact, so the result must be exact);
        // seed 2 and 4: random values (tensor cores round their sum differently from us: 1e-5 relative).
        bool exact = seed % 2 == 1;
        float Value() => exact ? rng.Next(-8, 9) : (float)(rng.NextDouble() * 4 - 2);
        ushort[] a = [.. Enumerable.Range(0, 16 * 16).Select(_ => HalfPrecision.ToBFloat16(Value()))];
        ushort[] b = [.. Enumerable.Range(0, 16 * 8).Select(_ => HalfPrecision.ToBFloat16(Value()))];
        float[] c = [.. Enumerable.Range(0, 16 * 8).Select(_ => Value())];
        var d = _device.Poisoned<float>(_buffers, 16 * 8);
        DevicePtr pa = _device.Put<ushort>(_buffers, a), pb = _device.Put<ushort>(_buffers, b), pc = _device.Put<float>(_buffers, c);
        if (throughLdMatrix)
        {
            SelfTestKernels.MmaThroughLdMatrix(_device, pa, pb, pc, d);
        }
        else
        {
            SelfTestKernels.Mma(_device, pa, pb, pc, d);
        }
        float[] got = _device.Download<float>(d, 16 * 8);
        for (int m = 0; m < 16; m++)
        {
            for (int n = 0; n < 8; n++)
            {
                double sum = c[m * 8 + n], magnitude = Math.Abs(sum);
                for (int k = 0; k < 16; k++)
                {
                    double product = (double)HalfPrecision.FromBFloat16(a[m * 16 + k]) * HalfPrecision.FromBFloat16(b[k * 8 + n]);
                    sum += product;
                    magnitude += Math.Abs(product);
                }
                Assert.That(got[m * 8 + n], Is.EqualTo((float)sum).Within(exact ? 0 : 1e-5 * magnitude), $"d[{m},{n}]");
            }
        }
    }
}
