// Section 9: expert parallelism (docs/EP.md). Collective entry points check only their handle before
// taking part; every other check runs inside attempt(), so a rank with bad arguments still takes part
// in the collective (serving its peers) and fails afterwards with the usual message.
#include <set>
#include <string>
#include <vector>

#include "abi/guard.h"
#include "abi/operands.h"
#include "ep/loopback.h"
#include "ep/nccl.h"

using namespace megamoe;

namespace {


ep::Communicator& comm_of(megamoe_ep_comm_t comm) { return *require_handle(comm, "comm").impl; }

// The config of a dispatcher (`layer` false: the layer fields are ignored) or a layer, for a
// communicator of `world_size` ranks.
ep::EpSpec check_ep_config(const megamoe_ep_config_t* config, int32_t world_size, bool layer) {
  const megamoe_ep_config_t& c = check_config_size(config, "megamoe_ep_config_t");
  constexpr uint32_t kKnown = kMoeLayerFlags | MEGAMOE_EP_RECORD_TIMINGS;
  if ((c.flags & ~kKnown) != 0) invalid("config", "flags has unknown bits 0x", std::hex, c.flags & ~kKnown);
  check_shape_fields(c);
  if (c.max_tokens_per_rank < 1 || c.max_tokens_per_rank >= kMaxTokens / (int64_t{world_size} * c.top_k)) {
    invalid("config", "max_tokens_per_rank is ", c.max_tokens_per_rank, "; expected 1 to ",
            (kMaxTokens - 1) / (int64_t{world_size} * c.top_k),
            " (world_size * max_tokens_per_rank * top_k, the received rows, must stay below 2^31)");
  }
  if (c.expert_begin < 0 || c.expert_begin >= c.num_experts) {
    invalid("config", "expert_begin is ", c.expert_begin, "; expected 0 to ", c.num_experts - 1,
            " (a global expert: num_experts is ", c.num_experts, ")");
  }
  if (c.num_local_experts < 1 || c.num_local_experts > c.num_experts - c.expert_begin) {
    invalid("config", "num_local_experts is ", c.num_local_experts, "; expected 1 to ", c.num_experts - c.expert_begin,
            " (the experts from expert_begin = ", c.expert_begin, " to num_experts = ", c.num_experts, ")");
  }
  ep::EpSpec spec;
  spec.num_experts = c.num_experts;
  spec.top_k = c.top_k;
  spec.hidden = c.hidden;
  spec.capacity = c.max_tokens_per_rank;
  spec.expert_begin = c.expert_begin;
  spec.num_local_experts = c.num_local_experts;
  spec.record_timings = (c.flags & MEGAMOE_EP_RECORD_TIMINGS) != 0;
  if (layer) spec.local = check_layer_fields(c, c.num_local_experts, world_size * c.max_tokens_per_rank);
  return spec;
}

// This rank's tokens of a dispatch or forward.
ep::TokenBatch check_batch(const TensorChecker& check, const ep::EpSpec& spec, const megamoe_tensor_t* x,
                           const megamoe_tensor_t* x_scales, const megamoe_tensor_t* topk_idx,
                           const megamoe_tensor_t* topk_weights) {
  const TokenArgs t = check_tokens(check, x, x_scales, topk_idx, topk_weights, spec.hidden, spec.top_k, spec.capacity,
                                   "every rank passes at most config.max_tokens_per_rank");
  return ep::TokenBatch{t.x, t.x_scales, t.topk_idx, t.topk_weights};
}

// The received rows of a dispatch: x [rows, H] FP8 with scales [rows, H/128].
ScaledTensor check_received_x(const TensorChecker& check, const ep::EpSpec& spec, const megamoe_tensor_t* recv_x,
                              const megamoe_tensor_t* recv_x_scales, int64_t rows, const char* meaning) {
  ScaledTensor out;
  out.data = check.tensor("recv_x", recv_x, {MEGAMOE_DTYPE_FP8_E4M3}, "[R, H]");
  expect_dim("recv_x", out.data, 0, rows, meaning);
  expect_dim("recv_x", out.data, 1, spec.hidden, "H, config.hidden");
  out.scales = check.tensor("recv_x_scales", recv_x_scales, {MEGAMOE_DTYPE_FP32}, "[R, H/128]");
  expect_dim("recv_x_scales", out.scales, 0, rows, meaning);
  expect_dim("recv_x_scales", out.scales, 1, spec.hidden / 128, "H / 128");
  return out;
}

// The outputs of a call that reads `batch` overlap neither it nor each other.
void expect_outputs_apart(std::initializer_list<NamedTensor> outputs, const ep::TokenBatch& batch) {
  expect_all_disjoint(outputs, {{"x", batch.x},
                                {"x_scales", batch.x_scales},
                                {"topk_idx", batch.topk_idx},
                                {"topk_weights", batch.topk_weights}});
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_ep_comm_create_nccl(megamoe_context_t context, void* nccl_comm,
                                                         megamoe_ep_comm_t* out_comm) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    auto& out = require_out(out_comm, "out_comm");
    if (nccl_comm == nullptr) invalid("nccl_comm", "is NULL; expected an ncclComm_t");
    auto comm = std::make_unique<megamoe_ep_comm>();
    comm->impl = std::make_shared<ep::Communicator>(ctx.backend, ep::make_nccl_transport(ctx.backend, nccl_comm));
    out = publish(std::move(comm));
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_comm_create_loopback(const megamoe_context_t* contexts, int32_t world_size,
                                                             megamoe_ep_comm_t* out_comms) {
  return guarded(__func__, [&] {
    if (contexts == nullptr) invalid("contexts", "is NULL; expected world_size contexts");
    if (world_size < 1 || world_size > kMaxWorldSize) {
      invalid("world_size", "is ", world_size, "; expected 1 to ", kMaxWorldSize);
    }
    if (out_comms == nullptr) invalid("out_comms", "output pointer is NULL");
    std::vector<std::shared_ptr<Backend>> backends;
    for (int32_t r = 0; r < world_size; ++r) {
      const std::string name = cat("contexts[", r, "]");
      backends.push_back(require_handle(contexts[r], name.c_str()).backend);
      if (backends.back()->kind() != backends.front()->kind()) {
        invalid(name.c_str(), "runs on another backend than contexts[0]; a loopback group runs on one backend");
      }
    }
    std::vector<std::unique_ptr<megamoe_ep_comm>> comms;
    auto transports = ep::make_loopback_group(backends);
    for (int32_t r = 0; r < world_size; ++r) {
      comms.push_back(std::make_unique<megamoe_ep_comm>());
      comms.back()->impl = std::make_shared<ep::Communicator>(backends[static_cast<size_t>(r)],
                                                              std::move(transports[static_cast<size_t>(r)]));
    }
    // All or none: a key that cannot be registered (out of memory) takes the earlier ones back.
    std::vector<megamoe_ep_comm_t> keys;
    try {
      for (auto& comm : comms) keys.push_back(publish(std::move(comm)));
    } catch (...) {
      for (megamoe_ep_comm_t key : keys) destroy_handle(key, "comm");
      throw;
    }
    std::copy(keys.begin(), keys.end(), out_comms);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_comm_destroy(megamoe_ep_comm_t comm) {
  return guarded(__func__, [&] { destroy_handle(comm, "comm"); });
}

MEGAMOE_API megamoe_status_t megamoe_ep_comm_get_rank(megamoe_ep_comm_t comm, int32_t* out_rank,
                                                      int32_t* out_world_size) {
  return guarded(__func__, [&] {
    const ep::Communicator& c = comm_of(comm);
    auto& rank = require_out(out_rank, "out_rank");
    auto& world_size = require_out(out_world_size, "out_world_size");
    rank = c.rank();
    world_size = c.world_size();
  });
}

MEGAMOE_API megamoe_status_t megamoe_nccl_get_unique_id(uint8_t* out_id, int64_t size) {
  return guarded(__func__, [&] {
    if (out_id == nullptr) invalid("out_id", "output pointer is NULL");
    if (size != MEGAMOE_NCCL_UNIQUE_ID_BYTES) {
      invalid("size", "is ", size, "; expected MEGAMOE_NCCL_UNIQUE_ID_BYTES = ", MEGAMOE_NCCL_UNIQUE_ID_BYTES);
    }
    ep::nccl_get_unique_id(out_id);
  });
}

MEGAMOE_API megamoe_status_t megamoe_nccl_comm_init_rank(int32_t world_size, const uint8_t* id, int64_t id_size,
                                                         int32_t rank, int32_t device_id, void** out_comm) {
  return guarded(__func__, [&] {
    if (world_size < 1) invalid("world_size", "is ", world_size, "; expected at least 1");
    if (id == nullptr) invalid("id", "is NULL; expected the bytes of megamoe_nccl_get_unique_id");
    if (id_size != MEGAMOE_NCCL_UNIQUE_ID_BYTES) {
      invalid("id_size", "is ", id_size, "; expected MEGAMOE_NCCL_UNIQUE_ID_BYTES = ", MEGAMOE_NCCL_UNIQUE_ID_BYTES);
    }
    if (rank < 0 || rank >= world_size) invalid("rank", "is ", rank, "; expected 0 to ", world_size - 1);
    if (device_id < 0) invalid("device_id", "is ", device_id, " (negative)");
    auto& out = require_out(out_comm, "out_comm");
    out = ep::nccl_comm_init_rank(world_size, id, rank, device_id);
  });
}

MEGAMOE_API megamoe_status_t megamoe_nccl_comm_init_all(int32_t count, const int32_t* device_ids, void** out_comms) {
  return guarded(__func__, [&] {
    if (count < 1 || count > kMaxWorldSize) invalid("count", "is ", count, "; expected 1 to ", kMaxWorldSize);
    if (device_ids == nullptr) invalid("device_ids", "is NULL; expected count device ordinals");
    std::set<int32_t> seen;
    for (int32_t i = 0; i < count; ++i) {
      if (device_ids[i] < 0) invalid("device_ids", "device_ids[", i, "] is ", device_ids[i], " (negative)");
      if (!seen.insert(device_ids[i]).second) {
        invalid("device_ids", "device_ids[", i, "] = ", device_ids[i], " repeats a device; NCCL puts one rank on each");
      }
    }
    if (out_comms == nullptr) invalid("out_comms", "output pointer is NULL");
    ep::nccl_comm_init_all(count, device_ids, out_comms);
  });
}

MEGAMOE_API megamoe_status_t megamoe_nccl_comm_destroy(void* comm) {
  return guarded(__func__, [&] {
    if (comm != nullptr) ep::nccl_comm_destroy(comm);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_create(megamoe_ep_comm_t comm, const megamoe_ep_config_t* config,
                                                          void* stream, megamoe_ep_dispatcher_t* out_dispatcher) {
  return guarded(__func__, [&] {
    auto& c = require_handle(comm, "comm");
    auto handle = std::make_unique<megamoe_ep_dispatcher>();
    const std::optional<Error> own = ep::attempt([&] {
      require_out(out_dispatcher, "out_dispatcher");
      handle->spec = check_ep_config(config, c.impl->world_size(), false);
    });
    handle->impl = ep::Dispatcher::create(c.impl, handle->spec, own, stream);
    *out_dispatcher = publish(std::move(handle));
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_destroy(megamoe_ep_dispatcher_t dispatcher) {
  return guarded(__func__, [&] { destroy_handle(dispatcher, "dispatcher"); });
}

MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_get_sizes(megamoe_ep_dispatcher_t dispatcher,
                                                             int64_t* out_max_recv_tokens,
                                                             int64_t* out_max_recv_rows_expanded) {
  return guarded(__func__, [&] {
    const EpGeometry& g = require_handle(dispatcher, "dispatcher").impl->geometry();
    auto& tokens = require_out(out_max_recv_tokens, "out_max_recv_tokens");
    auto& rows = require_out(out_max_recv_rows_expanded, "out_max_recv_rows_expanded");
    tokens = g.max_received();
    rows = g.max_expanded();
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_dispatch(megamoe_ep_dispatcher_t dispatcher, const megamoe_tensor_t* x,
                                                 const megamoe_tensor_t* x_scales, const megamoe_tensor_t* topk_idx,
                                                 const megamoe_tensor_t* topk_weights, const megamoe_tensor_t* recv_x,
                                                 const megamoe_tensor_t* recv_x_scales,
                                                 const megamoe_tensor_t* recv_topk_idx,
                                                 const megamoe_tensor_t* recv_topk_weights,
                                                 const megamoe_tensor_t* recv_num_tokens, void* stream) {
  return guarded(__func__, [&] {
    auto& d = require_handle(dispatcher, "dispatcher");
    const ep::EpSpec& spec = d.spec;
    ep::TokenBatch batch;
    ep::DispatchOutputs out;
    const std::optional<Error> own = ep::attempt([&] {
      const TensorChecker check(d.impl->device());
      const int64_t rows = d.impl->geometry().max_received();
      constexpr const char* kRows = "R_max = world_size * max_tokens_per_rank, megamoe_ep_dispatcher_get_sizes";
      batch = check_batch(check, spec, x, x_scales, topk_idx, topk_weights);
      out.x = check_received_x(check, spec, recv_x, recv_x_scales, rows, kRows);
      out.topk_idx = check.tensor("recv_topk_idx", recv_topk_idx, {MEGAMOE_DTYPE_INT32}, "[R, top_k]");
      expect_dim("recv_topk_idx", out.topk_idx, 0, rows, kRows);
      expect_dim("recv_topk_idx", out.topk_idx, 1, spec.top_k, "config.top_k");
      out.topk_weights = check.tensor("recv_topk_weights", recv_topk_weights, {MEGAMOE_DTYPE_FP32}, "[R, top_k]");
      expect_dim("recv_topk_weights", out.topk_weights, 0, rows, kRows);
      expect_dim("recv_topk_weights", out.topk_weights, 1, spec.top_k, "config.top_k");
      out.num_tokens = check.tensor("recv_num_tokens", recv_num_tokens, {MEGAMOE_DTYPE_INT32}, "[1]");
      expect_dim("recv_num_tokens", out.num_tokens, 0, 1, "a single count");
      expect_outputs_apart({{"recv_x", out.x.data},
                            {"recv_x_scales", out.x.scales},
                            {"recv_topk_idx", out.topk_idx},
                            {"recv_topk_weights", out.topk_weights},
                            {"recv_num_tokens", out.num_tokens}},
                           batch);
    });
    d.impl->dispatch(own ? nullptr : &batch, own ? nullptr : &out, nullptr, own, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_dispatch_expanded(megamoe_ep_dispatcher_t dispatcher,
                                                          const megamoe_tensor_t* x, const megamoe_tensor_t* x_scales,
                                                          const megamoe_tensor_t* topk_idx,
                                                          const megamoe_tensor_t* topk_weights,
                                                          const megamoe_tensor_t* recv_x,
                                                          const megamoe_tensor_t* recv_x_scales,
                                                          const megamoe_tensor_t* recv_offsets, void* stream) {
  return guarded(__func__, [&] {
    auto& d = require_handle(dispatcher, "dispatcher");
    const ep::EpSpec& spec = d.spec;
    ep::TokenBatch batch;
    ep::ExpandedOutputs out;
    const std::optional<Error> own = ep::attempt([&] {
      const TensorChecker check(d.impl->device());
      batch = check_batch(check, spec, x, x_scales, topk_idx, topk_weights);
      out.x = check_received_x(check, spec, recv_x, recv_x_scales, d.impl->geometry().max_expanded(),
                               "R_max * top_k, megamoe_ep_dispatcher_get_sizes");
      out.expert_offsets = check.tensor("recv_offsets", recv_offsets, {MEGAMOE_DTYPE_INT32}, "[E_local + 1]");
      expect_dim("recv_offsets", out.expert_offsets, 0, int64_t{spec.num_local_experts} + 1,
                 "config.num_local_experts + 1");
      expect_outputs_apart(
          {{"recv_x", out.x.data}, {"recv_x_scales", out.x.scales}, {"recv_offsets", out.expert_offsets}}, batch);
    });
    d.impl->dispatch(own ? nullptr : &batch, nullptr, own ? nullptr : &out, own, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_combine(megamoe_ep_dispatcher_t dispatcher, const megamoe_tensor_t* partial,
                                                const megamoe_tensor_t* y, void* stream) {
  return guarded(__func__, [&] {
    auto& d = require_handle(dispatcher, "dispatcher");
    ep::CombineArgs args;
    const std::optional<Error> own = ep::attempt([&] {
      const TensorChecker check(d.impl->device());
      // The rows of both depend on the dispatch being combined; the dispatcher checks them.
      args.partial = check.tensor("partial", partial, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, "[R, H]");
      expect_dim("partial", args.partial, 1, d.spec.hidden, "H, config.hidden");
      args.y = check.tensor("y", y, {MEGAMOE_DTYPE_BF16}, "[T, H]");
      expect_dim("y", args.y, 1, d.spec.hidden, "H, config.hidden");
      expect_disjoint("y", args.y, {{"partial", args.partial}});
    });
    d.impl->combine(own ? nullptr : &args, own, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_layer_create(megamoe_ep_comm_t comm, const megamoe_ep_config_t* config,
                                                     const megamoe_tensor_t* w13, const megamoe_tensor_t* w13_scales,
                                                     const megamoe_tensor_t* w2, const megamoe_tensor_t* w2_scales,
                                                     void* stream, megamoe_ep_layer_t* out_layer) {
  return guarded(__func__, [&] {
    auto& c = require_handle(comm, "comm");
    auto handle = std::make_unique<megamoe_ep_layer>();
    MoeWeights weights;
    const std::optional<Error> own = ep::attempt([&] {
      require_out(out_layer, "out_layer");
      handle->spec = check_ep_config(config, c.impl->world_size(), true);
      weights = check_moe_weights(TensorChecker(c.impl->backend()->device()), handle->spec.local,
                                  "config.num_local_experts", w13, w13_scales, w2, w2_scales);
    });
    handle->impl = ep::Layer::create(c.impl, handle->spec, weights, own, stream);
    *out_layer = publish(std::move(handle));
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_layer_destroy(megamoe_ep_layer_t layer) {
  return guarded(__func__, [&] { destroy_handle(layer, "layer"); });
}

MEGAMOE_API megamoe_status_t megamoe_ep_layer_forward(megamoe_ep_layer_t layer, const megamoe_tensor_t* x,
                                                      const megamoe_tensor_t* x_scales,
                                                      const megamoe_tensor_t* topk_idx,
                                                      const megamoe_tensor_t* topk_weights, const megamoe_tensor_t* y,
                                                      const megamoe_tensor_t* expert_counts, void* stream) {
  return guarded(__func__, [&] {
    auto& l = require_handle(layer, "layer");
    const ep::EpSpec& spec = l.spec;
    ep::LayerForwardArgs args;
    const std::optional<Error> own = ep::attempt([&] {
      const TensorChecker check(l.impl->device());
      args.batch = check_batch(check, spec, x, x_scales, topk_idx, topk_weights);
      args.y = check.tensor("y", y, {MEGAMOE_DTYPE_BF16}, "[T, H]");
      expect_dim("y", args.y, 0, args.batch.x.dim(0), "T, the rows of 'x'");
      expect_dim("y", args.y, 1, spec.hidden, "H, config.hidden");
      args.expert_counts = check.optional_tensor("expert_counts", expert_counts, {MEGAMOE_DTYPE_INT32}, "[E_local]");
      if (args.expert_counts) {
        expect_dim("expert_counts", *args.expert_counts, 0, spec.num_local_experts, "config.num_local_experts");
      }
      expect_outputs_apart({{"y", args.y}, {"expert_counts", args.expert_counts}}, args.batch);
    });
    l.impl->forward(own ? nullptr : &args, own, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_ep_layer_get_timings(megamoe_ep_layer_t layer, double* out_dispatch_ms,
                                                          double* out_compute_ms, double* out_combine_ms) {
  return guarded(__func__, [&] {
    auto& l = require_handle(layer, "layer");
    auto& dispatch = require_out(out_dispatch_ms, "out_dispatch_ms");
    auto& compute = require_out(out_compute_ms, "out_compute_ms");
    auto& combine = require_out(out_combine_ms, "out_combine_ms");
    const ep::Timings t = l.impl->timings();
    dispatch = t.dispatch_ms;
    compute = t.compute_ms;
    combine = t.combine_ms;
  });
}

}  // extern "C"
