using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Packaging;

/// <summary>
/// The NuGet packages end to end (docs/packaging.md): the engine packed into a local folder feed, its metadata and
/// layout checked, the sample (samples/EmbeddedFinetune) restored from the feed and trained on the kernel emulator the
/// CudaFinetune.Cuda package carries, and the CLI installed from the feed as a .NET tool and run. Each step runs the
/// dotnet CLI as a user would, with a time limit, and reports its progress.
/// </summary>
[TestFixture]
[Category("Packaging")]
[NonParallelizable] // runs builds: they want the machine's cores
public sealed class PackageTests
{
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(6); // a first Release build of the engine included
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    private TempDirectory _dir = null!;
    private LocalFeed _feed = null!;
    private string _root = null!;
    private Stopwatch _clock = null!;

    [OneTimeSetUp]
    public void PackTheEngine()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.OSArchitecture != Architecture.X64)
        {
            Assert.Ignore("the packages' native asset (the kernel emulator) is built for linux-x64 only");
        }
        _clock = Stopwatch.StartNew();
        _root = RepositoryFiles.Root;
        _dir = new TempDirectory();
        TestContext.Progress.WriteLine($"packaging: packing the engine into {_dir.File("feed")}");
        _feed = LocalFeed.Pack(_root, _dir.Path, PackTimeout);
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        _feed?.ForgetRestoredPackages();
        _dir?.Dispose();
        if (_clock is not null)
        {
            TestContext.Progress.WriteLine($"packaging: {_clock.Elapsed.TotalSeconds:F0} s in all");
        }
    }

    [TestCase(LocalFeed.Core)]
    [TestCase(LocalFeed.Cuda)]
    [TestCase(LocalFeed.Tool)]
    public void Every_package_carries_its_description_licence_readme_and_repository(string id)
    {
        var package = _feed.Read(id);
        Assert.That(package.Value("id"), Is.EqualTo(id));
        Assert.That(package.Value("version"), Is.EqualTo(_feed.Version));
        Assert.That(package.Value("description"), Is.Not.Empty.And.Not.EqualTo("Package Description"), "the SDK's placeholder");
        Assert.That(package.Value("authors"), Is.EqualTo("CudaFinetune contributors"));
        Assert.That(package.Value("tags"), Does.Contain("llama").And.Contain("lora"));

        var license = package.Element("license");
        Assert.That((license?.Attribute("type")?.Value, license?.Value), Is.EqualTo(("expression", "MIT")));
        Assert.That(package.Files, Does.Contain("LICENSE"), "MIT's notice travels with the package");

        Assert.That(package.Value("readme"), Is.EqualTo("README.md"));
        Assert.That(package.Text("README.md"), Does.StartWith($"# {id}"), "the package's own README");

        var repository = package.Element("repository");
        Assert.That(repository?.Attribute("type")?.Value, Is.EqualTo("git"));
        if (Path.Exists(Path.Combine(_root, ".git")))
        {
            Assert.That(repository?.Attribute("commit")?.Value, Does.Match("^[0-9a-f]{40}$"), "the commit packed, from git HEAD");
        }
    }

    [TestCase(LocalFeed.Core)]
    [TestCase(LocalFeed.Cuda)]
    public void The_libraries_come_with_symbol_packages(string id)
    {
        var package = _feed.Read(id);
        Assert.That(package.Files, Does.Contain($"lib/net10.0/{id}.dll"));
        Assert.That(File.Exists(_feed.SymbolPackagePath(id)), Is.True, "the .snupkg beside the .nupkg");
        Assert.That(PackageContents.Read(_feed.SymbolPackagePath(id)).Files, Does.Contain($"lib/net10.0/{id}.pdb"));
    }

    [Test]
    public void The_cuda_package_carries_the_emulator_as_a_linux_x64_native_asset_and_needs_the_same_core()
    {
        var package = _feed.Read(LocalFeed.Cuda);
        Assert.That(package.Files, Does.Contain("runtimes/linux-x64/native/libcuemu.so"));
        Assert.That(package.Dependencies(), Does.Contain((LocalFeed.Core, _feed.Version)));
    }

    [Test]
    public void The_tool_package_is_a_framework_dependent_tool_with_the_emulator()
    {
        var package = _feed.Read(LocalFeed.Tool);
        Assert.That(package.PackageTypes(), Does.Contain("DotnetTool"));
        Assert.That(package.Dependencies(), Is.Empty, "a tool carries what it needs");

        // Runner "dotnet" with the managed entry point: the JIT runs it (AVX-512 where the CPU has it), not a NativeAOT binary.
        const string Tools = "tools/net10.0/any/";
        var command = XDocument.Parse(package.Text(Tools + "DotnetToolSettings.xml")).Descendants("Command").Single();
        Assert.That((command.Attribute("Name")?.Value, command.Attribute("EntryPoint")?.Value, command.Attribute("Runner")?.Value),
            Is.EqualTo(("CudaFinetune", "CudaFinetune.dll", "dotnet")));
        Assert.That(package.Text(Tools + "CudaFinetune.runtimeconfig.json"), Does.Contain("Microsoft.NETCore.App"), "framework-dependent");
        Assert.That(package.Files, Does.Contain(Tools + "CudaFinetune.dll").And.Contain(Tools + "CudaFinetune.Core.dll").And.Contain(Tools + "CudaFinetune.Cuda.dll"));
        Assert.That(package.Files, Does.Contain(Tools + "libcuemu.so"), "--device cuda-emulated needs it");
        Assert.That(package.Files, Does.Not.Contain(Tools + "CudaFinetune"), "no native executable");
    }

    [Test]
    public void The_sample_restores_from_the_feed_and_fine_tunes_on_the_packaged_emulator()
    {
        // Head size 64, so the cuda backend's kernels take it: training on cuda-emulated shows the emulator was found
        // where NuGet put it (bin/runtimes/linux-x64/native/), not beside the app.
        var (model, data) = LearnableTask.Write(_dir.File("task"), LearnableTask.KernelSizedConfig);
        string app = SampleCopy.Create(_root, "EmbeddedFinetune", _dir.File("sample"), _feed);
        string bin = _dir.File("sample-bin");

        TestContext.Progress.WriteLine("packaging: restoring and building the sample from the feed");
        ExternalCommand.Dotnet(app, BuildTimeout, "build", "-o", bin, $"-p:CudaFinetuneVersion={_feed.Version}", "--disable-build-servers");
        Assert.That(File.Exists(Path.Combine(bin, "runtimes", "linux-x64", "native", "libcuemu.so")), Is.True, "NuGet's native asset layout");
        Assert.That(File.Exists(Path.Combine(bin, "libcuemu.so")), Is.False, "the emulator is found where NuGet puts it, not beside the app");

        TestContext.Progress.WriteLine("packaging: running the sample (4 LoRA steps on cuda-emulated)");
        string run = _dir.File("run");
        string output = ExternalCommand.Dotnet(app, RunTimeout, Path.Combine(bin, "EmbeddedFinetune.dll"), model, data, run, "cuda-emulated", "4");
        TestContext.Out.WriteLine(output);

        Assert.That(output, Does.Contain("on cuda-emulated"));
        double[] losses = [.. Regex.Matches(output, @"^step \d+/4  loss (\S+)", RegexOptions.Multiline)
            .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
        Assert.That(losses, Has.Length.EqualTo(4), "one loss per step");
        Assert.That(losses, Has.All.Matches<double>(double.IsFinite));
        Assert.That(output, Does.Contain("done after 4 steps"));
        Assert.That(File.Exists(Path.Combine(run, "adapter", "adapter_model.safetensors")), Is.True, "the trained adapter");
        Assert.That(File.Exists(Path.Combine(run, "adapter", "adapter_config.json")), Is.True);
    }

    [Test]
    public void The_tool_installs_from_the_feed_and_runs_on_the_packaged_emulator()
    {
        string tools = _dir.File("tools");
        TestContext.Progress.WriteLine("packaging: installing the tool from the feed");
        ExternalCommand.Dotnet(_dir.Path, BuildTimeout, "tool", "install", "--tool-path", tools, "--add-source", _feed.Directory, "--version", _feed.Version, LocalFeed.Tool);
        string command = Path.Combine(tools, "CudaFinetune");

        string help = ExternalCommand.Run(command, _dir.Path, RunTimeout, "--help");
        Assert.That(help, Does.Contain("Usage:").And.Contain("finetune"));

        string kernels = ExternalCommand.Run(command, _dir.Path, RunTimeout, "verify-kernels", "--device", "cuda-emulated", "--kernel", "ldmatrix", "--seed", "1");
        Assert.That(kernels, Does.Match(@"all \d+ cases passed"));
    }
}
