// The expert-parallel primitives on the CPU (core/backend.h, docs/EP.md): packing tokens into the
// dispatch regions, unpacking received regions (per token, or expanded and sorted by expert),
// returning results and the combine. Exact and independent of the thread count: every output element
// is written by one task, sums run in a fixed order.
#pragma once

#include <memory>

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

void ep_pack(ThreadPool& pool, const EpPackArgs& args);
void ep_unpack(ThreadPool& pool, const EpUnpackArgs& args);
void ep_unpack_expanded(ThreadPool& pool, const EpUnpackExpandedArgs& args);
void ep_return(ThreadPool& pool, const EpReturnArgs& args);
void ep_combine(ThreadPool& pool, const EpCombineArgs& args);

// Host-clock events: the CPU backend finishes every call before it returns.
std::unique_ptr<StreamEvent> make_host_clock_event();

}  // namespace megamoe::cpu
