using System.Diagnostics;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Distributed;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>
/// The training loop of llama-recipes' <c>train()</c>: epochs over shuffled batches, gradient
/// accumulation (each micro-batch's mean loss scaled by 1/accumulation), clipping by global norm,
/// AdamW, a learning-rate schedule, evaluation every N steps and at each epoch's end.
/// Dropout masks are keyed by the global micro-batch index, so a run is a pure function of its
/// options and data.
/// </summary>
/// <remarks>
/// With a process group of W ranks (data parallelism, as torchrun's), a step takes W × accumulation micro-batches from
/// the one sampler every rank runs identically; rank r trains on positions r, r + W, … of that group, each micro-batch
/// keyed and scaled (1 / (W × accumulation)) as one rank with W × accumulation steps of accumulation would; a sharded
/// optimizer (<see cref="ShardedAdamW"/>) sums the gradients. So W ranks train as one rank on the same global batch,
/// up to the order of the sums. Step losses, token counts and the decision to stop are summed over ranks every step
/// (every rank stops after the same step); evaluation splits the validation batches the same way.
/// </remarks>
public sealed class Trainer : IDisposable
{
    private readonly LlamaModel _model;
    private readonly BatchPlan _train;
    private readonly BatchPlan? _validation;
    private readonly FinetuneOptions _options;
    private readonly ITrainingOptimizer _optimizer;
    private readonly IProcessGroup? _group;
    private readonly RankSums? _sums;

