// The creation handshake of an EP object: every rank contributes its configuration, or the reason it
// cannot create its part, and every rank gets the same verdict. So a creation succeeds on all ranks or
// fails on all of them (none is left waiting in a later collective for a peer that failed).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "ep/communicator.h"
#include "ep/exchange.h"
#include "ep/spec.h"

namespace megamoe::ep {

enum class ObjectKind : int32_t { kDispatcher = 1, kLayer = 2 };

// Collective: exchanges `spec` (or `own`, this rank's failure so far) with every rank's. Throws on every
// rank unless each succeeded locally, they agree on the shape (and, for layers, the math), and their
// expert ranges partition [0, E) in rank order; this rank's own failure is thrown unchanged. Returns the
// first expert of every rank and E last (W + 1 entries).
std::vector<int32_t> agree(Communicator& comm, ObjectKind kind, const EpSpec& spec, const std::optional<Error>& own,
                           void* stream);

// A collective creation: unless `own` already failed, builds this rank's part (`build` makes the object
// around a new Exchange), then takes part in the handshake, which throws on every rank alike when any
// rank failed or they disagree. The object numbering advances only when all succeeded.
template <typename Object, typename Build>
std::unique_ptr<Object> create_collectively(const std::shared_ptr<Communicator>& comm, ObjectKind kind,
                                            const EpSpec& spec, const std::optional<Error>& own, void* stream,
                                            Build&& build) {
  std::lock_guard<std::mutex> lock(comm->sequence_mutex());
  std::unique_ptr<Object> object;
  Exchange* exchange = nullptr;
  std::optional<Error> mine = own;
  if (!mine) {
    mine = attempt([&] {
      comm->backend()->check_expert_parallel();
      auto made = std::make_unique<Exchange>(comm, spec);
      exchange = made.get();
      object = build(std::move(made));
    });
  }
  const std::vector<int32_t> rank_begin = agree(*comm, kind, spec, mine, stream);
  exchange->set_ranks(rank_begin, comm->next_object(), stream);
  comm->commit_object();
  return object;
}

}  // namespace megamoe::ep
