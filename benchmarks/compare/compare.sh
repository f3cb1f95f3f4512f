#!/usr/bin/env bash
# The bench-tiny training step (batch 8 x 256 tokens; LoRA r=8 on q/k/v/o, dropout 0.05, and full fine-tuning; AdamW,
# clipping) in PyTorch on the CPU and in CudaFinetune's CPU backend, one after the other on this machine, with the
# same thread count; prints tokens/s, peak resident memory and the ratios. Needs python3-torch with OpenBLAS
# (Debian: sudo apt-get install python3-torch libopenblas0-pthread — without OpenBLAS, Debian's torch falls back to
# the reference BLAS, ~30x slower) and the .NET SDK. Usage, from the repository root:
#   benchmarks/compare/compare.sh [STEPS] [THREADS]
set -euo pipefail
steps="${1:-5}"
threads="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
"$python" -c "import torch" 2>/dev/null || python=/usr/bin/python3  # Debian's torch lives beside the system python
"$python" -c "import torch" 2>/dev/null || { echo "error: PyTorch is not installed (Debian: sudo apt-get install python3-torch libopenblas0-pthread; or set PYTHON)" >&2; exit 2; }
"$python" -c "import torch; assert 'generic' not in torch.__config__.show() or __import__('os').path.exists('/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3')" 2>/dev/null \
  || echo "warning: torch uses the reference BLAS here; install libopenblas0-pthread for a fair comparison" >&2
dotnet build -c Release "$root/src/CudaFinetune" > /dev/null
ours() { DOTNET_PROCESSOR_COUNT="$threads" dotnet "$root/src/CudaFinetune/bin/Release/net10.0/CudaFinetune.dll" bench step --device cpu --preset bench-tiny \
  --batch-size 8 --context-length 256 --lora-r 8 --lora-targets q_proj,k_proj,v_proj,o_proj --steps "$steps" "$@"; }
theirs() { OMP_NUM_THREADS="$threads" "$python" "$here/torch_step.py" --steps "$steps" --threads "$threads" "$@"; }
value() { awk -v name="$2" '$1 == "result" && $2 == name { print $3 }' <<< "$1" | tail -1; }
declare -a rows
for mode in lora none; do
  extra=(--peft "$mode"); [ "$mode" = lora ] && extra+=(--lora-dropout 0.05)
  o="$(ours "${extra[@]}")"; echo "$o"
  t="$(theirs "${extra[@]}")"; echo "$t"
  ot=$(value "$o" step_tokens_per_s); tt=$(value "$t" step_tokens_per_s)
  om=$(value "$o" step_peak_memory_bytes); tm=$(value "$t" step_peak_memory_bytes)
  rows+=("$mode|$ot|$tt|$(echo "scale=2; $ot / $tt" | bc)|$((om / 1048576))|$((tm / 1048576))")
done
echo
echo "bench-tiny step, batch 8 x 256, $threads threads, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-6s %14s %14s %7s %14s %14s\n' mode "ours tok/s" "torch tok/s" ratio "ours RSS MiB" "torch RSS MiB"
for row in "${rows[@]}"; do IFS='|' read -r m a b r c d <<< "$row"; printf '%-6s %14s %14s %6sx %14s %14s\n' "$m" "$a" "$b" "$r" "$c" "$d"; done
