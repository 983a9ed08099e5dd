/*
 * test_layout.c - tensor jobs' dtypes and layouts: F16 and BF16 widening
 * is exact and narrowing rounds to nearest even (checked exhaustively at
 * every midpoint), a mixed-dtype container round-trips bit for bit through
 * a layout, every refusal names its tensor, the integer rules (keep, max;
 * first pattern wins), and the engine's fold of a mixed-dtype model is
 * order independent and within half a unit of the dtype of the exact
 * weighted average; every strategy with a norm bound keeps F16/BF16
 * values in their dtype.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "config/config.h"
#include "config/config_params.h"
#include "ml/dtype.h"
#include "ml/layout.h"
#include "round/engine.h"
#include "round/pipeline.h"
#include "wire/safetensors.h"

static int64_t live_at_start;

static int setup(void **state) {
  (void)state;
  live_at_start = fedc_alloc_live();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

/* Every non-NaN F16 survives widening then narrowing; at every midpoint
 * between neighbours the tie goes to the even one and the floats just
 * around it to the nearer one; past 65504 lies infinity from 65520 on. */
static void test_f16_exhaustive(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float f = fedc_f16_to_f32((uint16_t)h);
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
      assert_true(isnan(f));
      assert_true(isnan(fedc_f16_to_f32(fedc_f32_to_f16(f))));
      continue;
    }
    assert_int_equal(fedc_f32_to_f16(f), h);
  }
  for (uint16_t h = 0; h < 0x7bffu; h++) { /* positive finite, below the largest */
    float a = fedc_f16_to_f32(h), b = fedc_f16_to_f32((uint16_t)(h + 1));
    float mid = a + (b - a) / 2; /* 12 significant bits: exact */
    assert_true(mid > a && mid < b);
    assert_int_equal(fedc_f32_to_f16(mid), (h & 1) ? h + 1 : h);
    assert_int_equal(fedc_f32_to_f16(nextafterf(mid, 0)), h);
    assert_int_equal(fedc_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
    assert_int_equal(fedc_f32_to_f16(-mid), 0x8000u | ((h & 1) ? h + 1 : h));
  }
  assert_int_equal(fedc_f32_to_f16(65519.99f), 0x7bffu);
  assert_int_equal(fedc_f32_to_f16(65520.0f), 0x7c00u);
  assert_int_equal(fedc_f32_to_f16(-1e9f), 0xfc00u);
  assert_int_equal(fedc_f32_to_f16(2.9802322e-8f), 0); /* 2^-25: tie to 0 */
  assert_int_equal(fedc_f32_to_f16(nextafterf(2.9802322e-8f, 1)), 1);
}

static void test_bf16_exhaustive(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float f = fedc_bf16_to_f32((uint16_t)h);
    if (isnan(f)) {
      assert_true(isnan(fedc_bf16_to_f32(fedc_f32_to_bf16(f))));
      continue;
    }
    assert_int_equal(fedc_f32_to_bf16(f), h);
  }
  for (uint16_t h = 0; h < 0x7f7fu; h++) {
    float a = fedc_bf16_to_f32(h), b = fedc_bf16_to_f32((uint16_t)(h + 1));
    float mid = a + (b - a) / 2; /* exact; a + b could overflow */
    assert_int_equal(fedc_f32_to_bf16(mid), (h & 1) ? h + 1 : h);
    assert_int_equal(fedc_f32_to_bf16(nextafterf(mid, 0)), h);
    assert_int_equal(fedc_f32_to_bf16(nextafterf(mid, INFINITY)), h + 1);
  }
  assert_int_equal(fedc_f32_to_bf16(3.4e38f), 0x7f80u); /* rounds past the largest */
}

