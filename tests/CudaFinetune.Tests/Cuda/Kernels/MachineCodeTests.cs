using System.Text.Json;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Kernels;

/// <summary>
/// What NVIDIA's assembler makes of our kernels (scripts/kernel-report.sh: ptxas -v and cuobjdump -sass for sm_80 and
/// sm_90): no entry keeps arrays in local memory or spills, and every attention and LoRA entry's main loop issues the
/// tensor-core MMAs its tile shape implies (fewer means a product fell off the tensor cores or was not unrolled).
/// Skipped, with the reason, where ptxas is not installed; CI installs it.
/// </summary>
[TestFixture]
public sealed class MachineCodeTests
{
    /// <summary>
    /// Entries that still use local memory, each with why; the list only shrinks: an entry that no longer does fails the
    /// test until it is taken off, so a fix is kept. (The d128 dK/dV backward holds dK's and dV's accumulators for 16 keys
    /// × 128 per warp (128 registers) beside Pᵀ and dPᵀ: sm_90's ptxas spills 4 bytes — its rework into FlashAttention-2's
    /// tiling is issue 26's attention point.)
    /// </summary>
    private static readonly Dictionary<string, string[]> KnownLocalMemory = new()
    {
        ["attention_backward_dkdv_d128_bf16"] = ["sm_90"],
    };

    private static List<Entry>? s_entries;

    private sealed record Entry(string File, string Name, string Arch, int Registers, int Stack, int SpillStores, int SpillLoads, int Hmma, int? LoopHmma);

    private static List<Entry> Entries()
    {
        if (s_entries is not null)
        {
            return s_entries;
        }
        if (!Installed("ptxas") || !Installed("cuobjdump") || !Installed("python3"))
        {
            Assert.Ignore("NVIDIA's assembler is not installed here (apt-get install nvidia-cuda-toolkit, with contrib non-free); CI installs it");
        }
        string json = Path.Combine(Path.GetTempPath(), $"kernel-report-{Guid.NewGuid():N}.json");
        try
        {
            ExternalCommand.Run("bash", RepositoryFiles.Root, TimeSpan.FromMinutes(5), "scripts/kernel-report.sh", "--json", json);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
            s_entries = [.. doc.RootElement.EnumerateArray().Select(e => new Entry(
                e.GetProperty("file").GetString()!, e.GetProperty("entry").GetString()!, e.GetProperty("arch").GetString()!,
                e.GetProperty("registers").GetInt32(), e.GetProperty("stack").GetInt32(), e.GetProperty("spill_stores").GetInt32(),
                e.GetProperty("spill_loads").GetInt32(), e.GetProperty("HMMA").GetInt32(),
                e.TryGetProperty("loop_hmma", out var loop) ? loop.GetInt32() : null))];
            return s_entries;
        }
        finally
        {
            File.Delete(json);
        }
    }

    private static bool Installed(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(dir => File.Exists(Path.Combine(dir, tool)));

    [Test]
    public void Every_entry_was_assembled_for_both_architectures()
    {
        var entries = Entries();
        Assert.That(entries.Select(e => e.Arch).Distinct(), Is.EquivalentTo(new[] { "sm_80", "sm_90" }));
        Assert.That(entries.GroupBy(e => e.Name).Where(g => g.Count() != 2).Select(g => g.Key), Is.Empty);
        Assert.That(entries.Select(e => e.Name), Has.Some.StartsWith("attention_forward_d128").And.Some.StartsWith("lora_forward"));
    }

    [Test]
    public void No_entry_keeps_arrays_in_local_memory_or_spills()
    {
        bool UsesLocal(Entry e) => e.Stack > 0 || e.SpillStores > 0 || e.SpillLoads > 0;
        var offenders = Entries().Where(UsesLocal).Where(e => !KnownLocalMemory.GetValueOrDefault(e.Name, []).Contains(e.Arch))
            .Select(e => $"{e.Name} ({e.Arch}): {e.Stack} B stack, {e.SpillStores}/{e.SpillLoads} B spilled, {e.Registers} registers").ToList();
        Assert.That(offenders, Is.Empty, "local memory in a kernel (see docs/kernels.md):\n" + string.Join("\n", offenders));
        var fixedNow = KnownLocalMemory.SelectMany(k => k.Value.Select(arch => (Name: k.Key, Arch: arch)))
            .Where(k => Entries().Any(e => e.Name == k.Name && e.Arch == k.Arch && !UsesLocal(e))).Select(k => $"{k.Name} ({k.Arch})").ToList();
        Assert.That(fixedNow, Is.Empty, "these no longer use local memory: take them off MachineCodeTests.KnownLocalMemory");
    }

    [Test]
    public void Attention_and_lora_main_loops_issue_the_mmas_their_tiles_imply()
    {
        // Per warp and 64-wide tile, in mma.m16n8k16: the forward's S = Q·Kᵀ and P·V are D/2 each; dQ's backward adds
        // dP = dO·Vᵀ (1.5·D); dK/dV's adds dV += Pᵀ·dO and dK += dSᵀ·Q on top of S and dP (2·D); a LoRA step is 64 × 64 × 64
        // over 4 warps: 8 column tiles × 4 deep steps = 32.
        static int Implied(string name)
        {
            int d = name.Contains("_d128", StringComparison.Ordinal) ? 128 : name.Contains("_d64", StringComparison.Ordinal) ? 64 : 32;
            return name switch
            {
                _ when name.StartsWith("attention_forward", StringComparison.Ordinal) => d,
                _ when name.StartsWith("attention_backward_dq", StringComparison.Ordinal) => d * 3 / 2,
                _ when name.StartsWith("attention_backward_dkdv", StringComparison.Ordinal) => 2 * d,
                _ => 32,
            };
        }
        var loops = Entries().Where(e => e.LoopHmma is not null).ToList();
        Assert.That(loops, Has.Count.GreaterThanOrEqualTo(2 * 11), "the attention and LoRA entries have their loops counted");
        var short_ = loops.Where(e => e.LoopHmma < Implied(e.Name)).Select(e => $"{e.Name} ({e.Arch}): {e.LoopHmma} HMMA in its main loop, {Implied(e.Name)} implied").ToList();
        Assert.That(short_, Is.Empty, string.Join("\n", short_));
    }
}
