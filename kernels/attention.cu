// attention.cu: causal grouped-query attention, flash-style (FlashAttention-2's forward), bf16 in
// and out with fp32 accumulation on the tensor cores (mma.m16n8k16), never materialising the T×T
// score matrix. As the CPU backend, per batch b and query head h (kv head h / (q_heads/kv_heads)):
//   S = scale · Q·Kᵀ on keys j ≤ t,  P = softmax(S),  O = P·V,  lse[b, h, t] = logsumexp_j S[t, j]
// Layouts: q, out [batch·T, q_heads·D]; k, v [batch·T, kv_heads·D]; lse fp32 [batch, q_heads, T].
//
// A block takes 64 query rows of one (batch, head): 4 warps of 16 rows. Q, K and V tiles sit in
// dynamic shared memory (rows padded by 16 bytes so that ldmatrix reads hit distinct banks). For
// each 64-key tile up to the diagonal: S = Q·Kᵀ with Q fragments kept in registers and K
// fragments from ldmatrix; the row maxima and sums are updated online (the running output is
// rescaled when the maximum grows); P, rounded to bf16, is reused in registers as the A operand of
// P·V, with V fragments from ldmatrix.trans. Rows and keys past T are masked, any T works.
// K and V are double-buffered: the next tile's cp.async runs while this one is computed.
// Launch: grid (⌈T/64⌉, q_heads, batch), block 128, dynamic shared memory 5·64·(D+8)·2 bytes (Q, two K, two V).
//
// Backward (FlashAttention-2's, made deterministic: no atomics; each gradient is summed by the one
// block that owns it, in a fixed order), with P recomputed from lse:
//   delta[t] = Σ_d dO[t, d]·O[t, d]                                       attention_backward_delta
//   P = exp(S − lse),  dP = dO·Vᵀ,  dS = scale · P ⊙ (dP − delta)
//   dK = Σ_heads of the group dSᵀ·Q,  dV = Σ_heads Pᵀ·dO                   attention_backward_dkdv: a block per 64 keys
//   dQ = dS·K                                                             attention_backward_dq: a block per 64 queries
// dq, dk and dv are overwritten (bf16). Launch: delta, grid (⌈tokens·q_heads/4⌉), block 128 (a warp
// per row); dkdv, grid (⌈T/64⌉, kv_heads, batch), block 128; dq, grid (⌈T/64⌉, q_heads, batch), block
// 128; both with dynamic shared memory 4·64·(D+8)·2 + 2·64·4 bytes.
#include "mma_tiles.cuh"

