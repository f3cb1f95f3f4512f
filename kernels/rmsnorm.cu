// rmsnorm.cu: RMSNorm as transformers' LlamaRMSNorm computes it, on fp32 or bf16 x, weight, y, dy and dx, with
// fp32 statistics, fp32 dweight and fp32 arithmetic:
//   y[r, c] = x[r, c] * inv_rms[r] * weight[c],   inv_rms[r] = 1 / sqrt(mean_c(x[r, c]^2) + eps)
// Forward saves inv_rms per row for the backward; the residual form first adds the residual branch,
//   sum = x + delta (stored, in x's dtype), and normalises the stored sum (one pass instead of two).
// Backward, with g = dy ⊙ weight:
//   dx[r, c] += inv_rms[r] · (g[r, c] − x[r, c] · inv_rms[r]² · mean_c(g[r, :] ⊙ x[r, :]))
//   dweight[c] += Σ_r dy[r, c] · x[r, c] · inv_rms[r], in two stages, parallel over rows and columns with no atomics
//   (the result is the same on every run): stage 1 (backward_dweight_partials) sums each fixed slice of rows_per_slice
//   rows, in row order, into partials[slice, c] (fp32 scratch [slices, cols]); stage 2 (backward_dweight_sum) adds the
//   slices' partials in slice order and that total to dweight[c].
// Row kernels: one block per row; blockDim.x threads (a multiple of 32, at most 1024) stride
// over the columns.
#include "common.cuh"

namespace {

// Launch: grid (rows), block (threads), no dynamic shared memory. With delta, x + delta is stored into sum and
// normalised as stored; each thread re-reads only the elements it wrote itself (so sum may be x).
template <typename T>
CF_INLINE void forward(const T* x, const T* __restrict__ delta, T* sum_out, const T* __restrict__ weight, T* __restrict__ y,
                       float* __restrict__ inv_rms, int rows, int cols, float eps) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  long long offset = (long long)row * cols;
  const T* in = x + offset;
  if (delta != nullptr) {
    for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) cf::store(sum_out + offset + c, cf::load(in + c) + cf::load(delta + offset + c));
    in = sum_out + offset;
  }
  float sum = 0.0f;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) {
    float v = cf::load(in + c);
    sum += v * v;
  }
  float inv = cf::rsqrt(cf::block_sum(sum, scratch) / cols + eps);
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) cf::store(y + offset + c, cf::load(in + c) * inv * cf::load(weight + c));
  if (cf::thread_x() == 0) inv_rms[row] = inv;
}

// Launch: grid (rows), block (threads). dx is accumulated into.
template <typename T>
CF_INLINE void backward_dx(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ weight, const float* __restrict__ inv_rms,
                           T* __restrict__ dx, int rows, int cols) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  long long offset = (long long)row * cols;
  float dot = 0.0f;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) dot += cf::load(dy + offset + c) * cf::load(weight + c) * cf::load(x + offset + c);
  float inv = inv_rms[row];
  float coef = cf::block_sum(dot, scratch) * inv * inv / cols;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) {
    float g = cf::load(dy + offset + c) * cf::load(weight + c);
    cf::store(dx + offset + c, cf::load(dx + offset + c) + inv * (g - cf::load(x + offset + c) * coef));
  }
}

