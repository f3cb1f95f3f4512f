// cuemu.cpp: the CUDA-on-CPU emulator's scheduler. cuemu_launch hands a grid's blocks to a pool of
// worker threads; a worker runs one block at a time, every CUDA thread of it on its own fiber.
//
// Fibers switch with _setjmp/_longjmp (no signal-mask system call per switch, unlike swapcontext;
// makecontext only starts each fiber once, and a fiber then loops over the blocks it is given).
// A fiber runs until it waits: at sync_threads (until every live thread of the block is there),
// or at a warp collective (until every lane in its mask is there; the last to arrive resolves it
// for all, collectives.cpp). The worker resumes runnable fibers in thread order, pass after pass;
// a pass in which nothing can run is a deadlock (a divergent barrier, a lane that never comes),
// reported instead of hanging. Blocks are independent, so running them on several threads gives
// the same results as running them one after another. What the hardware would reject (cp.async
// and ldmatrix addresses that are misaligned or in the wrong memory: check_cp_async_16,
// check_ldmatrix_row) ends the block the same way, naming the thread, primitive and address.
#include <link.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collectives.h"

namespace cf::emu {

thread_local ThreadState current;

namespace {

constexpr std::size_t kStackBytes = 256 * 1024;  // reserved; pages are committed only when touched
constexpr int kMaxThreads = 1024;
constexpr int kMaxDynamicShared = 227 * 1024;    // what an H100 lets a kernel opt in to

enum class State { Runnable, AtBarrier, AtWarp, Done };

struct Fiber {
  jmp_buf context;
  ucontext_t start;
  char* stack = nullptr;  // below it, one inaccessible guard page
  bool started = false;
  State state = State::Done;
  WarpRequest request{};
  WarpResult result{};
  // cp.async copies issued and not yet landed (destination, source), and where each committed group ends in them.
  std::vector<std::pair<void*, const void*>> copies;
  std::vector<std::size_t> group_ends;
};

struct Launch {
  void (*entry)(void**);
  void** args;
  int grid[3];
  int threads;
  int dynamic_shared_bytes;
  std::atomic<long> next_block{0};
  std::mutex error_gate;
  std::string error;
  std::atomic<bool> failed{false};
};

// [begin, end) of addresses.
struct Range {
  std::uintptr_t begin = 0, end = 0;
  bool holds(const void* address, std::size_t bytes) const {
    auto a = reinterpret_cast<std::uintptr_t>(address);
    return a >= begin && a <= end && end - a >= bytes;
  }
};

// A worker's state: its fibers (kept between blocks and launches) and the block it runs now.
struct Worker {
  jmp_buf scheduler;
  std::vector<Fiber> fibers;
  std::vector<unsigned char> dynamic_shared;
  Launch* launch = nullptr;
  Fiber* running = nullptr;
  int live = 0;
  int at_barrier = 0;
  int block[3] = {0, 0, 0};
  bool failed = false;
  char error[512] = {0};
  // This OS thread's block of the library's thread_local variables, where the kernels' static __shared__ variables
  // live (`__shared__` is `static thread_local` here): with the dynamic shared buffer, the block's shared memory.
  Range static_shared;
  bool static_shared_looked_up = false;
};

thread_local Worker* self = nullptr;

[[noreturn]] void return_to_scheduler() { _longjmp(self->scheduler, 1); }

// Suspends the running fiber; returns when the scheduler resumes it.
void suspend() {
  if (_setjmp(self->running->context) == 0) return_to_scheduler();
}

// Ends the block with an error; the fiber is abandoned (and restarted from scratch next time).
[[noreturn]] void fail(const char* what) {
  std::snprintf(self->error, sizeof self->error, "block (%d,%d,%d), thread %d: %s", self->block[0], self->block[1], self->block[2],
                current.thread_x, what);
  self->failed = true;
  return_to_scheduler();
}

// The calling thread's instance of this library's PT_TLS segment (glibc's dl_iterate_phdr reports it once the
// thread has touched one of its thread_local variables). It also holds the emulator's own few thread_locals, which
// kernels cannot name, so as a test of "is this shared memory" it is exact for everything a kernel can point at.
Range thread_local_block() {
  struct Search {
    std::uintptr_t code;
    Range found;
  } search{reinterpret_cast<std::uintptr_t>(&thread_local_block), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t size, void* data) -> int {
        auto& s = *static_cast<Search*>(data);
        if (size < offsetof(dl_phdr_info, dlpi_tls_data) + sizeof info->dlpi_tls_data) return 0;
        bool mine = false;
        const ElfW(Phdr)* tls = nullptr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& header = info->dlpi_phdr[i];
          std::uintptr_t start = info->dlpi_addr + header.p_vaddr;
          if (header.p_type == PT_LOAD && s.code >= start && s.code - start < header.p_memsz) mine = true;
          if (header.p_type == PT_TLS) tls = &header;
        }
        if (!mine) return 0;
        if (tls != nullptr && info->dlpi_tls_data != nullptr) {
          s.found.begin = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);
          s.found.end = s.found.begin + tls->p_memsz;
        }
        return 1;
      },
      &search);
  return search.found;
}

