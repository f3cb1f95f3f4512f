// mma_tiles.cuh: 64-row bf16 tiles in shared memory and the warp-level tensor-core products on them, shared by
// attention.cu and lora.cu. A block of kTileThreads = 128 threads (4 warps) works on 64 rows at a time; warp w owns
// rows 16w..16w+15. Fragments follow the PTX ISA's mma.m16n8k16 layouts (A 16×16 row-major from ldmatrix.x4; B 16×8
// from ldmatrix.x2, or .x2.trans when B's rows are the reduction dimension); an accumulator acc[t][0..3] of a
// 16×8 column tile t holds rows group and group + 8 (group = lane / 4), columns 8t + 2·(lane % 4) + {0, 1}.
// Tiles are padded by 8 elements per row (16 bytes) so ldmatrix's eight row reads hit different banks.
#pragma once
#include "common.cuh"

namespace cf {

constexpr int kTileRows = 64;
constexpr int kTileThreads = 128;

// Copies rows [row0, row0 + 64) and columns [0, Width) of a [*, row_stride] bf16 matrix into a shared tile of
// `tile_stride` elements per row, asynchronously (cp.async, committed as one group); rows at or past `rows` and
// columns at or past `cols` are zero. Width, cols, row_stride and the source address keep 16-byte alignment
// (multiples of 8 elements).
template <int Width>
CF_INLINE void load_tile(bf16* tile, int tile_stride, const bf16* source, long long row_stride, int row0, int rows, int cols = Width) {
  constexpr int kChunks = Width / 8;  // 16-byte pieces per row
  for (int piece = thread_x(); piece < kTileRows * kChunks; piece += kTileThreads) {
    int r = piece / kChunks, c = (piece % kChunks) * 8;
    bf16* destination = tile + r * tile_stride + c;
    if (row0 + r < rows && c < cols) {
      cp_async_16(destination, source + (long long)(row0 + r) * row_stride + c);
    } else {
      CF_UNROLL
      for (int i = 0; i < 8; ++i) destination[i] = bf16{0};
    }
  }
  cp_async_commit();
}

template <int N>
CF_INLINE void zero(float (&acc)[N][4]) {
  CF_UNROLL
  for (int t = 0; t < N; ++t)
    CF_UNROLL
    for (int i = 0; i < 4; ++i) acc[t][i] = 0.0f;
}

// The A fragments of this warp's 16 rows (from row0) of a shared tile, K columns deep, one per 16-deep step.
template <int K>
CF_INLINE void load_a_fragments(unsigned (&frag)[K / 16][4], const bf16* tile, int stride, int row0) {
  int l = lane();
  CF_UNROLL
  for (int s = 0; s < K / 16; ++s) ldmatrix_x4(frag[s], &tile[(row0 + (l % 8) + 8 * ((l / 8) % 2)) * stride + s * 16 + 8 * (l / 16)]);
}

// acc[16 × 64] += A[16 × K] · Bᵀ, where B is the 64 rows × K columns of a shared tile (B's rows are the output columns).
template <int K>
CF_INLINE void mma_rows_transposed(float (&acc)[8][4], const unsigned (&a)[K / 16][4], const bf16* tile, int stride) {
  int l = lane();
  CF_UNROLL
  for (int n = 0; n < 8; ++n) {
    CF_UNROLL
    for (int s = 0; s < K / 16; ++s) {
      unsigned b[2];
      ldmatrix_x2(b, &tile[(n * 8 + (l % 8)) * stride + s * 16 + 8 * ((l / 8) % 2)]);
      mma_bf16_16816(acc[n], a[s], b, acc[n]);
    }
  }
}

// acc[16 × N] += A[16 × 64] · B, where A is given as four 16-deep fragments and B is a 64 × N shared tile (its rows
// are the reduction dimension, read transposed by ldmatrix.trans).
template <int N>
CF_INLINE void mma_rows(float (&acc)[N / 8][4], const unsigned (&a)[4][4], const bf16* tile, int stride) {
  int l = lane();
  CF_UNROLL
  for (int chunk = 0; chunk < 4; ++chunk) {
    CF_UNROLL
    for (int t = 0; t < N / 8; ++t) {
      unsigned b[2];
      ldmatrix_x2_trans(b, &tile[(chunk * 16 + (l % 8) + 8 * ((l / 8) % 2)) * stride + t * 8]);
      mma_bf16_16816(acc[t], a[chunk], b, acc[t]);
    }
  }
}

// The accumulator of a 16 × 64 product, rounded to bf16, as the A fragments of the next product (an accumulator
// fragment of column tiles 2c and 2c + 1 is exactly the A fragment of 16-deep chunk c).
CF_INLINE void accumulators_as_a(unsigned (&a)[4][4], const float (&p)[8][4]) {
  CF_UNROLL
  for (int chunk = 0; chunk < 4; ++chunk) {
    a[chunk][0] = pack_bf16x2(to_bf16(p[2 * chunk][0]), to_bf16(p[2 * chunk][1]));
    a[chunk][1] = pack_bf16x2(to_bf16(p[2 * chunk][2]), to_bf16(p[2 * chunk][3]));
    a[chunk][2] = pack_bf16x2(to_bf16(p[2 * chunk + 1][0]), to_bf16(p[2 * chunk + 1][1]));
    a[chunk][3] = pack_bf16x2(to_bf16(p[2 * chunk + 1][2]), to_bf16(p[2 * chunk + 1][3]));
  }
}

// acc[16 × N] += P · B for a 16 × 64 accumulator P, rounded to bf16 (flash attention's P·V), and a 64 × N shared tile B.
template <int N>
CF_INLINE void mma_accumulators_rows(float (&acc)[N / 8][4], const float (&p)[8][4], const bf16* tile, int stride) {
  unsigned a[4][4];
  accumulators_as_a(a, p);
  mma_rows<N>(acc, a, tile, stride);
}

// Writes a warp's 16 × N accumulator times `factor` as bf16 into rows row0.. (those below `rows`) and columns
// below `cols` of a [*, row_stride] matrix; with `accumulate`, adds it to what is there.
template <int N>
CF_INLINE void store_rows(bf16* base, long long row_stride, int row0, int rows, const float (&acc)[N / 8][4], float factor, int cols = N,
                          bool accumulate = false) {
  int group = lane() >> 2, in_group = lane() & 3;
  CF_UNROLL
  for (int r = 0; r < 2; ++r) {
    int row = row0 + group + 8 * r;
    if (row >= rows) continue;
    CF_UNROLL
    for (int t = 0; t < N / 8; ++t) {
      CF_UNROLL
      for (int j = 0; j < 2; ++j) {
        int column = t * 8 + in_group * 2 + j;
        if (column >= cols) continue;
        bf16* destination = base + (long long)row * row_stride + column;
        float value = acc[t][2 * r + j] * factor;
        *destination = to_bf16(accumulate ? to_float(*destination) + value : value);
      }
    }
  }
}

}  // namespace cf
