#include "ep/agreement.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/backend_buffer.h"

namespace megamoe::ep {

namespace {

// What a rank says at creation: a fixed POD, so the exchange has a size every rank knows.
struct PeerConfig {
  int32_t status;  // MEGAMOE_SUCCESS, or why this rank cannot create its part (`message`)
  int32_t kind;    // ObjectKind
  int32_t num_experts;
  int32_t top_k;
  int64_t hidden;
  int64_t intermediate;  // layers only (0 for dispatchers, whose layer fields are ignored)
  int64_t capacity;
  int32_t expert_begin;
  int32_t num_local_experts;
  float activation_alpha;
  float activation_beta;
  float activation_clamp;
  float routed_scaling_factor;
  char message[208];
};
static_assert(sizeof(PeerConfig) == 272, "a fixed layout: every rank exchanges the same bytes");

const char* kind_name(int32_t kind) {
  return kind == static_cast<int32_t>(ObjectKind::kLayer) ? "an EP layer" : "an EP dispatcher";
}

PeerConfig describe(ObjectKind kind, const EpSpec& spec, const std::optional<Error>& own) {
  PeerConfig c;
  std::memset(&c, 0, sizeof c);
  c.kind = static_cast<int32_t>(kind);
  if (own) {
    c.status = own->status();
    std::strncpy(c.message, own->what(), sizeof c.message - 1);
    return c;
  }
  c.status = MEGAMOE_SUCCESS;
  c.num_experts = spec.num_experts;
  c.top_k = spec.top_k;
  c.hidden = spec.hidden;
  c.capacity = spec.capacity;
  c.expert_begin = spec.expert_begin;
  c.num_local_experts = spec.num_local_experts;
  if (kind == ObjectKind::kLayer) {
    c.intermediate = spec.local.intermediate;
    c.activation_alpha = spec.local.activation.alpha;
    c.activation_beta = spec.local.activation.beta;
    c.activation_clamp = spec.local.activation.clamp;
    c.routed_scaling_factor = spec.local.routed_scaling_factor;
  }
  return c;
}

megamoe_status_t status_of(int32_t code) {
  return code > MEGAMOE_SUCCESS && code <= MEGAMOE_ERROR_INTERNAL ? static_cast<megamoe_status_t>(code)
                                                                  : MEGAMOE_ERROR_INTERNAL;
}

// The first field in which rank r's config differs from rank 0's, as "<field> is <r's> on rank r but
// <0's> on rank 0"; empty when they agree.
std::string difference(const PeerConfig& c, const PeerConfig& first, int32_t r) {
  const auto differs = [&](const char* field, auto mine, auto theirs) {
    return mine == theirs ? std::string() : cat("config.", field, " is ", mine, " on rank ", r, " but ", theirs, " on rank 0");
  };
  for (const std::string& d :
       {differs("num_experts", c.num_experts, first.num_experts), differs("top_k", c.top_k, first.top_k),
        differs("hidden", c.hidden, first.hidden), differs("max_tokens_per_rank", c.capacity, first.capacity),
        differs("intermediate", c.intermediate, first.intermediate),
        differs("activation_alpha", c.activation_alpha, first.activation_alpha),
        differs("activation_beta", c.activation_beta, first.activation_beta),
        differs("activation_clamp", c.activation_clamp, first.activation_clamp),
        differs("routed_scaling_factor", c.routed_scaling_factor, first.routed_scaling_factor)}) {
    if (!d.empty()) return d;
  }
  return {};
}

}  // namespace

std::vector<int32_t> agree(Communicator& comm, ObjectKind kind, const EpSpec& spec, const std::optional<Error>& own,
                           void* stream) {
  const int32_t w = comm.world_size();
  Backend& backend = *comm.backend();
  const PeerConfig mine = describe(kind, spec, own);
  std::vector<PeerConfig> all(static_cast<size_t>(w));
  {
    BackendBuffer send(comm.backend(), sizeof(PeerConfig));
    BackendBuffer recv(comm.backend(), w * int64_t{sizeof(PeerConfig)});
    backend.write(send.as<void>(), &mine, sizeof mine, stream);
    comm.transport().all_gather(send.as<void>(), recv.as<void>(), sizeof(PeerConfig),
                                CollectiveTag{comm.next_object(), Step::kCreate}, stream);
    backend.read(all.data(), recv.as<void>(), recv.bytes(), stream);
  }
  if (own) throw *own;

  for (int32_t r = 0; r < w; ++r) {
    const PeerConfig& c = all[static_cast<size_t>(r)];
    if (c.status != MEGAMOE_SUCCESS) {
      fail(status_of(c.status), "rank ", r, " could not create its part: ",
           std::string(c.message, strnlen(c.message, sizeof c.message)));
    }
  }
  const PeerConfig& first = all[0];
  for (int32_t r = 1; r < w; ++r) {
    const PeerConfig& c = all[static_cast<size_t>(r)];
    if (c.kind != first.kind) {
      fail(MEGAMOE_ERROR_INVALID_ARGUMENT, "rank ", r, " creates ", kind_name(c.kind), " but rank 0 ",
           kind_name(first.kind), "; every rank must create the same objects in the same order");
    }
    const std::string d = difference(c, first, r);
    if (!d.empty()) fail(MEGAMOE_ERROR_INVALID_ARGUMENT, d, "; every rank must pass the same configuration");
  }

  std::vector<int32_t> rank_begin(static_cast<size_t>(w) + 1);
  int32_t end = 0;  // where the ranges so far end
  for (int32_t r = 0; r < w; ++r) {
    const PeerConfig& c = all[static_cast<size_t>(r)];
    if (c.expert_begin != end) {
      fail(MEGAMOE_ERROR_INVALID_ARGUMENT, "config.expert_begin is ", c.expert_begin, " on rank ", r, "; expected ", end,
           r == 0 ? std::string(" (rank 0 owns the first experts)") : cat(", where rank ", r - 1, "'s experts end"),
           ": the ranks' expert ranges must partition [0, num_experts) in rank order");
    }
    rank_begin[static_cast<size_t>(r)] = end;
    end += c.num_local_experts;
  }
  if (end != first.num_experts) {
    fail(MEGAMOE_ERROR_INVALID_ARGUMENT, "the expert ranges of the ", w, " ranks of the communicator cover [0, ", end,
         ") but config.num_experts is ", first.num_experts, ": is the communicator the wrong size?");
  }
  rank_begin[static_cast<size_t>(w)] = end;
  return rank_begin;
}

}  // namespace megamoe::ep
