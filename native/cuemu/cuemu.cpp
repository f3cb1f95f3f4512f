// cuemu.cpp: the CUDA-on-CPU emulator's block scheduler. cuemu_launch runs a kernel's blocks one
// after another on the calling thread; within a block every CUDA thread is a fiber (ucontext).
// The scheduler resumes each unfinished fiber in turn; a fiber runs until it reaches a barrier or
// a warp collective (yield_to_scheduler) or ends. So after each pass every live thread stands at
// its next synchronisation point, which is what __syncthreads and converged warp shuffles need.
#include <ucontext.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "../../kernels/common.cuh"

namespace cf::emu {

thread_local ThreadState current;

namespace {

constexpr std::size_t kStackBytes = 64 * 1024;

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  bool done = false;
};

struct Block {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  std::vector<float> warp_slots;
  Fiber* running = nullptr;
  void (*entry)(void**) = nullptr;
  void** args = nullptr;
};

thread_local Block* active = nullptr;

void fiber_main() {
  active->entry(active->args);
  active->running->done = true;  // returning switches to uc_link, the scheduler
}

}  // namespace

void yield_to_scheduler() { swapcontext(&active->running->context, &active->scheduler); }

float* warp_exchange_slots(int warp) { return active->warp_slots.data() + static_cast<std::size_t>(warp) * kWarpSize; }

}  // namespace cf::emu

// Runs `entry` (a cuemu_<kernel> trampoline) on a grid of `blocks` blocks of `threads` threads,
// with cuLaunchKernel's argument array. Returns 0, or 1 for an impossible launch shape.
extern "C" int cuemu_launch(void (*entry)(void**), int blocks, int threads, int dynamic_shared_bytes, void** args) {
  using namespace cf::emu;
  if (blocks < 0 || threads < 1 || threads > 1024 || dynamic_shared_bytes != 0) return 1;
  Block block;
  block.entry = entry;
  block.args = args;
  block.fibers.resize(threads);
  block.warp_slots.assign(static_cast<std::size_t>((threads + cf::kWarpSize - 1) / cf::kWarpSize) * cf::kWarpSize, 0.0f);
  for (Fiber& fiber : block.fibers) fiber.stack.reset(new char[kStackBytes]);
  Block* outer = active;
  active = &block;
  for (int b = 0; b < blocks; ++b) {
    for (Fiber& fiber : block.fibers) {
      fiber.done = false;
      getcontext(&fiber.context);
      fiber.context.uc_stack.ss_sp = fiber.stack.get();
      fiber.context.uc_stack.ss_size = kStackBytes;
      fiber.context.uc_link = &block.scheduler;
      makecontext(&fiber.context, fiber_main, 0);
    }
    for (bool live = true; live;) {
      live = false;
      for (int t = 0; t < threads; ++t) {
        Fiber& fiber = block.fibers[t];
        if (fiber.done) continue;
        live = true;
        current = ThreadState{t, b, threads};
        block.running = &fiber;
        swapcontext(&block.scheduler, &fiber.context);
      }
    }
  }
  active = outer;
  return 0;
}
