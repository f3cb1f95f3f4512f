// lora.cu: a LoRA projection with its adapter's product folded into the output tiles; bf16 in and out, fp32 accumulation.
//   forward   y  = x·Wᵀ + low·Bᵀ            x [T, K], W [N, K], B [N, R], low = s·dropout(x)·Aᵀ [T, R]
//   backward  dx = dy·W + drop(dlow·A)  (+ dx)     dy [T, N], A [R, K], dlow = s·dy·B [T, R]
//             where drop is the adapter's dropout (its mask regenerated from the Philox key, as elementwise.cu's
//             dropout draws it for the element's index in dx; threshold 0 and scale 1 keep everything)
// low and dlow are made once per call by a small GEMM (cuBLASLt); each block then computes one 64 × 64 tile of the
// output in fp32 registers: the large product in 64-deep steps, then the adapter's R in 64-deep steps (zero-padded)
// into the same accumulators, so the output is written once with the adapter already in it. dA = dlowᵀ·dropout(x)
// and dB = dyᵀ·low are small GEMMs, left to cuBLASLt. Each warp owns 16 rows of the tile (mma_tiles.cuh).
// The backward keeps the two products in separate accumulators, so the mask applies to the adapter's alone.
// Launch: grid (⌈output columns / 64⌉, ⌈T / 64⌉), block 128, dynamic shared memory 2·64·72·2 bytes. K, N and R must be
// multiples of 8 (16-byte rows for cp.async) and the tensors 16-byte aligned; the launcher checks.
#include "mma_tiles.cuh"

namespace {

constexpr int kWidth = 64;
constexpr int kStride = kWidth + 8;

// acc += A[row0.., :depth] · B[col0.., :depth]ᵀ for A [rows, depth] and B [cols, depth] (row-major, rows of length depth).
CF_INLINE void add_product_transposed(float (&acc)[8][4], cf::bf16* a_tile, cf::bf16* b_tile, const cf::bf16* a, const cf::bf16* b, int row0, int rows,
                                      int col0, int cols, int depth) {
  for (int d0 = 0; d0 < depth; d0 += kWidth) {
    cf::sync_threads();  // every warp is done with the previous tiles
    cf::load_tile<kWidth>(a_tile, kStride, a + d0, depth, row0, rows, depth - d0);
    cf::load_tile<kWidth>(b_tile, kStride, b + d0, depth, col0, cols, depth - d0);
    cf::cp_async_wait_all();
    cf::sync_threads();
    unsigned fragments[4][4];
    cf::load_a_fragments<kWidth>(fragments, a_tile, kStride, cf::warp() * 16);
    cf::mma_rows_transposed<kWidth>(acc, fragments, b_tile, kStride);
  }
}

// acc += A[row0.., :depth] · B[:depth, col0..] for A [rows, depth] and B [depth, cols].
CF_INLINE void add_product(float (&acc)[8][4], cf::bf16* a_tile, cf::bf16* b_tile, const cf::bf16* a, const cf::bf16* b, int row0, int rows, int col0,
                           int cols, int depth) {
  for (int d0 = 0; d0 < depth; d0 += kWidth) {
    cf::sync_threads();
    cf::load_tile<kWidth>(a_tile, kStride, a + d0, depth, row0, rows, depth - d0);
    cf::load_tile<kWidth>(b_tile, kStride, b + (long long)d0 * cols + col0, cols, 0, depth - d0, cols - col0);
    cf::cp_async_wait_all();
    cf::sync_threads();
    unsigned fragments[4][4];
    cf::load_a_fragments<kWidth>(fragments, a_tile, kStride, cf::warp() * 16);
    cf::mma_rows<kWidth>(acc, fragments, b_tile, kStride);
  }
}

}  // namespace

extern "C" __global__ void lora_forward_bf16(const cf::bf16* x, const cf::bf16* w, const cf::bf16* low, const cf::bf16* b, cf::bf16* y, int tokens, int n,
                                             int k, int r) {
  cf::bf16* a_tile = cf::dynamic_shared<cf::bf16>();
  cf::bf16* b_tile = a_tile + cf::kTileRows * kStride;
  int col0 = cf::block_x() * kWidth, row0 = cf::block_y() * cf::kTileRows;
  if (row0 >= tokens || col0 >= n) return;
  float acc[8][4];
  cf::zero(acc);
  add_product_transposed(acc, a_tile, b_tile, x, w, row0, tokens, col0, n, k);
  add_product_transposed(acc, a_tile, b_tile, low, b, row0, tokens, col0, n, r);
  cf::store_rows<kWidth>(y + col0, n, row0 + cf::warp() * 16, tokens, acc, 1.0f, n - col0);
}
CF_EMULATOR_ENTRY(lora_forward_bf16)

extern "C" __global__ void lora_backward_dx_bf16(const cf::bf16* dy, const cf::bf16* w, const cf::bf16* dlow, const cf::bf16* a, cf::bf16* dx, int tokens,
                                                 int n, int k, int r, int accumulate, unsigned long long seed, unsigned hi0, unsigned hi1,
                                                 unsigned threshold, float keep_scale) {
  cf::bf16* a_tile = cf::dynamic_shared<cf::bf16>();
  cf::bf16* b_tile = a_tile + cf::kTileRows * kStride;
  int col0 = cf::block_x() * kWidth, row0 = cf::block_y() * cf::kTileRows;
  if (row0 >= tokens || col0 >= k) return;
  float acc[8][4], adapter[8][4];
  cf::zero(acc);
  cf::zero(adapter);
  add_product(acc, a_tile, b_tile, dy, w, row0, tokens, col0, k, n);
  add_product(adapter, a_tile, b_tile, dlow, a, row0, tokens, col0, k, r);
  // acc += drop(adapter), element by element (the accumulator layout of mma_tiles.cuh).
  int group = cf::lane() >> 2, in_group = cf::lane() & 3;
  CF_UNROLL
  for (int t = 0; t < 8; ++t) {
    CF_UNROLL
    for (int i = 0; i < 4; ++i) {
      long long row = row0 + cf::warp() * 16 + group + 8 * (i / 2), column = col0 + t * 8 + in_group * 2 + (i & 1);
      bool keep = cf::dropout_keep((unsigned long long)(row * k + column), seed, hi0, hi1, threshold);
      acc[t][i] += keep ? adapter[t][i] * keep_scale : 0.0f;
    }
  }
  cf::store_rows<kWidth>(dx + col0, k, row0 + cf::warp() * 16, tokens, acc, 1.0f, k - col0, accumulate != 0);
}
CF_EMULATOR_ENTRY(lora_backward_dx_bf16)