namespace {

constexpr int kBlockRows = cf::kTileRows;  // query rows per block (4 warps × 16)
constexpr int kBlockKeys = 64;             // keys per tile
constexpr int kThreads = cf::kTileThreads;

// Head `head`'s first element in batch `batch` of a [batch·T, heads·D] tensor.
template <int D, typename T>
CF_INLINE T* head_base(T* tensor, int batch, int seq_len, long long row_stride, int head) {
  return tensor + (long long)batch * seq_len * row_stride + (long long)head * D;
}

// Whether the 64 × 64 tile of queries query0.. and keys key0.. is crossed by the causal diagonal or by the sequence's end
// (rows or keys past T): only such tiles need the per-element mask; the others are wholly visible. Uniform per block.
CF_INLINE bool crossed(int query0, int key0, int seq_len) {
  return key0 + kBlockKeys > query0 || key0 + kBlockKeys > seq_len || query0 + kBlockRows > seq_len;
}

// S ← scale·S for this lane's elements of a 16 × 64 score tile (rows `rows`, keys key0..), and the rows' maxima; with
// Masked, a key the row may not see (a future key, or one past T) becomes −∞.
template <bool Masked>
CF_INLINE void scale_scores(float (&s)[8][4], float (&tile_max)[2], const int (&rows)[2], int key0, int in_group, int seq_len, float scale) {
  CF_UNROLL
  for (int n = 0; n < 8; ++n) {
    CF_UNROLL
    for (int i = 0; i < 4; ++i) {
      int key = key0 + n * 8 + in_group * 2 + (i & 1);
      bool live = !Masked || (key <= rows[i / 2] && key < seq_len);
      s[n][i] = live ? s[n][i] * scale : -__builtin_huge_valf();
      tile_max[i / 2] = cf::max_f(tile_max[i / 2], s[n][i]);
    }
  }
}

// The backward's P = exp(scale·S − lse) and dS = scale·P ⊙ (dP − delta) for a lane's elements of a 16 × 64 tile, in
// place of S and dP. Rows are the lane's (`rows`, with their lse and delta) and columns col0.. of the other side; with
// Masked, an element past the causal diagonal or past T gets P = 0. Transposed (dK/dV's Pᵀ: rows are keys, columns
// queries), the lse and delta belong to the columns.
template <bool Masked, bool Transposed>
CF_INLINE void probabilities(float (&p)[8][4], float (&ds)[8][4], const int (&rows)[2], int col0, const float* lse, const float* delta, int in_group,
                             int seq_len, float scale) {
  CF_UNROLL
  for (int n = 0; n < 8; ++n) {
    CF_UNROLL
    for (int i = 0; i < 4; ++i) {
      int row = rows[i / 2], column = n * 8 + in_group * 2 + (i & 1), other = col0 + column;
      int query = Transposed ? other : row, key = Transposed ? row : other;
      bool live = !Masked || (key <= query && query < seq_len && key < seq_len);
      float row_lse = Transposed ? lse[column] : lse[i / 2], row_delta = Transposed ? delta[column] : delta[i / 2];
      float probability = live ? cf::exp(cf::fma_rn(p[n][i], scale, -row_lse)) : 0.0f;
      p[n][i] = probability;
      ds[n][i] = probability * (ds[n][i] - row_delta) * scale;
    }
  }
}

// Double-buffered K/V tiles of 64 keys for a loop over key0 = 0, 64, … < key_end: `buffers` holds two (K, V) pairs.
// start_kv_tiles loads tile 0 into the first; kv_tile, at the top of each iteration, starts the next tile's load into
// the other buffer (once every warp is done with it: it held the previous tile), waits for this tile's two groups
// only, and returns this tile's K (its V follows, 64 rows on).
template <int D>
CF_INLINE void start_kv_tiles(cf::bf16* buffers, const cf::bf16* k_base, const cf::bf16* v_base, long long row_stride, int seq_len) {
  constexpr int kStride = D + 8;
  cf::load_tile<D>(buffers, kStride, k_base, row_stride, 0, seq_len);  // one cp.async group each
  cf::load_tile<D>(buffers + kBlockKeys * kStride, kStride, v_base, row_stride, 0, seq_len);
}

template <int D>
CF_INLINE cf::bf16* kv_tile(cf::bf16* buffers, const cf::bf16* k_base, const cf::bf16* v_base, long long row_stride, int key0, int key_end, int seq_len) {
  constexpr int kStride = D + 8, kBufferElements = 2 * kBlockKeys * kStride;
  int tile = key0 / kBlockKeys;
  if (key0 + kBlockKeys < key_end) {
    cf::sync_threads();
    cf::bf16* next = buffers + (tile + 1) % 2 * kBufferElements;
    cf::load_tile<D>(next, kStride, k_base, row_stride, key0 + kBlockKeys, seq_len);
    cf::load_tile<D>(next + kBlockKeys * kStride, kStride, v_base, row_stride, key0 + kBlockKeys, seq_len);
    cf::cp_async_wait<2>();
  } else {
    cf::cp_async_wait<0>();
  }
  cf::sync_threads();  // this tile is in shared memory for every warp
  return buffers + tile % 2 * kBufferElements;
}

template <int D>
CF_INLINE void attention_forward(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v, cf::bf16* out, float* lse, int batches, int seq_len,
                                 int q_heads, int kv_heads, float scale) {
  constexpr int kStride = D + 8;
  constexpr int kDTiles = D / 8;   // 8-wide column tiles of the output
  constexpr int kKSteps = D / 16;  // 16-deep steps of Q·Kᵀ
  // Q, then two buffers of K and V: tile j + 1 loads (cp.async) while tile j is computed.
  cf::bf16* q_tile = cf::dynamic_shared<cf::bf16>();
  cf::bf16* kv_buffers = q_tile + kBlockRows * kStride;

  int query0 = cf::block_x() * kBlockRows, head = cf::block_y(), batch = cf::block_z();
  if (batch >= batches || head >= q_heads || query0 >= seq_len) return;
  int kv_head = head / (q_heads / kv_heads);
  long long q_row_stride = (long long)q_heads * D, kv_row_stride = (long long)kv_heads * D;
  const cf::bf16* q_base = head_base<D>(q, batch, seq_len, q_row_stride, head);
  const cf::bf16* k_base = head_base<D>(k, batch, seq_len, kv_row_stride, kv_head);
  const cf::bf16* v_base = head_base<D>(v, batch, seq_len, kv_row_stride, kv_head);

  int l = cf::lane(), warp = cf::warp(), group = l >> 2, in_group = l & 3;
  cf::load_tile<D>(q_tile, kStride, q_base, q_row_stride, query0, seq_len);
  cf::cp_async_wait_all();
  cf::sync_threads();

  // This warp's 16 rows of Q as mma A fragments, for every 16-deep step.
  unsigned q_frag[kKSteps][4];
  cf::load_a_fragments<D>(q_frag, q_tile, kStride, warp * 16);

  // Rows group and group + 8 of the warp's 16: running maximum, running sum, output accumulators.
  int rows_of_lane[2] = {query0 + warp * 16 + group, query0 + warp * 16 + group + 8};
  float running_max[2] = {-__builtin_huge_valf(), -__builtin_huge_valf()};
  float running_sum[2] = {0.0f, 0.0f};
  float o[kDTiles][4];
  CF_UNROLL
  for (int t = 0; t < kDTiles; ++t)
    CF_UNROLL
    for (int i = 0; i < 4; ++i) o[t][i] = 0.0f;

  int key_end = query0 + kBlockRows < seq_len ? query0 + kBlockRows : seq_len;  // causal: keys up to the block's last row
  start_kv_tiles<D>(kv_buffers, k_base, v_base, kv_row_stride, seq_len);
  for (int key0 = 0; key0 < key_end; key0 += kBlockKeys) {
    cf::bf16* k_tile = kv_tile<D>(kv_buffers, k_base, v_base, kv_row_stride, key0, key_end, seq_len);
    cf::bf16* v_tile = k_tile + kBlockKeys * kStride;

    // S = Q·Kᵀ: 8 column tiles of 8 keys, 4 floats each per lane.
    float s[8][4];
    cf::zero(s);
    cf::mma_rows_transposed<D>(s, q_frag, k_tile, kStride);

    // Scale, mask (future keys, keys past T: only on the tiles those boundaries cross), and update the running maxima and sums.
    float tile_max[2] = {-__builtin_huge_valf(), -__builtin_huge_valf()};
    if (crossed(query0, key0, seq_len)) {
      scale_scores<true>(s, tile_max, rows_of_lane, key0, in_group, seq_len, scale);
    } else {
      scale_scores<false>(s, tile_max, rows_of_lane, key0, in_group, seq_len, scale);
    }
    float correction[2];
    CF_UNROLL
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = cf::max_f(tile_max[r], cf::shuffle_xor(tile_max[r], 1));
      tile_max[r] = cf::max_f(tile_max[r], cf::shuffle_xor(tile_max[r], 2));
      float new_max = cf::max_f(running_max[r], tile_max[r]);
      // A row with nothing unmasked yet keeps 0 as its reference, so no inf − inf appears.
      float reference = new_max == -__builtin_huge_valf() ? 0.0f : new_max;
      correction[r] = cf::exp(running_max[r] - reference);
      running_max[r] = new_max;
      tile_max[r] = reference;
    }
    float tile_sum[2] = {0.0f, 0.0f};
    CF_UNROLL
    for (int n = 0; n < 8; ++n) {
      CF_UNROLL
      for (int i = 0; i < 4; ++i) {
        s[n][i] = cf::exp(s[n][i] - tile_max[i / 2]);
        tile_sum[i / 2] += s[n][i];
      }
    }
    CF_UNROLL
    for (int r = 0; r < 2; ++r) {
      tile_sum[r] += cf::shuffle_xor(tile_sum[r], 1);
      tile_sum[r] += cf::shuffle_xor(tile_sum[r], 2);
      running_sum[r] = cf::fma_rn(running_sum[r], correction[r], tile_sum[r]);
    }
    CF_UNROLL
    for (int t = 0; t < kDTiles; ++t) {
      CF_UNROLL
      for (int i = 0; i < 4; ++i) o[t][i] *= correction[i / 2];
    }

    // O += P·V: P's accumulator fragments are, rounded to bf16, the A fragments of 16-key chunks.
    cf::mma_accumulators_rows<D>(o, s, v_tile, kStride);
  }

