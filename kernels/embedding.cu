// embedding.cu: token embedding lookup and its backward, as the CPU backend.
//   forward:  out[n, :] = table[ids[n], :]                       (fp32 or bf16 table and output)
//   backward: d_table[ids[n], :] += d_out[n, :], in token order  (d_out fp32 or bf16, d_table fp32)
// The backward is parallel over the distinct ids and the columns, with no atomics, in two stages:
//   embedding_backward_links  for each token n: next[n], the next token with the same id (tokens if none), and
//                             first[n], whether no earlier token has it (each thread compares its id with every
//                             token's, a block-sized tile of ids at a time in shared memory);
//   embedding_backward_*      for each first token n and each column: d_table[ids[n], c] is read once, the rows of
//                             n, next[n], next[next[n]], … added to it in token order, and written once.
// Each row of d_table is so summed in exactly the CPU backend's order (the same bits), and only repeats of one id are
// serial. Ids are checked on the host (they come from the batch).
// Launch: forward, any grid of 1-D blocks striding over tokens·dim; links, ⌈tokens/threads⌉ blocks of `threads`
// (any multiple of 32) with threads·4 bytes of dynamic shared memory; backward, grid (tokens, ⌈dim/(threads·8)⌉).
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

// Thread n of the grid: the next token with ids[n]'s id, and whether n is its first.
CF_INLINE void links(const int* ids, int* next, int* first, int tokens) {
  int* tile = cf::dynamic_shared<int>();
  int n = cf::block_x() * cf::block_dim_x() + cf::thread_x();
  int id = n < tokens ? ids[n] : -1, following = tokens, is_first = 1;
  for (int start = 0; start < tokens; start += cf::block_dim_x()) {
    int j = start + cf::thread_x();
    tile[cf::thread_x()] = j < tokens ? ids[j] : -1;
    cf::sync_threads();
    int count = tokens - start < cf::block_dim_x() ? tokens - start : cf::block_dim_x();
    for (int k = 0; k < count; ++k) {
      if (tile[k] == id) {
        int token = start + k;
        if (token < n) is_first = 0;
        if (token > n && token < following) following = token;
      }
    }
    cf::sync_threads();
  }
  if (n < tokens) {
    next[n] = following;
    first[n] = is_first;
  }
}

// Block (n, b): if token n is its id's first, 8 columns per thread (two fp32 and one bf16 or two fp32 16-byte accesses
// a row where d_out's and d_table's rows are all 16-byte aligned, single ones otherwise): d_table's value, then the rows
// of the id's tokens in order.
template <typename T>
CF_INLINE void backward(const T* d_out, const int* ids, const int* next, const int* first, float* d_table, int tokens, int dim) {
  constexpr int V = 8;
  int n = cf::block_x();
  if (n >= tokens || !first[n]) return;
  int c0 = (cf::block_y() * cf::block_dim_x() + cf::thread_x()) * V;
  if (c0 >= dim) return;
  float* target = d_table + (long long)ids[n] * dim + c0;
  float sum[V];
  if (dim % V == 0 && cf::aligned16(d_out) && cf::aligned16(d_table)) {
    cf::load_vec<V>(target, sum);
    for (int token = n; token < tokens; token = next[token]) {
      float row[V];
      cf::load_vec<V>(d_out + (long long)token * dim + c0, row);
      CF_UNROLL
      for (int k = 0; k < V; ++k) sum[k] += row[k];
    }
    cf::store_vec<V>(target, sum);
    return;
  }
  int width = dim - c0 < V ? dim - c0 : V;
  CF_UNROLL
  for (int k = 0; k < V; ++k) sum[k] = k < width ? target[k] : 0.0f;
  for (int token = n; token < tokens; token = next[token]) {
    CF_UNROLL
    for (int k = 0; k < V; ++k) {
      if (k < width) sum[k] += cf::load(d_out + (long long)token * dim + c0 + k);
    }
  }
  CF_UNROLL
  for (int k = 0; k < V; ++k) {
    if (k < width) target[k] = sum[k];
  }
}

}  // namespace

extern "C" __global__ void embedding_forward_f32(const float* table, const int* ids, float* out, int tokens, int dim) { forward(table, ids, out, tokens, dim); }
CF_EMULATOR_ENTRY(embedding_forward_f32)
extern "C" __global__ void embedding_forward_bf16(const cf::bf16* table, const int* ids, cf::bf16* out, int tokens, int dim) {
  forward(table, ids, out, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_forward_bf16)
extern "C" __global__ void embedding_backward_links(const int* ids, int* next, int* first, int tokens) { links(ids, next, first, tokens); }
CF_EMULATOR_ENTRY(embedding_backward_links)
extern "C" __global__ void embedding_backward_f32(const float* d_out, const int* ids, const int* next, const int* first, float* d_table, int tokens,
                                                  int dim) {
  backward(d_out, ids, next, first, d_table, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_backward_f32)
extern "C" __global__ void embedding_backward_bf16(const cf::bf16* d_out, const int* ids, const int* next, const int* first, float* d_table,
                                                   int tokens, int dim) {
  backward(d_out, ids, next, first, d_table, tokens, dim);
}
CF_EMULATOR_ENTRY(embedding_backward_bf16)
