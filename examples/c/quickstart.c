/* MegaMoe from C: quantize activations and weights, run a block-scaled FP8 GEMM on the best
 * available backend, check it against a float64 product, and show a rejected call's message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <megamoe/megamoe.h>

#define CHECK(call)                                                                             \
  do {                                                                                          \
    megamoe_status_t status_ = (call);                                                          \
    if (status_ != MEGAMOE_SUCCESS) {                                                           \
      fprintf(stderr, "%s failed: %s\n  %s\n", #call, megamoe_status_string(status_),           \
              megamoe_last_error_message());                                                    \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

/* A dense row-major descriptor over a buffer. */
static megamoe_tensor_t tensor_of(megamoe_buffer_t buffer, megamoe_dtype_t dtype, int rank, const int64_t* shape) {
  megamoe_tensor_t t;
  memset(&t, 0, sizeof t);
  CHECK(megamoe_buffer_get_data(buffer, &t.data, &t.device_type, &t.device_id));
  t.dtype = dtype;
  t.rank = rank;
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; --i) {
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  return t;
}

static megamoe_buffer_t upload(megamoe_context_t ctx, const void* host, int64_t bytes) {
  megamoe_buffer_t buffer;
  CHECK(megamoe_buffer_create(ctx, bytes, &buffer));
  CHECK(megamoe_buffer_write(buffer, 0, host, bytes, NULL));
  return buffer;
}

static float bf16_to_float(uint16_t bits) {
  uint32_t u = (uint32_t)bits << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

int main(void) {
  enum { M = 64, N = 256, K = 512 };
  printf("MegaMoe %s (%s)\n", megamoe_version_string(), megamoe_build_info());

  megamoe_context_t ctx;
  CHECK(megamoe_context_create(MEGAMOE_BACKEND_BEST, 0, &ctx));
  megamoe_device_info_t info;
  info.struct_size = sizeof info;
  CHECK(megamoe_context_get_device_info(ctx, &info));
  printf("backend: %s\n", info.name);

  /* Random FP32 activations and weights, quantized by the library. */
  float* x = malloc(sizeof(float) * M * K);
  float* w = malloc(sizeof(float) * N * K);
  srand(42);
  for (int i = 0; i < M * K; ++i) x[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
  for (int i = 0; i < N * K; ++i) w[i] = ((float)rand() / RAND_MAX * 2.0f - 1.0f) * 0.05f;

  const int64_t x_shape[2] = {M, K}, xs_shape[2] = {M, K / 128};
  const int64_t w_shape[2] = {N, K}, ws_shape[2] = {N / 128, K / 128}, d_shape[2] = {M, N};
  megamoe_buffer_t x_buf = upload(ctx, x, sizeof(float) * M * K);
  megamoe_buffer_t w_buf = upload(ctx, w, sizeof(float) * N * K);
  megamoe_buffer_t xq_buf, xs_buf, wq_buf, ws_buf, d_buf;
  CHECK(megamoe_buffer_create(ctx, M * K, &xq_buf));
  CHECK(megamoe_buffer_create(ctx, sizeof(float) * M * (K / 128), &xs_buf));
  CHECK(megamoe_buffer_create(ctx, N * K, &wq_buf));
  CHECK(megamoe_buffer_create(ctx, sizeof(float) * (N / 128) * (K / 128), &ws_buf));
  CHECK(megamoe_buffer_create(ctx, 2 * M * N, &d_buf));

  megamoe_tensor_t xt = tensor_of(x_buf, MEGAMOE_DTYPE_FP32, 2, x_shape);
  megamoe_tensor_t xq = tensor_of(xq_buf, MEGAMOE_DTYPE_FP8_E4M3, 2, x_shape);
  megamoe_tensor_t xs = tensor_of(xs_buf, MEGAMOE_DTYPE_FP32, 2, xs_shape);
  megamoe_tensor_t wt = tensor_of(w_buf, MEGAMOE_DTYPE_FP32, 2, w_shape);
  megamoe_tensor_t wq = tensor_of(wq_buf, MEGAMOE_DTYPE_FP8_E4M3, 2, w_shape);
  megamoe_tensor_t ws = tensor_of(ws_buf, MEGAMOE_DTYPE_FP32, 2, ws_shape);
  megamoe_tensor_t d = tensor_of(d_buf, MEGAMOE_DTYPE_BF16, 2, d_shape);

  CHECK(megamoe_quantize_activations(ctx, &xt, &xq, &xs, MEGAMOE_QUANT_DEFAULT, NULL));
  CHECK(megamoe_quantize_weights(ctx, &wt, &wq, &ws, MEGAMOE_QUANT_DEFAULT, NULL));
  CHECK(megamoe_gemm_dense(ctx, &xq, &xs, &wq, &ws, &d, NULL));

  uint16_t* out = malloc(sizeof(uint16_t) * M * N);
  CHECK(megamoe_buffer_read(d_buf, 0, out, sizeof(uint16_t) * M * N, NULL));
  double err = 0.0, ref = 0.0;
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double exact = 0.0;
      for (int k = 0; k < K; ++k) exact += (double)x[m * K + k] * (double)w[n * K + k];
      const double got = bf16_to_float(out[m * N + n]);
      err += (got - exact) * (got - exact);
      ref += exact * exact;
    }
  }
  const double rel = sqrt(err / ref);
  printf("dense FP8 GEMM %dx%dx%d: relative error vs float64 = %.2e\n", M, N, K, rel);

  /* A bad call fails with a precise message and writes nothing. */
  megamoe_tensor_t wrong = d;
  wrong.dtype = MEGAMOE_DTYPE_FP32;
  if (megamoe_gemm_dense(ctx, &xq, &xs, &wq, &ws, &wrong, NULL) == MEGAMOE_ERROR_INVALID_ARGUMENT) {
    printf("rejected as expected: %s\n", megamoe_last_error_message());
  }

  megamoe_buffer_destroy(x_buf);
  megamoe_buffer_destroy(w_buf);
  megamoe_buffer_destroy(xq_buf);
  megamoe_buffer_destroy(xs_buf);
  megamoe_buffer_destroy(wq_buf);
  megamoe_buffer_destroy(ws_buf);
  megamoe_buffer_destroy(d_buf);
  megamoe_context_destroy(ctx);
  free(x);
  free(w);
  free(out);
  return rel < 0.05 ? 0 : 1;
}
