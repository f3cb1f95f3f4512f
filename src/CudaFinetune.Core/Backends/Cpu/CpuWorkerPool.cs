using System.Runtime.CompilerServices;

namespace CudaFinetune.Backends.Cpu;

/// <summary>One unit of a parallel loop; <see cref="Execute"/> is called once per index.</summary>
internal interface IParallelJob
{
    void Execute(int index);
}

/// <summary>
/// A fixed set of worker threads that run <c>For(count, ref job)</c> without allocating: the job is a
/// struct on the caller's stack that workers reach through a pointer while the caller waits.
/// Each index must write disjoint outputs, so results never depend on which thread ran which index
/// or on the thread count. Calls are serialised; a job must not start another loop.
/// </summary>
internal sealed unsafe class CpuWorkerPool : IDisposable
{
    private readonly Thread[] _workers;
    private readonly object _gate = new();
    private readonly object _callGate = new();
    // The caller waits here for the last worker. A plain monitor, not ManualResetEventSlim: that one allocates its lock
    // object the first time a wait really blocks, which can be any step on a loaded machine.
    private readonly object _doneGate = new();
    private readonly WorkerScratch[] _scratch;

    private delegate*<void*, int, void> _body;
    private void* _job;
    private int _count;
    private int _next;
    private int _running;
    private long _generation;
    private bool _stopping;
    private Exception? _failure;

    public CpuWorkerPool(int threads)
    {
        if (threads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "at least one thread is needed");
        }
        Threads = threads;
        _scratch = [.. Enumerable.Range(0, threads).Select(_ => new WorkerScratch())];
        _workers = new Thread[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            var scratch = _scratch[i + 1];
            _workers[i] = new Thread(() => WorkerLoop(scratch)) { IsBackground = true, Name = $"cpu-backend-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Makes every participant's <paramref name="slot"/> at least <paramref name="bytes"/> long; call before <see cref="For"/>.</summary>
    public void Reserve(ScratchSlot slot, long bytes)
    {
        lock (_callGate)
        {
            foreach (var scratch in _scratch)
            {
                scratch.Reserve(slot, bytes);
            }
        }
    }

    /// <summary>Threads that execute a loop, the caller included.</summary>
    public int Threads { get; }

    public void For<TJob>(int count, ref TJob job) where TJob : struct, IParallelJob
    {
        if (count <= 0)
        {
            return;
        }
        if (count == 1 || _workers.Length == 0)
        {
            lock (_callGate)
            {
                var previous = WorkerScratch.Enter(_scratch[0]);
                try
                {
                    for (int i = 0; i < count; i++)
                    {
                        job.Execute(i);
                    }
                }
                finally
                {
                    WorkerScratch.Leave(previous);
                }
            }
            return;
        }
        lock (_callGate)
        {
            lock (_gate)
            {
                _body = &Invoke<TJob>;
                _job = Unsafe.AsPointer(ref job);
                _count = count;
                _next = 0;
                _failure = null;
                _running = _workers.Length + 1;
                _generation++;
                Monitor.PulseAll(_gate);
            }
            var previous = WorkerScratch.Enter(_scratch[0]);
            RunIndices();
            WorkerScratch.Leave(previous);
            if (Interlocked.Decrement(ref _running) != 0)
            {
                var spinner = default(SpinWait);
                while (Volatile.Read(ref _running) != 0 && !spinner.NextSpinWillYield)
                {
                    spinner.SpinOnce();
                }
                lock (_doneGate)
                {
                    while (Volatile.Read(ref _running) != 0)
                    {
                        Monitor.Wait(_doneGate);
                    }
                }
            }
            _job = null;
            if (_failure is { } failure)
            {
                throw new AggregateException("a CPU backend worker failed", failure);
            }
        }
    }

    private static void Invoke<TJob>(void* job, int index) where TJob : struct, IParallelJob
        => Unsafe.AsRef<TJob>(job).Execute(index);

    private void RunIndices()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _count)
        {
            try
            {
                _body(_job, i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, e, null);
                Volatile.Write(ref _next, _count);
            }
        }
    }

    private void WorkerLoop(WorkerScratch scratch)
    {
        WorkerScratch.Enter(scratch);
        long seen = 0;
        while (true)
        {
            lock (_gate)
            {
                while (_generation == seen && !_stopping)
                {
                    Monitor.Wait(_gate);
                }
                if (_stopping)
                {
                    return;
                }
                seen = _generation;
            }
            RunIndices();
            if (Interlocked.Decrement(ref _running) == 0)
            {
                lock (_doneGate)
                {
                    Monitor.PulseAll(_doneGate);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var worker in _workers)
        {
            worker.Join();
        }
    }
}
