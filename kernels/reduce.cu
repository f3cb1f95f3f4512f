// reduce.cu: Σx or Σx² of a tensor (fp32 or bf16), deterministically, in two stages: a fixed
// grid of blocks (the launcher's, never the GPU's size) each sums a fixed contiguous chunk into
// partials[block]; the host adds the partials in order, in double. The same input gives the same
// bits on every run and every GPU. Used for Sum, SumOfSquares and the global gradient norm.
// Launch: grid (blocks), block (threads: a multiple of 32); partials has `blocks` floats.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void partial_sums(const T* x, long long n, int squares, float* partials) {
  __shared__ float scratch[cf::kWarpSize];
  long long chunk = (n + cf::grid_dim_x() - 1) / cf::grid_dim_x();
  long long start = chunk * cf::block_x(), end = start + chunk < n ? start + chunk : n;
  float sum = 0.0f;
  for (long long i = start + cf::thread_x(); i < end; i += cf::block_dim_x()) {
    float value = cf::load(x + i);
    sum = cf::fma_rn(value, squares ? value : 1.0f, sum);  // value · 1 + sum is exactly value + sum
  }
  sum = cf::block_sum(sum, scratch);
  if (cf::thread_x() == 0) partials[cf::block_x()] = sum;
}

}  // namespace

extern "C" __global__ void reduce_f32(const float* x, long long n, int squares, float* partials) { partial_sums(x, n, squares, partials); }
CF_EMULATOR_ENTRY(reduce_f32)
extern "C" __global__ void reduce_bf16(const cf::bf16* x, long long n, int squares, float* partials) { partial_sums(x, n, squares, partials); }
CF_EMULATOR_ENTRY(reduce_bf16)
