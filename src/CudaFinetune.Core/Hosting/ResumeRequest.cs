using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>Continue a run from <see cref="Path"/>: an output directory (its newest valid checkpoint) or one checkpoint directory.</summary>
/// <param name="Path">output directory or checkpoint directory</param>
/// <param name="Force">accept training data that differs from the checkpoint's</param>
/// <param name="Strict">refuse to fall back to an older checkpoint when the newest is damaged</param>
public sealed record ResumeRequest(string Path, bool Force = false, bool Strict = false);

/// <summary>
/// What a resumed session continues from, the changes it accepted, and damaged checkpoints it passed over.
/// <see cref="Schedule"/> says what the learning rate does from here; <see cref="Branch"/>, when the run leaves a later
/// branch behind, where that branch goes; <see cref="NothingToDo"/>, when the run is already complete, why (then
/// <see cref="FinetuneSession.Train"/> returns at once and changes nothing on disk).
/// </summary>
public sealed record ResumeInfo(string Checkpoint, long Step, int Epoch, IReadOnlyList<string> Warnings, IReadOnlyList<string> Skipped,
    string Schedule = "", string? Branch = null, string? NothingToDo = null);
