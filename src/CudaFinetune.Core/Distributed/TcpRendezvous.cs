using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CudaFinetune.Errors;

namespace CudaFinetune.Distributed;

/// <summary>
/// Gets rank 0's bytes (NCCL's unique id) to every rank of a multi-process job over TCP: rank 0 listens on the master
/// port, every other rank connects and says who it is (rank and world size), and once all have arrived rank 0 sends
/// the bytes to each. Clear errors, on the ranks that can tell: nothing listening at the address within the timeout
/// (wrong address or port, or rank 0 not started), ranks that never arrive, a world size or a rank that does not fit.
/// <see cref="Meet"/> keeps the connections open for a <see cref="TcpProcessGroup"/>.
/// </summary>
public static class TcpRendezvous
{
    private const uint Magic = 0x43465244; // "CFRD"

    /// <summary>Rank 0: serves <paramref name="payload"/> to every rank and returns it. Other ranks: returns what rank 0 served.</summary>
    public static byte[] Exchange(LaunchEnvironment job, byte[]? payload, TimeSpan timeout)
    {
        using var links = Meet(job, payload, timeout);
        return links.Payload;
    }

    /// <summary>As <see cref="Exchange"/>, and hands over the connections it made (rank 0: one to each rank; others: one to rank 0).</summary>
    public static RendezvousLinks Meet(LaunchEnvironment job, byte[]? payload, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (job.Rank == 0)
        {
            ArgumentNullException.ThrowIfNull(payload);
            return job.WorldSize == 1 ? new RendezvousLinks(payload, new Socket?[1]) : Serve(job, payload, timeout);
        }
        return Join(job, timeout);
    }

