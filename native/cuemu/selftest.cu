// selftest.cu: kernels that exercise the primitives of kernels/common.cuh one at a time — warp
// shuffles and votes with masks, the barrier with static and dynamic shared memory, atomics,
// cp.async, ldmatrix and mma.m16n8k16 fragments — and the floating-point contraction rule. EmulatorSelfTests checks them on the emulator
// against scalar references; on a GPU, CudaKernelTests and verify-kernels run the same PTX, which
// checks the emulator's model of the hardware against the hardware.
#include "../../kernels/common.cuh"

// out[t] = the value of the lane that shuffle `op` (0 xor, 1 idx, 2 down, 3 up) with `parameter`
// reads, where thread t holds t.
extern "C" __global__ void selftest_shuffle(float* out, int op, int parameter) {
  float mine = (float)cf::thread_x();
  float value = op == 0   ? cf::shuffle_xor(mine, parameter)
                : op == 1 ? cf::shuffle_idx(mine, parameter)
                : op == 2 ? cf::shuffle_down(mine, parameter)
                          : cf::shuffle_up(mine, parameter);
  out[cf::thread_x()] = value;
}
CF_EMULATOR_ENTRY(selftest_shuffle)

// The predicate of thread t is (t % modulus == 0). With `split`, the two half-warps vote
// separately (masks 0x0000ffff and 0xffff0000). out[3t..3t+2] = ballot, any, all.
extern "C" __global__ void selftest_vote(unsigned* out, int modulus, int split) {
  int t = cf::thread_x();
  unsigned mask = !split ? cf::kFullMask : cf::lane() < 16 ? 0x0000ffffu : 0xffff0000u;
  bool predicate = t % modulus == 0;
  out[3 * t] = cf::ballot(predicate, mask);
  out[3 * t + 1] = cf::any(predicate, mask) ? 1u : 0u;
  out[3 * t + 2] = cf::all(predicate, mask) ? 1u : 0u;
}
CF_EMULATOR_ENTRY(selftest_vote)

// Each thread writes its slot of shared memory, waits at the barrier, and reads its neighbour's:
// out[b * n + t] = 2 * ((t + 1) % n) + 1000 * b.
extern "C" __global__ void selftest_barrier(float* out) {
  __shared__ float slots[1024];
  int t = cf::thread_x(), n = cf::block_dim_x(), b = cf::block_x();
  slots[t] = 2.0f * t + 1000.0f * b;
  cf::sync_threads();
  out[b * n + t] = slots[(t + 1) % n];
}
CF_EMULATOR_ENTRY(selftest_barrier)

// The same through dynamic shared memory of `floats` floats (which may exceed the 48 KiB of
// static shared memory): thread t fills every n-th slot from t, then reads the mirrored slot.
extern "C" __global__ void selftest_dynamic_shared(float* out, int floats) {
  float* slots = cf::dynamic_shared<float>();
  int t = cf::thread_x(), n = cf::block_dim_x();
  for (int i = t; i < floats; i += n) slots[i] = 3.0f * i;
  cf::sync_threads();
  for (int i = t; i < floats; i += n) out[i] = slots[floats - 1 - i];
}
CF_EMULATOR_ENTRY(selftest_dynamic_shared)

// out[t] = sum over the block of (thread index), computed twice in a row to show the scratch
// space is safely reused.
extern "C" __global__ void selftest_block_sum(float* out) {
  __shared__ float scratch[cf::kWarpSize];
  float first = cf::block_sum((float)cf::thread_x(), scratch);
  float second = cf::block_sum(1.0f, scratch);
  out[cf::thread_x()] = first + 1e6f * second;
}
CF_EMULATOR_ENTRY(selftest_block_sum)

// Every thread of the grid (blocks x, y) adds 1 to counters[0] and 1.0f to sum, and offers its
// global index to counters[1] (a maximum); counters[2] counts the threads that saw a compare-and-
// swap of counters[3] from 0 to 1 succeed (exactly one).
extern "C" __global__ void selftest_atomics(int* counters, float* sum) {
  int block = cf::block_y() * cf::grid_dim_x() + cf::block_x();
  int index = block * cf::block_dim_x() + cf::thread_x();
  cf::atomic_add(&counters[0], 1);
  cf::atomic_add(sum, 1.0f);
  cf::atomic_max(&counters[1], index);
  if (cf::atomic_cas(&counters[3], 0, 1) == 0) cf::atomic_add(&counters[2], 1);
}
CF_EMULATOR_ENTRY(selftest_atomics)

