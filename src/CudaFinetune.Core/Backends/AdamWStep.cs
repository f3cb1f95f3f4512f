namespace CudaFinetune.Backends;

/// <summary>The scalars of one AdamW update. <see cref="Step"/> counts from 1 (bias correction uses it).</summary>
public readonly record struct AdamWStep(double LearningRate, double Beta1, double Beta2, double Epsilon, double WeightDecay, long Step, double GradientScale)
{
    public double BiasCorrection1 => 1 - Math.Pow(Beta1, Step);

    public double BiasCorrection2 => 1 - Math.Pow(Beta2, Step);
}
