// common.cuh: what every kernel includes instead of CUDA SDK headers (there are none here: clang
// compiles with -nocudainc). It is compiled two ways: as device code to PTX (clang
// --cuda-device-only), where kernels/device_primitives.cuh supplies the primitives, and as host
// C++ for the emulator (CF_EMULATOR), where native/cuemu/cuemu_device.h supplies the same names.
//
// The primitives, in namespace cf (kernels use nothing else from CUDA):
//   thread_x block_dim_x block_x/y/z grid_dim_x/y/z       indices (blocks are one-dimensional)
//   sync_threads sync_warp                                 barriers
//   shuffle_xor/idx/down/up ballot any all                 warp collectives, with a lane mask
//   dynamic_shared<T> atomic_add/max/cas                   memory
//   cp_async_16 cp_async_commit cp_async_wait<N> cp_async_wait_all   async global->shared copies
//   ldmatrix_x1/x2/x4(_trans) mma_bf16_16816               tensor cores (PTX ISA fragment layouts)
//   sqrt_rn div_rn fma_rn floor_f max_f mul_hi float_bits bits_float   arithmetic, correctly rounded
// Both builds compile with -ffp-contract=off (CMakeLists.txt): a·b + c as written is rounded twice on the GPU and in
// the emulator alike; where a kernel wants one rounding (and the GPU's fma), it writes fma_rn(a, b, c).
// This file adds what is written once for both: bf16 and typed loads/stores, 16-byte vector loads and
// stores and the row and grid-stride loops built on them, warp and block sums and maxima, rsqrt;
// kernels/math.cuh adds exp, log, sigmoid and Philox on top.
#pragma once

namespace cf {
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
}  // namespace cf

#if defined(__CUDA_ARCH__)
#include "device_primitives.cuh"
#elif defined(CF_EMULATOR)
#include "../native/cuemu/cuemu_device.h"
#else
#error "compile kernels as CUDA device code (clang --cuda-device-only) or for the emulator (-DCF_EMULATOR)"
#endif

// Before a loop with a compile-time trip count: unrolled on the device, so the fragment and accumulator arrays it
// indexes live in registers (an array indexed at run time lives in local memory, off-chip). The emulator's host build
// leaves the choice to its compiler; the arithmetic is the same either way.
#if defined(__CUDA_ARCH__)
#define CF_UNROLL _Pragma("unroll")
#else
#define CF_UNROLL
#endif

namespace cf {

CF_INLINE int lane() { return thread_x() & (kWarpSize - 1); }
CF_INLINE int warp() { return thread_x() / kWarpSize; }

// Grid-stride loops over n elements: for (long long i = global_index(); i < n; i += global_stride()).
CF_INLINE long long global_index() { return (long long)block_x() * block_dim_x() + thread_x(); }
CF_INLINE long long global_stride() { return (long long)grid_dim_x() * block_dim_x(); }

// bfloat16 storage: the top half of a float. Conversions round to nearest even and keep NaN a
// quiet NaN, bit for bit like the CPU backend's HalfPrecision.ToBFloat16.
struct bf16 {
  unsigned short bits;
};

CF_INLINE float to_float(bf16 value) { return bits_float(static_cast<unsigned>(value.bits) << 16); }

CF_INLINE bf16 to_bf16(float value) {
  unsigned bits = float_bits(value);
  if (value != value) return bf16{static_cast<unsigned short>((bits >> 16) | 0x0040u)};
  return bf16{static_cast<unsigned short>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16)};
}

// Loads and stores that let one kernel template serve fp32 and bf16 tensors; math is in fp32.
CF_INLINE float load(const float* p) { return *p; }
CF_INLINE float load(const bf16* p) { return to_float(*p); }
CF_INLINE void store(float* p, float value) { *p = value; }
CF_INLINE void store(bf16* p, float value) { *p = to_bf16(value); }

// Two bf16 in one 32-bit register, `low` in bits 0-15: the packing of mma fragments.
CF_INLINE unsigned pack_bf16x2(bf16 low, bf16 high) {
  return static_cast<unsigned>(low.bits) | (static_cast<unsigned>(high.bits) << 16);
}