// Copies a 16x16 bf16 tile (row-major) into shared memory with cp.async, then loads it with
// ldmatrix .x4 (trans when `trans`), lane l giving the address of row l%8 + 8((l/8)%2), column
// 8(l/16): the four 8x8 quarters in the order top-left, bottom-left, top-right, bottom-right.
// out[4l + i] = register i of lane l.
extern "C" __global__ void selftest_ldmatrix(const cf::bf16* tile, unsigned* out, int trans) {
  __shared__ __attribute__((aligned(16))) cf::bf16 shared_tile[16 * 16];
  int l = cf::thread_x();
  cf::cp_async_16(&shared_tile[8 * l], &tile[8 * l]);  // 32 lanes x 16 bytes = the whole tile
  cf::cp_async_commit();
  cf::cp_async_wait_all();
  cf::sync_threads();
  unsigned r[4];
  const cf::bf16* row = &shared_tile[16 * (l % 8 + 8 * ((l / 8) % 2)) + 8 * (l / 16)];
  if (trans) cf::ldmatrix_x4_trans(r, row);
  else cf::ldmatrix_x4(r, row);
  for (int i = 0; i < 4; ++i) out[4 * l + i] = r[i];
}
CF_EMULATOR_ENTRY(selftest_ldmatrix)

// d = a·b + c for a 16x16 a (row-major bf16), a 16x8 b (row-major bf16: b[k * 8 + n]) and 16x8 c
// and d (row-major fp32), one warp. The fragments are gathered from global memory with the PTX
// ISA's formulas, so mma is checked on its own, apart from ldmatrix.
extern "C" __global__ void selftest_mma(const cf::bf16* a, const cf::bf16* b, const float* c, float* d) {
  int l = cf::thread_x(), group = l >> 2, in_group = l % 4;
  unsigned fa[4], fb[2];
  float fc[4], fd[4];
  for (int r = 0; r < 4; ++r) {  // register r holds a_{2r}, a_{2r+1}
    int row = group + ((r & 1) ? 8 : 0), col = in_group * 2 + ((r & 2) ? 8 : 0);
    fa[r] = cf::pack_bf16x2(a[row * 16 + col], a[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {  // register r holds b_{2r}, b_{2r+1}
    int k = in_group * 2 + (r ? 8 : 0);
    fb[r] = cf::pack_bf16x2(b[k * 8 + group], b[(k + 1) * 8 + group]);
  }
  for (int i = 0; i < 4; ++i) fc[i] = c[(group + (i >= 2 ? 8 : 0)) * 8 + in_group * 2 + (i & 1)];
  cf::mma_bf16_16816(fd, fa, fb, fc);
  for (int i = 0; i < 4; ++i) d[(group + (i >= 2 ? 8 : 0)) * 8 + in_group * 2 + (i & 1)] = fd[i];
}
CF_EMULATOR_ENTRY(selftest_mma)

// The same product the way real kernels feed the tensor cores: a and b staged in shared memory,
// a loaded with ldmatrix .x4 and b (row-major, k by n) with ldmatrix .x2.trans.
extern "C" __global__ void selftest_mma_ldmatrix(const cf::bf16* a, const cf::bf16* b, const float* c, float* d) {
  __shared__ __attribute__((aligned(16))) cf::bf16 shared_a[16 * 16];
  __shared__ __attribute__((aligned(16))) cf::bf16 shared_b[16 * 8];
  int l = cf::thread_x(), group = l >> 2, in_group = l % 4;
  cf::cp_async_16(&shared_a[8 * l], &a[8 * l]);
  if (l < 16) cf::cp_async_16(&shared_b[8 * l], &b[8 * l]);
  cf::cp_async_commit();
  cf::cp_async_wait<0>();
  cf::sync_threads();
  unsigned fa[4], fb[2];
  cf::ldmatrix_x4(fa, &shared_a[16 * (l % 8 + 8 * ((l / 8) % 2)) + 8 * (l / 16)]);
  cf::ldmatrix_x2_trans(fb, &shared_b[8 * (l % 16)]);  // lanes 0-7: rows k 0-7, lanes 8-15: k 8-15
  float fc[4], fd[4];
  for (int i = 0; i < 4; ++i) fc[i] = c[(group + (i >= 2 ? 8 : 0)) * 8 + in_group * 2 + (i & 1)];
  cf::mma_bf16_16816(fd, fa, fb, fc);
  for (int i = 0; i < 4; ++i) d[(group + (i >= 2 ? 8 : 0)) * 8 + in_group * 2 + (i & 1)] = fd[i];
}
CF_EMULATOR_ENTRY(selftest_mma_ldmatrix)

// The floating-point contraction rule (CMakeLists.txt: -ffp-contract=off on both builds): out[2t] = a[t]·b[t] + c[t]
// written out, which must be rounded twice (product, then sum), and out[2t + 1] = fma_rn(a[t], b[t], c[t]), rounded
// once. Where the two differ, a compile that fused the first (the CUDA default) or an fma_rn that was not fused shows.
extern "C" __global__ void selftest_contraction(const float* a, const float* b, const float* c, float* out, int n) {
  int t = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  if (t >= n) return;
  out[2 * t] = a[t] * b[t] + c[t];
  out[2 * t + 1] = cf::fma_rn(a[t], b[t], c[t]);
}
CF_EMULATOR_ENTRY(selftest_contraction)
