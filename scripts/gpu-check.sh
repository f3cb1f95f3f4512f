#!/usr/bin/env bash
# One prepared call on a lent GPU machine (which has no .NET): runs the published NativeAOT
# binary's checks and prints a short table last. Usage, from the repository root:
#   scripts/gpu-check.sh [PUBLISH_DIR]      (default artifacts/publish, made by build.ps1 or
#                                            dotnet publish src/CudaFinetune -c Release -r linux-x64 -o artifacts/publish)
# What it runs today: `devices`; `verify-kernels` on the GPU and the emulator (every kernel against the
# CPU reference, every device primitive — shuffles, votes, ldmatrix, mma fragments — against the PTX
# ISA, which also checks the emulator's model of the hardware); a short fine-tune interrupted by SIGTERM
# (preemption) and resumed, compared with an uninterrupted run (metrics equal but for tokens_per_s,
# adapters bitwise equal), on --device cuda; the NCCL path (ZeRO optimizer) at world size 1 under torchrun's
# environment, whose losses must equal the one-rank run's; the Hugging Face round trip (a LoRA run exported
# as a PEFT adapter and as a merged model, loaded by transformers + peft, whose loss on the data must equal
# `CudaFinetune eval`'s within 1e-3); the speed comparison with PyTorch on the same card
# (benchmarks/gpu/reference.py): flash attention forward+backward TFLOP/s against sdpa's flash backend
# (target ≥ 0.8×), and a LoRA step of a Llama-3.2-1B-shaped model against transformers + peft
# (target ≥ 1.3× tokens/s at no more peak memory).
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
common=(finetune --device cuda --max-steps 40 --save-every 10 --eval-every 10)
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

echo "== NCCL path at world size 1 (as torchrun starts it): ZeRO optimizer, bucketed reduce-scatter on a side stream"
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 \
  "$bin" "${common[@]}" --output-dir "$work/nccl" > "$work/nccl.log" 2>&1
nccl_rc=$?
tail -2 "$work/nccl.log"
losses() { grep -o '"loss":[^,}]*' "$1"; }
if [ $nccl_rc -eq 0 ] && [ $straight_rc -eq 0 ] && diff <(losses "$work/straight/metrics.jsonl") <(losses "$work/nccl/metrics.jsonl") > /dev/null; then
  rows+=("NCCL world 1 = one rank (losses)|ok")
else
  rows+=("NCCL world 1 = one rank (losses)|FAILED (rc $nccl_rc)")
fi
"$bin" checkpoint verify "$(ls -d "$work"/resumed/checkpoints/step-* | tail -1)" > /dev/null && rows+=("checkpoint verify|ok") || rows+=("checkpoint verify|FAILED")

echo "== Hugging Face round trip: export peft and merged, loaded by transformers + peft, loss compared with ours"
rt="$work/roundtrip"
mkdir -p "$rt"
"$bin" init-model --preset tiny --seed 3 --out "$rt/base" > /dev/null 2>&1
python3 - "$rt/data.jsonl" <<'PY'
import json, random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(24):
        s = r.randrange(200)
        f.write(json.dumps({"input_ids": [(s + 3 * j) % 500 for j in range(33)]}) + "\n")
PY
"$bin" finetune --device cpu --model "$rt/base" --dataset "$rt/data.jsonl" --output-dir "$rt/run" --context-length 32 --batch-size 4 \
  --lora-targets all-linear --lora-r 8 --lr 5e-3 --max-steps 12 > "$rt/finetune.log" 2>&1
"$bin" export --checkpoint "$rt/run" --format peft --out "$rt/peft" > /dev/null 2>&1
"$bin" export --checkpoint "$rt/run" --format merged --dtype f32 --out "$rt/merged" > /dev/null 2>&1
ours=$("$bin" eval --device cpu --model "$rt/base" --adapter "$rt/peft" --dataset "$rt/data.jsonl" --context-length 33 --batching padding --batch-size 1 2>&1 | grep -o 'loss [0-9.]*' | head -1 | cut -d' ' -f2)
hf_loss() { timeout 300 python3 benchmarks/gpu/hf_roundtrip.py "$@" 2>&1 | tee -a "$rt/hf.log" | awk '$1 == "result" { print $3 }' | tail -1; }
hf_adapter=$(hf_loss --model "$rt/base" --adapter "$rt/peft" --data "$rt/data.jsonl")
hf_merged=$(hf_loss --model "$rt/merged" --data "$rt/data.jsonl")
close() { [ -n "$1" ] && [ -n "$2" ] && [ "$(echo "d = $1 - $2; if (d < 0) d = -d; d < 0.001" | bc)" = 1 ]; }
if close "$ours" "$hf_adapter" && close "$ours" "$hf_merged"; then
  rows+=("HF round trip loss ours/peft/merged|$ours / $hf_adapter / $hf_merged ok")
else
  rows+=("HF round trip loss ours/peft/merged|FAILED: ${ours:-?} / ${hf_adapter:-?} / ${hf_merged:-?}")
fi

# "result NAME VALUE" lines of CudaFinetune bench and reference.py.
result() { awk -v name="$2" '$1 == "result" && $2 == name { print $3 }' "$1" | tail -1; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then echo "scale=2; $1 / $2" | bc; else echo "?"; fi; }

echo "== speed: causal flash attention, bf16, head dim 128, seq 2048 (ours, then PyTorch sdpa)"
attention=(--batch 4 --seq-len 2048 --heads 32 --kv-heads 8 --head-dim 128 --repeat 10)
timeout 300 "$bin" bench attention --device cuda "${attention[@]}" 2>&1 | tee "$work/ours-attention.log"
timeout 300 python3 benchmarks/gpu/reference.py attention "${attention[@]}" 2>&1 | tee "$work/torch-attention.log"
ours=$(result "$work/ours-attention.log" attention_forward_backward_tflops)
theirs=$(result "$work/torch-attention.log" attention_forward_backward_tflops)
rows+=("attention fwd+bwd TFLOP/s ours/sdpa|${ours:-?} / ${theirs:-?} = $(ratio "$ours" "$theirs")x (target >= 0.8)")

echo "== speed: LoRA step, Llama-3.2-1B shape, r=16 all-linear, 1 x 2048 tokens (ours, then transformers + peft)"
timeout 400 "$bin" bench step --device cuda --preset llama-3.2-1b-shape --batch-size 1 --context-length 2048 --lora-r 16 --steps 5 2>&1 | tee "$work/ours-step.log"
timeout 400 python3 benchmarks/gpu/reference.py step --batch-size 1 --context-length 2048 --lora-r 16 --steps 5 2>&1 | tee "$work/torch-step.log"
ours=$(result "$work/ours-step.log" step_tokens_per_s)
theirs=$(result "$work/torch-step.log" step_tokens_per_s)
rows+=("LoRA step tokens/s ours/HF+peft|${ours:-?} / ${theirs:-?} = $(ratio "$ours" "$theirs")x (target >= 1.3)")
ours=$(result "$work/ours-step.log" step_peak_memory_bytes)
theirs=$(result "$work/torch-step.log" step_peak_memory_bytes)
rows+=("LoRA step peak memory ours/HF+peft|$(ratio "$ours" "$theirs")x of ${theirs:-?} bytes (target <= 1.0)")
[ -n "${OUT:-}" ] && cp "$work"/*.log "$OUT/" 2>/dev/null

echo
echo "== summary ($(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi'))"
printf '%-40s %s\n' "check" "result"
for row in "${rows[@]}"; do printf '%-40s %s\n' "${row%%|*}" "${row#*|}"; done
