#include "cpu/ep_kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/formats.h"
#include "cpu/index_checks.h"

namespace megamoe::cpu {

namespace {

constexpr int64_t kCombineColumns = 512;
constexpr int64_t kRowsPerTask = 8;

// The header of region p, and record i of dispatch region p; `Byte` is uint8_t or const uint8_t.
template <typename Byte>
auto* header(Byte* regions, int64_t region_bytes, int64_t p) {
  using Header = std::conditional_t<std::is_const_v<Byte>, const EpRegionHeader, EpRegionHeader>;
  return reinterpret_cast<Header*>(regions + p * region_bytes);
}
template <typename Byte>
Byte* record(const EpGeometry& g, Byte* regions, int64_t p, int64_t i) {
  return regions + p * g.region_bytes() + kEpHeaderBytes + i * g.record_bytes();
}

// Record counts of the received dispatch regions -> offsets [W + 1]; returns R. A count outside
// [0, C] cannot come from a peer of this communicator (creation checked that every rank has the same
// geometry), so it is reported as a bug rather than read past the region.
int64_t received_offsets(const EpGeometry& g, const uint8_t* recv, int32_t* offsets) {
  int64_t total = 0;
  for (int64_t s = 0; s < g.world_size; ++s) {
    const int64_t count = header(recv, g.region_bytes(), s)->count;
    if (count < 0 || count > g.capacity) {
      fail(MEGAMOE_ERROR_INTERNAL, "the dispatch region from rank ", s, " claims ", count,
           " records; a region holds 0 to ", g.capacity);
    }
    offsets[s] = static_cast<int32_t>(total);
    total += count;
  }
  offsets[g.world_size] = static_cast<int32_t>(total);
  return total;
}

// The source rank of received row i: the rank whose range of rows holds it, found as ep_owner finds
// the rank whose range of experts holds an expert.
int64_t source_of(const int32_t* offsets, int32_t world_size, int64_t i) { return ep_owner(offsets, world_size, i); }

void copy_row(const EpGeometry& g, const uint8_t* rec, const ScaledTensor& x, int64_t row) {
  std::memcpy(x.data.as<uint8_t>() + row * g.hidden, rec, static_cast<size_t>(g.hidden));
  std::memcpy(x.scales.as<float>() + row * g.scale_count(), rec + g.scales_offset(),
              static_cast<size_t>(4 * g.scale_count()));
}

float element(const Tensor& t, int64_t i) {
  return t.dtype == MEGAMOE_DTYPE_BF16 ? bf16_to_float(t.as<const uint16_t>()[i]) : t.as<const float>()[i];
}

class HostClockEvent final : public StreamEvent {
 public:
  void record(void* /*stream*/) override { time_ = std::chrono::steady_clock::now(); }
  void wait(void* /*stream*/) override {}
  double elapsed_ms(StreamEvent& start) override {
    const auto& from = dynamic_cast<const HostClockEvent&>(start);
    return std::chrono::duration<double, std::milli>(time_ - from.time_).count();
  }