    /// <param name="group">the ranks of a data-parallel job (null: this rank alone, with the unsharded optimizer)</param>
    public Trainer(LlamaModel model, BatchPlan train, BatchPlan? validation, FinetuneOptions options, IProcessGroup? group = null)
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
        _group = group;
        _optimizer = group is null
            ? new AdamWOptimizer(model.Backend, model.TrainableParameters, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay)
            : new ShardedAdamW(model.Backend, group, model.TrainableParameters, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay,
                gradientStages: model.GradientStages, bucketElements: BucketElements);
        _sums = group is null ? null : new RankSums(model.Backend, group, 3);
        BatchesPerStep = options.GradientAccumulationSteps * WorldSize;
        StepsPerEpoch = (train.Count + BatchesPerStep - 1) / BatchesPerStep;
        TotalSteps = LastStepFrom(TrainingState.Start(options.Seed));
        Schedule = new LearningRateSchedule(options.Scheduler, options.Lr, options.WarmupSteps, TotalSteps, options.Gamma);
    }

    /// <summary>
    /// The step at which a run standing at <paramref name="state"/> ends: the steps left in the sampler's epoch (from its
    /// position, over this plan's batches and this step size), then whole epochs up to --num-epochs; --max-steps caps it.
    /// </summary>
    private long LastStepFrom(TrainingState state)
    {
        long left = 0;
        if (state.Epoch < _options.NumEpochs)
        {
            long inEpoch = Math.Max(0, _train.Count - state.Sampler.Cursor);
            left = ((inEpoch + BatchesPerStep - 1) / BatchesPerStep) + ((long)StepsPerEpoch * (_options.NumEpochs - state.Epoch - 1));
        }
        long last = state.Step + left;
        return _options.MaxSteps > 0 ? Math.Min(_options.MaxSteps, last) : last;
    }

    /// <summary>
    /// Plans the rest of a run resumed at <paramref name="state"/> whose checkpoint followed <paramref name="saved"/>:
    /// <see cref="TotalSteps"/> counted from where the sampler stands (the data, accumulation or world size may have
    /// changed), and the schedule continued as <see cref="LearningRateSchedule.Continue"/> rules. Returns why the schedule
    /// differs from the saved one (null: it does not).
    /// </summary>
    public string? ContinueFrom(TrainingState state, LearningRateSchedule saved)
    {
        ArgumentNullException.ThrowIfNull(state);
        TotalSteps = LastStepFrom(state);
        (Schedule, string? change) = LearningRateSchedule.Continue(saved, state.Step, _options.Scheduler, _options.Lr, _options.WarmupSteps, TotalSteps, _options.Gamma);
        return change;
    }

    /// <summary>Elements per gradient bucket of the sharded optimizer (tests make it small to exercise many buckets).</summary>
    internal static long BucketElements { get; set; } = ShardedAdamW.DefaultBucketElements;

    /// <summary>Skipped non-finite steps in a row that stop a run even with <see cref="FinetuneOptions.SkipNonfinite"/>.</summary>
    public const int MaxSkippedInARow = 16;

    /// <summary>
    /// Called after each of this rank's backward passes with the 1-based step and whether the pass was the step's last
    /// (whose gradients a sharded optimizer may already have handed over): tests inject faults here.
    /// </summary>
    internal Action<long, bool>? AfterBackwardPass { get; set; }

    /// <summary>Raised on the training thread for every step, evaluation and epoch end.</summary>
    public event Action<TrainingEvent>? Progress;

    public int StepsPerEpoch { get; }

    /// <summary>Ranks training together (1 without a process group).</summary>
    public int WorldSize => _group?.WorldSize ?? 1;

    public int Rank => _group?.Rank ?? 0;

    /// <summary>Micro-batches per optimizer step over all ranks: the global batch is this many batches.</summary>
    public int BatchesPerStep { get; }

    /// <summary>The step at which the run ends (counted from the resumed state after <see cref="ContinueFrom"/>).</summary>
    public long TotalSteps { get; private set; }

    public LearningRateSchedule Schedule { get; private set; }

    public ITrainingOptimizer Optimizer => _optimizer;

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
        int perStep = BatchesPerStep;
        long trainable = _model.TrainableParameters.Sum(p => p.Value.ElementCount);
        Progress?.Invoke(new TrainingStarted(TotalSteps, _options.NumEpochs, _train.Count, trainable, state.Step));
        var clock = Stopwatch.StartNew();
        long step = state.Step, microBatches = state.MicroBatches, evaluatedAt = state.EvaluatedAt, savedAt = -1;
        long skipped = state.SkippedSteps, skippedInARow = 0;
        double? lastLoss = state.LastLoss, lastEval = state.LastEvalLoss, bestEval = state.BestEvalLoss;
        // Where the current step began: a run that stops on a non-finite step saves the state from before its batches.
        SamplerState stepStartSampler;
        long stepStartMicroBatches;

        TrainingState Current() => new()
        {
            Step = step,
            Sampler = sampler.State,
            MicroBatches = microBatches,
            EvaluatedAt = evaluatedAt,
            LastLoss = lastLoss,
            LastEvalLoss = lastEval,
            BestEvalLoss = bestEval,
            SkippedSteps = skipped,
        };
        void Save(CheckpointReason reason)
        {
            Checkpoints?.Save(Current(), reason);
            savedAt = step;
        }
        TrainingOutcome Interrupted()
        {
            Save(CheckpointReason.Interrupted);
            return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: true, skipped);
        }
        // Evaluates; null to go on, else how the run ends. A NaN or infinite loss (the weights have gone bad) is never
        // taken as the last or best eval loss and, with --skip-nonfinite false, stops the run as a non-finite step does.
        // A stop asked during the evaluation ends it at once (one rank alone: several would first have to agree) and
        // saves the state without it, so the resumed run evaluates again (see below).
        TrainingOutcome? EvaluateNow(int epoch)
        {
            double? evaluated;
            try
            {
                evaluated = Evaluate(step, epoch, _group is null ? cancellationToken : CancellationToken.None);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return Interrupted();
            }
            evaluatedAt = step;
            if (evaluated is not { } loss)
            {
                return null;
            }
            if (!double.IsFinite(loss))
            {
                return _options.SkipNonfinite ? null : StopOnEvaluation();
            }
            lastEval = loss;
            bestEval = bestEval is { } best && best <= loss ? best : loss;
            return null;
        }
        TrainingOutcome StopOnEvaluation()
        {
            Save(CheckpointReason.NonFinite);
            return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: true, skipped,
                new NonFiniteStop(step, step, double.NaN, double.NaN, Skipping: false, Evaluation: true));
        }

        // Saved while its mid-epoch evaluation was interrupted: that evaluation comes first. (At an epoch's end the loop
        // below finds it not done, as it would any.)
        if (from is not null && _options.EvalEvery > 0 && step > 0 && step % _options.EvalEvery == 0 && evaluatedAt != step
            && sampler.Remaining > 0 && step < TotalSteps && EvaluateNow(sampler.State.Epoch + 1) is { } stopped)
        {
            return stopped;
        }

        while (sampler.State.Epoch < _options.NumEpochs)
        {
            int epoch = sampler.State.Epoch;
            _model.ZeroGradients();
            int inGroup = 0;
            double lossTotal = 0;
            long lossCount = 0;
            long tokens = 0;
            var stepClock = Stopwatch.StartNew();
            stepStartSampler = sampler.State;
            stepStartMicroBatches = microBatches;
            while (step < TotalSteps && sampler.TryNext(out int batchIndex))
            {
                if (inGroup % WorldSize == Rank)
                {
                    // This rank's last pass of the step lets the optimizer reduce gradients during its backward pass.
                    int groupSize = Math.Min(perStep, inGroup + 1 + sampler.Remaining);
                    bool lastOfStep = inGroup + WorldSize >= groupSize && StandInPasses(groupSize) == 0;
                    var batch = _train[batchIndex];
                    var loss = _model.ForwardBackward(batch, microBatches, 1.0 / perStep, lastOfStep ? _optimizer.GradientsReady : null);
                    AfterBackwardPass?.Invoke(step + 1, lastOfStep);
                    if (loss.Tokens > 0)
                    {
                        lossTotal += loss.Mean;
                        lossCount++;
                    }
                    tokens += batch.Tokens;
                }
                microBatches++;
                inGroup++;
                int remaining = sampler.Remaining;
                if (inGroup < perStep && remaining > 0)
                {
                    continue;
                }
                if (StandInPasses(inGroup) > 0)
                {
                    _model.StandInForPass(backward: true, _optimizer.GradientsReady);
                }
                // Gradients first: a rank whose backward pass already handed buckets over must meet the others' collectives in the same order.
                double norm = _optimizer.ReduceGradients();
                if (_group is not null)
                {
                    // Every rank reports the same step: the sums of all ranks.
                    (lossTotal, lossCount, tokens) = SumOverRanks(lossTotal, lossCount, tokens);
                }
                double stepLoss = lossCount > 0 ? lossTotal / lossCount : double.NaN;
                // The norm and the loss are the same on every rank, so every rank takes the same decision. A step without
                // a counted token (the batch plans leave such batches out) has a 0/0 loss: it is not applied either.
                bool finite = double.IsFinite(norm) && double.IsFinite(stepLoss);
                skippedInARow = finite ? 0 : skippedInARow + 1;
                if (!finite && !_options.SkipNonfinite)
                {
                    // Nothing of this step was applied: the state before its batches is the last good one (a resume runs it again).
                    Checkpoints?.Save(Current() with { Sampler = stepStartSampler, MicroBatches = stepStartMicroBatches }, CheckpointReason.NonFinite);
                    _model.ZeroGradients();
                    return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: true, skipped,
                        new NonFiniteStop(step + 1, step + 1, stepLoss, norm, Skipping: false));
                }
                double lr = Schedule.At(step, epoch);
                if (finite)
                {
                    double clip = _options.GradientClipping > 0 ? Math.Min(1.0, _options.GradientClipping / (norm + 1e-6)) : 1.0;
                    _optimizer.Update(lr, clip);
                    lastLoss = stepLoss;
                }
                else
                {
                    skipped++;
                }
                step++;
                double seconds = stepClock.Elapsed.TotalSeconds;
                Progress?.Invoke(new StepCompleted(step, TotalSteps, epoch + 1, stepLoss, lr, norm, seconds > 0 ? tokens / seconds : 0, clock.Elapsed, !finite, skipped));
                _model.ZeroGradients();
                if (skippedInARow >= MaxSkippedInARow)
                {
                    // The weights are still those from before the streak; the saved state moves past its batches.
                    Save(CheckpointReason.NonFinite);
                    return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: true, skipped,
                        new NonFiniteStop(step + 1 - skippedInARow, step, stepLoss, norm, Skipping: true));
                }
                inGroup = 0;
                lossTotal = 0;
                lossCount = 0;
                tokens = 0;
                bool midEpoch = remaining > 0 && step < TotalSteps;
                if (_options.EvalEvery > 0 && step % _options.EvalEvery == 0 && midEpoch && EvaluateNow(epoch + 1) is { } evaluationStop)
                {
                    return evaluationStop;
                }
                if (StopRequested(cancellationToken))
                {
                    return Interrupted();
                }
                if (_options.SaveEvery > 0 && step % _options.SaveEvery == 0 && midEpoch)
                {
                    Save(CheckpointReason.Periodic);
                }
                stepClock.Restart();
                stepStartSampler = sampler.State;
                stepStartMicroBatches = microBatches;
            }
            if (sampler.Remaining > 0)
            {
                break; // the step limit came first
            }
            if (evaluatedAt != step && EvaluateNow(epoch + 1) is { } epochStop)
            {
                return epochStop;
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
        if (evaluatedAt != step && step > 0 && EvaluateNow(sampler.State.Epoch + 1) is { } finalStop)
        {
            return finalStop;
        }
        if (savedAt != step)
        {
            Save(CheckpointReason.End);
        }
        return new TrainingOutcome(step, sampler.State.Epoch, lastLoss, lastEval, Cancelled: false, skipped);
    }

    /// <summary>
    /// Token-weighted mean loss over the validation batches, in order; null without validation data. With several
    /// ranks each evaluates every WorldSize-th batch and the sums are added over ranks.
    /// </summary>
    /// <param name="cancellationToken">ends the evaluation part-way (OperationCanceledException); only for a rank alone</param>
    public double? Evaluate(long step, int epoch, CancellationToken cancellationToken = default)
    {
        if (_validation is null)
        {
            return null;
        }
        var loss = ModelEvaluator.Evaluate(_model, _validation, Rank, WorldSize, cancellationToken);
        double sum = loss.Sum;
        long tokens = loss.Tokens;
        if (_group is not null)
        {
            (sum, tokens, _) = SumOverRanks(sum, tokens, 0);
        }
        double mean = tokens > 0 ? sum / tokens : double.NaN;
        Progress?.Invoke(new EvaluationCompleted(step, epoch, mean, Math.Exp(mean), checked((int)tokens)));
        return mean;
    }

    /// <summary>
    /// With sharded layer weights, the passes this rank stands in for in a group of <paramref name="groupSize"/>
    /// micro-batches (0 or 1): a rank with fewer micro-batches than the busiest still meets their layer gathers.
    /// </summary>
    private int StandInPasses(int groupSize)
    {
        return _model.LayerWeights is null ? 0 : RankShare.Shortfall(groupSize, Rank, WorldSize);
    }

    /// <summary>Whether to stop after this step: asked on any rank (so every rank stops after the same step).</summary>
    private bool StopRequested(CancellationToken cancellationToken)
        => _group is null ? cancellationToken.IsCancellationRequested : SumOverRanks(cancellationToken.IsCancellationRequested ? 1 : 0, 0, 0).Item1 > 0;

    /// <summary>Each value summed over the ranks, through one small all-reduce.</summary>
    private (double, long, long) SumOverRanks(double a, long b, long c)
    {
        var sums = _sums!.Values;
        (sums[0], sums[1], sums[2]) = (a, b, c);
        _sums.AllReduce();
        return (sums[0], (long)sums[1], (long)sums[2]);
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _sums?.Dispose();
    }
}
