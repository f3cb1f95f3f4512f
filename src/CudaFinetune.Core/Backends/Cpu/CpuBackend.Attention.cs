using System.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>Attention: causal grouped-query attention for training (<see cref="CpuAttention"/>) and decoding against a cache (<see cref="CpuAttentionDecode"/>).</summary>
public sealed unsafe partial class CpuBackend
{
    public void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        var dtype = _checks.FloatType(q, k, v, output, logSumExp);
        OpChecks.Attention(q, k, v, output, logSumExp, shape);
        Compute(dtype, new ForwardOp(_pool, q, k, v, output, logSumExp, shape));
    }

    public void AttentionBackward(Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, Tensor dq, Tensor dk, Tensor dv, in AttentionShape shape)
    {
        var dtype = _checks.FloatType(q, k, v, output, logSumExp, dOutput, dq, dk, dv);
        OpChecks.Attention(q, k, v, output, logSumExp, shape);
        OpChecks.SameCount(dOutput, output);
        OpChecks.SameCount(dq, q);
        OpChecks.SameCount(dk, k);
        OpChecks.SameCount(dv, v);
        Compute(dtype, new BackwardOp(_pool, dOutput, q, k, v, output, logSumExp, dq, dk, dv, shape));
    }

    public void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        var dtype = _checks.FloatType(q, kCache, vCache, output);
        int rows = OpChecks.AttentionDecode(q, kCache, vCache, output, past, shape);
        Compute(dtype, new DecodeOp(_pool, q, kCache, vCache, output, rows, past, shape));
    }

    private readonly struct ForwardOp(CpuWorkerPool pool, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, AttentionShape shape) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuAttention.Forward(pool, q.HostPointer<T>(), k.HostPointer<T>(), v.HostPointer<T>(), output.HostPointer<T>(), logSumExp.HostPointer<T>(), shape);
    }

    private readonly struct BackwardOp(CpuWorkerPool pool, Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, Tensor dq, Tensor dk, Tensor dv,
        AttentionShape shape) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuAttention.Backward(pool, dOutput.HostPointer<T>(), q.HostPointer<T>(), k.HostPointer<T>(), v.HostPointer<T>(), output.HostPointer<T>(), logSumExp.HostPointer<T>(),
                dq.HostPointer<T>(), dk.HostPointer<T>(), dv.HostPointer<T>(), shape);
    }

    private readonly struct DecodeOp(CpuWorkerPool pool, Tensor q, Tensor kCache, Tensor vCache, Tensor output, int rows, int past, AttentionShape shape) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuAttentionDecode.Run(pool, q.HostPointer<T>(), kCache.HostPointer<T>(), vCache.HostPointer<T>(), output.HostPointer<T>(), rows, past, shape);
    }
}
