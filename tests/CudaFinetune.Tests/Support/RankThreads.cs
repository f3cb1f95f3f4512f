using System.Net;
using System.Net.Sockets;

namespace CudaFinetune.Tests.Support;

/// <summary>Ranks of a test job, one thread each, and a free loopback port for their rendezvous.</summary>
internal static class RankThreads
{
    /// <summary>Runs <paramref name="body"/>(rank) on one thread per rank; rethrows every failure together.</summary>
    public static void Run(int worldSize, Action<int> body)
    {
        var failures = new List<Exception>();
        var threads = Enumerable.Range(0, worldSize).Select(rank => new Thread(() =>
        {
            try
            {
                body(rank);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                lock (failures)
                {
                    failures.Add(e);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (failures.Count > 0)
        {
            throw new AggregateException(failures);
        }
    }

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
