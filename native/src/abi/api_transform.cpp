// Operation 7: gate/up 8-row interleave of w13 and its inverse.
#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_interleave_gate_up(megamoe_context_t context, const megamoe_tensor_t* w,
                                                        const megamoe_tensor_t* out, int32_t inverse,
                                                        void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const std::initializer_list<megamoe_dtype_t> any = {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16,
                                                         MEGAMOE_DTYPE_FP32, MEGAMOE_DTYPE_INT32,
                                                         MEGAMOE_DTYPE_INT64};
    const Tensor wt = call.check.tensor("w", w, any, "[2I, H]", "[E, 2I, H]");
    const int32_t row_dim = wt.rank - 2;
    if (wt.shape[row_dim] % 16 != 0) {
      invalid("w", "shape[", row_dim, "] (2I) is ", wt.shape[row_dim],
              "; it must be a multiple of 16 (I a multiple of the 8-row interleave group)");
    }
    const Tensor ot = call.check.tensor("out", out, {wt.dtype}, wt.rank == 3 ? "[E, 2I, H]" : "[2I, H]");
    for (int32_t i = 0; i < wt.rank; ++i) expect_dim("out", ot, i, wt.shape[i], "the same shape as 'w'");
    expect_disjoint("out", ot, {{"w", wt}});
    if (inverse != 0 && inverse != 1) invalid("inverse", "is ", inverse, "; expected 0 or 1");
    if (wt.numel() == 0) return;
    call.backend.interleave_gate_up(wt, ot, inverse != 0, stream);
  });
}

}  // extern "C"
