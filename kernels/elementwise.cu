// elementwise.cu: the element-by-element ops of the backend, for fp32 and bf16 tensors (math in
// fp32): casts between the two, fill, add, accumulate a scaled tensor, and dropout.
//   cast:        y = x converted (bf16: round to nearest even)
//   fill:        x = value
//   add:         out = a + b                      (out may be a or b)
//   add_scaled:  acc += scale · x
//   dropout:     out = keep ? x · scale : 0, keep when the top 24 bits of Philox word i (seed;
//                counter (i/4 as 64 bits, hi0, hi1)) reach `threshold` — the CPU backend's mask, bit for bit
// Launch (all): any grid of 1-D blocks; each thread strides over the n elements (grid-stride loop).
#include "common.cuh"

namespace {

template <typename From, typename To>
CF_INLINE void cast(const From* x, To* y, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) cf::store(y + i, cf::load(x + i));
}

template <typename T>
CF_INLINE void fill(T* x, float value, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) cf::store(x + i, value);
}

template <typename T>
CF_INLINE void add(const T* a, const T* b, T* out, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) cf::store(out + i, cf::load(a + i) + cf::load(b + i));
}

template <typename T>
CF_INLINE void add_scaled(const T* x, float scale, T* acc, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) cf::store(acc + i, cf::load(acc + i) + scale * cf::load(x + i));
}

template <typename T>
CF_INLINE void dropout(const T* x, T* out, long long n, unsigned long long seed, unsigned hi0, unsigned hi1, unsigned threshold, float scale) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) {
    cf::store(out + i, cf::dropout_keep((unsigned long long)i, seed, hi0, hi1, threshold) ? cf::load(x + i) * scale : 0.0f);
  }
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