void release_barrier(Worker& w) {
  for (int t = 0; t < w.launch->threads; ++t) {
    if (w.fibers[t].state == State::AtBarrier) w.fibers[t].state = State::Runnable;
  }
  w.at_barrier = 0;
}

void fiber_main() {
  for (;;) {
    Worker& w = *self;
    w.launch->entry(w.launch->args);
    w.running->state = State::Done;
    --w.live;
    if (w.at_barrier > 0 && w.at_barrier == w.live) release_barrier(w);  // exited threads count as arrived
    suspend();                                                            // resumed for the next block
  }
}

void ensure_fibers(Worker& w, int threads) {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (static_cast<int>(w.fibers.size()) < threads) w.fibers.resize(threads);
  for (int t = 0; t < threads; ++t) {
    Fiber& f = w.fibers[t];
    if (f.stack == nullptr) {
      void* region = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (region == MAP_FAILED) {
        std::fprintf(stderr, "cuemu: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(region, page, PROT_NONE);  // an overflowing kernel faults here instead of corrupting memory
      f.stack = static_cast<char*>(region) + page;
    }
  }
}

void resume(Fiber& f) {
  if (_setjmp(self->scheduler) == 0) {
    if (!f.started) {  // first run, or the last run was abandoned: start fiber_main afresh
      f.started = true;
      getcontext(&f.start);
      f.start.uc_stack.ss_sp = f.stack;
      f.start.uc_stack.ss_size = kStackBytes;
      f.start.uc_link = nullptr;
      makecontext(&f.start, fiber_main, 0);
      setcontext(&f.start);
    }
    _longjmp(f.context, 1);
  }
}

std::string deadlock_report(Worker& w) {
  int barrier = 0, warp = 0, done = 0;
  std::string lanes;
  for (int t = 0; t < w.launch->threads; ++t) {
    State s = w.fibers[t].state;
    barrier += s == State::AtBarrier;
    done += s == State::Done;
    if (s == State::AtWarp) {
      if (warp++ < 4) {
        char one[96];
        std::snprintf(one, sizeof one, "%sthread %d at %s (mask %08x)", lanes.empty() ? "" : ", ", t, collective_name(w.fibers[t].request.op),
                      w.fibers[t].request.mask);
        lanes += one;
      }
    }
  }
  char text[512];
  std::snprintf(text, sizeof text,
                "block (%d,%d,%d) deadlocked: %d thread(s) wait at sync_threads, %d at warp collectives%s%s, %d finished "
                "(a barrier not reached by every thread, or a collective whose mask names a lane that never arrives)",
                w.block[0], w.block[1], w.block[2], barrier, warp, lanes.empty() ? "" : ": ", lanes.c_str(), done);
  return text;
}

// Runs one block to completion; false (with w.error set) when it failed.
bool run_block(Worker& w, long linear) {
  Launch& l = *w.launch;
  w.block[0] = static_cast<int>(linear % l.grid[0]);
  w.block[1] = static_cast<int>(linear / l.grid[0] % l.grid[1]);
  w.block[2] = static_cast<int>(linear / l.grid[0] / l.grid[1]);
  // Dynamic shared memory starts as NaN bytes, so a kernel that reads what it never wrote shows it.
  std::fill(w.dynamic_shared.begin(), w.dynamic_shared.begin() + l.dynamic_shared_bytes, static_cast<unsigned char>(0xff));
  w.live = l.threads;
  w.at_barrier = 0;
  w.failed = false;
  for (int t = 0; t < l.threads; ++t) {
    w.fibers[t].state = State::Runnable;
    w.fibers[t].copies.clear();  // a copy the last block never waited for died with its shared memory
    w.fibers[t].group_ends.clear();
  }
  ThreadState state{};
  state.block_dim_x = l.threads;
  std::copy(w.block, w.block + 3, state.block);
  std::copy(l.grid, l.grid + 3, state.grid);
  while (w.live > 0 && !w.failed) {
    bool ran = false;
    for (int t = 0; t < l.threads && !w.failed; ++t) {
      Fiber& f = w.fibers[t];
      if (f.state != State::Runnable) continue;
      ran = true;
      state.thread_x = t;
      current = state;
      w.running = &f;
      resume(f);
    }
    if (!ran && w.live > 0 && !w.failed) {
      std::snprintf(w.error, sizeof w.error, "%s", deadlock_report(w).c_str());
      w.failed = true;
    }
  }
  if (w.failed) {
    for (int t = 0; t < l.threads; ++t) {
      if (w.fibers[t].state != State::Done) w.fibers[t].started = false;  // its stack is abandoned mid-kernel
    }
  }
  return !w.failed;
}

void work_on(Worker& w, Launch& l) {
  self = &w;  // touches this thread's thread_local block first, so that it exists
  if (!w.static_shared_looked_up) {
    w.static_shared = thread_local_block();  // empty if the C library does not say (then shared and global look alike)
    w.static_shared_looked_up = true;
  }
  w.launch = &l;
  ensure_fibers(w, l.threads);
  if (static_cast<int>(w.dynamic_shared.size()) < l.dynamic_shared_bytes) w.dynamic_shared.resize(l.dynamic_shared_bytes);
  long blocks = static_cast<long>(l.grid[0]) * l.grid[1] * l.grid[2];
  for (long b; !l.failed.load(std::memory_order_relaxed) && (b = l.next_block.fetch_add(1)) < blocks;) {
    if (!run_block(w, b)) {
      std::lock_guard<std::mutex> lock(l.error_gate);
      if (!l.failed.exchange(true)) l.error = w.error;
    }
  }
}

// Worker threads that live as long as the process (the library is linked -z nodelete).
class Pool {
 public:
  Pool() {
    int count = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* setting = std::getenv("CUEMU_THREADS")) count = std::atoi(setting);
    count = std::clamp(count, 1, 64);
    workers_.resize(count);
    for (int i = 0; i < count; ++i) std::thread([this, i] { loop(workers_[i]); }).detach();
  }

  void run(Launch& l) {
    std::unique_lock<std::mutex> lock(gate_);
    launch_ = &l;
    busy_ = static_cast<int>(workers_.size());
    ++generation_;
    wake_.notify_all();
    done_.wait(lock, [this] { return busy_ == 0; });
    launch_ = nullptr;
  }

 private:
  void loop(Worker& w) {
    unsigned long seen = 0;
    for (;;) {
      Launch* l;
      {
        std::unique_lock<std::mutex> lock(gate_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        l = launch_;
      }
      work_on(w, *l);
      std::lock_guard<std::mutex> lock(gate_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::vector<Worker> workers_;
  std::mutex gate_;
  std::condition_variable wake_, done_;
  Launch* launch_ = nullptr;
  unsigned long generation_ = 0;
  int busy_ = 0;
};

std::mutex launch_gate;  // one launch at a time, like one stream
thread_local std::string last_error;

}  // namespace

void sync_threads() {
  Worker& w = *self;
  w.running->state = State::AtBarrier;
  if (++w.at_barrier == w.live) {
    release_barrier(w);  // the last to arrive goes on at once
    return;
  }
  suspend();
}

WarpResult warp_collective(const WarpRequest& request) {
  Worker& w = *self;
  Fiber& me = *w.running;
  int thread = current.thread_x, warp_base = thread & ~31, lane = thread & 31;
  int lanes_in_warp = std::min(32, w.launch->threads - warp_base);
  unsigned existing = lanes_in_warp == 32 ? 0xffffffffu : (1u << lanes_in_warp) - 1;
  unsigned participants = request.mask & existing;
  if (((participants >> lane) & 1u) == 0) {
    char what[128];
    std::snprintf(what, sizeof what, "%s with mask %08x, which leaves out the calling lane %d", collective_name(request.op), request.mask, lane);
    fail(what);
  }
  me.request = request;
  me.state = State::AtWarp;
  const WarpRequest* requests[32] = {};
  for (int l = 0; l < 32; ++l) {
    if (((participants >> l) & 1u) == 0) continue;
    Fiber& other = w.fibers[warp_base + l];
    if (other.state != State::AtWarp) {
      suspend();  // a later arrival resolves the collective and makes this fiber runnable
      return me.result;
    }
    requests[l] = &other.request;
  }
  WarpResult results[32];
  char error[256];
  if (!resolve_collective(requests, participants, results, error, sizeof error)) fail(error);
  for (int l = 0; l < 32; ++l) {
    if (((participants >> l) & 1u) == 0) continue;
    Fiber& other = w.fibers[warp_base + l];
    other.result = results[l];
    other.state = State::Runnable;
  }
  return me.result;
}

unsigned char* dynamic_shared_memory() { return self->dynamic_shared.data(); }

namespace {

// Where `bytes` at `address` lie for the running thread: in its block's shared memory (static or dynamic), in its own
// local memory (its fiber's stack), or elsewhere (global memory, as far as the emulator can tell).
// Unknown: global memory or static shared memory, where the C library did not give the thread_local block.
enum class Space { Shared, Local, Global, Unknown };
Space space_of(const void* address, std::size_t bytes) {
  Worker& w = *self;
  auto dynamic = reinterpret_cast<std::uintptr_t>(w.dynamic_shared.data());
  if (w.static_shared.holds(address, bytes) || Range{dynamic, dynamic + static_cast<std::size_t>(w.launch->dynamic_shared_bytes)}.holds(address, bytes)) {
    return Space::Shared;
  }
  auto stack = reinterpret_cast<std::uintptr_t>(w.running->stack);
  if (Range{stack, stack + kStackBytes}.holds(address, 1)) return Space::Local;
  return w.static_shared.begin == 0 ? Space::Unknown : Space::Global;
}

const char* space_name(Space space) { return space == Space::Shared ? "shared memory" : space == Space::Local ? "local memory (the thread's stack)" : "global memory"; }

std::string shared_memory_description() {
  char text[160];
  std::snprintf(text, sizeof text, "its __shared__ variables and %d bytes of dynamic shared memory at %p", self->launch->dynamic_shared_bytes,
                static_cast<void*>(self->dynamic_shared.data()));
  return text;
}

}  // namespace

void check_cp_async_16(const void* shared_destination, const void* global_source) {
  char what[384];
  if (reinterpret_cast<std::uintptr_t>(shared_destination) % 16 != 0) {
    std::snprintf(what, sizeof what, "cp_async_16: the shared destination %p is not 16-byte aligned (cp.async of 16 bytes needs both addresses 16-byte aligned)",
                  shared_destination);
    fail(what);
  }
  if (reinterpret_cast<std::uintptr_t>(global_source) % 16 != 0) {
    std::snprintf(what, sizeof what, "cp_async_16: the global source %p is not 16-byte aligned (cp.async of 16 bytes needs both addresses 16-byte aligned)",
                  global_source);
    fail(what);
  }
  Space destination = space_of(shared_destination, 16);
  if (destination != Space::Shared && destination != Space::Unknown) {
    std::snprintf(what, sizeof what, "cp_async_16: the destination %p is in %s, not in the block's shared memory (%s)", shared_destination,
                  space_name(destination), shared_memory_description().c_str());
    fail(what);
  }
  Space source = space_of(global_source, 16);
  if (source != Space::Global && source != Space::Unknown) {
    std::snprintf(what, sizeof what, "cp_async_16: the source %p is in %s, not in global memory", global_source, space_name(source));
    fail(what);
  }
}

// cp.async lands as late as the PTX ISA allows: when a wait covers its group, reading its source then. A kernel that
// reads a tile before waiting for it (or a double buffer overwritten too early) reads stale bytes, as it could on a GPU.
void cp_async_issue(void* shared_destination, const void* global_source) {
  check_cp_async_16(shared_destination, global_source);
  self->running->copies.emplace_back(shared_destination, global_source);
}

void cp_async_commit() {
  Fiber& f = *self->running;
  f.group_ends.push_back(f.copies.size());
}

void cp_async_wait(int pending) {
  Fiber& f = *self->running;
  if (f.group_ends.size() <= static_cast<std::size_t>(pending)) return;
  std::size_t done_groups = f.group_ends.size() - pending, done = f.group_ends[done_groups - 1];
  for (std::size_t i = 0; i < done; ++i) std::memcpy(f.copies[i].first, f.copies[i].second, 16);
  f.copies.erase(f.copies.begin(), f.copies.begin() + static_cast<std::ptrdiff_t>(done));
  f.group_ends.erase(f.group_ends.begin(), f.group_ends.begin() + static_cast<std::ptrdiff_t>(done_groups));
  for (std::size_t& end : f.group_ends) end -= done;
}

void check_ldmatrix_row(const char* primitive, const void* row) {
  char what[384];
  int lane = current.thread_x & 31;
  if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0) {
    std::snprintf(what, sizeof what, "%s: lane %d's row address %p is not 16-byte aligned (ldmatrix reads 16-byte rows)", primitive, lane, row);
    fail(what);
  }
  Space space = space_of(row, 16);
  if (space != Space::Shared && space != Space::Unknown) {
    std::snprintf(what, sizeof what, "%s: lane %d's row address %p is in %s, not in the block's shared memory (%s)", primitive, lane, row,
                  space_name(space), shared_memory_description().c_str());
    fail(what);
  }
}

}  // namespace cf::emu

// Runs `entry` (a cuemu_<kernel> trampoline) on a grid of blocks of `threads` threads, with
// cuLaunchKernel's argument array. 0 on success; otherwise cuemu_last_error() says why.
extern "C" int cuemu_launch(void (*entry)(void**), int grid_x, int grid_y, int grid_z, int threads, int dynamic_shared_bytes, void** args) {
  using namespace cf::emu;
  if (grid_x < 0 || grid_y < 1 || grid_z < 1 || threads < 1 || threads > kMaxThreads || dynamic_shared_bytes < 0 ||
      dynamic_shared_bytes > kMaxDynamicShared) {
    char text[256];
    std::snprintf(text, sizeof text, "impossible launch: grid (%d,%d,%d), %d threads per block (1..%d), %d bytes of dynamic shared memory (0..%d)",
                  grid_x, grid_y, grid_z, threads, kMaxThreads, dynamic_shared_bytes, kMaxDynamicShared);
    last_error = text;
    return 1;
  }
  if (grid_x == 0) return 0;
  static Pool* pool = new Pool();  // never destroyed: its threads outlive static destructors
  Launch launch;
  launch.entry = entry;
  launch.args = args;
  launch.grid[0] = grid_x;
  launch.grid[1] = grid_y;
  launch.grid[2] = grid_z;
  launch.threads = threads;
  launch.dynamic_shared_bytes = dynamic_shared_bytes;
  {
    std::lock_guard<std::mutex> lock(launch_gate);
    pool->run(launch);
  }
  if (launch.failed) {
    last_error = launch.error;
    return 2;
  }
  return 0;
}

// The reason the last failed cuemu_launch on this thread failed.
extern "C" const char* cuemu_last_error() { return cf::emu::last_error.c_str(); }
