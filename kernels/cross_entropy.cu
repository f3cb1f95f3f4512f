// cross_entropy.cu: softmax cross-entropy per row of logits [rows, vocab] (fp32 or bf16) against
// integer targets, as the CPU backend:
//   loss[r] = max + ln Σ exp(x − max) − x[target]             (0 where target < 0: ignored)
//   d_logits[r, :] = (softmax(x) − onehot(target)) · scale     (0 for ignored rows; may be the logits)
// One block per row: a block maximum, a block sum of exponentials, then the gradient written over
// the row. The target's logit is read before any element is overwritten, so d_logits may alias
// the logits. Deterministic (fixed reduction order). A target ≥ vocab writes NaN (the host checks).
// Launch: grid (rows), block (threads: a multiple of 32, at most 1024).
//
// Fused with the head over vocabulary chunks (the cuda backend's LinearCrossEntropy), so that no [rows, vocab]
// tensor exists: for each chunk of columns [col0, col0 + cols) the backend computes logits = x·head_chunkᵀ, then
//   cross_entropy_chunk_stats   merges the chunk's row maxima and sums of exponentials into running fp32 ones
//                               (online softmax: s ← s·e^(m − m') + Σ e^(x − m')) and picks up the target's logit;
//   cross_entropy_chunk_finish  loss = m + ln s − x[target] (0 ignored, NaN for a target ≥ vocab);
// and, for the gradients, recomputes each chunk's logits and
//   cross_entropy_chunk_grad    overwrites them with (e^(x − m) / s − onehot) · scale,
// which the backend multiplies into dX and dHead. Chunks are visited in order, so results repeat exactly.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void cross_entropy(const T* logits, const int* targets, float* row_loss, T* d_logits, float scale, int rows, int vocab) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  const T* x = logits + (long long)row * vocab;
  int target = targets[row];
  if (target < 0 || target >= vocab) {
    if (cf::thread_x() == 0) row_loss[row] = target < 0 ? 0.0f : __builtin_nanf("");
    if (d_logits != nullptr) {
      for (int c = cf::thread_x(); c < vocab; c += cf::block_dim_x()) cf::store(d_logits + (long long)row * vocab + c, 0.0f);
    }
    return;
  }
  float target_logit = cf::load(x + target);  // before any thread overwrites it
  float max = -__builtin_huge_valf();
  for (int c = cf::thread_x(); c < vocab; c += cf::block_dim_x()) max = cf::max_f(max, cf::load(x + c));
  max = cf::block_max(max, scratch);
  float sum = 0.0f;
  for (int c = cf::thread_x(); c < vocab; c += cf::block_dim_x()) sum += cf::exp(cf::load(x + c) - max);
  sum = cf::block_sum(sum, scratch);
  if (cf::thread_x() == 0) row_loss[row] = max + cf::log(sum) - target_logit;
  if (d_logits == nullptr) return;
  T* d = d_logits + (long long)row * vocab;
  float factor = cf::div_rn(scale, sum);
  for (int c = cf::thread_x(); c < vocab; c += cf::block_dim_x()) {
    float g = cf::exp(cf::load(x + c) - max) * factor;
    cf::store(d + c, c == target ? g - scale : g);
  }
}

// Running statistics of one row over chunks: max (m), sum of e^(x − m) (s) and the target's logit.
template <typename T>
CF_INLINE void chunk_stats(const T* logits, const int* targets, float* row_max, float* row_sum, float* target_logit, int col0, int cols, int rows,
                           int first) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  const T* x = logits + (long long)row * cols;
  float max = -__builtin_huge_valf();
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) max = cf::max_f(max, cf::load(x + c));
  max = cf::block_max(max, scratch);
  float sum = 0.0f;
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) sum += cf::exp(cf::load(x + c) - max);
  sum = cf::block_sum(sum, scratch);
  if (cf::thread_x() != 0) return;
  int target = targets[row];
  if (first) {
    row_max[row] = max;
    row_sum[row] = sum;
    target_logit[row] = 0.0f;
  } else {
    float merged = cf::max_f(row_max[row], max);
    row_sum[row] = row_sum[row] * cf::exp(row_max[row] - merged) + sum * cf::exp(max - merged);
    row_max[row] = merged;
  }
  if (target >= col0 && target < col0 + cols) target_logit[row] = cf::load(x + (target - col0));
}

// (softmax − onehot) · scale over one chunk, in place; 0 for ignored rows.
template <typename T>
CF_INLINE void chunk_grad(T* logits, const int* targets, const float* row_max, const float* row_sum, float scale, int col0, int cols, int rows) {
  int row = cf::block_x();
  if (row >= rows) return;
  T* x = logits + (long long)row * cols;
  int target = targets[row];
  if (target < 0) {
    for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) cf::store(x + c, 0.0f);
    return;
  }
  float max = row_max[row], factor = cf::div_rn(scale, row_sum[row]);
  for (int c = cf::thread_x(); c < cols; c += cf::block_dim_x()) {
    float g = cf::exp(cf::load(x + c) - max) * factor;
    cf::store(x + c, col0 + c == target ? g - scale : g);
  }
}

}  // namespace

// Launch: grid (⌈rows / threads⌉), block (threads). One thread per row.
extern "C" __global__ void cross_entropy_chunk_finish(const float* row_max, const float* row_sum, const float* target_logit, const int* targets,
                                                      float* row_loss, int rows, int vocab) {
  int row = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  if (row >= rows) return;
  int target = targets[row];
  row_loss[row] = target < 0 ? 0.0f : target >= vocab ? __builtin_nanf("") : row_max[row] + cf::log(row_sum[row]) - target_logit[row];
}
CF_EMULATOR_ENTRY(cross_entropy_chunk_finish)

// Launch (stats and grad): grid (rows), block (threads); logits is the chunk [rows, cols], contiguous.
#define CF_CROSS_ENTROPY_CHUNK(T, suffix)                                                                                            \
  extern "C" __global__ void cross_entropy_chunk_stats_##suffix(const T* logits, const int* targets, float* row_max, float* row_sum, \
                                                                float* target_logit, int col0, int cols, int rows, int first) {     \
    chunk_stats(logits, targets, row_max, row_sum, target_logit, col0, cols, rows, first);                                         \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_chunk_stats_##suffix)                                                                              \
  extern "C" __global__ void cross_entropy_chunk_grad_##suffix(T* logits, const int* targets, const float* row_max,                 \
                                                               const float* row_sum, float scale, int col0, int cols, int rows) {    \
    chunk_grad(logits, targets, row_max, row_sum, scale, col0, cols, rows);                                                         \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_chunk_grad_##suffix)

CF_CROSS_ENTROPY_CHUNK(float, f32)
CF_CROSS_ENTROPY_CHUNK(cf::bf16, bf16)

extern "C" __global__ void cross_entropy_f32(const float* logits, const int* targets, float* row_loss, float* d_logits, float scale, int rows, int vocab) {
  cross_entropy(logits, targets, row_loss, d_logits, scale, rows, vocab);
}
CF_EMULATOR_ENTRY(cross_entropy_f32)
extern "C" __global__ void cross_entropy_bf16(const cf::bf16* logits, const int* targets, float* row_loss, cf::bf16* d_logits, float scale, int rows,
                                              int vocab) {
  cross_entropy(logits, targets, row_loss, d_logits, scale, rows, vocab);
}
CF_EMULATOR_ENTRY(cross_entropy_bf16)