// Sum over the 32 lanes of a warp; every lane gets the total. The butterfly order is fixed,
// so the result is the same on every run.
CF_INLINE float warp_sum(float value) {
  for (int mask = kWarpSize / 2; mask > 0; mask /= 2) value += shuffle_xor(value, mask);
  return value;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` is __shared__ float[32]. Deterministic: fixed warp order, fixed butterflies.
CF_INLINE float block_sum(float value, float* scratch) {
  value = warp_sum(value);
  if (lane() == 0) scratch[warp()] = value;
  sync_threads();
  int warps = block_dim_x() / kWarpSize;
  float total = lane() < warps ? scratch[lane()] : 0.0f;
  total = warp_sum(total);
  sync_threads();  // scratch may be reused right after
  return total;
}

// Maximum over the warp, then over the block (same rules as block_sum; scratch is float[32]).
CF_INLINE float warp_max(float value) {
  for (int mask = kWarpSize / 2; mask > 0; mask /= 2) value = max_f(value, shuffle_xor(value, mask));
  return value;
}
CF_INLINE float block_max(float value, float* scratch) {
  value = warp_max(value);
  if (lane() == 0) scratch[warp()] = value;
  sync_threads();
  int warps = block_dim_x() / kWarpSize;
  float total = lane() < warps ? scratch[lane()] : -__builtin_huge_valf();
  total = warp_max(total);
  sync_threads();
  return total;
}

// ---- 16-byte accesses ------------------------------------------------------------------------------
// Loops over rows and elements move 16 bytes per access (ld/st .v4.b32) where the addresses allow: kVec<T> elements
// (8 bf16, 4 fp32) per vector. aligned_prefix(p, n) is how many elements come before p's first 16-byte boundary (all n
// when the elements themselves are misaligned), so a loop takes those one by one, then whole vectors, then the tail;
// another array in the same loop must be aligned16 at that same index (else the loop stays scalar). The values and the
// order each element is computed in are the same either way: only the loads and stores are wider.
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

struct alignas(16) Bytes16 {
  unsigned w[4];
};

template <typename T>
CF_INLINE bool aligned16(const T* p) { return (reinterpret_cast<unsigned long long>(p) & 15u) == 0; }

template <typename T>
CF_INLINE long long aligned_prefix(const T* p, long long n) {
  unsigned long long address = reinterpret_cast<unsigned long long>(p);
  if (address % sizeof(T) != 0) return n;
  long long k = static_cast<long long>(((16u - (address & 15u)) & 15u) / sizeof(T));
  return k < n ? k : n;
}

// N consecutive elements (N·sizeof(T) a multiple of 16) at a 16-byte aligned p, widened to fp32; and the reverse.
template <int N>
CF_INLINE void load_vec(const float* p, float (&v)[N]) {
  CF_UNROLL
  for (int q = 0; q < N / 4; ++q) {
    Bytes16 b = reinterpret_cast<const Bytes16*>(p)[q];
    CF_UNROLL
    for (int k = 0; k < 4; ++k) v[4 * q + k] = bits_float(b.w[k]);
  }
}
template <int N>
CF_INLINE void load_vec(const bf16* p, float (&v)[N]) {
  CF_UNROLL
  for (int q = 0; q < N / 8; ++q) {
    Bytes16 b = reinterpret_cast<const Bytes16*>(p)[q];
    CF_UNROLL
    for (int k = 0; k < 4; ++k) {
      v[8 * q + 2 * k] = bits_float(b.w[k] << 16);
      v[8 * q + 2 * k + 1] = bits_float(b.w[k] & 0xffff0000u);
    }
  }
}
template <int N>
CF_INLINE void store_vec(float* p, const float (&v)[N]) {
  CF_UNROLL
  for (int q = 0; q < N / 4; ++q) {
    Bytes16 b;
    CF_UNROLL
    for (int k = 0; k < 4; ++k) b.w[k] = float_bits(v[4 * q + k]);
    reinterpret_cast<Bytes16*>(p)[q] = b;
  }
}
template <int N>
CF_INLINE void store_vec(bf16* p, const float (&v)[N]) {
  CF_UNROLL
  for (int q = 0; q < N / 8; ++q) {
    Bytes16 b;
    CF_UNROLL
    for (int k = 0; k < 4; ++k) b.w[k] = pack_bf16x2(to_bf16(v[8 * q + 2 * k]), to_bf16(v[8 * q + 2 * k + 1]));
    reinterpret_cast<Bytes16*>(p)[q] = b;
  }
}

// The threads of a block over the n elements of one row p: f(i, value) for each, in 16-byte vectors where p allows
// (vector j on thread j mod blockDim, its elements in order), single elements before and after them.
template <typename T, typename F>
CF_INLINE void row_for_each(const T* p, int n, F&& f) {
  constexpr int V = kVec<T>;
  int head = static_cast<int>(aligned_prefix(p, n)), vectors = (n - head) / V, tail = head + vectors * V;
  for (int i = thread_x(); i < head; i += block_dim_x()) f(i, load(p + i));
  for (int j = thread_x(); j < vectors; j += block_dim_x()) {
    float v[V];
    load_vec<V>(p + head + j * V, v);
    CF_UNROLL
    for (int k = 0; k < V; ++k) f(head + j * V + k, v[k]);
  }
  for (int i = tail + thread_x(); i < n; i += block_dim_x()) f(i, load(p + i));
}

// The same walk, writing p[i] = f(i, p[i]) in place.
template <typename T, typename F>
CF_INLINE void row_transform(T* p, int n, F&& f) {
  constexpr int V = kVec<T>;
  int head = static_cast<int>(aligned_prefix(p, n)), vectors = (n - head) / V, tail = head + vectors * V;
  for (int i = thread_x(); i < head; i += block_dim_x()) store(p + i, f(i, load(p + i)));
  for (int j = thread_x(); j < vectors; j += block_dim_x()) {
    float v[V];
    load_vec<V>(p + head + j * V, v);
    CF_UNROLL
    for (int k = 0; k < V; ++k) v[k] = f(head + j * V + k, v[k]);
    store_vec<V>(p + head + j * V, v);
  }
  for (int i = tail + thread_x(); i < n; i += block_dim_x()) store(p + i, f(i, load(p + i)));
}

// A grid-stride loop over n elements in V-element vectors from index `head` on (every array aligned16 there), single
// elements before and after: vector(i) for the vector starting at element i, scalar(i) for the others.
template <int V, typename W, typename S>
CF_INLINE void grid_vectorised(long long n, long long head, W&& vector, S&& scalar) {
  long long vectors = (n - head) / V, tail = head + vectors * V;
  for (long long j = global_index(); j < vectors; j += global_stride()) vector(head + j * V);
  for (long long i = global_index(); i < head; i += global_stride()) scalar(i);
  for (long long i = tail + global_index(); i < n; i += global_stride()) scalar(i);
}

// 1/sqrt(x), each step correctly rounded like the CPU reference's 1 / MathF.Sqrt(x)
// (rsqrt.approx would differ from it by up to 2 ulp).
CF_INLINE float rsqrt(float x) { return div_rn(1.0f, sqrt_rn(x)); }

}  // namespace cf

#include "math.cuh"
