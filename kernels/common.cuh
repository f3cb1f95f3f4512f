// common.cuh: what every kernel includes instead of CUDA SDK headers (there are none here:
// clang compiles with -nocudainc). The CUDA keywords, thread and block indices, the barrier,
// warp shuffles and the warp/block sum reductions the kernels share. Compiled two ways: as
// device code to PTX (clang --cuda-device-only), and as host C++ for the emulator
// (native/cuemu, CF_EMULATOR), where each CUDA thread is a fiber.
#pragma once

namespace cf {
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
}  // namespace cf

#if defined(__CUDA_ARCH__)

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define CF_INLINE __attribute__((device)) __attribute__((always_inline)) inline
#define CF_EMULATOR_ENTRY(name)

namespace cf {
CF_INLINE int thread_x() { return __nvvm_read_ptx_sreg_tid_x(); }
CF_INLINE int block_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
CF_INLINE int block_dim_x() { return __nvvm_read_ptx_sreg_ntid_x(); }

// Waits until every thread of the block has arrived (bar.sync 0).
CF_INLINE void sync_threads() { __syncthreads(); }

CF_INLINE float shuffle_xor(float value, int lane_mask) {
  return __nvvm_shfl_sync_bfly_f32(kFullMask, value, lane_mask, kWarpSize - 1);
}

CF_INLINE float sqrt_rn(float x) { return __nvvm_sqrt_rn_f(x); }
CF_INLINE float div_rn(float a, float b) { return __nvvm_div_rn_f(a, b); }
}  // namespace cf

#elif defined(CF_EMULATOR)

#include "../native/cuemu/cuemu_device.h"

#else
#error "compile kernels as CUDA device code (clang --cuda-device-only) or for the emulator (-DCF_EMULATOR)"
#endif

namespace cf {

CF_INLINE int lane() { return thread_x() & (kWarpSize - 1); }
CF_INLINE int warp() { return thread_x() / kWarpSize; }

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

// 1/sqrt(x), each step correctly rounded like the CPU reference's 1 / MathF.Sqrt(x)
// (rsqrt.approx would differ from it by up to 2 ulp).
CF_INLINE float rsqrt(float x) { return div_rn(1.0f, sqrt_rn(x)); }

}  // namespace cf
