#include "cpu/thread_pool.h"

#include <utility>

namespace megamoe::cpu {

namespace {

int32_t resolve_threads(int32_t threads) {
  if (threads > 0) return threads;
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int32_t>(hardware);
}

}  // namespace

ThreadPool::ThreadPool(int32_t threads) { start(resolve_threads(threads)); }

ThreadPool::~ThreadPool() {
  std::lock_guard<std::mutex> busy(busy_);
  stop();
}

void ThreadPool::resize(int32_t threads) {
  std::lock_guard<std::mutex> busy(busy_);
  stop();
  start(resolve_threads(threads));
}

void ThreadPool::start(int32_t threads) {
  stopping_ = false;
  size_ = threads;
  workers_.reserve(static_cast<size_t>(threads - 1));
  // No job runs here (busy_ is held), so the workers start level with the current generation.
  for (int32_t i = 1; i < threads; ++i) workers_.emplace_back([this, seen = generation_] { worker_loop(seen); });
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

void ThreadPool::run(int64_t n, Trampoline call, const void* fn) {
  if (n <= 0) return;
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock() || workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) call(fn, i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    call_ = call;
    fn_ = fn;
    count_ = n;
    next_ = 0;
    error_ = nullptr;
    running_ = static_cast<int32_t>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  run_indices();
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [this] { return running_ == 0; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::run_indices() {
  for (int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) {
    try {
      call_(fn_, i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_ = count_;
    }
  }
}

void ThreadPool::worker_loop(uint64_t seen) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_indices();
    std::lock_guard<std::mutex> lock(mutex_);
    if (--running_ == 0) finished_.notify_one();
  }
}

}  // namespace megamoe::cpu
