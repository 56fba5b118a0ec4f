#include "ep/loopback.h"

#include <condition_variable>
#include <mutex>
#include <string>

#include "core/error.h"

namespace megamoe::ep {

namespace {

enum class Kind { kAllToAll, kAllGather };

const char* kind_name(Kind kind) { return kind == Kind::kAllToAll ? "all_to_all" : "all_gather"; }

// What a rank brought to the current collective.
struct Post {
  Kind kind = Kind::kAllToAll;
  const void* send = nullptr;
  int64_t bytes = 0;
  CollectiveTag tag;
};

class Group {
 public:
  explicit Group(const std::vector<std::shared_ptr<Backend>>& backends) : posts_(backends.size()) {
    for (const auto& backend : backends) {
      sent_.push_back(backend->create_event(false));
      copied_.push_back(backend->create_event(false));
    }
  }

  // Rank r's events, owned here so that they outlive every endpoint that waits on them:
  // `sent` is recorded after the work that produced rank r's send buffer, `copied` after rank r's
  // copies out of its peers' send buffers.
  StreamEvent& sent(int32_t rank) { return *sent_[static_cast<size_t>(rank)]; }
  StreamEvent& copied(int32_t rank) { return *copied_[static_cast<size_t>(rank)]; }

  int32_t size() const { return static_cast<int32_t>(posts_.size()); }

  // Phase one: publishes `post` and waits for every rank's. Throws, on every rank alike, when the
  // ranks' calls differ; then nobody has read anybody's buffers.
  void arrive(int32_t rank, const Post& post) {
    std::unique_lock<std::mutex> lock(mutex_);
    posts_[static_cast<size_t>(rank)] = post;
    barrier(lock, [&] { verdict_ = compare(); });
    if (!verdict_.empty()) fail(MEGAMOE_ERROR_INVALID_ARGUMENT, verdict_);
  }

  // Phase two: waits until every rank has finished copying.
  void depart() {
    std::unique_lock<std::mutex> lock(mutex_);
    barrier(lock, [] {});
  }

  // Valid between arrive() and depart(): no rank can post again before all have departed.
  const Post& post(int32_t rank) const { return posts_[static_cast<size_t>(rank)]; }

  void leave(int32_t rank) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (broken_.empty()) {
      broken_ = cat("rank ", rank, " of the loopback group is gone (its communicator and every object made from "
                    "it were destroyed), so no collective can complete");
    }
    wake_.notify_all();
  }

 private:
  // Waits until all ranks arrived at this barrier; the last to arrive runs `on_complete` first.
  template <typename OnComplete>
  void barrier(std::unique_lock<std::mutex>& lock, OnComplete&& on_complete) {
    if (!broken_.empty()) fail(MEGAMOE_ERROR_INVALID_ARGUMENT, broken_);
    const uint64_t generation = generation_;
    if (++arrived_ == size()) {
      on_complete();
      arrived_ = 0;
      ++generation_;
      wake_.notify_all();
      return;
    }
    wake_.wait(lock, [&] { return generation_ != generation || !broken_.empty(); });
    // Released before the group broke: the collective completed.
    if (generation_ == generation) fail(MEGAMOE_ERROR_INVALID_ARGUMENT, broken_);
  }

  std::string compare() const {
    const Post& first = posts_[0];
    for (size_t r = 1; r < posts_.size(); ++r) {
      const Post& p = posts_[r];
      if (p.kind != first.kind || p.bytes != first.bytes || !(p.tag == first.tag)) {
        return cat("the ranks' collective calls are out of step: rank ", r, " is at ", step_name(p.tag.step),
                   " of EP object ", p.tag.object, " (", kind_name(p.kind), " of ", p.bytes, " bytes), rank 0 at ",
                   step_name(first.tag.step), " of EP object ", first.tag.object, " (", kind_name(first.kind), " of ",
                   first.bytes, " bytes); every rank must create its EP objects and call them in the same order");
      }
    }
    return {};
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Post> posts_;
  std::vector<std::unique_ptr<StreamEvent>> sent_, copied_;
  int32_t arrived_ = 0;
  uint64_t generation_ = 0;
  std::string verdict_;  // of the last completed arrive(): empty when the calls matched
  std::string broken_;   // why the group can no longer complete a collective; empty while whole
};

class LoopbackTransport final : public Transport {
 public:
  LoopbackTransport(std::shared_ptr<Group> group, int32_t rank, std::shared_ptr<Backend> backend)
      : group_(std::move(group)), rank_(rank), backend_(std::move(backend)) {}

  ~LoopbackTransport() override { group_->leave(rank_); }

  int32_t rank() const override { return rank_; }
  int32_t world_size() const override { return group_->size(); }

  void all_to_all(const void* send, void* recv, int64_t bytes_per_peer, CollectiveTag tag, void* stream) override {
    exchange(Kind::kAllToAll, send, recv, bytes_per_peer, tag, stream);
  }

  void all_gather(const void* send, void* recv, int64_t bytes, CollectiveTag tag, void* stream) override {
    exchange(Kind::kAllGather, send, recv, bytes, tag, stream);
  }

 private:
  void exchange(Kind kind, const void* send, void* recv, int64_t bytes, CollectiveTag tag, void* stream) {
    group_->sent(rank_).record(stream);
    group_->arrive(rank_, Post{kind, send, bytes, tag});
    for (int32_t p = 0; p < group_->size(); ++p) {
      const Post& peer = group_->post(p);
      group_->sent(p).wait(stream);
      const int64_t offset = kind == Kind::kAllToAll ? rank_ * bytes : 0;
      backend_->copy(static_cast<uint8_t*>(recv) + p * bytes, static_cast<const uint8_t*>(peer.send) + offset, bytes,
                     stream);
    }
    group_->copied(rank_).record(stream);
    group_->depart();
    // Work after this call may overwrite `send`: it must wait until every peer copied out of it. (A peer
    // that already recorded `copied` again in a later call makes this wait longer, never too short.)
    for (int32_t p = 0; p < group_->size(); ++p) group_->copied(p).wait(stream);
  }

  std::shared_ptr<Group> group_;
  int32_t rank_;
  std::shared_ptr<Backend> backend_;
};

}  // namespace

std::vector<std::unique_ptr<Transport>> make_loopback_group(const std::vector<std::shared_ptr<Backend>>& backends) {
  auto group = std::make_shared<Group>(backends);
  std::vector<std::unique_ptr<Transport>> endpoints;
  for (size_t r = 0; r < backends.size(); ++r) {
    endpoints.push_back(std::make_unique<LoopbackTransport>(group, static_cast<int32_t>(r), backends[r]));
  }
  return endpoints;
}

}  // namespace megamoe::ep
