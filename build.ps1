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

if (Get-Command cmake -ErrorAction SilentlyContinue) {
    Invoke-Step "native: configure" { cmake -S . -B build/native -DCMAKE_BUILD_TYPE=$Configuration }
    Invoke-Step "native: build" { cmake --build build/native }
} else {
    Write-Error "cmake was not found: install it (Debian: apt-get install cmake clang) to build the kernels"
    exit 2
}

Invoke-Step "build" { dotnet build CudaFinetune.sln -c $Configuration }
if (-not $SkipTests) {
    Invoke-Step "test" { dotnet test CudaFinetune.sln -c $Configuration --no-build }
}
Invoke-Step "publish ($Runtime, NativeAOT)" {
    dotnet publish src/CudaFinetune/CudaFinetune.csproj -c $Configuration -r $Runtime -o $Output
}
Write-Host "CudaFinetune published to $Output" -ForegroundColor Green