// Launch: grid (⌈cols / (threads · kVec<T>)⌉, slices), block (threads). Block (b, s) sums rows [s · rows_per_slice,
// (s + 1) · rows_per_slice) of kVec<T> columns per thread (8 bf16 / 4 fp32: one 16-byte load per row where every row is
// 16-byte aligned, single loads otherwise), each column in row order, into partials[s, c].
template <typename T>
CF_INLINE void backward_dweight_partials(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ inv_rms,
                                         float* __restrict__ partials, int rows, int cols, int rows_per_slice) {
  constexpr int V = cf::kVec<T>;
  int c0 = (cf::block_x() * cf::block_dim_x() + cf::thread_x()) * V;
  if (c0 >= cols) return;
  int slice = cf::block_y(), r0 = slice * rows_per_slice, r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
  float sum[V];
  CF_UNROLL
  for (int k = 0; k < V; ++k) sum[k] = 0.0f;
  if (cols % V == 0 && cf::aligned16(dy) && cf::aligned16(x)) {
    for (int r = r0; r < r1; ++r) {
      float d[V], v[V], inv = inv_rms[r];
      cf::load_vec<V>(dy + (long long)r * cols + c0, d);
      cf::load_vec<V>(x + (long long)r * cols + c0, v);
      CF_UNROLL
      for (int k = 0; k < V; ++k) sum[k] += d[k] * v[k] * inv;
    }
  } else {
    for (int r = r0; r < r1; ++r) {
      float inv = inv_rms[r];
      CF_UNROLL
      for (int k = 0; k < V; ++k) {
        if (c0 + k < cols) sum[k] += cf::load(dy + (long long)r * cols + c0 + k) * cf::load(x + (long long)r * cols + c0 + k) * inv;
      }
    }
  }
  float* out = partials + (long long)slice * cols + c0;
  CF_UNROLL
  for (int k = 0; k < V; ++k) {
    if (c0 + k < cols) out[k] = sum[k];
  }
}

}  // namespace

// Launch: grid (⌈cols / threads⌉), block (threads): one thread per column. dweight[c] += Σ_s partials[s, c], the slices
// summed in order first.
extern "C" __global__ void rmsnorm_backward_dweight_sum(const float* partials, float* dweight, int slices, int cols) {
  int c = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  if (c >= cols) return;
  float total = partials[c];
  for (int s = 1; s < slices; ++s) total += partials[(long long)s * cols + c];
  dweight[c] += total;
}
CF_EMULATOR_ENTRY(rmsnorm_backward_dweight_sum)

// Parameters: x [rows, cols], (residual form: delta [rows, cols], sum [rows, cols]), weight [cols], y [rows, cols], inv_rms [rows], rows, cols, eps.
#define CF_RMSNORM(T, suffix)                                                                                                   \
  extern "C" __global__ void rmsnorm_forward_##suffix(const T* x, const T* weight, T* y, float* inv_rms, int rows, int cols,   \
                                                      float eps) {                                                              \
    forward<T>(x, nullptr, nullptr, weight, y, inv_rms, rows, cols, eps);                                                        \
  }                                                                                                                             \
  CF_EMULATOR_ENTRY(rmsnorm_forward_##suffix)                                                                                   \
  extern "C" __global__ void rmsnorm_residual_forward_##suffix(const T* x, const T* delta, T* sum, const T* weight, T* y,      \
                                                               float* inv_rms, int rows, int cols, float eps) {                 \
    forward<T>(x, delta, sum, weight, y, inv_rms, rows, cols, eps);                                                             \
  }                                                                                                                             \
  CF_EMULATOR_ENTRY(rmsnorm_residual_forward_##suffix)                                                                          \
  extern "C" __global__ void rmsnorm_backward_dx_##suffix(const T* dy, const T* x, const T* weight, const float* inv_rms, T* dx, \
                                                          int rows, int cols) {                                                 \
    backward_dx(dy, x, weight, inv_rms, dx, rows, cols);                                                                        \
  }                                                                                                                             \
  CF_EMULATOR_ENTRY(rmsnorm_backward_dx_##suffix)                                                                               \
  extern "C" __global__ void rmsnorm_backward_dweight_partials_##suffix(const T* dy, const T* x, const float* inv_rms,          \
                                                                        float* partials, int rows, int cols, int rows_per_slice) { \
    backward_dweight_partials(dy, x, inv_rms, partials, rows, cols, rows_per_slice);                                           \
  }                                                                                                                             \
  CF_EMULATOR_ENTRY(rmsnorm_backward_dweight_partials_##suffix)

CF_RMSNORM(float, f32)
CF_RMSNORM(cf::bf16, bf16)