static void test_int_elements(void **state) {
  (void)state;
  uint8_t buf[64];
  const int dts[] = {FEDC_ST_I64, FEDC_ST_I32, FEDC_ST_I16, FEDC_ST_I8,
                     FEDC_ST_U8,  FEDC_ST_U16, FEDC_ST_U32, FEDC_ST_BOOL};
  const int64_t vals[] = {INT64_MIN, INT32_MIN, INT16_MIN, INT8_MIN, 255, 65535, 4294967295LL, 1};
  for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
    assert_true(fedc_dtype_is_int(dts[i]));
    fedc_dtype_int_set(dts[i], buf, 3, vals[i]);
    assert_true(fedc_dtype_int_get(dts[i], buf, 3) == vals[i]);
  }
  assert_false(fedc_dtype_is_int(FEDC_ST_F16));
  assert_false(fedc_dtype_is_int(FEDC_ST_F64));
}

/* ---- a mixed model ------------------------------------------------------ */

#define NW 6
#define NH 4
#define NB 3
#define NI 2
#define NS 1

typedef struct {
  float w[NW];
  uint16_t h[NH], b[NB];
  int64_t i64[NI];
  int32_t i32[NS];
} mixed;

static int encode_mixed(const mixed *m, const char *h_name, int h_dtype, uint8_t **out,
                        size_t *len) {
  fedc_st_tensor t[5] = {
      {.name = "fc.weight", .ndim = 2, .shape = {2, 3}, .data = m->w},
      {.name = h_name, .ndim = 1, .shape = {NH}, .data = (const float *)(const void *)m->h},
      {.name = "emb", .ndim = 1, .shape = {NB}, .data = (const float *)(const void *)m->b},
      {.name = "bn.num_batches_tracked", .ndim = 1, .shape = {NI},
       .data = (const float *)(const void *)m->i64},
      {.name = "steps", .ndim = 0, .data = (const float *)(const void *)m->i32}};
  uint8_t dts[5] = {FEDC_ST_F32, (uint8_t)h_dtype, FEDC_ST_BF16, FEDC_ST_I64, FEDC_ST_I32};
  fedc_st_meta meta = {"round", "1"};
  return fedc_st_encode_typed(t, dts, 5, &meta, 1, out, len);
}

static void fill_mixed(mixed *m, double seed) {
  for (int k = 0; k < NW; k++) m->w[k] = (float)(sin(seed * 7 + k) * 3);
  for (int k = 0; k < NH; k++) m->h[k] = fedc_f32_to_f16((float)(cos(seed * 5 + k) * 10));
  for (int k = 0; k < NB; k++) m->b[k] = fedc_f32_to_bf16((float)(sin(seed * 3 + k) * 100));
  for (int k = 0; k < NI; k++) m->i64[k] = (int64_t)(seed * 1000) + k + ((int64_t)1 << 40);
  m->i32[0] = (int32_t)seed;
}