 private:
  std::chrono::steady_clock::time_point time_{};
};

}  // namespace

void ep_pack(ThreadPool& pool, const EpPackArgs& args) {
  const EpGeometry& g = args.geometry;
  const int64_t tokens = args.x.data.dim(0), k = g.top_k, w = g.world_size;
  check_topk_idx(args.topk_idx, tokens, args.rank_begin[w]);

  auto* send = static_cast<uint8_t*>(args.send);
  for (int64_t p = 0; p < w; ++p) *header(send, g.region_bytes(), p) = EpRegionHeader{0, MEGAMOE_SUCCESS, {0, 0}};
  // Record indices in token order, so every region lists its tokens in the order of the batch.
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t* pos = args.pos + t * w;
    std::fill(pos, pos + w, -1);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = index_at(args.topk_idx, t * k + j);
      if (e < 0) continue;
      const int32_t p = ep_owner(args.rank_begin, g.world_size, e);
      if (pos[p] < 0) pos[p] = header(send, g.region_bytes(), p)->count++;
    }
  }

  const auto* x = args.x.data.as<const uint8_t>();
  const auto* scales = args.x.scales.as<const float>();
  const auto* weights = args.topk_weights.as<const float>();
  pool.parallel_ranges(tokens, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t p = 0; p < w; ++p) {
        const int32_t i = args.pos[t * w + p];
        if (i < 0) continue;
        uint8_t* rec = record(g, send, p, i);
        std::memset(rec, 0, static_cast<size_t>(g.record_bytes()));  // padding too: regions are compared bytewise
        std::memcpy(rec, x + t * g.hidden, static_cast<size_t>(g.hidden));
        std::memcpy(rec + g.scales_offset(), scales + t * g.scale_count(), static_cast<size_t>(4 * g.scale_count()));
        auto* local = reinterpret_cast<int32_t*>(rec + g.index_offset());
        const int32_t first = args.rank_begin[p], last = args.rank_begin[p + 1];
        for (int64_t j = 0; j < k; ++j) {
          const int64_t e = index_at(args.topk_idx, t * k + j);
          local[j] = e >= first && e < last ? static_cast<int32_t>(e - first) : -1;
        }
        std::memcpy(rec + g.weights_offset(), weights + t * k, static_cast<size_t>(4 * k));
      }
    }
  });
}

void ep_unpack(ThreadPool& pool, const EpUnpackArgs& args) {
  const EpGeometry& g = args.geometry;
  const auto* recv = static_cast<const uint8_t*>(args.recv);
  const int64_t received = received_offsets(g, recv, args.source_offsets);
  const int64_t k = g.top_k;
  args.num_tokens.as<int32_t>()[0] = static_cast<int32_t>(received);
  pool.parallel_ranges(received, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = source_of(args.source_offsets, g.world_size, i);
      const uint8_t* rec = record(g, recv, s, i - args.source_offsets[s]);
      copy_row(g, rec, args.x, i);
      std::memcpy(args.topk_idx.as<int32_t>() + i * k, rec + g.index_offset(), static_cast<size_t>(4 * k));
      std::memcpy(args.topk_weights.as<float>() + i * k, rec + g.weights_offset(), static_cast<size_t>(4 * k));
    }
  });
}

void ep_unpack_expanded(ThreadPool& pool, const EpUnpackExpandedArgs& args) {
  const EpGeometry& g = args.geometry;
  const auto* recv = static_cast<const uint8_t*>(args.recv);
  const int64_t received = received_offsets(g, recv, args.source_offsets);
  const int64_t k = g.top_k, experts = args.num_local_experts;
  auto* offsets = args.expert_offsets.as<int32_t>();

  // Counting sort of the local slots s = i * k + j by expert, stable in s (so in source rank, token,
  // slot); offsets[e] serves as expert e's cursor and is shifted back afterwards.
  std::fill(offsets, offsets + experts + 1, 0);
  for (int64_t i = 0; i < received; ++i) {
    const int64_t s = source_of(args.source_offsets, g.world_size, i);
    const uint8_t* rec = record(g, recv, s, i - args.source_offsets[s]);
    const auto* local = reinterpret_cast<const int32_t*>(rec + g.index_offset());
    std::memcpy(args.topk_weights + i * k, rec + g.weights_offset(), static_cast<size_t>(4 * k));
    for (int64_t j = 0; j < k; ++j) {
      if (local[j] >= experts) {
        fail(MEGAMOE_ERROR_INTERNAL, "a record from rank ", s, " names local expert ", local[j], " of ", experts);
      }
      if (local[j] >= 0) ++offsets[local[j] + 1];
      args.slot_rows[i * k + j] = local[j];  // the expert for now; its row below
    }
  }
  for (int64_t e = 0; e < experts; ++e) offsets[e + 1] += offsets[e];
  for (int64_t s = 0; s < received * k; ++s) {
    const int32_t e = args.slot_rows[s];
    if (e >= 0) args.slot_rows[s] = offsets[e]++;
  }
  for (int64_t e = experts; e > 0; --e) offsets[e] = offsets[e - 1];
  offsets[0] = 0;

  pool.parallel_ranges(received, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = source_of(args.source_offsets, g.world_size, i);
      const uint8_t* rec = record(g, recv, s, i - args.source_offsets[s]);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t row = args.slot_rows[i * k + j];
        if (row >= 0) copy_row(g, rec, args.x, row);
      }
    }
  });
}

