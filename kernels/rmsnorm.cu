// rmsnorm.cu: RMSNorm as transformers' LlamaRMSNorm computes it, fp32:
//   y[r, c] = x[r, c] * inv_rms[r] * weight[c],   inv_rms[r] = 1 / sqrt(mean_c(x[r, c]^2) + eps)
// Forward saves inv_rms per row for the backward. Backward, with g = dy ⊙ weight:
//   dx[r, c] += inv_rms[r] · (g[r, c] − x[r, c] · inv_rms[r]² · mean_c(g[r, :] ⊙ x[r, :]))
//   dweight[c] += Σ_r dy[r, c] · x[r, c] · inv_rms[r], summed in row order (no atomics: the
//   result is the same on every run).
// Row kernels: one block per row; blockDim.x threads (a multiple of 32, at most 1024) stride
// over the columns.
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

// Launch: grid (rows), block (threads). Parameters: dy, x [rows, cols], weight [cols],
// inv_rms [rows], dx [rows, cols] (accumulated into), rows, cols.
extern "C" __global__ void rmsnorm_backward_dx_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                                   const float* __restrict__ weight, const float* __restrict__ inv_rms,
                                                   float* __restrict__ dx, int rows, int cols) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  long long offset = (long long)row * cols;
  float dot = 0.0f;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) dot += dy[offset + c] * weight[c] * x[offset + c];
  float inv = inv_rms[row];
  float coef = cf::block_sum(dot, scratch) * inv * inv / cols;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x())
    dx[offset + c] += inv * (dy[offset + c] * weight[c] - x[offset + c] * coef);
}
CF_EMULATOR_ENTRY(rmsnorm_backward_dx_f32)

// Launch: grid (ceil(cols / threads)), block (threads): one thread per column, rows in order.
// Parameters: dy, x [rows, cols], inv_rms [rows], dweight [cols] (accumulated into), rows, cols.
extern "C" __global__ void rmsnorm_backward_dweight_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                                        const float* __restrict__ inv_rms, float* __restrict__ dweight,
                                                        int rows, int cols) {
  int c = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  if (c >= cols) return;
  float sum = dweight[c];
  for (int r = 0; r < rows; ++r) sum += dy[(long long)r * cols + c] * x[(long long)r * cols + c] * inv_rms[r];
  dweight[c] = sum;
}
CF_EMULATOR_ENTRY(rmsnorm_backward_dweight_f32)
