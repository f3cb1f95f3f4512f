using System.Reflection;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tensors;
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

    /// <summary>The PTX types a launcher parameter of this CLR type must have: one, or a struct's fields' in order (AdamW's scalars).</summary>
    private static IEnumerable<string> PtxTypes(Type type)
    {
        type = type.IsByRef ? type.GetElementType()! : type;
        if (type == typeof(DevicePtr))
        {
            return ["u64"];
        }
        if (type.IsValueType && !type.IsPrimitive)
        {
            return type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).SelectMany(f => PtxTypes(f.FieldType));
        }
        return [type == typeof(int) || type == typeof(uint) ? "u32"
            : type == typeof(float) ? "f32"
            : type == typeof(long) || type == typeof(ulong) ? "u64"
            : throw new InvalidOperationException($"a launcher parameter of type {type} has no PTX counterpart")];
    }

    [Test]
    public void Every_ptx_entry_has_exactly_one_launcher_with_matching_parameters()
    {
        var launchers = typeof(PtxModules).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .SelectMany(m => m.GetCustomAttributes<KernelEntryAttribute>().Select(entry => (Method: m, Entry: entry)))
            .ToList();
        var entries = PtxModules.Names.SelectMany(PtxModules.Entries).ToList();
        foreach (var entry in entries)
        {
            var matching = launchers.Where(l => l.Entry.Module == entry.Module && l.Entry.Entry == entry.Name).ToList();
            Assert.That(matching, Has.Count.EqualTo(1), $"{entry.Module}/{entry.Name}: launchers");
            var method = matching[0].Method;
            var parameters = method.GetParameters();
            Assert.That(parameters[0].ParameterType, Is.EqualTo(typeof(IKernelLauncher)));
            // A launcher of an fp32 and a bf16 entry takes the element type next, and picks the entry by it.
            bool typed = launchers.Count(l => l.Method == method) > 1;
            Assert.That(parameters[1].ParameterType == typeof(DType), Is.EqualTo(typed), $"{method.Name}: a DType parameter exactly when it launches two entries");
            // Kernel arguments follow; launch-shape options (optional parameters) come last.
            var kernelArguments = parameters.Skip(typed ? 2 : 1).Where(p => !p.IsOptional).SelectMany(p => PtxTypes(p.ParameterType));
            Assert.That(kernelArguments, Is.EqualTo(entry.ParameterTypes), $"{entry.Module}/{entry.Name}: parameter types");
        }
        foreach (var (method, attribute) in launchers)
        {
            Assert.That(entries.Any(e => e.Module == attribute.Module && e.Name == attribute.Entry), Is.True, $"{method.Name} names a missing entry {attribute.Entry}");
        }
    }

    /// <summary>The entry tables the typed launchers pick from name entries that their module declares.</summary>
    [Test]
    public void Every_dtype_entry_table_names_entries_of_its_module()
    {
        var tables = typeof(PtxModules).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(BindingFlags.NonPublic | BindingFlags.Static))
            .Where(f => f.FieldType == typeof(DTypeEntries))
            .Select(f => (Field: f, Table: (DTypeEntries)f.GetValue(null)!))
            .ToList();
        Assert.That(tables, Is.Not.Empty);
        foreach (var (field, table) in tables)
        {
            var names = PtxModules.Entries(table.Module).Select(e => e.Name).ToList();
            Assert.That(names, Does.Contain(table.F32).And.Contain(table.BF16), $"{field.DeclaringType!.Name}.{field.Name}");
            Assert.That(table.For(DType.F32), Is.SameAs(table.For(DType.F32)), "entry names are made once");
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
