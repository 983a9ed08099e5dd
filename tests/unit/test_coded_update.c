/*
 * test_coded_update.c - compressed updates (docs/compression.md): the
 * FEDCCMP1 body round-trips for every codec against a global model; the
 * decoder refuses a wrong checksum, codec, size, a NaN or negative int8
 * scale, a level -128 and a topk index sent twice; the config refuses the
 * combinations the codecs cannot serve, naming the keys; and a site's
 * top-k residual survives a new codec object (a restarted client), with
 * a round trained again starting from the residual it started from.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "codec_client.h"
#include "config/config.h"
#include "wire/coded_update.h"

#define N 1000

static void model(float *x, float *w) {
  for (int i = 0; i < N; i++) {
    x[i] = sinf((float)i);
    w[i] = x[i] + 0.01f * cosf(3.0f * (float)i);
  }
}

static uint8_t *encode(fedc_codec c, const float *w, const float *x, float *e, size_t *len) {
  fedc_rng rng;
  fedc_rng_derive(&rng, 1, 2, 3, 4);
  fedc_coded_meta m = {.round = 3,
                       .codec = c,
                       .num_samples = 600,
                       .train_loss = 0.5,
                       .n = N,
                       .k = FEDC_CODEC_SPARSE(c) ? 50 : 0};
  uint8_t *b = NULL;
  assert_int_equal(fedc_coded_encode(&m, w, x, e, &rng, &b, len), 0);
  return b;
}

/* Every codec: the decoded weights are x + d within the codec's error. */
static void test_round_trip(void **state) {
  (void)state;
  static float x[N], w[N], got[N], e[N];
  model(x, w);
  const double tol[] = {0, 1e-5, 1e-4, 0.01 / 127 + 1e-6, 0, 0};
  for (int c = FEDC_CODEC_NONE; c <= FEDC_CODEC_TOPK_BF16; c++) {
    memset(e, 0, sizeof e);
    size_t len;
    uint8_t *b = encode((fedc_codec)c, w, x, e, &len);
    assert_int_equal(len, FEDC_CODED_HEAD + fedc_codec_size((fedc_codec)c, N, 50) + 32);
    fedc_coded_meta m;
    assert_int_equal(fedc_coded_decode(b, len, (fedc_codec)c, x, N, &m, got), 0);
    assert_int_equal(m.round, 3);
    assert_int_equal(m.num_samples, 600);
    assert_true(m.train_loss == 0.5);
    if (FEDC_CODEC_SPARSE(c)) { /* sent + residual = the whole delta */
      for (int i = 0; i < N; i++)
        assert_true(fabsf((got[i] - x[i]) + e[i] - (w[i] - x[i])) < 1e-6f);
    } else {
      for (int i = 0; i < N; i++)
        assert_true(fabs((double)got[i] - (double)w[i]) <= tol[c] + 1e-7);
    }
    fedc_free(b);
  }
}

/* Re-seal a tampered body with a fresh checksum, so that the check after
 * the checksum is what refuses it. */
static void reseal(uint8_t *b, size_t len) {
  fedc__sha256(b, len - 32, b + len - 32);
}

static void test_refusals(void **state) {
  (void)state;
  static float x[N], w[N], got[N], e[N];
  model(x, w);
  size_t len;
  fedc_coded_meta m;
  uint8_t *b = encode(FEDC_CODEC_INT8, w, x, NULL, &len);
  b[100] ^= 1;
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_INT8, x, N, &m, got), FEDC_ECHECKSUM);
  b[100] ^= 1;
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_F16, x, N, &m, got), FEDC_EUNSUPPORTED);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_INT8, x, N - 1, &m, got), FEDC_ESHAPE);
  assert_int_equal(fedc_coded_decode(b, len - 1, FEDC_CODEC_INT8, x, N, &m, got), FEDC_EFORMAT);
  float nan = NAN, neg = -1.0f;
  memcpy(b + FEDC_CODED_HEAD, &nan, 4); /* the first block's scale */
  reseal(b, len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_INT8, x, N, &m, got), FEDC_ENONFINITE);
  memcpy(b + FEDC_CODED_HEAD, &neg, 4);
  reseal(b, len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_INT8, x, N, &m, got), FEDC_ENONFINITE);
  float one = 1.0f;
  memcpy(b + FEDC_CODED_HEAD, &one, 4);
  b[FEDC_CODED_HEAD + 4] = 0x80;
  reseal(b, len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_INT8, x, N, &m, got), FEDC_EFORMAT);
  fedc_free(b);
  memset(e, 0, sizeof e);
  b = encode(FEDC_CODEC_TOPK, w, x, e, &len);
  memcpy(b + FEDC_CODED_HEAD + 8, b + FEDC_CODED_HEAD, 4); /* entry 1's index = entry 0's */
  reseal(b, len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_TOPK, x, N, &m, got), FEDC_EFORMAT);
  fedc_free(b);
  /* topk_bf16: one bit more than k values */
  memset(e, 0, sizeof e);
  b = encode(FEDC_CODEC_TOPK_BF16, w, x, e, &len);
  for (int i = 0; i < N; i++)
    if (!(b[FEDC_CODED_HEAD + i / 8] >> (i % 8) & 1)) {
      b[FEDC_CODED_HEAD + i / 8] |= (uint8_t)(1u << (i % 8));
      break;
    }
  reseal(b, len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_TOPK_BF16, x, N, &m, got), FEDC_EFORMAT);
  fedc_free(b);
  /* a delta too large for f16 decodes to inf: refused */
  w[7] = x[7] + 1e6f;
  b = encode(FEDC_CODEC_F16, w, x, NULL, &len);
  assert_int_equal(fedc_coded_decode(b, len, FEDC_CODEC_F16, x, N, &m, got), FEDC_ENONFINITE);
  fedc_free(b);
}