    private static RendezvousLinks Serve(LaunchEnvironment job, byte[] payload, TimeSpan timeout)
    {
        var listener = new TcpListener(IPAddress.Any, job.MasterPort);
        try
        {
            listener.Start(job.WorldSize);
        }
        catch (SocketException e)
        {
            throw new UserErrorException($"rank 0 cannot listen on port {job.MasterPort} for the rendezvous ({e.SocketErrorCode}): choose a free MASTER_PORT (or set CUDAFINETUNE_RENDEZVOUS_PORT)");
        }
        var peers = new Socket?[job.WorldSize];
        try
        {
            var deadline = DateTime.UtcNow + timeout;
            for (int arrived = 1; arrived < job.WorldSize; arrived++)
            {
                var wait = deadline - DateTime.UtcNow;
                var accept = listener.AcceptSocketAsync();
                if (wait <= TimeSpan.Zero || !accept.Wait(wait))
                {
                    var missing = Enumerable.Range(1, job.WorldSize - 1).Where(r => peers[r] is null);
                    throw new UserErrorException($"rendezvous on port {job.MasterPort}: rank(s) {string.Join(", ", missing)} of {job.WorldSize} never arrived within {timeout.TotalSeconds:0} s");
                }
                var socket = accept.Result;
                socket.ReceiveTimeout = (int)Math.Max(1, wait.TotalMilliseconds);
                byte[] hello;
                try
                {
                    hello = Receive(socket, 12);
                }
                catch (SocketException e)
                {
                    throw new UserErrorException($"rendezvous on port {job.MasterPort}: a connecting rank went away before saying who it is ({e.SocketErrorCode})", e);
                }
                uint magic = BinaryPrimitives.ReadUInt32LittleEndian(hello);
                int rank = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(4)), worldSize = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8));
                string? problem = magic != Magic ? "something that is not a CudaFinetune rank connected"
                    : worldSize != job.WorldSize ? $"rank {rank} says the world size is {worldSize}, rank 0 says {job.WorldSize}: every rank must be started with the same world size"
                    : rank < 1 || rank >= job.WorldSize ? $"a rank numbered {rank} joined a world of {job.WorldSize}"
                    : peers[rank] is not null ? $"rank {rank} joined twice"
                    : null;
                if (problem is not null)
                {
                    Send(socket, Frame(false, Encoding.UTF8.GetBytes(problem)));
                    socket.Dispose();
                    throw new UserErrorException($"rendezvous: {problem}");
                }
                peers[rank] = socket;
            }
            foreach (var peer in peers.Skip(1))
            {
                Send(peer!, Frame(true, payload));
            }
            var links = new RendezvousLinks(payload, peers);
            peers = []; // handed over
            return links;
        }
        finally
        {
            foreach (var peer in peers)
            {
                peer?.Dispose();
            }
            listener.Stop();
        }
    }

    private static RendezvousLinks Join(LaunchEnvironment job, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var socket = Connect(job, deadline, timeout);
        try
        {
            return new RendezvousLinks(Greet(socket, job, deadline, timeout), [socket]);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static byte[] Greet(Socket socket, LaunchEnvironment job, DateTime deadline, TimeSpan timeout)
    {
        var hello = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), job.Rank);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), job.WorldSize);
        byte[] header, body;
        try
        {
            Send(socket, hello);
            socket.ReceiveTimeout = (int)Math.Max(1, (deadline - DateTime.UtcNow).TotalMilliseconds);
            header = Receive(socket, 5);
            body = Receive(socket, BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1)));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            throw new UserErrorException($"rank {job.Rank}: rank 0 at {job.MasterAddress}:{job.MasterPort} did not answer within {timeout.TotalSeconds:0} s (are all {job.WorldSize} ranks started?)");
        }
        catch (SocketException e)
        {
            // Rank 0 gave up (a rank never arrived, or it failed) and closed the connection: its own message says why.
            throw new UserErrorException($"rank {job.Rank}: rank 0 at {job.MasterAddress}:{job.MasterPort} ended the rendezvous ({e.SocketErrorCode}); its output says why (a rank that never arrived, or a refusal)", e);
        }
        return header[0] == 1 ? body : throw new UserErrorException($"rank {job.Rank}: rendezvous refused: {Encoding.UTF8.GetString(body)}");
    }

    /// <summary>Connects to rank 0, retrying until the deadline (rank 0 may start later than this rank).</summary>
    private static Socket Connect(LaunchEnvironment job, DateTime deadline, TimeSpan timeout)
    {
        while (true)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Connect(job.MasterAddress, job.MasterPort);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                if (DateTime.UtcNow >= deadline)
                {
                    throw new UserErrorException($"rank {job.Rank}: nothing is listening at {job.MasterAddress}:{job.MasterPort} after {timeout.TotalSeconds:0} s ({e.SocketErrorCode}); "
                        + "check MASTER_ADDR and MASTER_PORT, and that rank 0 is running");
                }
                Thread.Sleep(100);
            }
        }
    }

    private static byte[] Frame(bool ok, byte[] body)
    {
        var frame = new byte[5 + body.Length];
        frame[0] = ok ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), body.Length);
        body.CopyTo(frame, 5);
        return frame;
    }

    private static void Send(Socket socket, byte[] bytes)
    {
        for (int sent = 0; sent < bytes.Length;)
        {
            sent += socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
        }
    }

    private static byte[] Receive(Socket socket, int count)
    {
        if (count is < 0 or > 1 << 20)
        {
            throw new UserErrorException($"rendezvous: a message of {count} bytes is not one of ours");
        }
        var buffer = new byte[count];
        for (int received = 0; received < count;)
        {
            int n = socket.Receive(buffer, received, count - received, SocketFlags.None);
            if (n == 0)
            {
                throw new UserErrorException("rendezvous: the other side closed the connection early");
            }
            received += n;
        }
        return buffer;
    }
}

/// <summary>What a rendezvous leaves: rank 0's payload and the open connections (rank 0: Peers[r] to rank r; others: Peers[0] to rank 0).</summary>
public sealed class RendezvousLinks : IDisposable
{
    internal RendezvousLinks(byte[] payload, Socket?[] peers)
    {
        Payload = payload;
        Peers = peers;
    }

    public byte[] Payload { get; }

    public IReadOnlyList<Socket?> Peers { get; }

    public void Dispose()
    {
        foreach (var peer in Peers)
        {
            peer?.Dispose();
        }
    }
}
