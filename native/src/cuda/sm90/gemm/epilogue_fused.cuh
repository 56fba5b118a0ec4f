// Epilogues of the routed and fused GEMMs (variants.h GemmEpilogue), straight from the math
// warpgroups' float32 accumulators to global memory.
//
// Accumulator fragment of one thread (wgmma m64nWk32, W = kWaveN columns per N-wave): for wave w
// and 8-column chunk i, acc[w * W/2 + 4i + {0, 1}] are row r0, columns w*W + 8i + 2q + {0, 1}, and
// acc[... + {2, 3}] the same columns of row r1 = r0 + 8, with q = lane % 4. The four lanes of a quad
// hold the 8 columns of a chunk.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cutlass/arch/barrier.h>

#include <cstdint>

#include "core/limits.h"
#include "cuda/bf16_unpack.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/schedule.h"
#include "cuda/sm90/ptx.cuh"

namespace megamoe::cuda::sm90 {

// Which rows and N-waves a math thread's accumulators hold for the current tile.
struct Fragment {
  uint32_t r0;          // tile-local row of acc[.. + {0, 1}]; r0 + 8 holds acc[.. + {2, 3}]
  uint32_t q;           // lane % 4
  uint32_t first_wave;  // waves [first_wave, last_wave] hold results
  uint32_t last_wave;
};

// Transposes 4 x 4 words over the four lanes of a quad: afterwards lane q holds the words v[q] of
// lanes 0..3, in lane order (two butterfly stages, 4 shuffles). Turns the fragment's 4-byte column
// pairs into 16-byte row pieces: one store per lane instead of four, each covering whole sectors.
__device__ __forceinline__ void quad_transpose(uint32_t (&v)[4], uint32_t q) {
  // Stage 1 swaps the off-diagonal 2 x 2 blocks between lanes q and q ^ 2, stage 2 the
  // off-diagonal words inside each block between lanes q and q ^ 1.
#pragma unroll
  for (uint32_t j = 0; j < 2; ++j) {
    const bool hi = (q & 2u) != 0;
    const uint32_t got = __shfl_xor_sync(0xFFFFFFFFu, hi ? v[j] : v[j + 2], 2);
    if (hi) {
      v[j] = got;
    } else {
      v[j + 2] = got;
    }
  }
#pragma unroll
  for (uint32_t j = 0; j < 4; j += 2) {
    const bool odd = (q & 1u) != 0;
    const uint32_t got = __shfl_xor_sync(0xFFFFFFFFu, odd ? v[j] : v[j + 1], 1);
    if (odd) {
      v[j] = got;
    } else {
      v[j + 1] = got;
    }
  }
}

// The tile's rows as BF16 into base[slot] (row stride N, slot = row_slot[row]). kRouted (RoutedBf16):
// times the slot's top-k weight when the plan has weights, and +0.0 for the dropped segment (group
// -1). Each group of 4 chunks (32 columns) of a row goes out as one 16-byte store per lane (chunk
// 4g + q).
template <uint32_t BN, uint32_t kWaveN, bool kRouted>
__device__ __forceinline__ void store_slot_rows_bf16(const KernelParams& p, const TileWork& work, const Fragment& f,
                                                     const float* acc, __nv_bfloat16* base) {
  static_assert(kWaveN % 32 == 0, "a wave is whole groups of 4 chunks");
#pragma unroll
  for (uint32_t h = 0; h < 2; ++h) {
    // Every lane of the quad joins the shuffles; only rows inside the segment are written.
    const uint32_t row = work.row_begin + f.r0 + 8 * h;
    const bool valid = row < work.row_end;
    int32_t slot = 0;
    float w = 1.0f;
    if (valid) {
      slot = __ldg(p.routed.row_slot + row);
      if (kRouted && work.group >= 0 && p.routed.slot_weights != nullptr) w = __ldg(p.routed.slot_weights + slot);
    }
    __nv_bfloat16* dst = base + static_cast<uint64_t>(slot) * p.layout.n + work.n_block * BN;
#pragma unroll
    for (uint32_t wave = 0; wave < BN / kWaveN; ++wave) {
      if (wave < f.first_wave || wave > f.last_wave) continue;
#pragma unroll
      for (uint32_t g = 0; g < kWaveN / 32; ++g) {
        uint32_t packed[4];
#pragma unroll
        for (uint32_t c = 0; c < 4; ++c) {
          const float* v = acc + wave * (kWaveN / 2) + 4 * (4 * g + c) + 2 * h;
          float v0 = v[0], v1 = v[1];
          if (kRouted && work.group < 0) {
            v0 = 0.0f, v1 = 0.0f;
          } else if (kRouted && p.routed.slot_weights != nullptr) {
            v0 *= w, v1 *= w;
          }
          packed[c] = pack_bf16x2(v0, v1);
        }
        quad_transpose(packed, f.q);
        if (valid) {
          *reinterpret_cast<uint4*>(dst + wave * kWaveN + 8 * (4 * g + f.q)) =
              make_uint4(packed[0], packed[1], packed[2], packed[3]);
        }
      }
    }
  }
}

// RoutedBf16: d[slot] = bf16(w[slot] * acc); rows of the dropped segment (group -1) are +0.0.
template <uint32_t BN, uint32_t kWaveN>
__device__ __forceinline__ void epilogue_routed_bf16(const KernelParams& p, const TileWork& work, const Fragment& f,
                                                     const float* acc) {
  store_slot_rows_bf16<BN, kWaveN, true>(p, work, f, acc, p.op.d);
}

// docs/NUMERICS.md section 4 step 3, in float32, with the sigmoid from the SFU's exp2 and reciprocal
// (`__expf`, `__fdividef`: within the section's GPU bounds): the IEEE expf and division cost the
// layer 3-5 % at T = 4096 (bench/NOTES.md, runs 67 and 69).
__device__ __forceinline__ float gated_activation(float g, float u, const KernelParams& p, float weight) {
  if (p.swiglu.clamp > 0.0f) {
    g = fminf(g, p.swiglu.clamp);
    u = fminf(fmaxf(u, -p.swiglu.clamp), p.swiglu.clamp);
  }
  const float s = __fdividef(1.0f, 1.0f + __expf(-(p.swiglu.alpha * g)));
  const float a = (g * s) * (u + p.swiglu.beta);
  return a * weight;
}

// SwigluFp8 (BLOCK_N = 256, two waves of 128 interleaved columns): the tile's 256 interleaved
// columns are gate/up of the 128 intermediate columns [128 n_block, 128 n_block + 128), one
// quantization group. Chunk i of a wave is gate (i even) or up (i odd) of the same 8 intermediates:
// intermediate = 64 wave + 8 (i / 2) + 2q + {0, 1}. A quad of lanes holds a row's 64 intermediates
// of each wave it computed; in a wide tile each warpgroup computed one wave, so the row's amax is
// completed through `exchange` (2 x 64 floats of shared memory) under named barrier `barrier`.
// Each activation overwrites its gate accumulator (acc is dead after this tile): a separate array of
// a row pair's 64 activations next to the 128 accumulators spilled 288 bytes (bench/NOTES.md, runs 62, 67).
template <uint32_t kMathThreads>
__device__ __forceinline__ void epilogue_swiglu_fp8(const KernelParams& p, const TileWork& work, const Fragment& f,
                                                    float* acc, bool wide, float* exchange, uint32_t barrier) {
  constexpr uint32_t kWaveN = 128;
  float amax_row[2];
#pragma unroll
  for (uint32_t h = 0; h < 2; ++h) {
    const uint32_t row = work.row_begin + f.r0 + 8 * h;
    const bool valid = row < work.row_end;
    float weight = 0.0f;
    if (valid) weight = __ldg(p.routed.slot_weights + __ldg(p.routed.row_slot + row)) * p.swiglu.weight_scale;
    float amax = 0.0f;
#pragma unroll
    for (uint32_t wave = 0; wave < 2; ++wave) {
      if (wave < f.first_wave || wave > f.last_wave) continue;
#pragma unroll
      for (uint32_t m = 0; m < 8; ++m) {
        float* gate = acc + wave * (kWaveN / 2) + 4 * (2 * m) + 2 * h;
        const float* up = acc + wave * (kWaveN / 2) + 4 * (2 * m + 1) + 2 * h;
#pragma unroll
        for (uint32_t b = 0; b < 2; ++b) {
          gate[b] = gated_activation(gate[b], up[b], p, weight);
          amax = fmaxf(amax, fabsf(gate[b]));
        }
      }
    }
    amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 2));
    amax_row[h] = amax;
  }
  if (wide) {
    // Rows f.r0 and f.r0 + 8 (< 64) of this warpgroup's wave meet the other warpgroup's.
    if (f.q == 0) exchange[f.first_wave * 64 + f.r0] = amax_row[0], exchange[f.first_wave * 64 + f.r0 + 8] = amax_row[1];
    cutlass::arch::NamedBarrier::sync(kMathThreads, barrier);
    amax_row[0] = fmaxf(amax_row[0], exchange[(1 - f.first_wave) * 64 + f.r0]);
    amax_row[1] = fmaxf(amax_row[1], exchange[(1 - f.first_wave) * 64 + f.r0 + 8]);
    cutlass::arch::NamedBarrier::sync(kMathThreads, barrier);  // exchange is reused by the next tile
  }
  // A wave's 64 FP8 codes of a row: lane q holds the byte pairs m * 8 + 2q (m = 0..7; pair m is in
  // gate chunk 2m); after pairing m = 2j, 2j + 1 into word j and a quad transpose, lane q holds bytes
  // [16q, 16q + 16) of the row, m = 2q then m = 2q + 1, each four lanes' pairs in lane order: one
  // 16-byte store.
