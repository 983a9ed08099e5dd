/*
 * test_compress.c - the update codecs (wire/compress.h): half and
 * bfloat16 rounding on known values, int8's stochastic rounding unbiased
 * and within one level, top-k's error feedback losing nothing over rounds,
 * decoders refusing bad sizes and indices, and the refused combination.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/compress.h"

static void round_trip(fedc_codec c, const float *d, size_t n, float *out) {
  uint8_t buf[4096];
  assert_true(fedc_codec_size(c, n, 0) <= sizeof buf);
  assert_int_equal(fedc_codec_encode(c, d, n, 0, NULL, NULL, buf), 0);
  assert_int_equal(fedc_codec_decode(c, buf, fedc_codec_size(c, n, 0), out, n), 0);
}

static void test_half_and_bf16(void **state) {
  (void)state;
  const float d[] = {0.0f, 1.0f, -2.5f, 65504.0f, 1e6f, 1.0f + 1.0f / 2048, 5.96046448e-8f, 0.1f};
  float out[8];
  round_trip(FEDC_CODEC_F16, d, 8, out);
  assert_true(out[0] == 0 && out[1] == 1 && out[2] == -2.5f && out[3] == 65504.0f);
  assert_true(isinf(out[4]));
  assert_true(out[5] == 1.0f);           /* a tie rounds to even */
  assert_true(out[6] == 5.96046448e-8f); /* the smallest subnormal */
  assert_true(fabsf(out[7] - 0.1f) < 0.1f / 1024);
  round_trip(FEDC_CODEC_BF16, d, 8, out);
  assert_true(out[1] == 1 && out[2] == -2.5f);
  assert_true(fabsf(out[4] - 1e6f) <= 1e6f / 128);
  assert_true(fabsf(out[7] - 0.1f) < 0.1f / 128);
}

static void test_int8_unbiased(void **state) {
  (void)state;
  enum { N = 600, T = 400 };
  static float d[N], out[N], mean[N];
  for (size_t i = 0; i < N; i++)
    d[i] = (float)sin((double)i) * (i < 300 ? 1.0f : 0.01f);
  uint8_t buf[N + 64];
  assert_int_equal(fedc_codec_size(FEDC_CODEC_INT8, N, 0), N + 4 * 3);
  fedc_rng rng;
  fedc_rng_seed(&rng, 5);
  for (int t = 0; t < T; t++) {
    assert_int_equal(fedc_codec_encode(FEDC_CODEC_INT8, d, N, 0, NULL, &rng, buf), 0);
    assert_int_equal(fedc_codec_decode(FEDC_CODEC_INT8, buf, N + 12, out, N), 0);
    for (size_t i = 0; i < N; i++) {
      float step = (i < 256 ? 1.0f : i < 512 ? 1.0f : 0.01f) / 127;
      assert_true(fabsf(out[i] - d[i]) <= step * 1.001f + 1e-7f);
      mean[i] += out[i] / T;
    }
  }
  for (size_t i = 0; i < N; i++)
    assert_true(fabsf(mean[i] - d[i]) < (i < 512 ? 0.004f : 4e-5f));
}

static void test_topk_error_feedback(void **state) {
  (void)state;
  enum { N = 100, K = 10, R = 30 };
  float d[N], e[N], got[N], sent[N];
  memset(e, 0, sizeof e);
  memset(sent, 0, sizeof sent);
  for (size_t i = 0; i < N; i++)
    d[i] = (float)(i % 7) - 3.0f + 0.01f * (float)i;
  uint8_t buf[8 * K];
  assert_int_equal(fedc_codec_size(FEDC_CODEC_TOPK, N, K), sizeof buf);
  for (int r = 0; r < R; r++) {
    assert_int_equal(fedc_codec_encode(FEDC_CODEC_TOPK, d, N, K, e, NULL, buf), 0);
    assert_int_equal(fedc_codec_decode(FEDC_CODEC_TOPK, buf, sizeof buf, got, N), 0);
    int nz = 0;
    for (size_t i = 0; i < N; i++) {
      sent[i] += got[i];
      nz += got[i] != 0;
    }
    assert_true(nz <= K);
  }
  /* what was sent plus what is still owed is every delta given, exactly summed */
  for (size_t i = 0; i < N; i++)
    assert_true(fabsf(sent[i] + e[i] - R * d[i]) < 1e-3f);
}

static void test_refusals(void **state) {
  (void)state;
  float out[4];
  uint8_t buf[16] = {0};
  assert_int_equal(fedc_codec_decode(FEDC_CODEC_F16, buf, 7, out, 4), FEDC_EFORMAT);
  buf[0] = 9; /* index 9 of 4 */
  assert_int_equal(fedc_codec_decode(FEDC_CODEC_TOPK, buf, 8, out, 4), FEDC_EFORMAT);
  assert_int_equal(fedc_codec_check(FEDC_CODEC_INT8, 1, 0), FEDC_ECONFIG);
  assert_int_equal(fedc_codec_check(FEDC_CODEC_TOPK, 0, 0), FEDC_ECONFIG);
  assert_int_equal(fedc_codec_check(FEDC_CODEC_TOPK, 0, 0.01), 0);
  assert_int_equal(fedc_codec_parse("bf16"), FEDC_CODEC_BF16);
  assert_int_equal(fedc_codec_parse("zip"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_half_and_bf16),
      cmocka_unit_test(test_int8_unbiased),
      cmocka_unit_test(test_topk_error_feedback),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
