using System.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>Elementwise ops (add, dropout, SwiGLU, the AdamW step) and the deterministic reductions.</summary>
public sealed unsafe partial class CpuBackend
{
    public void Add(Tensor a, Tensor b, Tensor output)
    {
        var dtype = _checks.FloatType(a, b, output);
        OpChecks.SameCount(a, b, output);
        Compute(dtype, new AddOp(_pool, a, b, output));
    }

    public void AddScaled(Tensor x, double scale, Tensor accumulator)
    {
        var dtype = _checks.FloatType(x, accumulator);
        OpChecks.SameCount(x, accumulator);
        Compute(dtype, new AddScaledOp(_pool, x, scale, accumulator));
    }

    public void Dropout(Tensor x, Tensor output, double probability, DropoutKey key)
    {
        var dtype = _checks.FloatType(x, output);
        OpChecks.SameCount(x, output);
        OpChecks.DropoutProbability(probability);
        Compute(dtype, new DropoutOp(_pool, x, output, probability, key));
    }

    public void SwiGluForward(Tensor gate, Tensor up, Tensor output)
    {
        var dtype = _checks.FloatType(gate, up, output);
        OpChecks.SameCount(gate, up, output);
        Compute(dtype, new SwiGluForwardOp(_pool, gate, up, output));
    }

    public void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp)
    {
        var dtype = _checks.FloatType(dOutput, gate, up, dGate, dUp);
        OpChecks.SameCount(gate, up, dOutput, dGate, dUp);
        Compute(dtype, new SwiGluBackwardOp(_pool, dOutput, gate, up, dGate, dUp));
    }

    public void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null)
    {
        var dtype = _checks.FloatType(parameter, gradient, firstMoment, secondMoment);
        OpChecks.SameCount(parameter, gradient, firstMoment, secondMoment);
        Compute(dtype, new AdamWOp(_pool, parameter, gradient, firstMoment, secondMoment, update));
        if (roundedCopy is not null)
        {
            Copy(parameter, roundedCopy);
        }
    }

    public double Sum(Tensor x) => Reduce(x, squares: false);

    public double SumOfSquares(Tensor x) => Reduce(x, squares: true);

    private double Reduce(Tensor x, bool squares)
    {
        var dtype = _checks.FloatType(x);
        lock (_gemmGate)
        {
            int chunks = CpuElementwise.Chunks(x.ElementCount);
            if (_partials.Length < chunks)
            {
                _partials = new double[chunks];
            }
            return Evaluate(dtype, new ReduceOp(_pool, x, squares, _partials));
        }
    }

    private readonly struct AddOp(CpuWorkerPool pool, Tensor a, Tensor b, Tensor output) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuElementwise.Add(pool, a.HostPointer<T>(), b.HostPointer<T>(), output.HostPointer<T>(), a.ElementCount);
    }

    private readonly struct AddScaledOp(CpuWorkerPool pool, Tensor x, double scale, Tensor accumulator) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuElementwise.AddScaled(pool, x.HostPointer<T>(), T.CreateTruncating(scale), accumulator.HostPointer<T>(), x.ElementCount);
    }

    private readonly struct DropoutOp(CpuWorkerPool pool, Tensor x, Tensor output, double probability, DropoutKey key) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuElementwise.Dropout(pool, x.HostPointer<T>(), output.HostPointer<T>(), x.ElementCount, probability, key);
    }

    private readonly struct SwiGluForwardOp(CpuWorkerPool pool, Tensor gate, Tensor up, Tensor output) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuSwiGlu.Forward(pool, gate.HostPointer<T>(), up.HostPointer<T>(), output.HostPointer<T>(), gate.ElementCount);
    }

    private readonly struct SwiGluBackwardOp(CpuWorkerPool pool, Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuSwiGlu.Backward(pool, dOutput.HostPointer<T>(), gate.HostPointer<T>(), up.HostPointer<T>(), dGate.HostPointer<T>(), dUp.HostPointer<T>(), gate.ElementCount);
    }

    private readonly struct AdamWOp(CpuWorkerPool pool, Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, AdamWStep update) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuAdamW.Update(pool, parameter.HostPointer<T>(), gradient.HostPointer<T>(), firstMoment.HostPointer<T>(), secondMoment.HostPointer<T>(), parameter.ElementCount, update);
    }

    private readonly struct ReduceOp(CpuWorkerPool pool, Tensor x, bool squares, double[] partials) : IFloatFunction
    {
        public double Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuElementwise.Reduce(pool, x.HostPointer<T>(), x.ElementCount, squares, partials);
    }
}