#pragma unroll
  for (uint32_t h = 0; h < 2; ++h) {
    const uint32_t row = work.row_begin + f.r0 + 8 * h;
    const bool valid = row < work.row_end;  // every lane of the quad joins the shuffles
    const float sf = fmaxf(amax_row[h], 1e-4f) / 448.0f;
    const float inv = 1.0f / sf;
    uint8_t* dst = p.swiglu.act + static_cast<uint64_t>(valid ? row : 0u) * p.swiglu.act_cols + work.n_block * 128;
#pragma unroll
    for (uint32_t wave = 0; wave < 2; ++wave) {
      if (wave < f.first_wave || wave > f.last_wave) continue;
      uint32_t w[4];
#pragma unroll
      for (uint32_t j = 0; j < 4; ++j) {
        const float* v0 = acc + wave * (kWaveN / 2) + 4 * (2 * (2 * j)) + 2 * h;      // m = 2j
        const float* v1 = acc + wave * (kWaveN / 2) + 4 * (2 * (2 * j + 1)) + 2 * h;  // m = 2j + 1
        w[j] = uint32_t{pack_fp8x2(v0[0] * inv, v0[1] * inv)} | uint32_t{pack_fp8x2(v1[0] * inv, v1[1] * inv)} << 16;
      }
      quad_transpose(w, f.q);
      if (valid) {
        *reinterpret_cast<uint4*>(dst + wave * 64 + 16 * f.q) =
            make_uint4(__byte_perm(w[0], w[1], 0x5410), __byte_perm(w[2], w[3], 0x5410), __byte_perm(w[0], w[1], 0x7632),
                       __byte_perm(w[2], w[3], 0x7632));
      }
    }
    if (valid && f.q == 0 && f.first_wave == 0) {
      p.swiglu.act_scales[static_cast<uint64_t>(row) * (p.swiglu.act_cols / 128) + work.n_block] = sf;
    }
  }
}

