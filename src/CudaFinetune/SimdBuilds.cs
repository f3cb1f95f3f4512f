using System.Collections;
using CudaFinetune.Backends.Cpu;

namespace CudaFinetune.Cli;

/// <summary>
/// One entry point in front of one native build per x86-64 level. NativeAOT fixes the instruction set when it compiles
/// (it cannot make AVX-512 a run-time choice: the JIT's encoding of every vector instruction depends on it), so the
/// Linux release publishes <c>CudaFinetune</c> for x86-64-v3 — it starts on any AVX2 CPU — and
/// <c>CudaFinetune-x86-64-v4</c> beside it (InstructionSetBuilds.targets). Before anything else, <c>CudaFinetune</c>
/// replaces itself (execve: same process id, arguments, environment and terminal) with the build for the highest level
/// this CPU runs. <see cref="Variable"/> forces a level; under the JIT (dotnet run, the .NET tool, the tests) the process
/// restarts with the runtime's own switch for it, so each path can be run on one machine.
/// </summary>
internal static class SimdBuilds
{
    /// <summary>auto (the default), x86-64-v3 (avx2) or x86-64-v4 (avx512).</summary>
    public const string Variable = "CUDAFINETUNE_ISA";

    /// <summary>Set on the process a switch starts: it must then run at the level asked for, and never switches again.</summary>
    internal const string SwitchedMarker = "CUDAFINETUNE_ISA_SWITCHED";

    /// <summary>The native build for <paramref name="level"/>, as published beside the entry binary.</summary>
    public static string FileName(SimdLevel level) => level == SimdLevel.Avx512 ? $"CudaFinetune-{level.Name()}" : "CudaFinetune";

    /// <summary>One line for <c>devices</c>: "CPU: x86-64-v4 (AVX-512); this process runs x86-64-v4 (AVX-512) code (native build 'CudaFinetune-x86-64-v4')".</summary>
    public static string Describe()
    {
        string build = !IsNative ? "compiled by the JIT" : $"native build '{Path.GetFileName(Environment.ProcessPath)}'";
        string asked = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value ? $", {Variable}={value}" : "";
        return $"CPU: {SimdLevels.Cpu.Describe()}; this process runs {SimdLevels.Running.Describe()} code ({build}{asked})";
    }

    /// <summary>
    /// Whether this is a NativeAOT build. Not RuntimeFeature.IsDynamicCodeSupported: PublishAot turns that off under the
    /// JIT too, so that dotnet run behaves like the native build. The JIT has compiled at least Main by now (the CLI is not
    /// ReadyToRun); NativeAOT has no JIT and counts nothing.
    /// </summary>
    private static bool IsNative => System.Runtime.JitInfo.GetCompiledMethodCount() == 0;

    /// <summary>What this process is and is asked for, read from the process.</summary>
    public static SimdSituation Current()
    {
        string? path = Environment.ProcessPath;
        return new SimdSituation(
            SimdLevels.Running, SimdLevels.Cpu, Native: IsNative, Environment.GetEnvironmentVariable(Variable),
            Switched: Environment.GetEnvironmentVariable(SwitchedMarker) is not null,
            BuildPath: level => path is null || !OperatingSystem.IsLinux() ? null
                : Path.Combine(Path.GetDirectoryName(path)!, FileName(level)) is { } sibling && sibling != path && File.Exists(sibling) ? sibling : null);
    }

