// embedding.cu: token embedding lookup and its backward, as the CPU backend.
//   forward:  out[n, :] = table[ids[n], :]                       (fp32 or bf16 table and output)
//   backward: d_table[ids[n], :] += d_out[n, :], in token order  (d_out fp32 or bf16, d_table fp32)
// The backward gives each thread one column and walks the tokens in order: no atomics, so the sums
// are the same on every run. Ids are checked on the host (they come from the batch).
// Launch: forward, any grid of 1-D blocks striding over tokens·dim; backward, ⌈dim/threads⌉ blocks.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void forward(const T* table, const int* ids, T* out, int tokens, int dim) {
  long long n = (long long)tokens * dim;
  for (long long e = cf::global_index(); e < n; e += cf::global_stride()) {
    long long token = e / dim;
    int column = (int)(e % dim);
    out[e] = table[(long long)ids[token] * dim + column];
  }
}

template <typename T>
CF_INLINE void backward(const T* d_out, const int* ids, float* d_table, int tokens, int dim) {
  int column = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  if (column >= dim) return;
  for (int token = 0; token < tokens; ++token) {
    float* target = d_table + (long long)ids[token] * dim + column;
    *target += cf::load(d_out + (long long)token * dim + column);
  }
}

}  // namespace

extern "C" __global__ void embedding_forward_f32(const float* table, const int* ids, float* out, int tokens, int dim) { forward(table, ids, out, tokens, dim); }
CF_EMULATOR_ENTRY(embedding_forward_f32)
extern "C" __global__ void embedding_forward_bf16(const cf::bf16* table, const int* ids, cf::bf16* out, int tokens, int dim) {
  forward(table, ids, out, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_forward_bf16)
extern "C" __global__ void embedding_backward_f32(const float* d_out, const int* ids, float* d_table, int tokens, int dim) {
  backward(d_out, ids, d_table, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_backward_f32)
extern "C" __global__ void embedding_backward_bf16(const cf::bf16* d_out, const int* ids, float* d_table, int tokens, int dim) {
  backward(d_out, ids, d_table, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_backward_bf16)
