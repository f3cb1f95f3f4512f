using System.Reflection;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Kernels;

/// <summary>The PTX build: every kernels/*.cu is compiled and embedded, and every entry has one typed launcher that matches it.</summary>
[TestFixture]
public sealed class PtxKernelTests
{
    [Test]
    public void Every_kernel_source_is_embedded_as_sm80_ptx()
    {
        // kernels/*.cu, and the emulator's self-test kernels, which run on GPUs too.
        var sources = new[] { "kernels", "native/cuemu" }
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(RepositoryFiles.Root, folder), "*.cu"))
            .Select(Path.GetFileNameWithoutExtension)
            .Order(StringComparer.Ordinal);
        Assert.That(PtxModules.Names, Is.EqualTo(sources));
        foreach (string module in PtxModules.Names)
        {
            string ptx = PtxModules.Read(module);
            Assert.That(ptx, Does.Contain(".target sm_80").And.Contain(".version 7.0"), module);
            Assert.That(PtxModules.Entries(module), Is.Not.Empty, module);
        }
    }

    /// <summary>The PTX type a launcher parameter of this CLR type must have.</summary>
    private static string PtxType(Type type) => type == typeof(DevicePtr) ? "u64"
        : type == typeof(int) ? "u32"
        : type == typeof(uint) ? "u32"
        : type == typeof(float) ? "f32"
        : type == typeof(long) || type == typeof(ulong) ? "u64"
        : throw new InvalidOperationException($"a launcher parameter of type {type} has no PTX counterpart");

    [Test]
    public void Every_ptx_entry_has_exactly_one_launcher_with_matching_parameters()
    {
        var launchers = typeof(PtxModules).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .Select(m => (Method: m, Entry: m.GetCustomAttribute<KernelEntryAttribute>()))
            .Where(x => x.Entry is not null)
            .ToList();
        var entries = PtxModules.Names.SelectMany(PtxModules.Entries).ToList();
        foreach (var entry in entries)
        {
            var matching = launchers.Where(l => l.Entry!.Module == entry.Module && l.Entry.Entry == entry.Name).ToList();
            Assert.That(matching, Has.Count.EqualTo(1), $"{entry.Module}/{entry.Name}: launchers");
            var parameters = matching[0].Method.GetParameters();
            Assert.That(parameters[0].ParameterType, Is.EqualTo(typeof(IKernelLauncher)));
            // Kernel arguments follow the launcher; launch-shape options (optional parameters) come last.
            var kernelArguments = parameters.Skip(1).Where(p => !p.IsOptional).Select(p => PtxType(p.ParameterType));
            Assert.That(kernelArguments, Is.EqualTo(entry.ParameterTypes), $"{entry.Module}/{entry.Name}: parameter types");
        }
        foreach (var (method, attribute) in launchers)
        {
            Assert.That(entries.Any(e => e.Module == attribute!.Module && e.Name == attribute.Entry), Is.True, $"{method.Name} names a missing entry {attribute!.Entry}");
        }
    }

    [Test]
    public void The_parser_reads_entry_names_and_parameter_types()
    {
        const string ptx = """
            .visible .entry a_kernel(
            	.param .u64 a_kernel_param_0,
            	.param .align 8 .b8 a_kernel_param_1[16],
            	.param .f32 a_kernel_param_2
            )
            .visible .entry b()
            """;
        var entries = PtxModules.Parse("m", ptx);
        Assert.That(entries.Select(e => e.Name), Is.EqualTo(new[] { "a_kernel", "b" }));
        Assert.That(entries[0].ParameterTypes, Is.EqualTo(new[] { "u64", "b8", "f32" }));
        Assert.That(entries[1].ParameterTypes, Is.Empty);
    }
}