  // O /= sum; lse = max + ln(sum). Lanes 4g..4g+3 share rows g and g + 8.
  CF_UNROLL
  for (int r = 0; r < 2; ++r) {
    int row = rows_of_lane[r];
    if (row >= seq_len) continue;
    float inverse = cf::div_rn(1.0f, running_sum[r]);
    cf::bf16* destination = out + ((long long)batch * seq_len + row) * q_row_stride + (long long)head * D;
    CF_UNROLL
    for (int t = 0; t < kDTiles; ++t) {
      int column = t * 8 + in_group * 2;
      destination[column] = cf::to_bf16(o[t][2 * r] * inverse);
      destination[column + 1] = cf::to_bf16(o[t][2 * r + 1] * inverse);
    }
    if (in_group == 0) lse[((long long)batch * q_heads + head) * seq_len + row] = running_max[r] + cf::log(running_sum[r]);
  }
}


// delta[b, h, t] = Σ_d dO·O for row t of head h: one warp per (token, head) row.
CF_INLINE void backward_delta(const cf::bf16* d_out, const cf::bf16* out, float* delta, int tokens, int seq_len, int q_heads, int head_dim) {
  long long row = (long long)cf::block_x() * (kThreads / cf::kWarpSize) + cf::warp();  // token · q_heads + head
  if (row >= (long long)tokens * q_heads) return;
  const cf::bf16* a = d_out + row * head_dim;
  const cf::bf16* b = out + row * head_dim;
  float sum = 0.0f;
  for (int d = cf::lane(); d < head_dim; d += cf::kWarpSize) sum = cf::fma_rn(cf::to_float(a[d]), cf::to_float(b[d]), sum);
  sum = cf::warp_sum(sum);
  int token = (int)(row / q_heads), head = (int)(row % q_heads), batch = token / seq_len, t = token % seq_len;
  if (cf::lane() == 0) delta[((long long)batch * q_heads + head) * seq_len + t] = sum;
}

