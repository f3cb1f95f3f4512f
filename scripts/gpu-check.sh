#!/usr/bin/env bash
# One prepared call on a lent GPU machine (which has no .NET): runs the published NativeAOT
# binary's checks and prints a short table last. Usage, from the repository root:
#   scripts/gpu-check.sh [PUBLISH_DIR]      (default artifacts/publish, made by build.ps1 or
#                                            dotnet publish src/CudaFinetune -c Release -r linux-x64 -o artifacts/publish)
# What it runs today: `devices`; `verify-kernels` on the GPU and the emulator (every kernel against the
# CPU reference, every device primitive — shuffles, votes, ldmatrix, mma fragments — against the PTX
# ISA, which also checks the emulator's model of the hardware); a short fine-tune interrupted by SIGTERM
# (preemption) and resumed, compared with an uninterrupted run (metrics equal but for tokens_per_s,
# adapters bitwise equal). The GPU benchmarks join when the cuda backend exists (issue 6).
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

echo "== verify-kernels (GPU and emulator, seed 1)"
"$bin" verify-kernels --seed 1 > "$work/verify.log" 2>&1
verify_rc=$?
grep -E "FAILED|cases|GPU|no GPU|error" "$work/verify.log" | tail -12
[ -n "${OUT:-}" ] && cp "$work/verify.log" "$OUT/verify-kernels.log"  # the device tool brings $OUT back
if [ $verify_rc -eq 0 ] && grep -q "on 2 device(s)" "$work/verify.log"; then
  rows+=("verify-kernels (GPU + emulator)|ok")
elif grep -q "no GPU here" "$work/verify.log"; then
  rows+=("verify-kernels (GPU + emulator)|FAILED (no GPU found; emulator rc $verify_rc)")
else
  rows+=("verify-kernels (GPU + emulator)|FAILED (rc $verify_rc)")
fi

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