static void refused(const char *const *sets, const char *want) {
  fedc_config c;
  fedc_config_defaults(&c);
  for (const char *const *s = sets; *s; s++)
    assert_int_equal(fedc_config_set(&c, *s), 0);
  int rc = fedc_config_check_role(&c, FEDC_ROLE_SIM);
  if (rc != FEDC_ECONFIG || strstr(fedc_error_msg(), want) == NULL)
    fail_msg("rc %d: %s (want \"%s\")", rc, fedc_error_msg(), want);
  assert_non_null(strstr(fedc_error_msg(), "compression"));
}

static void test_config(void **state) {
  (void)state;
  const char *fedbuff[] = {"strategy.compression=int8", "strategy.name=fedbuff", NULL};
  refused(fedbuff, "fedbuff");
  const char *scaffold[] = {"strategy.compression=topk", "strategy.name=scaffold",
                            "strategy.variate_samples=100", NULL};
  refused(scaffold, "scaffold");
  const char *relay[] = {"strategy.compression=f16", "relay.parent=https://a:1", NULL};
  refused(relay, "relay");
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.compression=int8"), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.secure_aggregation=true"), 0);
  int rc = fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR);
  if (rc != FEDC_ECONFIG || strstr(fedc_error_msg(), "secure_aggregation") == NULL)
    fail_msg("rc %d: %s", rc, fedc_error_msg());
  /* central DP clips the decoded delta: allowed */
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.compression=topk"), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.noise_multiplier=1"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_SIM), 0);
  assert_int_equal(fedc_config_set(&c, "strategy.topk_fraction=0"), FEDC_ECONFIG);
  assert_int_equal(fedc_config_set(&c, "strategy.compression=zip"), FEDC_ECONFIG);
}

/* A restarted client (a new codec object on the same state_dir) keeps
 * its residual; training round r again starts from the residual r
 * started from, so it sends the same body. */
static void test_residual_durable(void **state) {
  (void)state;
  char dir[] = "/tmp/fedc-test-topk-XXXXXX";
  assert_non_null(mkdtemp(dir));
  static float x[N], w[N];
  model(x, w);
  const char *job = "{\"compression\":{\"codec\":\"topk\",\"topk_fraction\":0.05}}";
  fedc_client_codec *a = NULL, *b = NULL;
  assert_int_equal(fedc__client_codec_new(job, "", "job1", 7, 2, N, &a), FEDC_ECONFIG);
  assert_int_equal(fedc__client_codec_new(job, dir, "job1", 7, 2, N, &a), 0);
  uint8_t *b1, *b2, *b3, *b4;
  size_t l1, l2, l3, l4;
  fedc__client_codec_begin(a, 1, x);
  assert_int_equal(fedc__client_codec_encode(a, w, 1, 600, 0.5, &b1, &l1), 0);
  fedc__client_codec_begin(a, 2, x);
  assert_int_equal(fedc__client_codec_encode(a, w, 2, 600, 0.5, &b2, &l2), 0);
  fedc__client_codec_free(a);
  /* restarted: round 2 again gives the same body; round 3 then goes on
   * from round 2's residual, as the first process would have */
  assert_int_equal(fedc__client_codec_new(job, dir, "job1", 7, 2, N, &b), 0);
  fedc__client_codec_begin(b, 2, x);
  assert_int_equal(fedc__client_codec_encode(b, w, 2, 600, 0.5, &b3, &l3), 0);
  assert_int_equal(l2, l3);
  assert_memory_equal(b2, b3, l2);
  assert_int_equal(fedc__client_codec_encode(b, w, 3, 600, 0.5, &b4, &l4), 0);
  assert_int_equal(l1, l4);
  assert_true(memcmp(b4 + FEDC_CODED_HEAD, b2 + FEDC_CODED_HEAD, l4 - FEDC_CODED_HEAD - 32) != 0);
  fedc__client_codec_free(b);
  /* a job without compression: no codec */
  assert_int_equal(fedc__client_codec_new("{}", dir, "job1", 7, 2, N, &a), 0);
  assert_null(a);
  fedc_free(b1);
  fedc_free(b2);
  fedc_free(b3);
  fedc_free(b4);
  char path[128];
  snprintf(path, sizeof path, "%s/topk-job1.safetensors", dir);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_residual_durable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
