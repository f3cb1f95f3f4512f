using CudaFinetune.Backends;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>
/// A randomly initialised model on a backend with one fixed batch of random tokens: what <c>bench step</c> and the
/// training-step benchmarks time. <see cref="ForwardBackward"/> is one forward and backward pass; <see cref="Update"/>
/// is a whole optimizer step as the trainer takes it (gradients zeroed, forward and backward, global gradient norm,
/// AdamW). Warmed up by one forward and backward pass on construction, so buffers exist before timing starts.
/// </summary>
public sealed class TrainingStepWorkload : IDisposable
{
    private readonly TokenBatch _batch;
    private readonly AdamWOptimizer _optimizer;
    private long _step;

    /// <param name="lora">LoRA settings; null trains every weight.</param>
    public TrainingStepWorkload(IBackend backend, LlamaConfig config, int batchSize, int seqLen, LoraConfig? lora, ulong seed = 1)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        Backend = backend;
        var weights = LlamaWeights.Allocate(backend, config);
        LlamaInitializer.Initialize(backend, weights, config, seed);
        Model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = seed });
        _optimizer = new AdamWOptimizer(backend, Model.TrainableParameters, weightDecay: 0.01);
        var random = new Random((int)seed);
        _batch = new TokenBatch(batchSize, seqLen, [.. Enumerable.Range(0, batchSize * seqLen).Select(_ => random.Next(config.VocabSize))]);
        Model.ForwardBackward(_batch, 0);
    }

    public IBackend Backend { get; }

    public LlamaModel Model { get; }

    public int TokensPerStep => _batch.Tokens;

    /// <summary>One forward and backward pass; returns the mean loss (reading it waits for the device).</summary>
    public double ForwardBackward()
    {
        Model.ZeroGradients();
        return Model.ForwardBackward(_batch, ++_step).Mean;
    }

    /// <summary>One optimizer step; returns the mean loss.</summary>
    public double Step()
    {
        double loss = ForwardBackward();
        double norm = Model.GradientNorm();
        _optimizer.Update(1e-4, gradientScale: norm > 1 ? 1 / norm : 1);
        return loss;
    }

    /// <summary>Seconds per optimizer step: one step to warm up, then <paramref name="steps"/> timed together (the device waited for at the end).</summary>
    public double SecondsPerStep(int steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        Step();
        Wait();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            Step();
        }
        Wait();
        return clock.Elapsed.TotalSeconds / steps;
    }

    /// <summary>Waits until the device has finished every step enqueued so far (it reads a value back).</summary>
    public void Wait() => Backend.SumOfSquares(Model.TrainableParameters[0].FullPrecision);

    public void Dispose()
    {
        _optimizer.Dispose();
        Model.Dispose();
    }
}