void ep_return(ThreadPool& pool, const EpReturnArgs& args) {
  const EpGeometry& g = args.geometry;
  auto* send = static_cast<uint8_t*>(args.send);
  for (int64_t s = 0; s < g.world_size; ++s) *header(send, g.return_region_bytes(), s) = EpRegionHeader{0, args.status, {0, 0}};
  if (args.status != MEGAMOE_SUCCESS) return;
  const int64_t received = args.source_offsets[g.world_size], h = g.hidden, k = g.top_k;
  pool.parallel_ranges(received, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = source_of(args.source_offsets, g.world_size, i);
      auto* out = reinterpret_cast<float*>(send + s * g.return_region_bytes() + kEpHeaderBytes +
                                           (i - args.source_offsets[s]) * g.return_row_bytes());
      if (args.slot_rows == nullptr) {
        for (int64_t c = 0; c < h; ++c) out[c] = element(args.partial, i * h + c);
        continue;
      }
      std::fill(out, out + h, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t row = args.slot_rows[i * k + j];
        if (row < 0) continue;
        const float weight = args.topk_weights[i * k + j];
        for (int64_t c = 0; c < h; ++c) out[c] = std::fmaf(weight, element(args.partial, row * h + c), out[c]);
      }
    }
  });
}

void ep_combine(ThreadPool& pool, const EpCombineArgs& args) {
  const EpGeometry& g = args.geometry;
  const int64_t tokens = args.y.dim(0), h = g.hidden, w = g.world_size;
  const auto* recv = static_cast<const uint8_t*>(args.recv);
  for (int64_t p = 0; p < w; ++p) {
    const int32_t status = header(recv, g.return_region_bytes(), p)->status;
    if (status == MEGAMOE_SUCCESS) continue;
    for (int64_t t = 0; t < tokens; ++t) {
      if (args.pos[t * w + p] < 0) continue;
      const bool known = status > MEGAMOE_SUCCESS && status <= MEGAMOE_ERROR_INTERNAL;
      const auto code = known ? static_cast<megamoe_status_t>(status) : MEGAMOE_ERROR_INTERNAL;
      fail(code, "rank ", p, " could not compute the tokens this rank sent it (it failed with ",
           megamoe_status_string(code), "; its own error message says why)");
    }
  }
  const int64_t ranges = ceil_div(h, kCombineColumns);
  auto* y = args.y.as<uint16_t>();
  pool.parallel_for(tokens * ranges, [&](int64_t task) {
    const int64_t t = task / ranges, c0 = task % ranges * kCombineColumns;
    const int64_t width = std::min(kCombineColumns, h - c0);
    float sum[kCombineColumns];
    std::fill(sum, sum + width, 0.0f);
    for (int64_t p = 0; p < w; ++p) {
      const int32_t i = args.pos[t * w + p];
      if (i < 0) continue;
      const auto* row = reinterpret_cast<const float*>(recv + p * g.return_region_bytes() + kEpHeaderBytes +
                                                       i * g.return_row_bytes()) + c0;
      for (int64_t c = 0; c < width; ++c) sum[c] += row[c];
    }
    for (int64_t c = 0; c < width; ++c) y[t * h + c0 + c] = float_to_bf16(sum[c]);
  });
}

std::unique_ptr<StreamEvent> make_host_clock_event() { return std::make_unique<HostClockEvent>(); }

}  // namespace megamoe::cpu