// dK and dV of 64 keys of one (batch, kv head), summed over the query heads of its group and the
// query tiles at or after the keys, in order. Each warp owns 16 keys.
template <int D>
CF_INLINE void backward_dkdv(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v, const cf::bf16* d_out, const float* lse, const float* delta,
                             cf::bf16* dk, cf::bf16* dv, int batches, int seq_len, int q_heads, int kv_heads, float scale) {
  constexpr int kStride = D + 8;
  cf::bf16* k_tile = cf::dynamic_shared<cf::bf16>();
  cf::bf16* v_tile = k_tile + kBlockRows * kStride;
  cf::bf16* q_tile = v_tile + kBlockRows * kStride;
  cf::bf16* do_tile = q_tile + kBlockRows * kStride;
  float* lse_tile = reinterpret_cast<float*>(do_tile + kBlockRows * kStride);
  float* delta_tile = lse_tile + kBlockRows;

  int key0 = cf::block_x() * kBlockKeys, kv_head = cf::block_y(), batch = cf::block_z();
  if (batch >= batches || kv_head >= kv_heads || key0 >= seq_len) return;
  int group_size = q_heads / kv_heads;
  long long q_row_stride = (long long)q_heads * D, kv_row_stride = (long long)kv_heads * D;
  int l = cf::lane(), warp = cf::warp(), group = l >> 2, in_group = l & 3;
  // K and V stay in shared memory for the whole block; their fragments are read again for each query tile (ldmatrix)
  // rather than held: dK and dV's accumulators, Pᵀ and dPᵀ already take 192 registers at D = 128.
  cf::load_tile<D>(k_tile, kStride, head_base<D>(k, batch, seq_len, kv_row_stride, kv_head), kv_row_stride, key0, seq_len);
  cf::load_tile<D>(v_tile, kStride, head_base<D>(v, batch, seq_len, kv_row_stride, kv_head), kv_row_stride, key0, seq_len);

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  CF_UNROLL
  for (int t = 0; t < D / 8; ++t)
    CF_UNROLL
    for (int i = 0; i < 4; ++i) dk_acc[t][i] = dv_acc[t][i] = 0.0f;
  int keys_of_lane[2] = {key0 + warp * 16 + group, key0 + warp * 16 + group + 8};

  for (int head = kv_head * group_size; head < (kv_head + 1) * group_size; ++head) {
    const cf::bf16* q_base = head_base<D>(q, batch, seq_len, q_row_stride, head);
    const cf::bf16* do_base = head_base<D>(d_out, batch, seq_len, q_row_stride, head);
    const float* lse_base = lse + ((long long)batch * q_heads + head) * seq_len;
    const float* delta_base = delta + ((long long)batch * q_heads + head) * seq_len;
    for (int query0 = key0 - key0 % kBlockRows; query0 < seq_len; query0 += kBlockRows) {
      cf::sync_threads();  // every warp is done with the previous Q and dO tiles
      cf::load_tile<D>(q_tile, kStride, q_base, q_row_stride, query0, seq_len);
      cf::load_tile<D>(do_tile, kStride, do_base, q_row_stride, query0, seq_len);
      for (int r = cf::thread_x(); r < kBlockRows; r += kThreads) {
        bool inside = query0 + r < seq_len;
        lse_tile[r] = inside ? lse_base[query0 + r] : 0.0f;
        delta_tile[r] = inside ? delta_base[query0 + r] : 0.0f;
      }
      cf::cp_async_wait_all();
      cf::sync_threads();

      // Pᵀ = exp(scale·K·Qᵀ − lse) and dPᵀ = V·dOᵀ for this warp's 16 keys × 64 queries.
      float p[8][4], dp[8][4];
      unsigned fragments[D / 16][4];
      cf::load_a_fragments<D>(fragments, k_tile, kStride, warp * 16);
      cf::zero(p);
      cf::mma_rows_transposed<D>(p, fragments, q_tile, kStride);
      cf::load_a_fragments<D>(fragments, v_tile, kStride, warp * 16);
      cf::zero(dp);
      cf::mma_rows_transposed<D>(dp, fragments, do_tile, kStride);
      // Pᵀ and dSᵀ (in dp), masked only on the tiles the diagonal or T crosses.
      if (crossed(query0, key0, seq_len)) {
        probabilities<true, true>(p, dp, keys_of_lane, query0, lse_tile, delta_tile, in_group, seq_len, scale);
      } else {
        probabilities<false, true>(p, dp, keys_of_lane, query0, lse_tile, delta_tile, in_group, seq_len, scale);
      }
      cf::mma_accumulators_rows<D>(dv_acc, p, do_tile, kStride);
      cf::mma_accumulators_rows<D>(dk_acc, dp, q_tile, kStride);
    }
  }
  cf::store_rows<D>(head_base<D>(dk, batch, seq_len, kv_row_stride, kv_head), kv_row_stride, key0 + warp * 16, seq_len, dk_acc, 1.0f);
  cf::store_rows<D>(head_base<D>(dv, batch, seq_len, kv_row_stride, kv_head), kv_row_stride, key0 + warp * 16, seq_len, dv_acc, 1.0f);
}