static void layout_of(const mixed *m, fedc_layout *l, uint8_t **bytes, size_t *len) {
  assert_int_equal(encode_mixed(m, "head", FEDC_ST_F16, bytes, len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode_ex(*bytes, *len, FEDC_ST_ALLOW_ANY, &f), 0);
  assert_int_equal(fedc_layout_from_file(f, l), 0);
  fedc_st_free(f);
}

static void test_round_trip(void **state) {
  (void)state;
  mixed m;
  fill_mixed(&m, 1.5);
  fedc_layout l;
  uint8_t *bytes;
  size_t len;
  layout_of(&m, &l, &bytes, &len);
  assert_int_equal(l.n, 5);
  assert_int_equal(l.n_float, NW + NH + NB);
  assert_int_equal(l.n_int, NI + NS);
  assert_true(l.narrow);
  float wf[NW + NH + NB];
  int64_t wi[NI + NS];
  fedc_st_file *f;
  assert_int_equal(fedc_layout_decode(&l, bytes, len, wf, wi, &f), 0);
  assert_string_equal(fedc_st_meta_get(f, "round"), "1");
  fedc_st_free(f);
  assert_true(wi[0] == ((int64_t)1 << 40) + 1500);
  assert_true(wf[NW] == fedc_f16_to_f32(m.h[0]));
  /* encoding what was read gives the same bytes */
  uint8_t *again;
  size_t again_len;
  fedc_st_meta meta = {"round", "1"};
  assert_int_equal(fedc_layout_encode(&l, wf, wi, &meta, 1, &again, &again_len), 0);
  assert_int_equal(again_len, len);
  assert_memory_equal(again, bytes, len);
  fedc_free(again);
  fedc_free(bytes);
  fedc_layout_free(&l);
}

static void expect_refusal(const fedc_layout *l, const uint8_t *bytes, size_t len, int code,
                           const char *needle) {
  float wf[NW + NH + NB];
  int64_t wi[NI + NS];
  int rc = fedc_layout_decode(l, bytes, len, wf, wi, NULL);
  assert_int_equal(rc, code);
  if (strstr(fedc_error_msg(), needle) == NULL) fail_msg("'%s' lacks '%s'", fedc_error_msg(), needle);
}

static void test_refusals_name_the_tensor(void **state) {
  (void)state;
  mixed m;
  fill_mixed(&m, 2.0);
  fedc_layout l;
  uint8_t *bytes, *bad;
  size_t len, bad_len;
  layout_of(&m, &l, &bytes, &len);
  /* wrong name */
  assert_int_equal(encode_mixed(&m, "hed", FEDC_ST_F16, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_ESHAPE, "'head'");
  fedc_free(bad);
  /* wrong dtype */
  assert_int_equal(encode_mixed(&m, "head", FEDC_ST_BF16, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_EUNSUPPORTED, "'head' is BF16; the job's is F16");
  fedc_free(bad);
  /* NaN and infinity in F16 */
  mixed n = m;
  n.h[2] = 0x7e00;
  assert_int_equal(encode_mixed(&n, "head", FEDC_ST_F16, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_ENONFINITE, "'head' element 2");
  fedc_free(bad);
  n = m;
  n.b[1] = fedc_f32_to_bf16(3e9f); /* finite, past FedAvg's 2^31 */
  assert_int_equal(encode_mixed(&n, "head", FEDC_ST_F16, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_ENONFINITE, "'emb' element 1");
  fedc_free(bad);
  /* wrong shape */
  fedc_st_tensor t = {.name = "fc.weight", .ndim = 2, .shape = {3, 2}, .data = m.w};
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY, &f), 0);
  fedc_st_tensor all[5];
  uint8_t dts[5];
  for (size_t i = 0; i < 5; i++) {
    fedc_st_get(f, i, &all[i]);
    dts[i] = (uint8_t)fedc_st_dtype_at(f, i);
  }
  all[0] = t;
  assert_int_equal(fedc_st_encode_typed(all, dts, 5, NULL, 0, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_ESHAPE, "'fc.weight' has the wrong shape [3,2]");
  fedc_free(bad);
  /* an extra tensor */
  fedc_st_tensor more[6];
  uint8_t more_dts[6];
  memcpy(more, all, sizeof all);
  memcpy(more_dts, dts, sizeof dts);
  more[0].shape[0] = 2, more[0].shape[1] = 3;
  more[5] = (fedc_st_tensor){.name = "extra", .ndim = 1, .shape = {1}, .data = m.w};
  more_dts[5] = FEDC_ST_F32;
  assert_int_equal(fedc_st_encode_typed(more, more_dts, 6, NULL, 0, &bad, &bad_len), 0);
  expect_refusal(&l, bad, bad_len, FEDC_ESHAPE, "'extra' is not the job's");
  fedc_free(bad);
  /* an F32-only decoder still refuses the mixed container */
  fedc_st_file *g;
  assert_int_equal(fedc_st_decode(bytes, len, &g), FEDC_EFORMAT);
  fedc_st_free(f);
  fedc_free(bytes);
  fedc_layout_free(&l);
}

static void test_unsupported_init(void **state) {
  (void)state;
  double d[2] = {1, 2};
  fedc_st_tensor t = {.name = "w64", .ndim = 1, .shape = {2}, .data = (const float *)(const void *)d};
  uint8_t dt = FEDC_ST_F64;
  uint8_t *bytes;
  size_t len;
  assert_int_equal(fedc_st_encode_typed(&t, &dt, 1, NULL, 0, &bytes, &len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY, &f), 0);
  fedc_layout l;
  assert_int_equal(fedc_layout_from_file(f, &l), FEDC_EUNSUPPORTED);
  assert_non_null(strstr(fedc_error_msg(), "'w64' is F64"));
  fedc_st_free(f);
  fedc_free(bytes);
  int64_t only[1] = {3};
  t = (fedc_st_tensor){.name = "n", .ndim = 1, .shape = {1}, .data = (const float *)(const void *)only};
  dt = FEDC_ST_I64;
  assert_int_equal(fedc_st_encode_typed(&t, &dt, 1, NULL, 0, &bytes, &len), 0);
  assert_int_equal(fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY, &f), 0);
  assert_int_equal(fedc_layout_from_file(f, &l), FEDC_EINVAL);
  fedc_st_free(f);
  fedc_free(bytes);
}

static void test_rules(void **state) {
  (void)state;
  mixed m;
  fill_mixed(&m, 1.0);
  fedc_layout l;
  uint8_t *bytes;
  size_t len;
  layout_of(&m, &l, &bytes, &len);
  fedc_free(bytes);
  assert_int_equal(fedc_layout_set_rules(&l, NULL), 0);
  assert_false(fedc_layout_has_max(&l));
  /* first match wins: "steps" keeps although "*" would say max */
  assert_int_equal(fedc_layout_set_rules(&l, " steps = keep , *.num_batches_tracked=max,*=max"), 0);
  assert_int_equal(l.t[3].rule, FEDC_INT_MAX);
  assert_int_equal(l.t[4].rule, FEDC_INT_KEEP);
  assert_int_equal(l.t[0].rule, FEDC_INT_KEEP); /* floats have no rule */
  assert_true(fedc_layout_has_max(&l));
  assert_int_equal(fedc_layout_set_rules(&l, "steps=sum"), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "'sum'"));
  assert_int_equal(l.t[3].rule, FEDC_INT_MAX); /* unchanged */
  assert_int_equal(fedc_layout_set_rules(&l, "steps"), FEDC_ECONFIG);
  assert_int_equal(fedc_layout_set_rules(&l, "=max"), FEDC_ECONFIG);
  assert_int_equal(fedc_layout_set_rules(&l, "a=keep,,b=max"), FEDC_ECONFIG);
  /* max over the folded updates in any order; keep from the global */
  int64_t global[NI + NS] = {5, 6, 7}, acc[NI + NS], next[NI + NS];
  int64_t u1[NI + NS] = {10, -3, 100}, u2[NI + NS] = {2, 40, 200};
  fedc_layout_set_rules(&l, "bn.*=max");
  fedc_layout_int_fold(&l, acc, u2, 1);
  fedc_layout_int_fold(&l, acc, u1, 0);
  fedc_layout_int_next(&l, global, acc, 1, next);
  assert_true(next[0] == 10 && next[1] == 40 && next[2] == 7);
  fedc_layout_int_fold(&l, acc, u1, 1);
  fedc_layout_int_fold(&l, acc, u2, 0);
  int64_t next2[NI + NS];
  fedc_layout_int_next(&l, global, acc, 1, next2);
  assert_memory_equal(next, next2, sizeof next);
  fedc_layout_int_next(&l, global, acc, 0, next2);
  assert_memory_equal(global, next2, sizeof next2);
  fedc_layout_free(&l);
}

/* Run one round of FedAvg through an engine with the layout, the updates
 * submitted in order perm, and return the committed floats. */
static void fold(const fedc_layout *l, float w[][NW + NH + NB], const uint64_t *samples,
                 const int *perm, float *out) {
  fedc_engine_params p;
  fedc_engine_params_init(&p);
  p.clients_per_round = 3;
  p.min_clients = 3;
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 3);
  pp.layout = l;
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&p, &pp, l->n_float, w[0], &e), 0);
  int32_t ids[3] = {0, 1, 2}, sel[3], k;
  assert_int_equal(fedc_engine_open(e, ids, 3, 3, sel, &k), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fedc_engine_submit(e, 1, perm[i], w[perm[i]], l->n_float,
                                        samples[perm[i]], 0.5), 0);
  assert_int_equal(fedc_engine_close(e, NULL), 0);
  memcpy(out, fedc_engine_global(e), l->n_float * sizeof(float));
  fedc_engine_free(e);
}

