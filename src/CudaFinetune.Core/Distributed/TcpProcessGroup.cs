using System.Buffers.Binary;
using System.Net.Sockets;
using System.Numerics;
using System.Runtime.InteropServices;
using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// Ranks in separate processes (or machines) on the CPU backend, as gloo is to PyTorch: host F32/F64 tensors travel over
/// the TCP connections the rendezvous made, through rank 0 — every rank sends its tensor there, rank 0 sums them in
/// rank order 0, 1, …, W−1 (the thread ranks' order, so results are bitwise deterministic) and sends back what each
/// rank needs. Simple rather than fast: meant for CPU jobs, where the step, not the exchange, takes the time. A rank
/// that disconnects (it stopped) or sends a tensor of another size fails every rank's collective with a message.
/// </summary>
public sealed class TcpProcessGroup : IProcessGroup
{
    private readonly RendezvousLinks _links;
    private byte[] _scratch = [];
    private byte[] _sum = [];

    private TcpProcessGroup(RendezvousLinks links, int rank, int worldSize)
    {
        _links = links;
        Rank = rank;
        WorldSize = worldSize;
    }

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>The payload rank 0 passed to the rendezvous.</summary>
    public byte[] Payload => _links.Payload;

    /// <summary>Meets the other processes at the launcher's master address and keeps the connections as the group.</summary>
    public static TcpProcessGroup Join(LaunchEnvironment job, byte[]? payload, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(job);
        var links = TcpRendezvous.Meet(job, payload, timeout);
        foreach (var peer in links.Peers)
        {
            if (peer is not null)
            {
                peer.ReceiveTimeout = (int)Math.Min(int.MaxValue, timeout.TotalMilliseconds);
                peer.NoDelay = true;
            }
        }
        return new TcpProcessGroup(links, job.Rank, job.WorldSize);
    }

