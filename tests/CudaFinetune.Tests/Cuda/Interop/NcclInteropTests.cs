using System.Runtime.CompilerServices;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>The NCCL bindings' blittable types (as nccl.h lays them out), version decoding, and the message when the library is absent.</summary>
[TestFixture]
public sealed unsafe class NcclInteropTests
{
    [Test]
    public void The_unique_id_is_128_bytes_passed_by_value()
    {
        Assert.That(Nccl.UniqueIdBytes, Is.EqualTo(128));
        Assert.That(Unsafe.SizeOf<NcclUniqueId>(), Is.EqualTo(128));
        Assert.That(sizeof(NcclUniqueId), Is.EqualTo(128));
        Assert.That(Unsafe.SizeOf<NcclComm>(), Is.EqualTo(IntPtr.Size));

        // Its bytes are the id: what one rank writes, another reads back unchanged.
        NcclUniqueId id = default;
        Span<byte> bytes = id;
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(i * 3 + 1);
        }
        NcclUniqueId copy = id;
        Assert.That(((ReadOnlySpan<byte>)copy).ToArray(), Is.EqualTo(bytes.ToArray()));
        Assert.That(((byte*)&copy)[127], Is.EqualTo((byte)(127 * 3 + 1 - 256)));
    }

    [TestCase(21903, "2.19.3")]
    [TestCase(22605, "2.26.5")]
    [TestCase(21003, "2.10.3")]
    [TestCase(2708, "2.7.8")]
    [TestCase(2804, "2.8.4")]
    public void Both_version_encodings_decode(int code, string expected)
        => Assert.That(Nccl.FormatVersion(code), Is.EqualTo(expected));

    [Test]
    public void Impossible_ranks_are_refused_before_nccl_is_asked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.Init(0, default, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.Init(2, default, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.Init(2, default, -1));
    }
}
