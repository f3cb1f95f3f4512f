// cross_entropy.cu: softmax cross-entropy per row of logits [rows, vocab] (fp32 or bf16) against
// integer targets, as the CPU backend:
//   loss[r] = max + ln Σ exp(x − max) − x[target]             (0 where target < 0: ignored)
//   d_logits[r, :] = (softmax(x) − onehot(target)) · scale     (0 for ignored rows; may be the logits)
// One block per row: a block maximum, a block sum of exponentials, then the gradient written over
// the row. The target's logit is read before any element is overwritten, so d_logits may alias
// the logits. Deterministic (fixed reduction order). A target ≥ vocab writes NaN (the host checks).
// Launch: grid (rows), block (threads: a multiple of 32, at most 1024).
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

}  // namespace

extern "C" __global__ void cross_entropy_f32(const float* logits, const int* targets, float* row_loss, float* d_logits, float scale, int rows, int vocab) {
  cross_entropy(logits, targets, row_loss, d_logits, scale, rows, vocab);
}
CF_EMULATOR_ENTRY(cross_entropy_f32)
extern "C" __global__ void cross_entropy_bf16(const cf::bf16* logits, const int* targets, float* row_loss, cf::bf16* d_logits, float scale, int rows,
                                              int vocab) {
  cross_entropy(logits, targets, row_loss, d_logits, scale, rows, vocab);
}
CF_EMULATOR_ENTRY(cross_entropy_bf16)
