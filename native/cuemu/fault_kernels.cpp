// fault_kernels.cpp: kernels that break CUDA's rules, built into the emulator only (never into PTX:
// on a GPU they would hang or be undefined). EmulatorFaultTests checks that each ends with an
// error naming what went wrong, and that the emulator recovers.
#include "../../kernels/common.cuh"

// In every warp, lanes 0-15 wait at the barrier for lanes 16-31, which wait at a full-warp shuffle
// for lanes 0-15: neither can go on.
extern "C" __global__ void fault_divergent_barrier(int*) {
  if (cf::lane() < 16) {
    cf::sync_threads();
  } else {
    cf::shuffle_xor(1.0f, 1);
    cf::sync_threads();
  }
}
CF_EMULATOR_ENTRY(fault_divergent_barrier)

// Even lanes shuffle while odd lanes vote, all with the full mask.
extern "C" __global__ void fault_mismatched_collectives(int*) {
  if (cf::lane() % 2 == 0) cf::shuffle_xor(1.0f, 2);
  else cf::ballot(true);
}
CF_EMULATOR_ENTRY(fault_mismatched_collectives)

// Lane 1 calls a collective whose mask names only lane 0.
extern "C" __global__ void fault_mask_without_self(int*) {
  if (cf::lane() == 1) cf::sync_warp(1u);
}
CF_EMULATOR_ENTRY(fault_mask_without_self)