static void test_mixed_fold(void **state) {
  (void)state;
  mixed m[3];
  float w[3][NW + NH + NB];
  int64_t wi[3][NI + NS];
  const uint64_t samples[3] = {7, 130, 33};
  fedc_layout l;
  uint8_t *bytes;
  size_t len;
  for (int c = 0; c < 3; c++) fill_mixed(&m[c], 0.37 * (c + 1));
  layout_of(&m[0], &l, &bytes, &len);
  fedc_free(bytes);
  for (int c = 0; c < 3; c++) {
    assert_int_equal(encode_mixed(&m[c], "head", FEDC_ST_F16, &bytes, &len), 0);
    assert_int_equal(fedc_layout_decode(&l, bytes, len, w[c], wi[c], NULL), 0);
    fedc_free(bytes);
  }
  const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  float first[NW + NH + NB], got[NW + NH + NB];
  fold(&l, w, samples, perms[0], first);
  for (int p = 1; p < 6; p++) {
    fold(&l, w, samples, perms[p], got);
    assert_memory_equal(first, got, sizeof got); /* bit for bit, any order */
  }
  /* within half a unit of each dtype of the exact weighted mean */
  double total = (double)(samples[0] + samples[1] + samples[2]);
  for (size_t i = 0; i < l.n_float; i++) {
    double mean = 0;
    for (int c = 0; c < 3; c++) mean += (double)w[c][i] * (double)samples[c];
    mean /= total;
    int bits = i < NW ? 24 : i < NW + NH ? 11 : 8; /* significand bits */
    double ulp = ldexp(1.0, ilogb(mean) - bits + 1);
    if (fabs(got[i] - mean) > 0.5 * ulp * (1 + 1e-6) + 1e-30)
      fail_msg("value %zu: %.9g vs mean %.9g", i, (double)got[i], mean);
    if (i >= NW && i < NW + NH) assert_true(fedc_f16_to_f32(fedc_f32_to_f16(got[i])) == got[i]);
    if (i >= NW + NH) assert_true(fedc_bf16_to_f32(fedc_f32_to_bf16(got[i])) == got[i]);
  }
  fedc_layout_free(&l);
}

