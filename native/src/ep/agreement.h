// The creation handshake of an EP object: every rank contributes its configuration, or the reason it
// cannot create its part, and every rank gets the same verdict. So a creation succeeds on all ranks or
// fails on all of them (none is left waiting in a later collective for a peer that failed).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ep/communicator.h"
#include "ep/spec.h"

namespace megamoe::ep {

enum class ObjectKind : int32_t { kDispatcher = 1, kLayer = 2 };

// Collective: exchanges `spec` (or `own`, this rank's failure so far) with every rank's. Throws on every
// rank unless each succeeded locally, they agree on the shape (and, for layers, the math), and their
// expert ranges partition [0, E) in rank order; this rank's own failure is thrown unchanged. Returns the
// first expert of every rank and E last (W + 1 entries).
std::vector<int32_t> agree(Communicator& comm, ObjectKind kind, const EpSpec& spec, const std::optional<Error>& own,
                           void* stream);

}  // namespace megamoe::ep
