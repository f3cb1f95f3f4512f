using System.Diagnostics;
using CudaFinetune.Data;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>What a finished (or cancelled) training run reached.</summary>
public sealed record TrainingOutcome(long Steps, int EpochsCompleted, double? LastLoss, double? LastEvalLoss, bool Cancelled);

/// <summary>
/// The training loop of llama-recipes' <c>train()</c>: epochs over shuffled batches, gradient
/// accumulation (each micro-batch's mean loss scaled by 1/accumulation), clipping by global norm,
/// AdamW, a learning-rate schedule, evaluation every N steps and at each epoch's end.
/// Dropout masks are keyed by the global micro-batch index, so a run is a pure function of its
/// options and data.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly LlamaModel _model;
    private readonly BatchPlan _train;
    private readonly BatchPlan? _validation;
    private readonly FinetuneOptions _options;
    private readonly AdamWOptimizer _optimizer;

    public Trainer(LlamaModel model, BatchPlan train, BatchPlan? validation, FinetuneOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        if (train.Count == 0)
        {
            throw new Errors.UserErrorException($"the training data gives no batch: it is shorter than one row of --context-length {options.ContextLength} tokens; use more data or a shorter context");
        }
        _model = model;
        _train = train;
        _validation = validation is { Count: > 0 } ? validation : null;
        _options = options;
        _optimizer = new AdamWOptimizer(model.Backend, model.TrainableParameters, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        StepsPerEpoch = (train.Count + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
        long all = (long)StepsPerEpoch * options.NumEpochs;
        TotalSteps = options.MaxSteps > 0 ? Math.Min(options.MaxSteps, all) : all;
        Schedule = new LearningRateSchedule(options.Scheduler, options.Lr, options.WarmupSteps, TotalSteps, options.Gamma);
    }

    /// <summary>Raised on the training thread for every step, evaluation and epoch end.</summary>
    public event Action<TrainingEvent>? Progress;

    public int StepsPerEpoch { get; }

    public long TotalSteps { get; }

    public LearningRateSchedule Schedule { get; }

    public AdamWOptimizer Optimizer => _optimizer;

    /// <summary>Where checkpoints go (none: the run saves nothing).</summary>
    public ITrainingCheckpoints? Checkpoints { get; set; }

    /// <summary>
    /// Trains from <paramref name="from"/> (a fresh start when null) until the epochs or
    /// <see cref="FinetuneOptions.MaxSteps"/> are done, or until cancelled (after the current step).
    /// Checkpoints are requested every <see cref="FinetuneOptions.SaveEvery"/> steps, at each epoch's end,
    /// at the end, and after the step at which cancellation was seen.
    /// </summary>
    public TrainingOutcome Run(TrainingState? from = null, CancellationToken cancellationToken = default)
    {
        var state = from ?? TrainingState.Start(_options.Seed);
        var sampler = new BatchSampler(_train.Count, _options.Seed, _options.Shuffle);
        sampler.Restore(state.Sampler);
        int accumulation = _options.GradientAccumulationSteps;
        long trainable = _model.TrainableParameters.Sum(p => p.Value.ElementCount);
        Progress?.Invoke(new TrainingStarted(TotalSteps, _options.NumEpochs, _train.Count, trainable, state.Step));
        var clock = Stopwatch.StartNew();
        long step = state.Step, microBatches = state.MicroBatches, evaluatedAt = state.EvaluatedAt, savedAt = -1;
        double? lastLoss = state.LastLoss, lastEval = state.LastEvalLoss, bestEval = state.BestEvalLoss;

        TrainingState Current() => new()
        {
            Step = step,
            Sampler = sampler.State,
            MicroBatches = microBatches,
            EvaluatedAt = evaluatedAt,
            LastLoss = lastLoss,
            LastEvalLoss = lastEval,
            BestEvalLoss = bestEval,
        };
        void Save(CheckpointReason reason)
        {
            Checkpoints?.Save(Current(), reason);
            savedAt = step;
        }
        void EvaluateNow(int epoch)
        {
            if (Evaluate(step, epoch) is { } loss)
            {
                lastEval = loss;
                bestEval = bestEval is { } best && best <= loss ? best : loss;
            }
            evaluatedAt = step;
        }

        while (sampler.State.Epoch < _options.NumEpochs)
        {
            int epoch = sampler.State.Epoch;
            _model.ZeroGradients();
            int inGroup = 0;
            double lossTotal = 0;
            int lossCount = 0;
            long tokens = 0;
            var stepClock = Stopwatch.StartNew();
            while (step < TotalSteps && sampler.TryNext(out int batchIndex))
            {
                var batch = _train[batchIndex];
                var loss = _model.ForwardBackward(batch, microBatches++, 1.0 / accumulation);
                if (loss.Tokens > 0)
                {
                    lossTotal += loss.Mean;
                    lossCount++;
                }
                tokens += batch.Tokens;
                inGroup++;
                int remaining = sampler.Remaining;
                if (inGroup < accumulation && remaining > 0)
                {
                    continue;
                }
                double norm = GradientNorm();
                double clip = _options.GradientClipping > 0 ? Math.Min(1.0, _options.GradientClipping / (norm + 1e-6)) : 1.0;
                double lr = Schedule.At(step, epoch);
                _optimizer.Step(lr, clip);
                step++;
                double stepLoss = lossCount > 0 ? lossTotal / lossCount : double.NaN;
                lastLoss = stepLoss;
                double seconds = stepClock.Elapsed.TotalSeconds;
                Progress?.Invoke(new StepCompleted(step, TotalSteps, epoch + 1, stepLoss, lr, norm, seconds > 0 ? tokens / seconds : 0, clock.Elapsed));
                _model.ZeroGradients();
                inGroup = 0;
                lossTotal = 0;
                lossCount = 0;
                tokens = 0;
                bool midEpoch = remaining > 0 && step < TotalSteps;
                if (_options.EvalEvery > 0 && step % _options.EvalEvery == 0 && midEpoch)
                {
                    EvaluateNow(epoch + 1);
                }
                if (cancellationToken.IsCancellationRequested)
                {
                    Save(CheckpointReason.Interrupted);
                    return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: true);
                }
                if (_options.SaveEvery > 0 && step % _options.SaveEvery == 0 && midEpoch)
                {
                    Save(CheckpointReason.Periodic);
                }
                stepClock.Restart();
            }
            if (sampler.Remaining > 0)
            {
                break; // the step limit came first
            }
            if (evaluatedAt != step)
            {
                EvaluateNow(epoch + 1);
            }
            Progress?.Invoke(new EpochCompleted(epoch + 1, step));
            sampler.NextEpoch();
            bool last = sampler.State.Epoch >= _options.NumEpochs || step >= TotalSteps;
            Save(last ? CheckpointReason.End : CheckpointReason.EpochEnd);
            if (last)
            {
                break;
            }
        }
        if (evaluatedAt != step && step > 0)
        {
            EvaluateNow(sampler.State.Epoch + 1);
        }
        if (savedAt != step)
        {
            Save(CheckpointReason.End);
        }
        return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: false);
    }

    /// <summary>√(Σ over trainable parameters of Σ grad²), summed in parameter order.</summary>
    public double GradientNorm() => _model.GradientNorm();

    /// <summary>Token-weighted mean loss over the validation batches, in order; null without validation data.</summary>
    public double? Evaluate(long step, int epoch)
    {
        if (_validation is null)
        {
            return null;
        }
        var loss = ModelEvaluator.Evaluate(_model, _validation);
        double mean = loss.Mean;
        Progress?.Invoke(new EvaluationCompleted(step, epoch, mean, Math.Exp(mean), loss.Tokens));
        return mean;
    }

    public void Dispose() => _optimizer.Dispose();
}
