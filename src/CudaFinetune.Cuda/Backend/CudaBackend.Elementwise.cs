using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>Elementwise ops (add, dropout, SwiGLU, the AdamW step) and the deterministic reductions.</summary>
public sealed partial class CudaBackend
{
    public void Add(Tensor a, Tensor b, Tensor output)
    {
        var dtype = _checks.FloatType(a, b, output);
        OpChecks.SameCount(a, b, output);
        ElementwiseKernels.Add(_device, dtype, a.Address(), b.Address(), output.Address(), a.ElementCount);
    }

    public void AddScaled(Tensor x, double scale, Tensor accumulator)
    {
        var dtype = _checks.FloatType(x, accumulator);
        OpChecks.SameCount(x, accumulator);
        ElementwiseKernels.AddScaled(_device, dtype, x.Address(), (float)scale, accumulator.Address(), x.ElementCount);
    }

    public void Dropout(Tensor x, Tensor output, double probability, DropoutKey key)
    {
        var dtype = _checks.FloatType(x, output);
        OpChecks.SameCount(x, output);
        Dropout(dtype, x.Address(), output.Address(), x.ElementCount, probability, key);
    }

    private void Dropout(DType dtype, DevicePtr x, DevicePtr output, long n, double probability, DropoutKey key)
    {
        var mask = DropoutMask.Of(probability, key);
        ElementwiseKernels.Dropout(_device, dtype, x, output, n, key.Seed, mask.Hi0, mask.Hi1, mask.Threshold, mask.Scale);
    }

    /// <summary>The kernels' form of a dropout mask: Philox counter words, keep threshold and the kept elements' scale (1 at p = 0).</summary>
    private readonly record struct DropoutMask(uint Hi0, uint Hi1, uint Threshold, float Scale)
    {
        public static DropoutMask Of(double probability, DropoutKey key)
        {
            OpChecks.DropoutProbability(probability);
            var (hi0, hi1) = key.CounterWords();
            return new DropoutMask(hi0, hi1, DropoutKey.KeepThreshold(probability), (float)(1.0 / (1.0 - probability)));
        }
    }

    public void SwiGluForward(Tensor gate, Tensor up, Tensor output)
    {
        var dtype = _checks.FloatType(gate, up, output);
        OpChecks.SameCount(gate, up, output);
        SwiGluKernels.Forward(_device, dtype, gate.Address(), up.Address(), output.Address(), gate.ElementCount);
    }

    public void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp)
    {
        var dtype = _checks.FloatType(dOutput, gate, up, dGate, dUp);
        OpChecks.SameCount(dOutput, gate, up, dGate, dUp);
        SwiGluKernels.Backward(_device, dtype, dOutput.Address(), gate.Address(), up.Address(), dGate.Address(), dUp.Address(), dOutput.ElementCount);
    }

    /// <summary>fp32 parameter (a master, when <paramref name="roundedCopy"/>, bf16, receives it rounded) and moments; fp32 or bf16 gradient.</summary>
    public void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null)
    {
        _checks.Expect(DType.F32, parameter, firstMoment, secondMoment);
        var gradientType = _checks.FloatType(gradient);
        OpChecks.SameCount(parameter, gradient, firstMoment, secondMoment);
        if (roundedCopy is not null)
        {
            _checks.Expect(DType.BF16, roundedCopy);
            OpChecks.SameCount(parameter, roundedCopy);
        }
        AdamWKernels.Step(_device, gradientType, parameter.Address(), gradient.Address(), firstMoment.Address(), secondMoment.Address(), roundedCopy.AddressOrNull(),
            parameter.ElementCount, AdamWKernels.Scalars.From(update));
    }

    public double Sum(Tensor x) => Reduce(x, squares: false);

    public double SumOfSquares(Tensor x) => Reduce(x, squares: true);

    /// <summary>Fixed partial sums on the device, added in order in double on the host: the same bits on every run.</summary>
    private double Reduce(Tensor x, bool squares)
    {
        var dtype = _checks.FloatType(x);
        ReduceKernels.PartialSums(_device, dtype, x.Address(), x.ElementCount, squares ? 1 : 0, _partials.Start);
        MakeCurrent();
        _device.Download(_partials.Start, _hostPartials.AsSpan());
        double sum = 0;
        foreach (float partial in _hostPartials)
        {
            sum += partial;
        }
        return sum;
    }
}
