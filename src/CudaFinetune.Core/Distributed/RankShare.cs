namespace CudaFinetune.Distributed;

/// <summary>How items dealt out round-robin (item i to rank i mod ranks) fall to the ranks.</summary>
public static class RankShare
{
    /// <summary>Items of <paramref name="items"/> that rank <paramref name="rank"/> of <paramref name="ranks"/> gets.</summary>
    public static int Count(int items, int rank, int ranks) => items > rank ? (items - rank + ranks - 1) / ranks : 0;

    /// <summary>How many fewer items rank <paramref name="rank"/> gets than the busiest rank (rank 0): 0 or 1.</summary>
    public static int Shortfall(int items, int rank, int ranks) => Count(items, 0, ranks) - Count(items, rank, ranks);
}
