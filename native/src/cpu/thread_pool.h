// A small persistent pool. parallel_for(n, fn) calls fn(i) once for every i in [0, n), spread
// over the workers and the calling thread. Results never depend on the thread count because every
// caller makes each output element the job of exactly one index, computed in a fixed order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace megamoe::cpu {

class ThreadPool {
 public:
  // threads counts the calling thread; 0 means one per hardware thread.
  explicit ThreadPool(int32_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Waits for a running parallel_for, then restarts the workers.
  void resize(int32_t threads);
  int32_t size() const { return size_.load(); }

  // Rethrows the first exception a call of fn threw (the remaining indices are then skipped).
  // A parallel_for issued while another one runs (from another thread, or nested inside fn) runs
  // on its calling thread alone rather than waiting, so nesting cannot deadlock.
  template <typename Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    // Called through a const pointer: fn runs on several threads at once, so it must not mutate.
    using Callable = std::remove_reference_t<Fn>;
    run(n, [](const void* f, int64_t i) { (*static_cast<const Callable*>(f))(i); }, &fn);
  }

  // fn(begin, end) over consecutive ranges of [0, n) of about `grain` items each, for loops whose
  // items are too cheap to schedule one by one.
  template <typename Fn>
  void parallel_ranges(int64_t n, int64_t grain, Fn&& fn) {
    const int64_t step = grain < 1 ? 1 : grain;
    parallel_for((n + step - 1) / step, [&](int64_t i) { fn(i * step, i * step + step < n ? i * step + step : n); });
  }

 private:
  using Trampoline = void (*)(const void*, int64_t);

  void run(int64_t n, Trampoline call, const void* fn);
  void run_indices();
  void worker_loop(uint64_t seen);
  void start(int32_t threads);
  void stop();

  std::atomic<int32_t> size_{1};
  std::mutex busy_;  // held by the thread running a parallel_for on the pool
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  int32_t running_ = 0;  // workers still inside the current job

  Trampoline call_ = nullptr;
  const void* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
};

}  // namespace megamoe::cpu