// CombineF32, part 1: the tile's rows into z[slot], rounded to BF16. Part 2 (combine_tile_tokens)
// runs after a barrier of all math threads.
template <uint32_t BN, uint32_t kWaveN>
__device__ __forceinline__ void epilogue_store_z(const KernelParams& p, const TileWork& work, const Fragment& f,
                                                 const float* acc) {
  store_slot_rows_bf16<BN, kWaveN, false>(p, work, f, acc, p.combine.z);
}

// CombineF32, part 2, by all kMathThreads math threads: each tile row counts its (token, n-block)
// done; the tile that completes a token's last routed slot sums the token's slots of this n-block
// in slot order (docs/NUMERICS.md section 4 step 6) and writes y. Every token's sum runs in one
// fixed order whoever completes it, so y is bitwise reproducible. `list` holds 2 * BLOCK_M + 1 ints
// of shared memory; `barrier` is a named barrier id of the math threads.
template <uint32_t BM, uint32_t BN, uint32_t kMathThreads>
__device__ __forceinline__ void combine_tile_tokens(const KernelParams& p, const TileWork& work, int32_t* list,
                                                    uint32_t barrier) {
  const uint32_t tid = threadIdx.x;
  int32_t* masks = list + BM;
  int32_t* count = list + 2 * BM;
  if (tid == 0) *count = 0;
  // Every row of z is stored (and the count cleared) before any row of the tile is counted done.
  cutlass::arch::NamedBarrier::sync(kMathThreads, barrier);
  if (tid < BM) {
    const uint32_t row = work.row_begin + tid;
    if (row < work.row_end) {
      const uint32_t t = static_cast<uint32_t>(__ldg(p.routed.row_slot + row)) / p.routed.top_k;
      const uint32_t mask = __ldg(p.combine.token_masks + t);
      const int32_t done =
          atomic_add_acq_rel_gpu(p.combine.counters + static_cast<uint64_t>(t) * (p.layout.n / BN) + work.n_block, 1) + 1;
      if (done == __popc(mask)) {
        const int32_t at = atomicAdd(count, 1);
        list[at] = static_cast<int32_t>(t);
        masks[at] = static_cast<int32_t>(mask);
      }
    }
  }
  cutlass::arch::NamedBarrier::sync(kMathThreads, barrier);
  // (token, 8 columns) per thread, one 16-byte load per slot; the token's slot rows are loaded 4 at
  // a time ahead of the ordered sum (all 16 at once would spill).
  constexpr uint32_t kBatch = 4;
  constexpr uint32_t kCols = 8;
  const uint32_t pairs = static_cast<uint32_t>(*count) * (BN / kCols);
  for (uint32_t i = tid; i < pairs; i += kMathThreads) {
    const uint32_t t = static_cast<uint32_t>(list[i / (BN / kCols)]);
    const uint32_t mask = static_cast<uint32_t>(masks[i / (BN / kCols)]);
    const uint32_t col = work.n_block * BN + (i % (BN / kCols)) * kCols;
    float sum[kCols] = {};
#pragma unroll 1
    for (uint32_t j0 = 0; j0 < static_cast<uint32_t>(kMaxTopK) && (mask >> j0) != 0; j0 += kBatch) {
      uint4 z[kBatch];
#pragma unroll
      for (uint32_t j = 0; j < kBatch; ++j) {
        if (mask >> (j0 + j) & 1u) {
          z[j] = __ldcg(reinterpret_cast<const uint4*>(p.combine.z + (uint64_t{t} * p.routed.top_k + j0 + j) * p.layout.n + col));
        }
      }
#pragma unroll
      for (uint32_t j = 0; j < kBatch; ++j) {
        if (mask >> (j0 + j) & 1u) {
          float v[kCols];
          unpack_bf16x8(z[j], v);
#pragma unroll
          for (uint32_t c = 0; c < kCols; ++c) sum[c] += v[c];
        }
      }
    }
    if (p.combine.y_f32 != nullptr) {
      float4* y = reinterpret_cast<float4*>(p.combine.y_f32 + uint64_t{t} * p.layout.n + col);
      y[0] = make_float4(sum[0], sum[1], sum[2], sum[3]);
      y[1] = make_float4(sum[4], sum[5], sum[6], sum[7]);
    } else {
      *reinterpret_cast<uint4*>(p.combine.y + uint64_t{t} * p.layout.n + col) =
          make_uint4(pack_bf16x2(sum[0], sum[1]), pack_bf16x2(sum[2], sum[3]), pack_bf16x2(sum[4], sum[5]),
                     pack_bf16x2(sum[6], sum[7]));
    }
  }
  // The list is rewritten by the next tile.
  cutlass::arch::NamedBarrier::sync(kMathThreads, barrier);
}

}  // namespace megamoe::cuda::sm90
