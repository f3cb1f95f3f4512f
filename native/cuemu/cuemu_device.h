// cuemu_device.h: the host (emulator) definitions of the names kernels/common.cuh gives kernels.
// Each CUDA thread of a block runs on its own fiber; blocks run one after another on the calling
// OS thread, so `__shared__` variables are thread_local statics (one copy per block at a time).
// A barrier or a warp collective yields to the block scheduler (cuemu.cpp), which runs every
// fiber up to its next yield point in turn: code where all threads of a block reach the same
// barriers and all lanes of a warp the same collectives (what CUDA requires) is emulated exactly.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __shared__ static thread_local
#define CF_INLINE inline

namespace cf::emu {

// The fiber running now: its indices, set by the scheduler before each switch.
struct ThreadState {
  int thread_x;
  int block_x;
  int block_dim_x;
};
extern thread_local ThreadState current;

void yield_to_scheduler();                 // cuemu.cpp: back to the block scheduler
float* warp_exchange_slots(int warp);      // 32 floats per warp of the current block

template <typename... Args, std::size_t... I>
void invoke(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<Args>*>(args[I])...);
}

template <typename... Args>
void invoke(void (*kernel)(Args...), void** args) {
  invoke(kernel, args, std::index_sequence_for<Args...>{});
}

}  // namespace cf::emu

// An exported trampoline per kernel entry, called by cuemu_launch with cuLaunchKernel's void**.
#define CF_EMULATOR_ENTRY(name) \
  extern "C" void cuemu_##name(void** args) { cf::emu::invoke(name, args); }

namespace cf {
inline int thread_x() { return emu::current.thread_x; }
inline int block_x() { return emu::current.block_x; }
inline int block_dim_x() { return emu::current.block_dim_x; }

inline void sync_threads() { emu::yield_to_scheduler(); }

// Butterfly shuffle: every lane publishes its value, all lanes of the block reach the exchange,
// each reads its partner's, and all reach it again before the slots may be reused.
inline float shuffle_xor(float value, int lane_mask) {
  int lane_id = thread_x() & (kWarpSize - 1);
  float* slots = emu::warp_exchange_slots(thread_x() / kWarpSize);
  slots[lane_id] = value;
  emu::yield_to_scheduler();
  float partner = slots[lane_id ^ lane_mask];
  emu::yield_to_scheduler();
  return partner;
}

inline float sqrt_rn(float x) { return std::sqrt(x); }
inline float div_rn(float a, float b) { return a / b; }
}  // namespace cf
