#!/usr/bin/env bash
# The bench-tiny training step (batch 8 x 256 tokens; LoRA r=8 on q/k/v/o, dropout 0.05, and full fine-tuning; AdamW,
# clipping) in PyTorch on the CPU and in CudaFinetune's CPU backend, one after the other on this machine, with the
# same thread count; prints tokens/s, peak resident memory and the ratios.
#
# CudaFinetune runs as users get it, each build in the same run:
#   native      the release binary (dotnet publish -c Release -r linux-x64, NativeAOT): the entry point CudaFinetune,
#               which hands over to CudaFinetune-x86-64-v4 where the CPU has AVX-512
#   native-v3   the same forced to x86-64-v3 (CUDAFINETUNE_ISA): what a CPU with AVX2 but no AVX-512 runs
#   jit         the JIT build (dotnet run, the .NET tool)
#   jit-v3      the JIT build forced to x86-64-v3
# (BUILDS="native jit" picks some.) Needs python3-torch with OpenBLAS (Debian: sudo apt-get install python3-torch
# libopenblas0-pthread — without OpenBLAS, Debian's torch falls back to the reference BLAS, ~30x slower) and the .NET
# SDK. Usage, from the repository root:
#   benchmarks/compare/compare.sh [STEPS] [THREADS]
set -euo pipefail
steps="${1:-5}"
threads="${2:-2}"
builds="${BUILDS:-native native-v3 jit jit-v3}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
"$python" -c "import torch" 2>/dev/null || python=/usr/bin/python3  # Debian's torch lives beside the system python
"$python" -c "import torch" 2>/dev/null || { echo "error: PyTorch is not installed (Debian: sudo apt-get install python3-torch libopenblas0-pthread; or set PYTHON)" >&2; exit 2; }
"$python" -c "import torch; assert 'generic' not in torch.__config__.show() or __import__('os').path.exists('/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3')" 2>/dev/null \
  || echo "warning: torch uses the reference BLAS here; install libopenblas0-pthread for a fair comparison" >&2

published="$root/artifacts/compare/publish"
if [[ " $builds " == *" native"* ]]; then
  echo "publishing the release binary (NativeAOT, both levels) to $published ..." >&2
  dotnet publish "$root/src/CudaFinetune" -c Release -r linux-x64 -o "$published" > /dev/null
fi
if [[ " $builds " == *" jit"* ]]; then
  dotnet build -c Release "$root/src/CudaFinetune" > /dev/null
fi

# One build's bench step; the rest of the arguments go to the command.
ours() {
  local build="$1"; shift
  local step=(bench step --device cpu --preset bench-tiny --batch-size 8 --context-length 256 --lora-r 8
    --lora-targets q_proj,k_proj,v_proj,o_proj --steps "$steps" "$@")
  case "$build" in
    native)    DOTNET_PROCESSOR_COUNT="$threads" "$published/CudaFinetune" "${step[@]}" ;;
    native-v3) DOTNET_PROCESSOR_COUNT="$threads" CUDAFINETUNE_ISA=x86-64-v3 "$published/CudaFinetune" "${step[@]}" ;;
    jit)       DOTNET_PROCESSOR_COUNT="$threads" dotnet "$root/src/CudaFinetune/bin/Release/net10.0/CudaFinetune.dll" "${step[@]}" ;;
    jit-v3)    DOTNET_PROCESSOR_COUNT="$threads" CUDAFINETUNE_ISA=x86-64-v3 dotnet "$root/src/CudaFinetune/bin/Release/net10.0/CudaFinetune.dll" "${step[@]}" ;;
    *) echo "error: unknown build '$build' in BUILDS (native, native-v3, jit, jit-v3)" >&2; exit 2 ;;
  esac
}
theirs() { OMP_NUM_THREADS="$threads" "$python" "$here/torch_step.py" --steps "$steps" --threads "$threads" "$@"; }
value() { awk -v name="$2" '$1 == "result" && $2 == name { print $3 }' <<< "$1" | tail -1; }

declare -a rows
for mode in lora none; do
  extra=(--peft "$mode"); [ "$mode" = lora ] && extra+=(--lora-dropout 0.05)
  t="$(theirs "${extra[@]}")"; echo "$t"
  tt=$(value "$t" step_tokens_per_s); tm=$(value "$t" step_peak_memory_bytes)
  for build in $builds; do
    o="$(ours "$build" "${extra[@]}")"; echo "$o"
    ot=$(value "$o" step_tokens_per_s); om=$(value "$o" step_peak_memory_bytes)
    rows+=("$mode|$build ($(value "$o" simd))|$ot|$tt|$(echo "scale=2; $ot / $tt" | bc)|$((om / 1048576))|$((tm / 1048576))")
  done
done
echo
echo "bench-tiny step, batch 8 x 256, $threads threads, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-6s %-24s %12s %12s %7s %13s %14s\n' mode build "ours tok/s" "torch tok/s" ratio "ours RSS MiB" "torch RSS MiB"
for row in "${rows[@]}"; do
  IFS='|' read -r m b a t r c d <<< "$row"
  printf '%-6s %-24s %12s %12s %6sx %13s %14s\n' "$m" "$b" "$a" "$t" "$r" "$c" "$d"
done
