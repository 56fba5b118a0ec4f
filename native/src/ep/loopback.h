// The in-process loopback transport: W endpoints of one group exchange through the backends' own
// device-to-device copies, so the expert-parallel kernels are tested on one device (or on the CPU
// backend) exactly as they run between GPUs. Each rank has its own buffers and streams and calls from
// its own thread (W = 1 needs no other thread): a collective waits on a host barrier until all W ranks
// arrived, each rank copies its incoming blocks on its stream after the senders' streams, and a second
// barrier keeps every rank from reusing its send buffer until all peers have copied from it.
// When an endpoint goes away, the group breaks: ranks waiting in a collective, and every later call,
// fail with an error instead of waiting for it.
#pragma once

#include <memory>
#include <vector>

#include "core/backend.h"
#include "ep/transport.h"

namespace megamoe::ep {

// One endpoint per backend, rank i on backends[i] (the same backend may serve several ranks).
std::vector<std::unique_ptr<Transport>> make_loopback_group(const std::vector<std::shared_ptr<Backend>>& backends);

}  // namespace megamoe::ep
