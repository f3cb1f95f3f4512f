// rmsnorm.cu: RMSNorm as transformers' LlamaRMSNorm computes it, fp32:
//   y[r, c] = x[r, c] * inv_rms[r] * weight[c],   inv_rms[r] = 1 / sqrt(mean_c(x[r, c]^2) + eps)
// Forward saves inv_rms per row for the backward. One block per row; blockDim.x threads
// (a multiple of 32, at most 1024) stride over the columns.
#include "common.cuh"

// Launch: grid (rows), block (threads), no dynamic shared memory.
// Parameters: x [rows, cols], weight [cols], y [rows, cols], inv_rms [rows], rows, cols, eps.
extern "C" __global__ void rmsnorm_forward_f32(const float* __restrict__ x, const float* __restrict__ weight,
                                               float* __restrict__ y, float* __restrict__ inv_rms,
                                               int rows, int cols, float eps) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  const float* in = x + (long long)row * cols;
  float* out = y + (long long)row * cols;
  float sum = 0.0f;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) sum += in[c] * in[c];
  float inv = cf::rsqrt(cf::block_sum(sum, scratch) / cols + eps);
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) out[c] = in[c] * inv * weight[c];
  if (cf::thread_x() == 0) inv_rms[row] = inv;
}
CF_EMULATOR_ENTRY(rmsnorm_forward_f32)
