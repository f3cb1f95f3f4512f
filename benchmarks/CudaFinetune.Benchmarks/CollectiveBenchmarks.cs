using BenchmarkDotNet.Attributes;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Distributed;
using CudaFinetune.Tensors;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// What one ZeRO step exchanges between two CPU ranks: a reduce-scatter of the flat gradients and an all-gather of
/// the updated weights, over shared memory (<see cref="ThreadProcessGroup"/>) or loopback TCP through rank 0
/// (<see cref="TcpProcessGroup"/>). Rank 0 runs on the benchmark thread, rank 1 on a helper thread that mirrors each
/// invocation. Throughput: gradient bytes per second.
/// </summary>
[MemoryDiagnoser]
public class CollectiveBenchmarks : IThroughputBenchmark
{
    private const int WorldSize = 2;
    private readonly SemaphoreSlim _go = new(0), _done = new(0);
    private IProcessGroup[] _groups = [];
    private (Tensor Flat, Tensor Shard)[] _buffers = [];
    private CpuBackend _backend = null!;
    private Thread? _helper;
    private volatile bool _stop;

    [Params("threads", "tcp")]
    public string Group { get; set; } = "threads";

    /// <summary>fp32 elements of the flat gradient vector (4M: 16 MiB, a LoRA-r16 Llama-1B's trainable parameters ≈ 11M).</summary>
    [Params(1 << 22)]
    public int Elements { get; set; } = 1 << 22;

    public string Unit => "GB/s";

    public double UnitScale => 1e9;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => 4.0 * (int)parameters[nameof(Elements)];

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend(threads: 1);
        _buffers = [.. Enumerable.Range(0, WorldSize).Select(_ => (_backend.Allocate(DType.F32, new Shape(Elements)), _backend.Allocate(DType.F32, new Shape(Elements / WorldSize))))];
        if (Group == "threads")
        {
            _groups = ThreadProcessGroup.Create(WorldSize);
        }
        else
        {
            int port = FreePort();
            var joining = Enumerable.Range(0, WorldSize).Select(rank => Task.Run(() => (IProcessGroup)TcpProcessGroup.Join(
                new LaunchEnvironment("torchrun", rank, WorldSize, rank, "127.0.0.1", port), rank == 0 ? [0] : null, TimeSpan.FromSeconds(60)))).ToArray();
            _groups = [.. joining.Select(t => t.Result)];
        }
        _helper = new Thread(() =>
        {
            while (true)
            {
                _go.Wait();
                if (_stop)
                {
                    return;
                }
                Exchange(1);
                _done.Release();
            }
        }) { IsBackground = true };
        _helper.Start();
    }

    private void Exchange(int rank)
    {
        var (flat, shard) = _buffers[rank];
        _groups[rank].ReduceScatterSum(flat, shard);
        _groups[rank].WaitForCollectives();
        _groups[rank].AllGather(shard, flat);
    }

    [Benchmark]
    public void ReduceScatterThenAllGather()
    {
        _go.Release();
        Exchange(0);
        _done.Wait();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _go.Release();
        _helper?.Join();
        foreach (var group in _groups)
        {
            group.Dispose();
        }
        foreach (var (flat, shard) in _buffers)
        {
            flat.Dispose();
            shard.Dispose();
        }
        _backend.Dispose();
        _go.Dispose();
        _done.Dispose();
    }

    private static int FreePort()
    {
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
