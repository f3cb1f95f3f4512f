#!/usr/bin/env bash
# kernel-report.sh: what NVIDIA's assembler makes of our kernels, without a GPU. Assembles every PTX entry the build
# made (src/CudaFinetune.Cuda/obj/native/ptx/*.ptx: run `dotnet build` first) for sm_80 and sm_90 with `ptxas -v`,
# reads the machine code with `cuobjdump -sass`, and writes the table between the kernel-report markers of
# docs/kernels.md: per entry and architecture, registers, stack frame, spill bytes, static shared memory, and the
# counts of HMMA (tensor-core MMA), LDSM (ldmatrix), LDGSTS (cp.async), MUFU.EX2, BAR and all instructions; for the
# attention and LoRA entries also the HMMAs and instructions per HMMA in the loop that holds the most HMMAs.
#
#   scripts/kernel-report.sh            rewrite docs/kernels.md's table
#   scripts/kernel-report.sh --check    exit 1 when docs/kernels.md's table is not what the kernels give (CI)
#   scripts/kernel-report.sh --json F   only write the numbers as JSON to F (tests read them); with --check, also check
#
# Needs ptxas and cuobjdump: Debian's nvidia-cuda-toolkit (CUDA 11.8; components contrib non-free).
set -euo pipefail
cd "$(dirname "$0")/.."

check=0 json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --json) json="$2"; shift ;;
    *) echo "usage: scripts/kernel-report.sh [--check] [--json FILE]" >&2; exit 2 ;;
  esac
  shift
done

for tool in ptxas cuobjdump python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is not installed (ptxas and cuobjdump: apt-get install nvidia-cuda-toolkit, with contrib non-free in the sources)" >&2
    exit 2
  fi
done
ptx_dir=src/CudaFinetune.Cuda/obj/native/ptx
if ! compgen -G "$ptx_dir/*.ptx" >/dev/null; then
  echo "error: no PTX in $ptx_dir; run 'dotnet build src/CudaFinetune.Cuda' first" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for arch in sm_80 sm_90; do
  for ptx in "$ptx_dir"/*.ptx; do
    name="$(basename "$ptx" .ptx)"
    [ "$name" = selftest ] && continue  # the emulator's own self-test kernels
    ptxas -v -arch="$arch" "$ptx" -o "$work/$name.$arch.cubin" 2> "$work/$name.$arch.ptxas"
    cuobjdump -sass "$work/$name.$arch.cubin" > "$work/$name.$arch.sass"
  done
done

python3 scripts/kernel_report.py "$work" docs/kernels.md "$check" "$json" "$(ptxas --version | tail -1)"
