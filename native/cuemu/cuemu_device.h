// cuemu_device.h: the emulator's definitions of the primitives kernels/common.cuh lists, for the
// kernels compiled as host C++. Each CUDA thread of a block runs on its own fiber; a block runs on
// one OS thread (several blocks at once on several threads), so `__shared__` variables are
// thread_local statics. A barrier or a warp collective suspends the fiber until every thread it
// waits for has arrived (cuemu.cpp); warp collectives are then resolved for all lanes at once
// (collectives.cpp), with the PTX ISA's semantics and fragment layouts.
#pragma once
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
  int block_dim_x;
  int block[3];
  int grid[3];
};
extern thread_local ThreadState current;

// What a lane brings to a warp collective, and what it gets back.
enum class Collective : int { SyncWarp, ShuffleXor, ShuffleIdx, ShuffleDown, ShuffleUp, Ballot, LdMatrix, MmaBf16 };
struct WarpRequest {
  Collective op;
  unsigned mask;
  unsigned word[10];     // the lane's operand registers (a value, a predicate, mma fragments)
  int parameter;         // shuffle lane/offset; ldmatrix: matrices | (trans << 8)
  const void* address;   // ldmatrix: this lane's row address
};
struct WarpResult {
  unsigned word[4];
};

void sync_threads();                                  // cuemu.cpp
WarpResult warp_collective(const WarpRequest& request);  // cuemu.cpp: waits for the mask, then resolves
unsigned char* dynamic_shared_memory();               // cuemu.cpp: the running block's buffer

// Traps (fail the launch, naming the block, thread, primitive and address) what the hardware rejects: cuemu.cpp.
// cp.async of 16 bytes: both addresses 16-byte aligned, the destination in the block's shared memory, the source not.
void check_cp_async_16(const void* shared_destination, const void* global_source);
void cp_async_issue(void* shared_destination, const void* global_source);  // checks, then queues the copy
void cp_async_commit();
void cp_async_wait(int pending);  // lands every copy but those of the newest `pending` committed groups
// A row address of ldmatrix: 16 bytes in the block's shared memory, 16-byte aligned.
void check_ldmatrix_row(const char* primitive, const void* row);

template <typename... Args, std::size_t... I>
void invoke(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<Args>*>(args[I])...);
}

template <typename... Args>
void invoke(void (*kernel)(Args...), void** args) {
  invoke(kernel, args, std::index_sequence_for<Args...>{});
}