// dQ of 64 queries of one (batch, head), summed over the key tiles up to the diagonal, in order.
template <int D>
CF_INLINE void backward_dq(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v, const cf::bf16* d_out, const float* lse, const float* delta,
                           cf::bf16* dq, int batches, int seq_len, int q_heads, int kv_heads, float scale) {
  constexpr int kStride = D + 8;
  // Q and dO, then two buffers of K and V (double-buffered as in the forward).
  cf::bf16* q_tile = cf::dynamic_shared<cf::bf16>();
  cf::bf16* do_tile = q_tile + kBlockRows * kStride;
  cf::bf16* kv_buffers = do_tile + kBlockRows * kStride;

  int query0 = cf::block_x() * kBlockRows, head = cf::block_y(), batch = cf::block_z();
  if (batch >= batches || head >= q_heads || query0 >= seq_len) return;
  int kv_head = head / (q_heads / kv_heads);
  long long q_row_stride = (long long)q_heads * D, kv_row_stride = (long long)kv_heads * D;
  const cf::bf16* k_base = head_base<D>(k, batch, seq_len, kv_row_stride, kv_head);
  const cf::bf16* v_base = head_base<D>(v, batch, seq_len, kv_row_stride, kv_head);
  int l = cf::lane(), warp = cf::warp(), group = l >> 2, in_group = l & 3;
  // Q and dO stay in shared memory for the whole block; their fragments are read again for each key tile (ldmatrix)
  // rather than held, which leaves the registers to dQ's accumulators, S and dP.
  cf::load_tile<D>(q_tile, kStride, head_base<D>(q, batch, seq_len, q_row_stride, head), q_row_stride, query0, seq_len);
  cf::load_tile<D>(do_tile, kStride, head_base<D>(d_out, batch, seq_len, q_row_stride, head), q_row_stride, query0, seq_len);
  int rows_of_lane[2] = {query0 + warp * 16 + group, query0 + warp * 16 + group + 8};
  float row_lse[2], row_delta[2];
  CF_UNROLL
  for (int r = 0; r < 2; ++r) {
    bool inside = rows_of_lane[r] < seq_len;
    long long index = ((long long)batch * q_heads + head) * seq_len + rows_of_lane[r];
    row_lse[r] = inside ? lse[index] : 0.0f;
    row_delta[r] = inside ? delta[index] : 0.0f;
  }

  float dq_acc[D / 8][4];
  CF_UNROLL
  for (int t = 0; t < D / 8; ++t)
    CF_UNROLL
    for (int i = 0; i < 4; ++i) dq_acc[t][i] = 0.0f;
  int key_end = query0 + kBlockRows < seq_len ? query0 + kBlockRows : seq_len;
  start_kv_tiles<D>(kv_buffers, k_base, v_base, kv_row_stride, seq_len);
  for (int key0 = 0; key0 < key_end; key0 += kBlockKeys) {
    cf::bf16* k_tile = kv_tile<D>(kv_buffers, k_base, v_base, kv_row_stride, key0, key_end, seq_len);
    cf::bf16* v_tile = k_tile + kBlockKeys * kStride;
    float ds[8][4], dp[8][4];
    unsigned fragments[D / 16][4];
    cf::load_a_fragments<D>(fragments, q_tile, kStride, warp * 16);
    cf::zero(ds);
    cf::mma_rows_transposed<D>(ds, fragments, k_tile, kStride);
    cf::load_a_fragments<D>(fragments, do_tile, kStride, warp * 16);
    cf::zero(dp);
    cf::mma_rows_transposed<D>(dp, fragments, v_tile, kStride);
    // P (in ds) and dS (in dp), masked only on the tiles the diagonal or T crosses.
    if (crossed(query0, key0, seq_len)) {
      probabilities<true, false>(ds, dp, rows_of_lane, key0, row_lse, row_delta, in_group, seq_len, scale);
    } else {
      probabilities<false, false>(ds, dp, rows_of_lane, key0, row_lse, row_delta, in_group, seq_len, scale);
    }
    cf::mma_accumulators_rows<D>(dq_acc, dp, k_tile, kStride);
  }
  cf::store_rows<D>(head_base<D>(dq, batch, seq_len, q_row_stride, head), q_row_stride, query0 + warp * 16, seq_len, dq_acc, 1.0f);
}

}  // namespace

