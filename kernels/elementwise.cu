// elementwise.cu: the element-by-element ops of the backend, for fp32 and bf16 tensors (math in
// fp32): casts between the two, fill, add, accumulate a scaled tensor, and dropout.
//   cast:        y = x converted (bf16: round to nearest even)
//   fill:        x = value
//   add:         out = a + b                      (out may be a or b)
//   add_scaled:  acc += scale · x
//   dropout:     out = keep ? x · scale : 0, keep when the top 24 bits of Philox word i (seed;
//                counter (i/4 as 64 bits, hi0, hi1)) reach `threshold` — the CPU backend's mask, bit for bit
// Launch (all): any grid of 1-D blocks; each thread strides over the n elements (grid-stride loop), 16 bytes at a time
// (kVec<T> elements; casts 8, 16 bytes of bf16 and 32 of fp32) from the first index where every array is 16-byte aligned,
// element by element before it, after the last whole vector, and throughout when the arrays' alignments differ. Each
// element's value is the same either way.
#include "common.cuh"

namespace {

// The first index from which every array is 16-byte aligned (n when there is none): `first`'s aligned prefix, if the
// others are aligned there too.
template <typename T, typename... Others>
CF_INLINE long long vector_start(long long n, const T* first, const Others*... others) {
  long long head = cf::aligned_prefix(first, n);
  bool aligned = (cf::aligned16(others + head) && ...);
  return aligned ? head : n;
}

template <typename From, typename To>
CF_INLINE void cast(const From* x, To* y, long long n) {
  constexpr int V = 8;
  cf::grid_vectorised<V>(
      n, vector_start(n, y, x),
      [&](long long i) {
        float v[V];
        cf::load_vec<V>(x + i, v);
        cf::store_vec<V>(y + i, v);
      },
      [&](long long i) { cf::store(y + i, cf::load(x + i)); });
}

template <typename T>
CF_INLINE void fill(T* x, float value, long long n) {
  constexpr int V = cf::kVec<T>;
  cf::grid_vectorised<V>(
      n, vector_start(n, x),
      [&](long long i) {
        float v[V];
        CF_UNROLL
        for (int k = 0; k < V; ++k) v[k] = value;
        cf::store_vec<V>(x + i, v);
      },
      [&](long long i) { cf::store(x + i, value); });
}

template <typename T>
CF_INLINE void add(const T* a, const T* b, T* out, long long n) {
  constexpr int V = cf::kVec<T>;
  cf::grid_vectorised<V>(
      n, vector_start(n, out, a, b),
      [&](long long i) {
        float va[V], vb[V];
        cf::load_vec<V>(a + i, va);
        cf::load_vec<V>(b + i, vb);
        CF_UNROLL
        for (int k = 0; k < V; ++k) va[k] = va[k] + vb[k];
        cf::store_vec<V>(out + i, va);
      },
      [&](long long i) { cf::store(out + i, cf::load(a + i) + cf::load(b + i)); });
}

template <typename T>
CF_INLINE void add_scaled(const T* x, float scale, T* acc, long long n) {
  constexpr int V = cf::kVec<T>;
  cf::grid_vectorised<V>(
      n, vector_start(n, acc, x),
      [&](long long i) {
        float vx[V], va[V];
        cf::load_vec<V>(x + i, vx);
        cf::load_vec<V>(acc + i, va);
        CF_UNROLL
        for (int k = 0; k < V; ++k) va[k] = va[k] + scale * vx[k];
        cf::store_vec<V>(acc + i, va);
      },
      [&](long long i) { cf::store(acc + i, cf::load(acc + i) + scale * cf::load(x + i)); });
}

template <typename T>
CF_INLINE void dropout(const T* x, T* out, long long n, unsigned long long seed, unsigned hi0, unsigned hi1, unsigned threshold, float scale) {
  constexpr int V = cf::kVec<T>;
  cf::grid_vectorised<V>(
      n, vector_start(n, out, x),
      [&](long long i) {
        float v[V];
        cf::load_vec<V>(x + i, v);
        CF_UNROLL
        for (int q = 0; q < V; q += 4) {
          unsigned long long e = (unsigned long long)(i + q);
          if ((e & 3u) == 0) {  // elements e..e+3 are the four words of one Philox block: one call for them
            unsigned long long block = e >> 2;
            cf::Philox4 r = cf::philox((unsigned)block, (unsigned)(block >> 32), hi0, hi1, (unsigned)seed, (unsigned)(seed >> 32));
            CF_UNROLL
            for (int k = 0; k < 4; ++k) v[q + k] = (r.w[k] >> 8) >= threshold ? v[q + k] * scale : 0.0f;
          } else {
            CF_UNROLL
            for (int k = 0; k < 4; ++k) v[q + k] = cf::dropout_keep(e + k, seed, hi0, hi1, threshold) ? v[q + k] * scale : 0.0f;
          }
        }
        cf::store_vec<V>(out + i, v);
      },
      [&](long long i) { cf::store(out + i, cf::dropout_keep((unsigned long long)i, seed, hi0, hi1, threshold) ? cf::load(x + i) * scale : 0.0f); });
}

}  // namespace

#define CF_ELEMENTWISE(T, suffix)                                                                                      \
  extern "C" __global__ void fill_##suffix(T* x, float value, long long n) { fill(x, value, n); }                     \
  CF_EMULATOR_ENTRY(fill_##suffix)                                                                                   \
  extern "C" __global__ void add_##suffix(const T* a, const T* b, T* out, long long n) { add(a, b, out, n); }         \
  CF_EMULATOR_ENTRY(add_##suffix)                                                                                    \
  extern "C" __global__ void add_scaled_##suffix(const T* x, float scale, T* acc, long long n) {                     \
    add_scaled(x, scale, acc, n);                                                                                    \
  }                                                                                                                  \
  CF_EMULATOR_ENTRY(add_scaled_##suffix)                                                                             \
  extern "C" __global__ void dropout_##suffix(const T* x, T* out, long long n, unsigned long long seed, unsigned hi0, \
                                              unsigned hi1, unsigned threshold, float scale) {                       \
    dropout(x, out, n, seed, hi0, hi1, threshold, scale);                                                            \
  }                                                                                                                  \
  CF_EMULATOR_ENTRY(dropout_##suffix)

CF_ELEMENTWISE(float, f32)
CF_ELEMENTWISE(cf::bf16, bf16)

extern "C" __global__ void cast_f32_bf16(const float* x, cf::bf16* y, long long n) { cast(x, y, n); }
CF_EMULATOR_ENTRY(cast_f32_bf16)
extern "C" __global__ void cast_bf16_f32(const cf::bf16* x, float* y, long long n) { cast(x, y, n); }
CF_EMULATOR_ENTRY(cast_bf16_f32)
