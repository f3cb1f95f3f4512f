// cross_entropy.cu: softmax cross-entropy per row of logits [rows, vocab] (fp32 or bf16) against
// integer targets, as the CPU backend:
//   loss[r] = max + ln Σ exp(x − max) − x[target]             (0 where target < 0: ignored)
//   d_logits[r, :] = (softmax(x) − onehot(target)) · scale     (0 for ignored rows; may be the logits)
// One block per row: a block maximum, a block sum of exponentials, then the gradient written over
// the row. The target's logit is read before any element is overwritten, so d_logits may alias
// the logits. Deterministic (fixed reduction order). A target ≥ vocab writes NaN (the host checks).
// Launch: grid (rows), block (threads: a multiple of 32, at most 1024).
// The row loops read and write 16 bytes at a time (8 bf16 / 4 fp32) from the row's first 16-byte boundary on, single
// elements before and after it (common.cuh, row_for_each), so any row length and offset works.
//
// Fused with the head over vocabulary chunks (the cuda backend's LinearCrossEntropy), so that no [rows, vocab]
// tensor exists: for each chunk of columns [col0, col0 + cols) the backend computes logits = x·head_chunkᵀ, then
//   cross_entropy_chunk_stats   merges the chunk's row maxima and sums of exponentials into running fp32 ones
//                               (online softmax: s ← s·e^(m − m') + Σ e^(x − m')) and picks up the target's logit;
//   cross_entropy_chunk_finish  loss = m + ln s − x[target] (0 ignored, NaN for a target ≥ vocab).
// For the gradients there are two ways:
//  - dX only (the head frozen: LoRA), one pass, each chunk's logits computed once:
//      cross_entropy_chunk_exp      the stats merge above, and the chunk overwritten with e^(x − m'), m' the running
//                                   maximum (0 for ignored rows), and rescale[r] = e^(m − m') for the accumulator;
//      cross_entropy_rescale_rows   acc[r, :] ·= rescale[r] (rows whose maximum did not move are left alone);
//    the backend adds e^(x − m')·head_chunk into the fp32 accumulator acc [rows, hidden] (a GEMM, beta 1), and at the end
//      cross_entropy_dx_finish      dX = acc · scale / s − scale · head[target]  (0 for ignored rows), rounded once.
//  - with dHead (which needs the final statistics for every chunk), a second pass recomputes each chunk's logits and
//      cross_entropy_chunk_grad     overwrites them with (e^(x − m) / s − onehot) · scale,
//    which the backend multiplies into dHead and into an fp32 dX (rounded to bf16 once at the end).
// Chunks are visited in order, so results repeat exactly.
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
    if (d_logits != nullptr) cf::row_transform(d_logits + (long long)row * vocab, vocab, [](int, float) { return 0.0f; });
    return;
  }
  float target_logit = cf::load(x + target);  // before any thread overwrites it
  float max = -__builtin_huge_valf();
  cf::row_for_each(x, vocab, [&](int, float v) { max = cf::max_f(max, v); });
  max = cf::block_max(max, scratch);
  float sum = 0.0f;
  cf::row_for_each(x, vocab, [&](int, float v) { sum += cf::exp(v - max); });
  sum = cf::block_sum(sum, scratch);
  if (cf::thread_x() == 0) row_loss[row] = max + cf::log(sum) - target_logit;
  if (d_logits == nullptr) return;
  // d_logits is the logits or a separate row: read x, write d (the same walk, so each thread rewrites only what it read).
  T* d = d_logits + (long long)row * vocab;
  float factor = cf::div_rn(scale, sum);
  auto gradient = [&](int c, float v) {
    float g = cf::exp(v - max) * factor;
    return c == target ? g - scale : g;
  };
  if (d == x) {
    cf::row_transform(d, vocab, gradient);
  } else {
    for (int c = cf::thread_x(); c < vocab; c += cf::block_dim_x()) cf::store(d + c, gradient(c, cf::load(x + c)));
  }
}

// Running statistics of one row over chunks: max (m), sum of e^(x − m) (s) and the target's logit. With `rescale`, the
// chunk is then overwritten with e^(x − m'), m' the merged maximum (0 for ignored rows), and rescale[row] = e^(m − m').
template <typename T>
CF_INLINE void chunk_stats(T* logits, const int* targets, float* row_max, float* row_sum, float* target_logit, float* rescale, int col0, int cols,
                           int rows, int first) {
  __shared__ float scratch[cf::kWarpSize];
  int row = cf::block_x();
  if (row >= rows) return;
  T* x = logits + (long long)row * cols;
  int target = targets[row];
  float old_max = first ? 0.0f : row_max[row];  // read by every thread before thread 0 writes it (block_max syncs between)
  float max = -__builtin_huge_valf();
  cf::row_for_each(x, cols, [&](int, float v) { max = cf::max_f(max, v); });
  max = cf::block_max(max, scratch);
  float sum = 0.0f;
  cf::row_for_each(x, cols, [&](int, float v) { sum += cf::exp(v - max); });
  sum = cf::block_sum(sum, scratch);
  float merged = first ? max : cf::max_f(old_max, max);
  if (cf::thread_x() == 0) {
    if (first) {
      row_max[row] = max;
      row_sum[row] = sum;
      target_logit[row] = 0.0f;
    } else {
      row_sum[row] = row_sum[row] * cf::exp(old_max - merged) + sum * cf::exp(max - merged);
      row_max[row] = merged;
    }
    if (target >= col0 && target < col0 + cols) target_logit[row] = cf::load(x + (target - col0));
    if (rescale != nullptr) rescale[row] = first ? 1.0f : cf::exp(old_max - merged);
  }
  if (rescale == nullptr) return;
  cf::sync_threads();  // thread 0 has read the target's logit
  if (target < 0) {
    cf::row_transform(x, cols, [](int, float) { return 0.0f; });
  } else {
    cf::row_transform(x, cols, [&](int, float v) { return cf::exp(v - merged); });
  }
}

