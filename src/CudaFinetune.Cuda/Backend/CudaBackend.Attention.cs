using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// Attention: training on kernels/attention.cu, generation on kernels/decode_attention.cu, and the scratch buffers. The
/// training kernels take bf16 q, k, v, dO and O; fp32 tensors are cast into bf16 scratch first and the bf16 results cast
/// back, so an fp32 model sees bf16 attention (the tolerance its losses are held to against the CPU backend).
/// </summary>
public sealed partial class CudaBackend
{
    private enum Slot
    {
        Q, K, V, Output, DOutput, DQ, DK, DV, Delta, Logits, RowMax, RowSum, TargetLogit, DXAccumulator, RowRescale, LowRank, Count,
    }

    public void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        bool bf16 = _checks.FloatType(q, k, v, output) == DType.BF16;
        _checks.Expect(DType.F32, logSumExp);
        CheckAttention(q, k, v, output, logSumExp, shape);
        DevicePtr pq = AsBF16(q, Slot.Q), pk = AsBF16(k, Slot.K), pv = AsBF16(v, Slot.V);
        DevicePtr po = bf16 ? output.Address() : Scratch(Slot.Output, output.ElementCount * sizeof(ushort));
        AttentionKernels.Forward(_device, pq, pk, pv, po, logSumExp.Address(), shape.Batch, shape.SeqLen, shape.QueryHeads, shape.KvHeads, shape.HeadDim, (float)shape.Scale);
        if (!bf16)
        {
            ElementwiseKernels.CastBF16ToF32(_device, po, output.Address(), output.ElementCount);
        }
    }

    public void AttentionBackward(Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp,
        Tensor dq, Tensor dk, Tensor dv, in AttentionShape shape)
    {
        bool bf16 = _checks.FloatType(dOutput, q, k, v, output, dq, dk, dv) == DType.BF16;
        _checks.Expect(DType.F32, logSumExp);
        CheckAttention(q, k, v, output, logSumExp, shape);
        OpChecks.SameCount(dOutput, output);
        OpChecks.SameCount(q, dq);
        OpChecks.SameCount(k, dk);
        OpChecks.SameCount(v, dv);
        DevicePtr pq = AsBF16(q, Slot.Q), pk = AsBF16(k, Slot.K), pv = AsBF16(v, Slot.V), po = AsBF16(output, Slot.Output), pdo = AsBF16(dOutput, Slot.DOutput);
        DevicePtr pdq = bf16 ? dq.Address() : Scratch(Slot.DQ, dq.ElementCount * sizeof(ushort));
        DevicePtr pdk = bf16 ? dk.Address() : Scratch(Slot.DK, dk.ElementCount * sizeof(ushort));
        DevicePtr pdv = bf16 ? dv.Address() : Scratch(Slot.DV, dv.ElementCount * sizeof(ushort));
        DevicePtr delta = Scratch(Slot.Delta, logSumExp.ElementCount * sizeof(float));
        AttentionKernels.Backward(_device, pq, pk, pv, po, pdo, logSumExp.Address(), delta, pdq, pdk, pdv,
            shape.Batch, shape.SeqLen, shape.QueryHeads, shape.KvHeads, shape.HeadDim, (float)shape.Scale);
        if (!bf16)
        {
            ElementwiseKernels.CastBF16ToF32(_device, pdq, dq.Address(), dq.ElementCount);
            ElementwiseKernels.CastBF16ToF32(_device, pdk, dk.Address(), dk.ElementCount);
            ElementwiseKernels.CastBF16ToF32(_device, pdv, dv.Address(), dv.ElementCount);
        }
    }

    /// <summary>The shared checks, and a head size there are kernels for.</summary>
    private void CheckAttention(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        shape.Validate();
        if (!AttentionKernels.Supports(shape.HeadDim))
        {
            throw new UserErrorException($"the {Name} backend's attention kernels take head sizes 32, 64 and 128; this model's is {shape.HeadDim} (hidden size / attention heads): use --device cpu for it");
        }
        OpChecks.Attention(q, k, v, output, logSumExp, shape);
    }

    public void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        var dtype = _checks.FloatType(q, kCache, vCache, output);
        int rows = OpChecks.AttentionDecode(q, kCache, vCache, output, past, shape);
        if (past + rows > DecodeAttentionKernels.MaxKeys)
        {
            throw new UserErrorException($"generation on {Name} attends to at most {DecodeAttentionKernels.MaxKeys} positions; {past + rows} were asked for");
        }
        DecodeAttentionKernels.Attend(_device, dtype, q.Address(), kCache.Address(), vCache.Address(), output.Address(), past, rows, shape.QueryHeads, shape.KvHeads, shape.HeadDim,
            (float)shape.Scale);
    }

    /// <summary>The tensor itself when it is bf16, else a bf16 copy of it in scratch <paramref name="slot"/>.</summary>
    private DevicePtr AsBF16(Tensor tensor, Slot slot)
    {
        if (tensor.DType == DType.BF16)
        {
            return tensor.Address();
        }
        DevicePtr copy = Scratch(slot, tensor.ElementCount * sizeof(ushort));
        ElementwiseKernels.CastF32ToBF16(_device, tensor.Address(), copy, tensor.ElementCount);
        return copy;
    }

    /// <summary>Scratch <paramref name="slot"/> with room for <paramref name="bytes"/>; it grows to the largest request and is kept.</summary>
    private DevicePtr Scratch(Slot slot, long bytes)
    {
        while (_scratch.Count < (int)Slot.Count)
        {
            _scratch.Add(new ScratchBuffer());
        }
        return _scratch[(int)slot].Ensure(_device, bytes);
    }

    /// <summary>A device buffer that only grows.</summary>
    private sealed class ScratchBuffer
    {
        private DeviceBuffer _buffer;

        public DevicePtr Ensure(IDevice device, long bytes)
        {
            if (_buffer.Bytes < bytes)
            {
                Release(device);
                _buffer = device.Memory.Allocate(bytes);
            }
            return _buffer.Start;
        }

        public void Release(IDevice device)
        {
            if (!_buffer.IsEmpty)
            {
                device.Memory.Free(_buffer);
                _buffer = default;
            }
        }
    }
}