    public void AllReduceSum(Tensor buffer)
    {
        var bytes = Bytes(buffer);
        if (Rank == 0)
        {
            SumFromRanks(buffer, bytes);
            SendToAll(bytes);
        }
        else
        {
            SendToRoot(bytes);
            ReceiveFrom(0, bytes);
        }
    }

    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        if (input.ElementCount != output.ElementCount * WorldSize || input.DType != output.DType)
        {
            throw new ArgumentException($"reduce-scatter: input {input} must hold {WorldSize} shards of output {output}");
        }
        var all = Bytes(input);
        var mine = Bytes(output);
        if (Rank == 0)
        {
            // The sum goes into scratch, not into the input, which the caller still owns.
            var total = Grow(ref _sum, all.Length).AsSpan(0, all.Length);
            all.CopyTo(total);
            SumFromRanks(input, total);
            for (int r = 1; r < WorldSize; r++)
            {
                Send(Peer(r), total.Slice(r * mine.Length, mine.Length));
            }
            total[..mine.Length].CopyTo(mine);
        }
        else
        {
            SendToRoot(all);
            ReceiveFrom(0, mine);
        }
    }

    public void AllGather(Tensor input, Tensor output)
    {
        if (output.ElementCount != input.ElementCount * WorldSize || input.DType != output.DType)
        {
            throw new ArgumentException($"all-gather: output {output} must hold {WorldSize} copies of input {input}");
        }
        var mine = Bytes(input);
        var all = Bytes(output);
        if (Rank == 0)
        {
            mine.CopyTo(all);
            for (int r = 1; r < WorldSize; r++)
            {
                ReceiveFrom(r, all.Slice(r * mine.Length, mine.Length));
            }
            SendToAll(all);
        }
        else
        {
            SendToRoot(mine);
            ReceiveFrom(0, all);
        }
    }

    public void Broadcast(Tensor buffer, int root)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        var bytes = Bytes(buffer);
        if (Rank == 0)
        {
            if (root != 0)
            {
                ReceiveFrom(root, bytes);
            }
            for (int r = 1; r < WorldSize; r++)
            {
                if (r != root)
                {
                    Send(Peer(r), bytes);
                }
            }
        }
        else if (Rank == root)
        {
            SendToRoot(bytes);
        }
        else
        {
            ReceiveFrom(0, bytes);
        }
    }

    public void Barrier()
    {
        Span<byte> token = stackalloc byte[1];
        if (Rank == 0)
        {
            for (int r = 1; r < WorldSize; r++)
            {
                ReceiveFrom(r, token);
            }
            SendToAll(token);
        }
        else
        {
            SendToRoot(token);
            ReceiveFrom(0, token);
        }
    }

    /// <summary>Closes the connections: the other ranks' collectives fail at once instead of waiting.</summary>
    public void Abort() => _links.Dispose();

    /// <summary>
    /// Whether a peer's connection has closed (its process ended): the socket reads as ready with nothing to read. Looks
    /// without reading, so it is safe beside a collective; a peer with a message on the way counts as alive.
    /// </summary>
    public bool PeerStopped
    {
        get
        {
            foreach (var peer in _links.Peers)
            {
                try
                {
                    if (peer is not null && peer.Poll(0, SelectMode.SelectRead) && peer.Available == 0)
                    {
                        return true;
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return true;
                }
            }
            return false;
        }
    }

    /// <summary>Every collective here is complete when it returns.</summary>
    public void WaitForCollectives()
    {
    }

    public void Dispose() => _links.Dispose();

    private Socket Peer(int rank) => _links.Peers[rank] ?? throw new InvalidOperationException($"no connection to rank {rank}");

    private void SendToRoot(ReadOnlySpan<byte> bytes) => Send(Peer(0), bytes);

    private void SendToAll(ReadOnlySpan<byte> bytes)
    {
        for (int r = 1; r < WorldSize; r++)
        {
            Send(Peer(r), bytes);
        }
    }

    /// <summary>Rank 0: <paramref name="sum"/> (holding rank 0's values) += every other rank's tensor, in rank order.</summary>
    private void SumFromRanks(Tensor like, Span<byte> sum)
    {
        var incoming = Grow(ref _scratch, sum.Length).AsSpan(0, sum.Length);
        for (int r = 1; r < WorldSize; r++)
        {
            ReceiveFrom(r, incoming);
            if (like.DType == DType.F32)
            {
                Add(MemoryMarshal.Cast<byte, float>(sum), MemoryMarshal.Cast<byte, float>(incoming));
            }
            else
            {
                Add(MemoryMarshal.Cast<byte, double>(sum), MemoryMarshal.Cast<byte, double>(incoming));
            }
        }
    }

    private static void Add<T>(Span<T> sum, ReadOnlySpan<T> values)
        where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] += values[i];
        }
    }

    /// <summary>Sends a length-prefixed message (the length lets the receiver catch ranks that disagree on a size).</summary>
    private void Send(Socket socket, ReadOnlySpan<byte> bytes)
    {
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(header, bytes.Length);
        try
        {
            SendAll(socket, header);
            SendAll(socket, bytes);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw new RankAbortedException($"rank {Rank} of {WorldSize}: a rank's connection is gone ({e.Message}); it stopped", e);
        }
    }

    private static void SendAll(Socket socket, ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[socket.Send(bytes, SocketFlags.None)..];
        }
    }

    private void ReceiveFrom(int rank, Span<byte> into)
    {
        var socket = Peer(Rank == 0 ? rank : 0);
        try
        {
            Span<byte> header = stackalloc byte[8];
            ReceiveAll(socket, header, rank);
            long length = BinaryPrimitives.ReadInt64LittleEndian(header);
            if (length != into.Length)
            {
                throw new ArgumentException($"ranks disagree in a collective: rank {rank} sent {length} bytes, rank {Rank} expected {into.Length}");
            }
            ReceiveAll(socket, into, rank);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            throw new TimeoutException($"rank {Rank} of {WorldSize} waited {socket.ReceiveTimeout / 1000} s for rank {rank}, which never sent its part of a collective", e);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw new RankAbortedException($"rank {Rank} of {WorldSize}: the connection to rank {rank} is gone ({e.Message}); it stopped", e);
        }
    }

    private void ReceiveAll(Socket socket, Span<byte> into, int rank)
    {
        while (!into.IsEmpty)
        {
            int n = socket.Receive(into, SocketFlags.None);
            if (n == 0)
            {
                throw new RankAbortedException($"rank {Rank} of {WorldSize}: rank {rank} closed its connection (it stopped)");
            }
            into = into[n..];
        }
    }

    private static Span<byte> Bytes(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Storage is HostStorage && tensor.DType is DType.F32 or DType.F64
            ? tensor.DType == DType.F32 ? MemoryMarshal.AsBytes(tensor.HostSpan<float>()) : MemoryMarshal.AsBytes(tensor.HostSpan<double>())
            : throw new ArgumentException($"TCP ranks exchange host F32 or F64 tensors, not {tensor}");
    }

    private static byte[] Grow(ref byte[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new byte[length];
        }
        return buffer;
    }
}