// (softmax − onehot) · scale over one chunk, in place; 0 for ignored rows.
template <typename T>
CF_INLINE void chunk_grad(T* logits, const int* targets, const float* row_max, const float* row_sum, float scale, int col0, int cols, int rows) {
  int row = cf::block_x();
  if (row >= rows) return;
  T* x = logits + (long long)row * cols;
  int target = targets[row];
  if (target < 0) {
    cf::row_transform(x, cols, [](int, float) { return 0.0f; });
    return;
  }
  float max = row_max[row], factor = cf::div_rn(scale, row_sum[row]);
  cf::row_transform(x, cols, [&](int c, float v) {
    float g = cf::exp(v - max) * factor;
    return col0 + c == target ? g - scale : g;
  });
}

// dx[row, :] = acc[row, :] · (scale / s) − scale · head[target, :]; 0 for ignored rows, no onehot term for a target ≥ vocab.
// acc is fp32; dx may be acc itself (fp32 compute). 8 elements a step (two fp32 and one bf16 16-byte accesses) where acc,
// head's row and dx are all 16-byte aligned, one at a time otherwise.
template <typename T>
CF_INLINE void dx_finish(const float* acc, const T* head, const int* targets, const float* row_sum, T* dx, float scale, int rows, int hidden,
                         int vocab) {
  int row = cf::block_x();
  if (row >= rows) return;
  int target = targets[row];
  const float* a = acc + (long long)row * hidden;
  T* d = dx + (long long)row * hidden;
  bool onehot = target >= 0 && target < vocab;
  const T* h = head + (long long)(onehot ? target : 0) * hidden;
  float factor = target < 0 ? 0.0f : cf::div_rn(scale, row_sum[row]), hot = onehot ? scale : 0.0f;
  auto value = [&](float av, float hv) { return target < 0 ? 0.0f : av * factor - hot * hv; };
  constexpr int V = 8;
  bool vectors = cf::aligned16(a) && cf::aligned16(h) && cf::aligned16(d);
  int whole = vectors ? hidden / V : 0;
  for (int j = cf::thread_x(); j < whole; j += cf::block_dim_x()) {
    float av[V], hv[V];
    cf::load_vec<V>(a + j * V, av);
    cf::load_vec<V>(h + j * V, hv);
    CF_UNROLL
    for (int k = 0; k < V; ++k) av[k] = value(av[k], hv[k]);
    cf::store_vec<V>(d + j * V, av);
  }
  for (int c = whole * V + cf::thread_x(); c < hidden; c += cf::block_dim_x()) cf::store(d + c, value(a[c], cf::load(h + c)));
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

// Launch: grid (rows), block (threads). acc [rows, cols] fp32; rows whose factor is 1 are skipped (x · 1 = x).
extern "C" __global__ void cross_entropy_rescale_rows(float* acc, const float* rescale, int rows, int cols) {
  int row = cf::block_x();
  if (row >= rows) return;
  float factor = rescale[row];
  if (factor == 1.0f) return;
  cf::row_transform(acc + (long long)row * cols, cols, [&](int, float v) { return v * factor; });
}
CF_EMULATOR_ENTRY(cross_entropy_rescale_rows)

// Launch (stats, exp and grad): grid (rows), block (threads); logits is the chunk [rows, cols], contiguous.
// dx_finish: grid (rows), block (threads); acc [rows, hidden] fp32, head [vocab, hidden], dx [rows, hidden].
#define CF_CROSS_ENTROPY_CHUNK(T, suffix)                                                                                            \
  extern "C" __global__ void cross_entropy_chunk_stats_##suffix(const T* logits, const int* targets, float* row_max, float* row_sum, \
                                                                float* target_logit, int col0, int cols, int rows, int first) {     \
    chunk_stats(const_cast<T*>(logits), targets, row_max, row_sum, target_logit, nullptr, col0, cols, rows, first);                \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_chunk_stats_##suffix)                                                                              \
  extern "C" __global__ void cross_entropy_chunk_exp_##suffix(T* logits, const int* targets, float* row_max, float* row_sum,         \
                                                              float* target_logit, float* rescale, int col0, int cols, int rows,     \
                                                              int first) {                                                           \
    chunk_stats(logits, targets, row_max, row_sum, target_logit, rescale, col0, cols, rows, first);                                 \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_chunk_exp_##suffix)                                                                                \
  extern "C" __global__ void cross_entropy_chunk_grad_##suffix(T* logits, const int* targets, const float* row_max,                 \
                                                               const float* row_sum, float scale, int col0, int cols, int rows) {    \
    chunk_grad(logits, targets, row_max, row_sum, scale, col0, cols, rows);                                                         \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_chunk_grad_##suffix)                                                                               \
  extern "C" __global__ void cross_entropy_dx_finish_##suffix(const float* acc, const T* head, const int* targets,                   \
                                                              const float* row_sum, T* dx, float scale, int rows, int hidden,        \
                                                              int vocab) {                                                           \
    dx_finish(acc, head, targets, row_sum, dx, scale, rows, hidden, vocab);                                                          \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(cross_entropy_dx_finish_##suffix)

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
