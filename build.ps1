#!/usr/bin/env pwsh
# Full release build: native toolchain check (cmake), build, test, NativeAOT publish of the CLI.
# Runs anywhere through the PowerShell dotnet tool:
#   dotnet tool restore
#   dotnet pwsh build.ps1 [-SkipTests] [-Runtime linux-x64] [-Output artifacts/publish]
param(
    [switch]$SkipTests,
    [string]$Runtime = "linux-x64",
    [string]$Output = "artifacts/publish",
    [string]$Configuration = "Release"
)
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot

function Invoke-Step([string]$Name, [scriptblock]$Command) {
    Write-Host "==> $Name" -ForegroundColor Cyan
    & $Command
    if ($LASTEXITCODE -ne 0) {
        Write-Error "$Name failed (exit code $LASTEXITCODE)"
        exit $LASTEXITCODE
    }
}

# The same tools the .csproj's CheckNativeToolchain asks for, named together when missing.
$missing = @()
if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { $missing += "cmake" }
if (-not (@("clang", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14") | Where-Object { Get-Command $_ -ErrorAction SilentlyContinue })) { $missing += "clang" }
if (-not (@($env:CXX, "c++", "g++", "clang++") | Where-Object { $_ -and (Get-Command $_ -ErrorAction SilentlyContinue) })) { $missing += "a C++ compiler" }
if ($missing.Count -gt 0) {
    Write-Host "error: not found: $($missing -join ', '). The CUDA kernels are compiled to PTX with cmake and clang (14 or newer), and to the kernel emulator with a C++ compiler; install them (Debian/Ubuntu: sudo apt-get install cmake clang g++) and run again." -ForegroundColor Red
    exit 2
}
Invoke-Step "native: configure" { cmake -S . -B build/native -DCMAKE_BUILD_TYPE=$Configuration }
Invoke-Step "native: build" { cmake --build build/native }

Invoke-Step "build" { dotnet build CudaFinetune.sln -c $Configuration }
if (-not $SkipTests) {
    Invoke-Step "test" { dotnet test CudaFinetune.sln -c $Configuration --no-build }
}
Invoke-Step "publish ($Runtime, NativeAOT)" {
    dotnet publish src/CudaFinetune/CudaFinetune.csproj -c $Configuration -r $Runtime -o $Output
}
Write-Host "CudaFinetune published to $Output" -ForegroundColor Green