inline unsigned bits_of(float x) {
  unsigned u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float float_of(unsigned u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

inline unsigned shuffle(Collective op, unsigned value, int parameter, unsigned mask) {
  WarpRequest request{};
  request.op = op;
  request.mask = mask;
  request.word[0] = value;
  request.parameter = parameter;
  return warp_collective(request).word[0];
}

// Lanes 8i..8i+7 give the rows of matrix i; the addresses of lanes past 8·Count are not used (nor checked).
template <int Count>
inline void ldmatrix(const char* primitive, unsigned (&r)[Count], const void* row, bool trans) {
  if ((current.thread_x & 31) < 8 * Count) check_ldmatrix_row(primitive, row);
  WarpRequest request{};
  request.op = Collective::LdMatrix;
  request.mask = 0xffffffffu;
  request.parameter = Count | (trans ? 1 << 8 : 0);
  request.address = row;
  WarpResult result = warp_collective(request);
  for (int i = 0; i < Count; ++i) r[i] = result.word[i];
}

}  // namespace cf::emu

// An exported trampoline per kernel entry, called by cuemu_launch with cuLaunchKernel's void**.
#define CF_EMULATOR_ENTRY(name) \
  extern "C" void cuemu_##name(void** args) { cf::emu::invoke(name, args); }

namespace cf {

// ---- indices -------------------------------------------------------------------------------
inline int thread_x() { return emu::current.thread_x; }
inline int block_dim_x() { return emu::current.block_dim_x; }
inline int block_x() { return emu::current.block[0]; }
inline int block_y() { return emu::current.block[1]; }
inline int block_z() { return emu::current.block[2]; }
inline int grid_dim_x() { return emu::current.grid[0]; }
inline int grid_dim_y() { return emu::current.grid[1]; }
inline int grid_dim_z() { return emu::current.grid[2]; }

// ---- barriers and warp collectives ----------------------------------------------------------
inline void sync_threads() { emu::sync_threads(); }
inline void sync_warp(unsigned mask) { emu::shuffle(emu::Collective::SyncWarp, 0, 0, mask); }

inline float shuffle_xor(float value, int lane_mask, unsigned mask = kFullMask) {
  return emu::float_of(emu::shuffle(emu::Collective::ShuffleXor, emu::bits_of(value), lane_mask, mask));
}
inline float shuffle_idx(float value, int source_lane, unsigned mask = kFullMask) {
  return emu::float_of(emu::shuffle(emu::Collective::ShuffleIdx, emu::bits_of(value), source_lane, mask));
}
inline float shuffle_down(float value, int delta, unsigned mask = kFullMask) {
  return emu::float_of(emu::shuffle(emu::Collective::ShuffleDown, emu::bits_of(value), delta, mask));
}
inline float shuffle_up(float value, int delta, unsigned mask = kFullMask) {
  return emu::float_of(emu::shuffle(emu::Collective::ShuffleUp, emu::bits_of(value), delta, mask));
}
inline int shuffle_idx(int value, int source_lane, unsigned mask = kFullMask) {
  return static_cast<int>(emu::shuffle(emu::Collective::ShuffleIdx, static_cast<unsigned>(value), source_lane, mask));
}
inline unsigned ballot(bool predicate, unsigned mask = kFullMask) {
  return emu::shuffle(emu::Collective::Ballot, predicate ? 1u : 0u, 0, mask);
}
inline bool any(bool predicate, unsigned mask = kFullMask) { return ballot(predicate, mask) != 0; }
// Every lane of the mask (that exists in the block) has a true predicate.
inline bool all(bool predicate, unsigned mask = kFullMask) { return ballot(!predicate, mask) == 0; }

// ---- memory ---------------------------------------------------------------------------------
template <typename T>
inline T* dynamic_shared() { return reinterpret_cast<T*>(emu::dynamic_shared_memory()); }

// Blocks may run on several OS threads at once, so these are real atomics.
inline int atomic_add(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
inline int atomic_max(int* address, int value) {
  int old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (old < value && !__atomic_compare_exchange_n(address, &old, value, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomic_cas(int* address, int expected, int desired) {
  __atomic_compare_exchange_n(address, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;  // the old value, whether or not it was replaced
}
inline float atomic_add(float* address, float value) {
  auto* word = reinterpret_cast<unsigned*>(address);
  unsigned old = __atomic_load_n(word, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(word, &old, emu::bits_of(emu::float_of(old) + value), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return emu::float_of(old);
}

// cp.async as the hardware may do it at its latest: a copy lands when a wait covers its group (cuemu.cpp), so a kernel
// that reads a tile it has not waited for sees the stale bytes it would on a GPU. What the hardware would reject (a
// misaligned address, a destination outside shared memory) ends the launch when the copy is issued.
inline void cp_async_16(void* shared_destination, const void* global_source) { emu::cp_async_issue(shared_destination, global_source); }
inline void cp_async_commit() { emu::cp_async_commit(); }
template <int Pending>
inline void cp_async_wait() { emu::cp_async_wait(Pending); }
// wait_all is commit_group then wait_group 0 (PTX ISA): the copies not yet committed are waited for too.
inline void cp_async_wait_all() {
  emu::cp_async_commit();
  emu::cp_async_wait(0);
}

// ---- tensor cores -----------------------------------------------------------------------------
inline void ldmatrix_x1(unsigned (&r)[1], const void* row) { emu::ldmatrix("ldmatrix_x1", r, row, false); }
inline void ldmatrix_x2(unsigned (&r)[2], const void* row) { emu::ldmatrix("ldmatrix_x2", r, row, false); }
inline void ldmatrix_x4(unsigned (&r)[4], const void* row) { emu::ldmatrix("ldmatrix_x4", r, row, false); }
inline void ldmatrix_x2_trans(unsigned (&r)[2], const void* row) { emu::ldmatrix("ldmatrix_x2_trans", r, row, true); }
inline void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) { emu::ldmatrix("ldmatrix_x4_trans", r, row, true); }

inline void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
  emu::WarpRequest request{};
  request.op = emu::Collective::MmaBf16;
  request.mask = kFullMask;
  for (int i = 0; i < 4; ++i) request.word[i] = a[i];
  for (int i = 0; i < 2; ++i) request.word[4 + i] = b[i];
  for (int i = 0; i < 4; ++i) request.word[6 + i] = emu::bits_of(c[i]);
  emu::WarpResult result = emu::warp_collective(request);
  for (int i = 0; i < 4; ++i) d[i] = emu::float_of(result.word[i]);
}

// ---- arithmetic with the CPU reference's rounding ----------------------------------------------
inline float sqrt_rn(float x) { return __builtin_sqrtf(x); }
inline float div_rn(float a, float b) { return a / b; }
// a·b + c rounded once, like fma.rn.f32: std::fma's correctly rounded fmaf (an fma instruction where the CPU has one,
// glibc's exact emulation where not). The emulator is built with -ffp-contract=off, as the PTX is, so a·b + c
// written out is two roundings on both.
inline float fma_rn(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline float floor_f(float x) { return __builtin_floorf(x); }
inline float max_f(float a, float b) { return __builtin_fmaxf(a, b); }
inline unsigned mul_hi(unsigned a, unsigned b) { return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32); }
inline unsigned float_bits(float x) { return emu::bits_of(x); }
inline float bits_float(unsigned x) { return emu::float_of(x); }

}  // namespace cf