    /// <summary>Decides whether this process runs, switches to another build or restarts, or refuses.</summary>
    public static SimdChoice Choose(SimdSituation s)
    {
        SimdLevel? asked = null;
        if (!string.IsNullOrWhiteSpace(s.Request) && !s.Request.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            asked = SimdLevels.Parse(s.Request);
            if (asked is null)
            {
                return new SimdChoice.Refuse($"{Variable}='{s.Request}' is not a level this engine has builds for: use auto, x86-64-v3 (avx2) or x86-64-v4 (avx512)");
            }
            if (asked > s.Cpu)
            {
                return new SimdChoice.Refuse($"{Variable}={asked.Value.Name()}, but this CPU runs {s.Cpu.Describe()} at most");
            }
        }
        if (asked is null)
        {
            // Auto: under the JIT the runtime already chose (it may prefer 256-bit vectors on CPUs that slow down at 512);
            // a native build moves up to the best build present that this CPU runs.
            if (!s.Native || s.Switched || s.Running >= s.Cpu)
            {
                return SimdChoice.RunHere;
            }
            return s.BuildPath(s.Cpu) is { } better ? new SimdChoice.Switch(s.Cpu, better, Explicit: false) : SimdChoice.RunHere;
        }
        if (asked == s.Running)
        {
            return SimdChoice.RunHere;
        }
        if (s.Switched)
        {
            return new SimdChoice.Refuse($"{Variable}={asked.Value.Name()}: the process started for it runs {s.Running.Describe()}");
        }
        if (!s.Native)
        {
            return new SimdChoice.Switch(asked.Value, Path: null, Explicit: true);
        }
        return s.BuildPath(asked.Value) is { } build
            ? new SimdChoice.Switch(asked.Value, build, Explicit: true)
            : new SimdChoice.Refuse($"{Variable}={asked.Value.Name()}, but there is no {asked.Value.Name()} build '{FileName(asked.Value)}' beside this one "
                + $"({s.Running.Describe()}); it is published with the linux-x64 release (dotnet publish -c Release -r linux-x64)");
    }

    /// <summary>
    /// Runs <see cref="Choose"/> for this process and carries it out. Returns null when this process goes on; an exit code
    /// when it must not (a refusal, written as one error line). A switch that succeeds does not return.
    /// </summary>
    public static int? SwitchIfAsked(string[] args, TextWriter error)
    {
        var situation = Current();
        Environment.SetEnvironmentVariable(SwitchedMarker, null); // processes this one starts choose for themselves
        switch (Choose(situation))
        {
            case SimdChoice.Refuse refuse:
                error.WriteLine($"error: {refuse.Message}");
                return Program.ExitUserError;
            case SimdChoice.Switch change:
                string failure = change.Path is { } build
                    ? ProcessImage.Replace(build, [build, .. args], SwitchedEnvironment(change.Level, jit: false))
                    : ProcessImage.Restart(SwitchedEnvironment(change.Level, jit: true));
                // Only a failed execve comes back here.
                if (change.Explicit)
                {
                    error.WriteLine($"error: cannot switch to the {change.Level.Name()} build asked for by {Variable}: {failure}");
                    return Program.ExitUserError;
                }
                error.WriteLine($"warning: cannot switch to the {change.Level.Name()} build ({failure}); running the {situation.Running.Name()} one");
                return null;
            default:
                return null;
        }
    }

    /// <summary>This process's environment for the switched one: the marker, and under the JIT the runtime's switch for the level.</summary>
    private static Dictionary<string, string> SwitchedEnvironment(SimdLevel level, bool jit)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            variables[(string)entry.Key] = (string?)entry.Value ?? "";
        }
        variables[SwitchedMarker] = level.Name();
        if (jit)
        {
            // .NET 10's knobs: AVX-512 off gives the 256-bit paths; a preferred width of 512 turns them on even where the
            // runtime would prefer 256 bits.
            variables["DOTNET_EnableAVX512"] = level == SimdLevel.Avx512 ? "1" : "0";
            if (level == SimdLevel.Avx512)
            {
                variables["DOTNET_PreferredVectorBitWidth"] = "512";
            }
        }
        return variables;
    }
}

/// <summary>The facts <see cref="SimdBuilds.Choose"/> decides on.</summary>
/// <param name="Running">the level this process's code was compiled for</param>
/// <param name="Cpu">the highest level this CPU runs</param>
/// <param name="Native">a NativeAOT build (else the JIT runs)</param>
/// <param name="Request">the value of CUDAFINETUNE_ISA, if set</param>
/// <param name="Switched">this process was started by a switch</param>
/// <param name="BuildPath">the native build for a level beside this one, or null where there is none</param>
internal sealed record SimdSituation(SimdLevel Running, SimdLevel Cpu, bool Native, string? Request, bool Switched, Func<SimdLevel, string?> BuildPath);

/// <summary>What <see cref="SimdBuilds.Choose"/> decided.</summary>
internal abstract record SimdChoice
{
    public static SimdChoice RunHere { get; } = new Here();

    private sealed record Here : SimdChoice;

    /// <summary>Replace this process with the build at <paramref name="Path"/>, or (null) restart it under the JIT at <paramref name="Level"/>.</summary>
    public sealed record Switch(SimdLevel Level, string? Path, bool Explicit) : SimdChoice;

    /// <summary>Stop with this message.</summary>
    public sealed record Refuse(string Message) : SimdChoice;
}
