#!/usr/bin/env bash
# Checks the shipped binary the way users get it. Publishes the CLI twice — `dotnet publish -c Release -r linux-x64`
# and a plain `dotnet publish -c Release` — and checks that each gives both native builds (CudaFinetune for x86-64-v3,
# CudaFinetune-x86-64-v4); that the entry point picks the build for this CPU and CUDAFINETUNE_ISA forces the other;
# and that a short run of the built-in demo gives, at each level, the same losses to the bit from the native build
# as from the JIT build (the same arithmetic compiled twice), and to within 1e-5 between the levels (reductions
# split over 8 or 16 lanes). Prints a short table last; exits 1 if a check failed. Linux x64. Usage, from the
# repository root:
#   scripts/publish-check.sh [OUT_DIR]        (default artifacts/publish-check)
set -uo pipefail
out="${1:-artifacts/publish-check}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
declare -a rows
failed=0
check() { # NAME CONDITION-EXIT-CODE DETAIL
  if [ "$2" -eq 0 ]; then rows+=("$1|ok|$3"); else rows+=("$1|FAILED|$3"); failed=1; fi
}

echo "== publish -r linux-x64"
dotnet publish "$root/src/CudaFinetune" -c Release -r linux-x64 -o "$out/rid" | grep -E "NativeAOT|error|warn"
echo "== publish (no -r)"
rm -rf "$root/src/CudaFinetune/bin/Release/net10.0/linux-x64/publish"
dotnet publish "$root/src/CudaFinetune" -c Release | grep -E "NativeAOT|error|warn"
plain="$root/src/CudaFinetune/bin/Release/net10.0/linux-x64/publish"
for dir in "$out/rid" "$plain"; do
  [ -x "$dir/CudaFinetune" ] && [ -x "$dir/CudaFinetune-x86-64-v4" ]
  check "both builds in $(basename "$(dirname "$dir")")/$(basename "$dir")" $? "CudaFinetune, CudaFinetune-x86-64-v4"
done
bin="$out/rid/CudaFinetune"
jit=(dotnet "$root/src/CudaFinetune/bin/Release/net10.0/CudaFinetune.dll")
dotnet build "$root/src/CudaFinetune" -c Release > /dev/null

echo "== which build runs"
cpu_v4=0; grep -qw avx512f /proc/cpuinfo && cpu_v4=1
auto="$("$bin" devices | head -1)"; echo "$auto"
if [ "$cpu_v4" = 1 ]; then expected="CudaFinetune-x86-64-v4"; else expected="'CudaFinetune'"; fi
[[ "$auto" == *"$expected"* ]]; check "entry point picks the build for this CPU" $? "$auto"
forced="$(CUDAFINETUNE_ISA=x86-64-v3 "$bin" devices | head -1)"; echo "$forced"
[[ "$forced" == *"runs x86-64-v3"*"native build 'CudaFinetune'"* ]]; check "CUDAFINETUNE_ISA=x86-64-v3" $? "$forced"
CUDAFINETUNE_ISA=sse "$bin" devices > /dev/null 2>&1
[ $? -eq 2 ]; check "a bad CUDAFINETUNE_ISA is exit 2" $? ""

echo "== the demo, 6 steps, by each build"
losses() { grep -o '"loss": *[-0-9.eE+]*' "$1/metrics.jsonl" | tr -d ' '; }
demo() { # NAME ENV-ISA COMMAND...
  local name="$1" isa="$2"; shift 2
  rm -rf "$out/demo-$name"
  CUDAFINETUNE_ISA="$isa" "$@" finetune --output-dir "$out/demo-$name" --max-steps 6 > "$out/demo-$name.log" 2>&1
  check "demo: $name" $? "$(losses "$out/demo-$name" | tail -1)"
}
levels=(x86-64-v3); [ "$cpu_v4" = 1 ] && levels+=(x86-64-v4)
for level in "${levels[@]}"; do
  demo "native-$level" "$level" "$bin"
  demo "jit-$level" "$level" "${jit[@]}"
  [ "$(losses "$out/demo-native-$level")" = "$(losses "$out/demo-jit-$level")" ] && [ -n "$(losses "$out/demo-jit-$level")" ]
  check "native = JIT to the bit at $level" $? "$(losses "$out/demo-native-$level" | wc -l) losses"
done
if [ "$cpu_v4" = 1 ]; then
  worst="$(paste -d' ' <(losses "$out/demo-native-x86-64-v3" | cut -d: -f2) <(losses "$out/demo-native-x86-64-v4" | cut -d: -f2) \
    | awk '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > w) w = d } END { printf "%.2e", w }')"
  awk -v w="$worst" 'BEGIN { exit !(w < 1e-5) }'; check "x86-64-v3 and v4 within 1e-5" $? "largest relative difference $worst"
fi

echo "== bench-tiny LoRA step, tokens/s"
step=(bench step --device cpu --preset bench-tiny --batch-size 8 --context-length 256 --lora-r 8 --lora-targets q_proj,k_proj,v_proj,o_proj --steps 5)
for level in "${levels[@]}"; do
  native="$(CUDAFINETUNE_ISA="$level" "$bin" "${step[@]}" | awk '$2 == "step_tokens_per_s" { print $3 }')"
  jitted="$(CUDAFINETUNE_ISA="$level" "${jit[@]}" "${step[@]}" | awk '$2 == "step_tokens_per_s" { print $3 }')"
  rows+=("speed at $level|native $native|JIT $jitted")
done

echo
printf '%-48s %-8s %s\n' check result detail
for row in "${rows[@]}"; do IFS='|' read -r a b c <<< "$row"; printf '%-48s %-8s %s\n' "$a" "$b" "$c"; done
exit $failed