/* Every strategy, with a norm bound, on the mixed layout: two rounds of
 * four updates in two orders give the same global model, every F16 and
 * BF16 value of which is one of its dtype. */
static void test_every_strategy(void **state) {
  (void)state;
  static const char *const names[] = {"fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad",
                                      "median", "trimmed_mean", "krum", "multikrum"};
  mixed m[5];
  float w[5][NW + NH + NB];
  int64_t wi[5][NI + NS];
  fedc_layout l;
  uint8_t *bytes;
  size_t len;
  for (int c = 0; c < 5; c++) fill_mixed(&m[c], 0.21 * (c + 1));
  layout_of(&m[0], &l, &bytes, &len);
  fedc_free(bytes);
  for (int c = 0; c < 5; c++) {
    assert_int_equal(encode_mixed(&m[c], "head", FEDC_ST_F16, &bytes, &len), 0);
    assert_int_equal(fedc_layout_decode(&l, bytes, len, w[c], wi[c], NULL), 0);
    fedc_free(bytes);
  }
  for (size_t s = 0; s < sizeof names / sizeof *names; s++) {
    float out[2][NW + NH + NB];
    for (int order = 0; order < 2; order++) {
      fedc_engine_params p;
      fedc_engine_params_init(&p);
      p.rounds = 2;
      p.clients_per_round = 5;
      p.min_clients = 5;
      p.strategy = names[s];
      fedc_config cfg; /* each strategy's default parameters */
      fedc_config_defaults(&cfg);
      char set[64];
      snprintf(set, sizeof set, "strategy.name=%s", names[s]);
      assert_int_equal(fedc_config_set(&cfg, set), 0);
      assert_int_equal(fedc_config_set(&cfg, "strategy.norm_bound=50"), 0);
      cfg.clients_per_round = 5;
      fedc_pipeline_params pp;
      fedc_pipeline_params_from_config(&cfg, 5, &pp);
      pp.layout = &l;
      fedc_engine *e;
      int rc = fedc__engine_new_pipeline(&p, &pp, l.n_float, w[0], &e);
      if (rc != 0) fail_msg("%s: %s", names[s], fedc_error_msg());
      for (int32_t r = 1; r <= 2; r++) {
        int32_t ids[5] = {0, 1, 2, 3, 4}, sel[5], k;
        assert_int_equal(fedc_engine_open(e, ids, 5, 5, sel, &k), 0);
        for (int i = 0; i < 5; i++) {
          int c = order ? 4 - i : i;
          assert_int_equal(fedc_engine_submit(e, r, c, w[c], l.n_float, 10 + (uint64_t)c, 0.5), 0);
        }
        if (fedc_engine_close(e, NULL) != 0) fail_msg("%s: %s", names[s], fedc_error_msg());
      }
      memcpy(out[order], fedc_engine_global(e), sizeof out[order]);
      fedc_engine_free(e);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    for (size_t i = NW; i < l.n_float; i++) {
      float v = out[0][i];
      assert_true(isfinite(v));
      if (i < NW + NH) assert_true(fedc_f16_to_f32(fedc_f32_to_f16(v)) == v);
      else assert_true(fedc_bf16_to_f32(fedc_f32_to_bf16(v)) == v);
    }
  }
  fedc_layout_free(&l);
}

static void test_from_spec(void **state) {
  (void)state;
  fedc_model_spec s;
  fedc_model_spec_init(&s, FEDC_MODEL_MLP, 5, 3);
  s.n_hidden = 1;
  s.hidden[0] = 4;
  fedc_layout l;
  assert_int_equal(fedc_layout_from_spec(&s, &l), 0);
  assert_int_equal(l.n, 4);
  assert_int_equal(l.n_float, fedc_model_n_params(&s));
  assert_int_equal(l.n_int, 0);
  float w[64];
  fedc_model_init(&s, 3, w);
  /* a built-in model's bytes are the same through its layout */
  uint8_t *a, *b;
  size_t al, bl;
  fedc_st_tensor t[4];
  size_t n = fedc_model_tensors(&s, w, t, 4);
  assert_int_equal(fedc_st_encode(t, n, NULL, 0, &a, &al), 0);
  assert_int_equal(fedc_layout_encode(&l, w, NULL, NULL, 0, &b, &bl), 0);
  assert_int_equal(al, bl);
  assert_memory_equal(a, b, al);
  for (size_t i = 0; i < 4; i++) {
    fedc_layer_layout ly;
    fedc_model_layout(&s, (int32_t)(i / 2), &ly);
    assert_int_equal(l.t[i].off, i % 2 ? ly.b_off : ly.w_off);
  }
  fedc_free(a);
  fedc_free(b);
  fedc_layout_free(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_f16_exhaustive),
      T(test_bf16_exhaustive),
      T(test_int_elements),
      T(test_round_trip),
      T(test_refusals_name_the_tensor),
      T(test_unsupported_init),
      T(test_rules),
      T(test_mixed_fold),
      T(test_every_strategy),
      T(test_from_spec),
#undef T
  };
  return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
