// selftest.cu: kernels that exercise the emulator itself (built into libcuemu only, not into the
// PTX): warp shuffles, the barrier with shared memory, and the block reduction, each checked by
// EmulatorSelfTests against a scalar reference.
#include "../../kernels/common.cuh"

// out[t] = value of lane (t ^ lane_mask) within t's warp, where thread t holds t.
extern "C" __global__ void selftest_shuffle_xor(float* out, int lane_mask) {
  out[cf::thread_x()] = cf::shuffle_xor((float)cf::thread_x(), lane_mask);
}
CF_EMULATOR_ENTRY(selftest_shuffle_xor)

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

// out[t] = sum over the block of (thread index), computed twice in a row to show the scratch
// space is safely reused.
extern "C" __global__ void selftest_block_sum(float* out) {
  __shared__ float scratch[cf::kWarpSize];
  float first = cf::block_sum((float)cf::thread_x(), scratch);
  float second = cf::block_sum(1.0f, scratch);
  out[cf::thread_x()] = first + 1e6f * second;
}
CF_EMULATOR_ENTRY(selftest_block_sum)
