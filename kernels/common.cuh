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
// This file adds what is written once for both: bf16 and typed loads/stores, warp and block sums
// and maxima, rsqrt; kernels/math.cuh adds exp, log, sigmoid and Philox on top.
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

// 1/sqrt(x), each step correctly rounded like the CPU reference's 1 / MathF.Sqrt(x)
// (rsqrt.approx would differ from it by up to 2 ulp).
CF_INLINE float rsqrt(float x) { return div_rn(1.0f, sqrt_rn(x)); }

}  // namespace cf

#include "math.cuh"
