#include "cpu/thread_pool.h"

#include <utility>

namespace megamoe::cpu {

namespace {

// Set while this thread runs an index of a parallel_for, so a nested parallel_for runs serially
// instead of trying to take busy_ again (which the thread may already hold).
thread_local bool t_inside_job = false;

struct InsideJob {
  bool outer = t_inside_job;
  InsideJob() { t_inside_job = true; }
  ~InsideJob() { t_inside_job = outer; }
  InsideJob(const InsideJob&) = delete;
  InsideJob& operator=(const InsideJob&) = delete;
};

void run_serially(int64_t n, void (*call)(const void*, int64_t), const void* fn) {
  InsideJob inside;
  for (int64_t i = 0; i < n; ++i) call(fn, i);
}

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
  // No job runs here (busy_ is held), so the workers start level with the current generation.
  // If the system refuses a thread (a thread limit), the pool keeps the workers it got: fewer
  // threads change no result, and an exception here would leave running threads behind.
  try {
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int32_t i = 1; i < threads; ++i) workers_.emplace_back([this, seen = generation_] { worker_loop(seen); });
  } catch (const std::exception&) {
  }
  size_ = static_cast<int32_t>(workers_.size()) + 1;
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
  if (t_inside_job) return run_serially(n, call, fn);
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock() || workers_.empty() || n == 1) return run_serially(n, call, fn);
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
      InsideJob inside;
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
