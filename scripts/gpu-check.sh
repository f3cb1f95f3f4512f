#!/usr/bin/env bash
# One prepared call on a lent GPU machine (which has no .NET): runs the published NativeAOT
# binary's checks and prints a short table last. Usage, from the repository root:
#   scripts/gpu-check.sh [PUBLISH_DIR]      (default artifacts/publish, made by build.ps1 or
#                                            dotnet publish src/CudaFinetune -c Release -r linux-x64 -o artifacts/publish)
# What it runs today: `devices`; a short fine-tune interrupted by SIGTERM (preemption) and resumed, compared
# with an uninterrupted run (metrics equal but for tokens_per_s, adapters bitwise equal). Kernel
# verification (`verify-kernels --device cuda`) and the GPU benchmarks join when they exist.
set -uo pipefail
publish="${1:-artifacts/publish}"
bin="$publish/CudaFinetune"
if [ ! -x "$bin" ]; then
  echo "error: $bin not found; publish first: dotnet publish src/CudaFinetune -c Release -r linux-x64 -o $publish" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
declare -a rows

echo "== devices"
if "$bin" devices; then rows+=("devices|ok"); else rows+=("devices|FAILED"); fi

echo "== fine-tune, uninterrupted"
common=(finetune --max-steps 40 --save-every 10 --eval-every 10)
start=$(date +%s.%N)
"$bin" "${common[@]}" --output-dir "$work/straight" > "$work/straight.log" 2>&1
straight_rc=$?
straight_s=$(echo "$(date +%s.%N) - $start" | bc)
tail -3 "$work/straight.log"

echo "== fine-tune, interrupted (SIGTERM) and resumed"
"$bin" "${common[@]}" --output-dir "$work/resumed" > "$work/interrupted.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/resumed/metrics.jsonl" ] && [ "$(grep -c '"loss"' "$work/resumed/metrics.jsonl")" -ge 15 ] && break
  sleep 0.1
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"; interrupted_rc=$?
grep -E "interrupted after|resume with" "$work/interrupted.log"
"$bin" finetune --resume "$work/resumed" > "$work/resume.log" 2>&1
resume_rc=$?
tail -2 "$work/resume.log"
strip() { sed -E 's/,"tokens_per_s":[^,}]*//' "$1"; }
if [ $straight_rc -eq 0 ] && [ $interrupted_rc -eq 0 ] && [ $resume_rc -eq 0 ] \
   && diff <(strip "$work/straight/metrics.jsonl") <(strip "$work/resumed/metrics.jsonl") > /dev/null \
   && cmp -s "$work/straight/adapter/adapter_model.safetensors" "$work/resumed/adapter/adapter_model.safetensors"; then
  rows+=("interrupt + resume = uninterrupted|ok")
else
  rows+=("interrupt + resume = uninterrupted|FAILED (rc $straight_rc/$interrupted_rc/$resume_rc)")
fi
rows+=("fine-tune 40 steps (demo model)|${straight_s%.*} s")
"$bin" checkpoint verify "$(ls -d "$work"/resumed/checkpoints/step-* | tail -1)" > /dev/null && rows+=("checkpoint verify|ok") || rows+=("checkpoint verify|FAILED")

echo
echo "== summary ($(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi'))"
printf '%-40s %s\n' "check" "result"
for row in "${rows[@]}"; do printf '%-40s %s\n' "${row%%|*}" "${row#*|}"; done
