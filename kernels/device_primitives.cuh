// device_primitives.cuh: the GPU side of the primitives every kernel uses (see common.cuh for the
// list), written with clang's NVVM builtins and inline PTX, since there are no CUDA SDK headers
// here. native/cuemu/cuemu_device.h defines the very same names for the emulator.
#pragma once

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define CF_INLINE __attribute__((device)) __attribute__((always_inline)) inline
#define CF_EMULATOR_ENTRY(name)

// The block's dynamic shared memory (the launch's DynamicSharedBytes), 16-byte aligned.
extern __attribute__((shared)) __attribute__((aligned(16))) unsigned char cf_dynamic_shared_bytes[];

namespace cf {

// ---- indices -------------------------------------------------------------------------------
CF_INLINE int thread_x() { return __nvvm_read_ptx_sreg_tid_x(); }
CF_INLINE int block_dim_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
CF_INLINE int block_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
CF_INLINE int block_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
CF_INLINE int block_z() { return __nvvm_read_ptx_sreg_ctaid_z(); }
CF_INLINE int grid_dim_x() { return __nvvm_read_ptx_sreg_nctaid_x(); }
CF_INLINE int grid_dim_y() { return __nvvm_read_ptx_sreg_nctaid_y(); }
CF_INLINE int grid_dim_z() { return __nvvm_read_ptx_sreg_nctaid_z(); }

// ---- barriers and warp collectives ----------------------------------------------------------
// Waits until every thread of the block has arrived (bar.sync 0).
CF_INLINE void sync_threads() { __syncthreads(); }
// Waits until every lane in `mask` has arrived (bar.warp.sync).
CF_INLINE void sync_warp(unsigned mask) { __nvvm_bar_warp_sync(mask); }

CF_INLINE float shuffle_xor(float value, int lane_mask, unsigned mask = kFullMask) {
  return __nvvm_shfl_sync_bfly_f32(mask, value, lane_mask, kWarpSize - 1);
}
CF_INLINE float shuffle_idx(float value, int source_lane, unsigned mask = kFullMask) {
  return __nvvm_shfl_sync_idx_f32(mask, value, source_lane, kWarpSize - 1);
}
CF_INLINE float shuffle_down(float value, int delta, unsigned mask = kFullMask) {
  return __nvvm_shfl_sync_down_f32(mask, value, delta, kWarpSize - 1);
}
CF_INLINE float shuffle_up(float value, int delta, unsigned mask = kFullMask) {
  return __nvvm_shfl_sync_up_f32(mask, value, delta, 0);
}
CF_INLINE int shuffle_idx(int value, int source_lane, unsigned mask = kFullMask) {
  return __nvvm_shfl_sync_idx_i32(mask, value, source_lane, kWarpSize - 1);
}
// Bit i set when lane i (in `mask`) has a true predicate.
CF_INLINE unsigned ballot(bool predicate, unsigned mask = kFullMask) { return __nvvm_vote_ballot_sync(mask, predicate); }
CF_INLINE bool any(bool predicate, unsigned mask = kFullMask) { return __nvvm_vote_any_sync(mask, predicate); }
CF_INLINE bool all(bool predicate, unsigned mask = kFullMask) { return __nvvm_vote_all_sync(mask, predicate); }

// ---- memory ---------------------------------------------------------------------------------
template <typename T>
CF_INLINE T* dynamic_shared() { return reinterpret_cast<T*>(cf_dynamic_shared_bytes); }

// Relaxed device-scope atomics; they return the old value. Never used where the order of
// additions would change a result that feeds weights or the loss (DESIGN.md, Determinism).
CF_INLINE int atomic_add(int* address, int value) { return __nvvm_atom_add_gen_i(address, value); }
CF_INLINE float atomic_add(float* address, float value) { return __nvvm_atom_add_gen_f(address, value); }
CF_INLINE int atomic_max(int* address, int value) { return __nvvm_atom_max_gen_i(address, value); }
CF_INLINE int atomic_cas(int* address, int expected, int desired) { return __nvvm_atom_cas_gen_i(address, expected, desired); }

// The 32-bit shared-window address ldmatrix and cp.async take, from a generic pointer.
CF_INLINE unsigned shared_address(const void* pointer) {
  unsigned address;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(pointer));
  return address;
}

// Copies 16 bytes global -> shared without passing through registers (cp.async.cg, L2 only);
// visible to this thread after cp_async_wait_all(), to the block after that and sync_threads().
CF_INLINE void cp_async_16(void* shared_destination, const void* global_source) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(shared_address(shared_destination)), "l"(global_source) : "memory");
}
CF_INLINE void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `Pending` committed groups are still in flight.
template <int Pending>
CF_INLINE void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory"); }
CF_INLINE void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// ---- tensor cores -----------------------------------------------------------------------------
// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the row addresses of matrix i (16 bytes each, in
// shared memory); register i of lane l receives row l/4, columns 2(l%4) and 2(l%4)+1 of matrix i
// (with trans: rows 2(l%4), 2(l%4)+1 of column l/4).
CF_INLINE void ldmatrix_x1(unsigned (&r)[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(shared_address(row)));
}
CF_INLINE void ldmatrix_x2(unsigned (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(row)));
}
CF_INLINE void ldmatrix_x4(unsigned (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
}
CF_INLINE void ldmatrix_x2_trans(unsigned (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(row)));
}
CF_INLINE void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
}

// d = a·b + c for one warp: a 16x16 bf16 (row), b 16x8 bf16 (col), c and d 16x8 fp32, in the
// fragment layouts of the PTX ISA (mma.m16n8k16, "Matrix fragments for mma.m16n8k16 with
// floating point type"); every lane of the warp must call it.
CF_INLINE void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// ---- arithmetic with the CPU reference's rounding ----------------------------------------------
CF_INLINE float sqrt_rn(float x) { return __nvvm_sqrt_rn_f(x); }
CF_INLINE float div_rn(float a, float b) { return __nvvm_div_rn_f(a, b); }
CF_INLINE float fma_rn(float a, float b, float c) { return __nvvm_fma_rn_f(a, b, c); }
CF_INLINE float floor_f(float x) { return __nvvm_floor_f(x); }
CF_INLINE float max_f(float a, float b) { return __nvvm_fmax_f(a, b); }
CF_INLINE unsigned mul_hi(unsigned a, unsigned b) { return __nvvm_mulhi_ui(a, b); }

CF_INLINE unsigned float_bits(float x) { return static_cast<unsigned>(__nvvm_bitcast_f2i(x)); }
CF_INLINE float bits_float(unsigned x) { return __nvvm_bitcast_i2f(static_cast<int>(x)); }

}  // namespace cf
