// fault_kernels.cpp: kernels that break CUDA's rules, built into the emulator only (never into PTX:
// on a GPU they would hang, fault or be undefined). EmulatorFaultTests checks that each ends with an
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

// What the hardware rejects in cp.async and ldmatrix (the launchers' alignment checks keep real kernels from it). Each
// kernel gets `global`, a 16-byte-aligned buffer of 64 bytes of global memory; one thread or lane breaks the rule.

// Thread 3 copies from a source 8 bytes past a 16-byte boundary.
extern "C" __global__ void fault_cp_async_misaligned_source(const unsigned char* global) {
  __shared__ __attribute__((aligned(16))) unsigned char tile[32 * 16];
  int t = cf::thread_x();
  cf::cp_async_16(&tile[16 * t], global + (t == 3 ? 8 : 0));
  cf::cp_async_wait_all();
}
CF_EMULATOR_ENTRY(fault_cp_async_misaligned_source)

// Thread 5 copies into shared memory 4 bytes past a 16-byte boundary.
extern "C" __global__ void fault_cp_async_misaligned_destination(const unsigned char* global) {
  __shared__ __attribute__((aligned(16))) unsigned char tile[33 * 16];
  int t = cf::thread_x();
  cf::cp_async_16(&tile[16 * t + (t == 5 ? 4 : 0)], global);
  cf::cp_async_wait_all();
}
CF_EMULATOR_ENTRY(fault_cp_async_misaligned_destination)

// Thread 0 copies into a (16-byte-aligned) array of its own local memory.
extern "C" __global__ void fault_cp_async_local_destination(const unsigned char* global) {
  __attribute__((aligned(16))) unsigned char local[16];
  cf::cp_async_16(local, global);
  cf::cp_async_wait_all();
}
CF_EMULATOR_ENTRY(fault_cp_async_local_destination)

// Thread 2 copies past the end of the dynamic shared memory (the launch gives it 32 bytes; the copy needs 48).
extern "C" __global__ void fault_cp_async_past_dynamic_shared(const unsigned char* global) {
  unsigned char* shared = cf::dynamic_shared<unsigned char>();
  int t = cf::thread_x();
  if (t < 3) cf::cp_async_16(shared + 16 * t, global);
  cf::cp_async_wait_all();
}
CF_EMULATOR_ENTRY(fault_cp_async_past_dynamic_shared)

// ldmatrix .x4 whose rows are global memory (aligned), as if a kernel forgot to stage the tile in shared memory.
extern "C" __global__ void fault_ldmatrix_global_rows(const unsigned char* global) {
  unsigned r[4];
  cf::ldmatrix_x4(r, global + 16 * (cf::lane() % 4));
}
CF_EMULATOR_ENTRY(fault_ldmatrix_global_rows)

// ldmatrix .x2.trans in which lane 9's row starts 8 bytes past a 16-byte boundary of shared memory.
extern "C" __global__ void fault_ldmatrix_misaligned_row(const unsigned char*) {
  __shared__ __attribute__((aligned(16))) unsigned char tile[17 * 16];
  int l = cf::lane();
  unsigned r[2];
  cf::ldmatrix_x2_trans(r, &tile[16 * (l % 16) + (l == 9 ? 8 : 0)]);
}
CF_EMULATOR_ENTRY(fault_ldmatrix_misaligned_row)

// Not a fault: ldmatrix .x1 reads the rows of lanes 0-7 only, so what lanes 8-31 pass (here global memory, misaligned)
// is never looked at, on the GPU or here; nor does a correct cp.async into dynamic shared memory trap.
extern "C" __global__ void fault_none_ldmatrix_x1_ignores_upper_lanes(const unsigned char* global) {
  unsigned char* shared = cf::dynamic_shared<unsigned char>();
  int l = cf::lane();
  if (l < 8) cf::cp_async_16(shared + 16 * l, global);
  cf::cp_async_wait_all();
  cf::sync_threads();
  unsigned r[1];
  cf::ldmatrix_x1(r, l < 8 ? static_cast<const void*>(shared + 16 * l) : static_cast<const void*>(global + 3));
}
CF_EMULATOR_ENTRY(fault_none_ldmatrix_x1_ignores_upper_lanes)

// Reads shared memory before waiting for the cp.async that fills it (breaking the rule). Thread 0 writes bytes 1..32
// into global[0..32), copies global[0..16) into a zeroed shared slot as one group and global[16..32) into another as a
// second, and records slot bytes into global[32..38): before any wait, after wait_group 1 (the first group has landed,
// the second need not) and after wait_all. A GPU may show either value before a wait; the emulator lands each copy as
// late as the PTX ISA allows, so a kernel that reads too early reads the stale bytes.
extern "C" __global__ void fault_cp_async_read_before_wait(unsigned char* global) {
  __shared__ __attribute__((aligned(16))) unsigned char slots[2][16];
  if (cf::thread_x() != 0) return;
  for (int i = 0; i < 16; ++i) slots[0][i] = slots[1][i] = 0;
  for (int i = 0; i < 32; ++i) global[i] = static_cast<unsigned char>(i + 1);
  cf::cp_async_16(slots[0], global);
  cf::cp_async_commit();
  cf::cp_async_16(slots[1], global + 16);
  cf::cp_async_commit();
  global[32] = slots[0][0];
  global[33] = slots[1][0];
  cf::cp_async_wait<1>();
  global[34] = slots[0][0];
  global[35] = slots[1][0];
  cf::cp_async_wait_all();
  global[36] = slots[0][0];
  global[37] = slots[1][0];
}
CF_EMULATOR_ENTRY(fault_cp_async_read_before_wait)