#define CF_ATTENTION_FORWARD(D)                                                                                                   \
  extern "C" __global__ void attention_forward_d##D##_bf16(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v, cf::bf16* out, \
                                                           float* lse, int batches, int seq_len, int q_heads, int kv_heads,       \
                                                           float scale) {                                                          \
    attention_forward<D>(q, k, v, out, lse, batches, seq_len, q_heads, kv_heads, scale);                                           \
  }                                                                                                                                 \
  CF_EMULATOR_ENTRY(attention_forward_d##D##_bf16)

CF_ATTENTION_FORWARD(32)
CF_ATTENTION_FORWARD(64)
CF_ATTENTION_FORWARD(128)

extern "C" __global__ void attention_backward_delta_bf16(const cf::bf16* d_out, const cf::bf16* out, float* delta, int tokens, int seq_len, int q_heads,
                                                         int head_dim) {
  backward_delta(d_out, out, delta, tokens, seq_len, q_heads, head_dim);
}
CF_EMULATOR_ENTRY(attention_backward_delta_bf16)

#define CF_ATTENTION_BACKWARD(D)                                                                                                     \
  extern "C" __global__ void attention_backward_dkdv_d##D##_bf16(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v,            \
                                                                 const cf::bf16* d_out, const float* lse, const float* delta,        \
                                                                 cf::bf16* dk, cf::bf16* dv, int batches, int seq_len, int q_heads,  \
                                                                 int kv_heads, float scale) {                                        \
    backward_dkdv<D>(q, k, v, d_out, lse, delta, dk, dv, batches, seq_len, q_heads, kv_heads, scale);                               \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(attention_backward_dkdv_d##D##_bf16)                                                                             \
  extern "C" __global__ void attention_backward_dq_d##D##_bf16(const cf::bf16* q, const cf::bf16* k, const cf::bf16* v,              \
                                                               const cf::bf16* d_out, const float* lse, const float* delta,          \
                                                               cf::bf16* dq, int batches, int seq_len, int q_heads, int kv_heads,    \
                                                               float scale) {                                                        \
    backward_dq<D>(q, k, v, d_out, lse, delta, dq, batches, seq_len, q_heads, kv_heads, scale);                                     \
  }                                                                                                                                  \
  CF_EMULATOR_ENTRY(attention_backward_dq_d##D##_bf16)

CF_ATTENTION_BACKWARD(32)
CF_ATTENTION_BACKWARD(64)
CF_ATTENTION_BACKWARD(128)
