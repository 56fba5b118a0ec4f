// Fuzz target: expert parallelism on one rank (a loopback group of W = 1, which needs no other
// thread): loopback groups of any size created and destroyed, dispatchers and EP layers (configuration,
// expert range, weights, cancelling progress callbacks), dispatch in both formats, combine (of the right
// format or not, with or without a dispatch to combine), forward with out-of-range experts, timings, and
// the NCCL entry points, which must never succeed without CUDA.
#include <algorithm>
#include <cmath>
#include <limits>

#include "harness.h"

using namespace fuzz;

namespace {

constexpr auto kFp8 = MEGAMOE_DTYPE_FP8_E4M3;
constexpr auto kF32 = MEGAMOE_DTYPE_FP32;
constexpr auto kI32 = MEGAMOE_DTYPE_INT32;
constexpr auto kIn = Role::kInput;
constexpr auto kOut = Role::kOutput;

int32_t cancel(void* /*user_data*/, int64_t /*done*/, int64_t /*total*/) { return 1; }

struct Config {
  megamoe_ep_config_t c;
  bool valid_dispatcher;  // the fields a dispatcher reads are valid for a group of one
  bool valid_layer;       // and the layer's too
};

Config read_config(FuzzInput& in) {
  Config cfg{};
  megamoe_ep_config_t& c = cfg.c;
  const auto size = static_cast<uint32_t>(sizeof(megamoe_ep_config_t));
  c.struct_size = in.pick<uint32_t>({size, 0u, size - 8u, size + 8u});
  c.flags = in.pick<uint32_t>({0u, MEGAMOE_EP_RECORD_TIMINGS, MEGAMOE_MOE_W13_INTERLEAVED, 8u, 0x1000u});
  c.num_experts = in.pick<int32_t>({2, 1, 3, 0, -1, 1025});
  c.top_k = in.pick<int32_t>({2, 1, 3, 0, 17});
  c.hidden = in.pick<int64_t>({128, 256, 0, 64, 130});
  c.intermediate = in.pick<int64_t>({128, 0, 64});
  c.max_tokens_per_rank = in.pick<int64_t>({4, 1, 2, 0, -1, int64_t{1} << 40});
  c.expert_begin = in.pick<int32_t>({0, 1, -1});
  c.num_local_experts = in.pick<int32_t>({c.num_experts, 1, 0, c.num_experts + 1});
  c.activation_alpha = in.pick<float>({1.0f, NAN});
  c.activation_beta = in.pick<float>({0.0f, -INFINITY});
  c.activation_clamp = in.pick<float>({0.0f, 7.0f, -1.0f});
  c.routed_scaling_factor = in.pick<float>({1.0f, 2.5f, NAN});
  const bool cancels = in.byte() % 8 == 7;
  if (cancels) c.progress = cancel;
  // A group of one owns every expert: any other range is refused when the ranks compare them.
  cfg.valid_dispatcher = c.struct_size == size && (c.flags & ~(7u | MEGAMOE_EP_RECORD_TIMINGS)) == 0 &&
                         c.num_experts >= 1 && c.num_experts <= 1024 && c.top_k >= 1 && c.top_k <= 16 &&
                         c.hidden > 0 && c.hidden % 128 == 0 && c.max_tokens_per_rank >= 1 &&
                         c.max_tokens_per_rank <= 4 && c.expert_begin == 0 && c.num_local_experts == c.num_experts;
  cfg.valid_layer = cfg.valid_dispatcher && c.intermediate > 0 && c.intermediate % 128 == 0 &&
                    std::isfinite(c.activation_alpha) && std::isfinite(c.activation_beta) &&
                    c.activation_clamp >= 0.0f && std::isfinite(c.routed_scaling_factor) && !cancels;
  return cfg;
}

// A live handle, NULL, or a live handle of another kind (the communicator), as the input says.
template <typename Handle>
Handle handle_argument(FuzzInput& in, Handle good, megamoe_ep_comm_t comm, bool& is_good) {
  const uint8_t choice = in.byte() % 16;
  is_good = choice < 14;
  return choice == 15 ? nullptr : choice == 14 ? reinterpret_cast<Handle>(comm) : good;
}

// This rank's tokens: x (BF16, or FP8 with scales), topk_idx with global experts, topk_weights.
struct Tokens {
  int64_t t;
  bool fp8, scales_given;
  const megamoe_tensor_t *x, *x_scales, *topk_idx, *topk_weights;
};

Tokens read_tokens(FuzzInput& in, Call& call, const megamoe_ep_config_t& c) {
  Tokens tok{};
  const int64_t cap = c.max_tokens_per_rank;
  tok.t = in.pick<int64_t>({std::min<int64_t>(2, cap), cap, 0, 1, cap + 1});
  tok.fp8 = in.flag();
  tok.scales_given = tok.fp8 != (in.byte() % 16 == 15);
  tok.x = call.tensor(tok.fp8 ? kFp8 : MEGAMOE_DTYPE_BF16, {tok.t, c.hidden}, kIn);
  tok.x_scales = tok.scales_given ? call.tensor(kF32, {tok.t, c.hidden / 128}, kIn) : nullptr;
  const auto idx_dtype = in.pick<megamoe_dtype_t>({kI32, MEGAMOE_DTYPE_INT64});
  tok.topk_idx = call.tensor(idx_dtype, {tok.t, c.top_k}, kIn, [&](int64_t) { return expert_index(in, c.num_experts); });
  tok.topk_weights = call.tensor(kF32, {tok.t, c.top_k}, kIn);
  return tok;
}

// Whether every expert a call may read is in [-1, E) (a call with no tokens reads none).
bool experts_valid(const Tokens& tok, const megamoe_ep_config_t& c) {
  const int64_t rows = dim_of(tok.x, 0, tok.t);
  const auto idx = read_indices(tok.topk_idx);
  return rows == 0 || !idx || experts_in_range(*idx, c.num_experts, static_cast<int64_t>(idx->size()));
}

// What the dispatcher holds for a combine.
struct Held {
  enum Kind { kNothing, kCompact, kExpanded } kind = kNothing;
  int64_t tokens = 0;
};

void dispatch(FuzzInput& in, megamoe_ep_dispatcher_t good, megamoe_ep_comm_t comm, const megamoe_ep_config_t& c,
              Held& held) {
  const bool expanded = in.flag();
  bool handle_ok = false;
  const auto d = handle_argument(in, good, comm, handle_ok);
  Call call(in, expanded ? "megamoe_ep_dispatch_expanded" : "megamoe_ep_dispatch");
  const Tokens tok = read_tokens(in, call, c);
  const int64_t rows = c.max_tokens_per_rank * (expanded ? c.top_k : 1), h = c.hidden;
  const auto* recv_x = call.tensor(kFp8, {rows, h}, kOut);
  const auto* recv_x_scales = call.tensor(kF32, {rows, h / 128}, kOut);
  const bool indices_valid = experts_valid(tok, c);
  void* stream = stream_argument(in);
  const bool valid = handle_ok && tok.t <= c.max_tokens_per_rank && tok.scales_given == tok.fp8 && indices_valid;
  megamoe_status_t status;
  if (expanded) {
    const auto* offsets = call.tensor(kI32, {int64_t{c.num_local_experts} + 1}, kOut);
    status = call.run(
        [&] {
          return megamoe_ep_dispatch_expanded(d, tok.x, tok.x_scales, tok.topk_idx, tok.topk_weights, recv_x,
                                              recv_x_scales, offsets, stream);
        },
        valid && !call.mutated(), indices_valid);
  } else {
    const auto* recv_idx = call.tensor(kI32, {rows, c.top_k}, kOut);
    const auto* recv_weights = call.tensor(kF32, {rows, c.top_k}, kOut);
    const auto* recv_count = call.tensor(kI32, {1}, kOut);
    status = call.run(
        [&] {
          return megamoe_ep_dispatch(d, tok.x, tok.x_scales, tok.topk_idx, tok.topk_weights, recv_x, recv_x_scales,
                                     recv_idx, recv_weights, recv_count, stream);
        },
        valid && !call.mutated(), indices_valid);
  }
  if (!handle_ok) return;  // the dispatcher was not reached
  held = status == MEGAMOE_SUCCESS ? Held{expanded ? Held::kExpanded : Held::kCompact, dim_of(tok.x, 0, tok.t)} : Held{};
}

void combine(FuzzInput& in, megamoe_ep_dispatcher_t good, megamoe_ep_comm_t comm, const megamoe_ep_config_t& c,
             Held& held) {
  bool handle_ok = false;
  const auto d = handle_argument(in, good, comm, handle_ok);
  const int64_t compact = c.max_tokens_per_rank, expanded = compact * c.top_k;
  const int64_t held_rows = held.kind == Held::kExpanded ? expanded : compact;
  const int64_t rows = in.pick<int64_t>({held_rows, held.kind == Held::kExpanded ? compact : expanded, 0});
  const int64_t t = in.pick<int64_t>({held.tokens, held.tokens + 1});
  const auto dtype = in.pick<megamoe_dtype_t>({kF32, MEGAMOE_DTYPE_BF16});
  Call call(in, "megamoe_ep_combine");
  const auto* partial = call.tensor(dtype, {rows, c.hidden}, kIn);
  const auto* y = call.tensor(MEGAMOE_DTYPE_BF16, {t, c.hidden}, kOut);
  void* stream = stream_argument(in);
  const bool valid = handle_ok && held.kind != Held::kNothing && rows == held_rows && t == held.tokens;
  call.run([&] { return megamoe_ep_combine(d, partial, y, stream); }, valid && !call.mutated());
  if (handle_ok) held = Held{};  // a combine consumes the dispatch, whatever its outcome
}

void dispatcher_calls(FuzzInput& in, megamoe_ep_comm_t comm) {
  const Config cfg = read_config(in);
  const bool null_out = in.byte() % 16 == 15;
  megamoe_ep_dispatcher_t d = nullptr;
  Call create(in, "megamoe_ep_dispatcher_create");
  void* stream = stream_argument(in);
  const megamoe_status_t status = create.run(
      [&] { return megamoe_ep_dispatcher_create(comm, &cfg.c, stream, null_out ? nullptr : &d); },
      cfg.valid_dispatcher && !null_out);
  if (status != MEGAMOE_SUCCESS) {
    if (d != nullptr) fail("megamoe_ep_dispatcher_create failed but wrote out_dispatcher");
    return;
  }
  Owned<megamoe_ep_dispatcher_t, megamoe_ep_dispatcher_destroy> owned(d);
  {
    int64_t tokens = -1, rows = -1;
    Call sizes(in, "megamoe_ep_dispatcher_get_sizes");
    sizes.run([&] { return megamoe_ep_dispatcher_get_sizes(d, &tokens, &rows); }, true);
    if (tokens != cfg.c.max_tokens_per_rank || rows != tokens * cfg.c.top_k) fail("wrong dispatcher sizes");
  }
  Held held;
  int calls = 0;
  do {
    if (in.flag()) {
      dispatch(in, d, comm, cfg.c, held);
    } else {
      combine(in, d, comm, cfg.c, held);
    }
  } while (!in.exhausted() && ++calls < 4);
}

void forward(FuzzInput& in, megamoe_ep_layer_t good, megamoe_ep_comm_t comm, const megamoe_ep_config_t& c,
             bool& timed) {
  bool handle_ok = false;
  const auto layer = handle_argument(in, good, comm, handle_ok);
  Call call(in, "megamoe_ep_layer_forward");
  const Tokens tok = read_tokens(in, call, c);
  const auto* y = call.tensor(MEGAMOE_DTYPE_BF16, {tok.t, c.hidden}, kOut);
  const auto* counts = call.optional_tensor(kI32, {c.num_local_experts}, kOut);
  const bool indices_valid = experts_valid(tok, c);
  void* stream = stream_argument(in);
  const bool valid = handle_ok && tok.t <= c.max_tokens_per_rank && tok.scales_given == tok.fp8 && indices_valid &&
                     !call.mutated();
  const megamoe_status_t status = call.run(
      [&] {
        return megamoe_ep_layer_forward(layer, tok.x, tok.x_scales, tok.topk_idx, tok.topk_weights, y, counts, stream);
      },
      valid, indices_valid);
  if (handle_ok) timed = status == MEGAMOE_SUCCESS && (c.flags & MEGAMOE_EP_RECORD_TIMINGS) != 0;
}

void layer_calls(FuzzInput& in, megamoe_ep_comm_t comm) {
  const Config cfg = read_config(in);
  const megamoe_ep_config_t& c = cfg.c;
  // Weight shapes from the config only when it is sane, so a nonsense config allocates little.
  const int64_t e = cfg.valid_layer ? c.num_local_experts : 1, h = cfg.valid_layer ? c.hidden : 128;
  const int64_t i = cfg.valid_layer ? c.intermediate : 128;
  const auto w_dtype = in.pick<megamoe_dtype_t>({kFp8, MEGAMOE_DTYPE_BF16});
  const bool scales_given = (w_dtype == kFp8) != (in.byte() % 16 == 15);
  const bool null_out = in.byte() % 16 == 15;
  Call create(in, "megamoe_ep_layer_create");
  const auto* w13 = create.tensor(w_dtype, {e, 2 * i, h}, kIn);
  const auto* w13_scales = scales_given ? create.tensor(kF32, {e, 2 * i / 128, h / 128}, kIn) : nullptr;
  const auto* w2 = create.tensor(w_dtype, {e, h, i}, kIn);
  const auto* w2_scales = scales_given ? create.tensor(kF32, {e, h / 128, i / 128}, kIn) : nullptr;
  void* stream = stream_argument(in);
  megamoe_ep_layer_t layer = nullptr;
  const bool valid = cfg.valid_layer && !null_out && !create.mutated() && scales_given == (w_dtype == kFp8);
  const megamoe_status_t status = create.run(
      [&] {
        return megamoe_ep_layer_create(comm, &c, w13, w13_scales, w2, w2_scales, stream, null_out ? nullptr : &layer);
      },
      valid);
  if (status != MEGAMOE_SUCCESS) {
    if (layer != nullptr) fail("megamoe_ep_layer_create failed but wrote out_layer");
    return;
  }
  Owned<megamoe_ep_layer_t, megamoe_ep_layer_destroy> owned(layer);
  bool timed = false;
  int calls = 0;
  do {
    if (in.byte() % 4 == 3) {
      double ms[3] = {-1, -1, -1};
      const uint8_t nulls = in.byte() % 8;
      Call timings(in, "megamoe_ep_layer_get_timings");
      const megamoe_status_t st = timings.run(
          [&] {
            return megamoe_ep_layer_get_timings(layer, (nulls & 1) ? nullptr : &ms[0], (nulls & 2) ? nullptr : &ms[1],
                                                (nulls & 4) ? nullptr : &ms[2]);
          },
          timed && nulls == 0);
      if (st == MEGAMOE_SUCCESS && (ms[0] < 0 || ms[1] < 0 || ms[2] < 0)) fail("negative EP timings");
    } else {
      forward(in, layer, comm, c, timed);
    }
  } while (!in.exhausted() && ++calls < 4);
}

// Groups of any size are made and destroyed without a collective (which a group of more than one
// could not complete on this one thread).
void loopback_calls(FuzzInput& in) {
  megamoe_context_t contexts[3] = {shared_context(), shared_context(), shared_context()};
  bool good_context = false;
  const int32_t spoiled = in.byte() % 3;
  contexts[spoiled] = context_argument(in, shared_context(), good_context);
  const int32_t size = in.pick<int32_t>({1, 2, 3, 0, -1});
  good_context = good_context || spoiled >= size;  // a context past the group is not read
  const bool null_contexts = in.byte() % 16 == 15, null_out = in.byte() % 16 == 15;
  megamoe_ep_comm_t out[3] = {};
  Call call(in, "megamoe_ep_comm_create_loopback");
  const bool valid = good_context && size >= 1 && !null_contexts && !null_out;
  const megamoe_status_t status = call.run(
      [&] {
        return megamoe_ep_comm_create_loopback(null_contexts ? nullptr : contexts, size, null_out ? nullptr : out);
      },
      valid);
  for (megamoe_ep_comm_t c : out) {
    if (status != MEGAMOE_SUCCESS && c != nullptr) fail("megamoe_ep_comm_create_loopback failed but wrote out_comms");
    if (c != nullptr && megamoe_ep_comm_destroy(c) != MEGAMOE_SUCCESS) fail("destroying a live communicator failed");
  }
}

void comm_queries(FuzzInput& in, megamoe_ep_comm_t comm) {
  const uint8_t choice = in.byte() % 4;
  const auto c = choice == 3 ? reinterpret_cast<megamoe_ep_comm_t>(shared_context()) : choice == 2 ? nullptr : comm;
  const uint8_t nulls = in.byte() % 4;
  int32_t rank = -1, size = -1;
  Call call(in, "megamoe_ep_comm_get_rank");
  const megamoe_status_t st = call.run(
      [&] { return megamoe_ep_comm_get_rank(c, (nulls & 1) ? nullptr : &rank, (nulls & 2) ? nullptr : &size); },
      c == comm && nulls == 0);
  if (st == MEGAMOE_SUCCESS && (rank != 0 || size != 1)) fail("a group of one has rank 0 of 1");
}

// Without CUDA no NCCL call may succeed; each must fail cleanly whatever its arguments.
void nccl_calls(FuzzInput& in) {
  static const char* const kNames[] = {"megamoe_nccl_get_unique_id", "megamoe_nccl_comm_init_rank",
                                       "megamoe_nccl_comm_init_all", "megamoe_nccl_comm_destroy",
                                       "megamoe_ep_comm_create_nccl"};
  const uint8_t which = in.byte() % 5;
  Call call(in, kNames[which]);
  const int64_t id_size = in.pick<int64_t>({MEGAMOE_NCCL_UNIQUE_ID_BYTES, 0, 127, -1});
  auto* id = static_cast<uint8_t*>(call.bytes(id_size, which == 0 ? Role::kOutput : Role::kInput));
  void* comms[2] = {};
  const int32_t devices[2] = {0, in.pick<int32_t>({1, 0, -1})};
  void* foreign = reinterpret_cast<void*>(uintptr_t{0x1000});
  switch (which) {
    case 0: call.run([&] { return megamoe_nccl_get_unique_id(id, id_size); }, false); break;
    case 1: {
      const int32_t world = in.pick<int32_t>({2, 1, 0, -1}), rank = in.pick<int32_t>({0, 1, 2, -1});
      call.run([&] { return megamoe_nccl_comm_init_rank(world, id, id_size, rank, devices[1], &comms[0]); }, false);
      break;
    }
    case 2: {
      const int32_t count = in.pick<int32_t>({2, 1, 0, -1});
      call.run([&] { return megamoe_nccl_comm_init_all(count, devices, comms); }, false);
      break;
    }
    case 3: call.run([&] { return megamoe_nccl_comm_destroy(foreign); }, false); break;
    default: {
      bool good_context = false;
      megamoe_context_t context = context_argument(in, shared_context(), good_context);
      megamoe_ep_comm_t comm = nullptr;
      call.run([&] { return megamoe_ep_comm_create_nccl(context, foreign, &comm); }, false);
      if (comm != nullptr) fail("megamoe_ep_comm_create_nccl wrote out_comm without NCCL");
      break;
    }
  }
  if (comms[0] != nullptr || comms[1] != nullptr) fail("an NCCL call wrote a communicator without NCCL");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    megamoe_context_t context = shared_context();
    megamoe_ep_comm_t comm = nullptr;
    if (megamoe_ep_comm_create_loopback(&context, 1, &comm) != MEGAMOE_SUCCESS) {
      fail(std::string("cannot create a loopback group of one: ") + megamoe_last_error_message());
    }
    Owned<megamoe_ep_comm_t, megamoe_ep_comm_destroy> owned(comm);
    int ops = 0;
    do {
      switch (in.byte() % 5) {
        case 0: layer_calls(in, comm); break;
        case 1: dispatcher_calls(in, comm); break;
        case 2: loopback_calls(in); break;
        case 3: comm_queries(in, comm); break;
        default: nccl_calls(in); break;
      }
    } while (!in.exhausted() && ++ops < 3);
  });
}
