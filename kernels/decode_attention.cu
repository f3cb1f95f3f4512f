// decode_attention.cu: attention of n new query rows against a key/value cache, for text generation (batch 1), as
// the CPU backend's AttentionDecode: row i sits at position past + i and attends to cache rows 0..past+i with an
// exact softmax, in fp32 whatever the tensors' dtype:
//   s_j = scale · q_i·k_j,   p = softmax(s),   out_i = Σ_j p_j · v_j
// Layouts: q, out [n, q_heads·D]; caches [capacity, kv_heads·D]; kv head of query head h = h / (q_heads / kv_heads).
// A block per (row, query head): its threads score the keys into shared memory, take the block maximum and sum, then
// each thread owns output dimensions. Deterministic (fixed reduction order). Generation is one token at a time, so
// this is memory-bound and simple on purpose.
// Launch: grid (n, q_heads), block (threads, a multiple of 32), dynamic shared memory (past + n) · 4 bytes.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void decode(const T* q, const T* k_cache, const T* v_cache, T* out, int past, int rows, int q_heads, int kv_heads, int head_dim, float scale) {
  __shared__ float scratch[cf::kWarpSize];
  float* scores = cf::dynamic_shared<float>();
  int i = cf::block_x(), h = cf::block_y();
  if (i >= rows || h >= q_heads) return;
  int kv_head = h / (q_heads / kv_heads), keys = past + i + 1;
  long long q_stride = (long long)q_heads * head_dim, kv_stride = (long long)kv_heads * head_dim;
  const T* q_row = q + i * q_stride + (long long)h * head_dim;

  float max = -__builtin_huge_valf();
  for (int j = cf::thread_x(); j < keys; j += cf::block_dim_x()) {
    const T* k_row = k_cache + j * kv_stride + (long long)kv_head * head_dim;
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot = cf::fma_rn(cf::load(q_row + d), cf::load(k_row + d), dot);
    scores[j] = dot * scale;
    max = cf::max_f(max, scores[j]);
  }
  max = cf::block_max(max, scratch);
  float sum = 0.0f;
  for (int j = cf::thread_x(); j < keys; j += cf::block_dim_x()) {
    scores[j] = cf::exp(scores[j] - max);
    sum += scores[j];
  }
  float inverse = cf::div_rn(1.0f, cf::block_sum(sum, scratch));  // its barriers also publish every score
  for (int d = cf::thread_x(); d < head_dim; d += cf::block_dim_x()) {
    const T* v_column = v_cache + (long long)kv_head * head_dim + d;
    float acc = 0.0f;
    for (int j = 0; j < keys; ++j) acc = cf::fma_rn(scores[j], cf::load(v_column + j * kv_stride), acc);
    cf::store(out + i * q_stride + (long long)h * head_dim + d, acc * inverse);
  }
}

}  // namespace

#define CF_DECODE_ATTENTION(T, suffix)                                                                                             \
  extern "C" __global__ void decode_attention_##suffix(const T* q, const T* k_cache, const T* v_cache, T* out, int past, int rows, \
                                                       int q_heads, int kv_heads, int head_dim, float scale) {                    \
    decode(q, k_cache, v_cache, out, past, rows, q_heads, kv_heads, head_dim, scale);                                             \
  }                                                                                                                                \
  CF_EMULATOR_ENTRY(decode_attention_##suffix)

CF_DECODE_ATTENTION(float, f32)
CF_DECODE_ATTENTION(cf::bf16, bf16)
