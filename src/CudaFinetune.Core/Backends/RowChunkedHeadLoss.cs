using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>
/// <see cref="IBackend.LinearCrossEntropy"/> from a backend's MatMul and CrossEntropy, a chunk of rows at a time (as many
/// as fit 4 M logits), so [rows, vocab] never exists at once: the CPU backend's way. One logits buffer serves every call;
/// the chunk views are made on the first call for a pair of input and gradient tensors (the model has one per batch
/// shape, and one without a gradient for evaluation) and reused, so a training step allocates nothing once warm.
/// </summary>
internal sealed class RowChunkedHeadLoss : IDisposable
{
    private const long LogitBudget = 1 << 22;
    private readonly Dictionary<(Tensor X, Tensor? DX), Views> _views = [];
    private Tensor? _logits;

    public void Run(IBackend backend, Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
    {
        var (rows, _, vocab) = OpChecks.HeadLoss(x, head, targets, rowLoss, dX, dHead);
        int perChunk = (int)Math.Clamp(LogitBudget / vocab, 1, rows);
        if (_logits is null || _logits.Shape.Columns != vocab || _logits.Shape.Rows < perChunk || _logits.DType != backend.ComputeType)
        {
            Dispose();
            _logits = backend.Allocate(backend.ComputeType, new Shape(perChunk, vocab));
        }
        if (!_views.TryGetValue((x, dX), out var views) || !views.Matches(targets, rowLoss))
        {
            views = Views.Of(x, targets, rowLoss, dX, _logits, perChunk);
            _views[(x, dX)] = views;
        }
        bool backward = dX is not null || dHead is not null;
        for (int c = 0; c < views.X.Length; c++)
        {
            Tensor logits = views.Logits[c];
            backend.MatMul(views.X[c], false, head, true, logits);
            backend.CrossEntropy(logits, views.Targets[c], views.RowLoss[c], backward ? logits : null, gradientScale);
            if (views.DX is { } dXChunks)
            {
                backend.MatMul(logits, false, head, false, dXChunks[c]);
            }
            if (dHead is not null)
            {
                backend.MatMul(logits, true, views.X[c], false, dHead, beta: 1);
            }
        }
    }

    public void Dispose()
    {
        _views.Clear();
        _logits?.Dispose();
        _logits = null;
    }

    /// <summary>The chunk views of one set of tensors over the shared logits buffer.</summary>
    private sealed class Views
    {
        private Tensor _targets = null!, _rowLoss = null!;

        public required Tensor[] X { get; init; }
        public required Tensor[] Targets { get; init; }
        public required Tensor[] RowLoss { get; init; }
        public required Tensor[]? DX { get; init; }
        public required Tensor[] Logits { get; init; }

        public bool Matches(Tensor targets, Tensor rowLoss) => ReferenceEquals(_targets, targets) && ReferenceEquals(_rowLoss, rowLoss);

        public static Views Of(Tensor x, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor logits, int perChunk)
        {
            int rows = x.Shape.Rows, chunks = (rows + perChunk - 1) / perChunk;
            (int Start, int Count)[] ranges = [.. Enumerable.Range(0, chunks).Select(c => (c * perChunk, Math.Min(perChunk, rows - c * perChunk)))];
            static Tensor Span1D(Tensor t, int start, int count) => t.View(start, new Shape(count));
            return new Views
            {
                _targets = targets,
                _rowLoss = rowLoss,
                X = [.. ranges.Select(r => x.SliceRows(r.Start, r.Count))],
                Targets = [.. ranges.Select(r => Span1D(targets, r.Start, r.Count))],
                RowLoss = [.. ranges.Select(r => Span1D(rowLoss, r.Start, r.Count))],
                DX = dX is null ? null : [.. ranges.Select(r => dX.SliceRows(r.Start, r.Count))],
                Logits = [.. ranges.Select(r => logits.SliceRows(0, r.Count))],
            };
        }
    }
}
