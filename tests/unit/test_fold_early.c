/*
 * test_fold_early.c - updates folded a range of weights at a time as a
 * chunked upload's bytes arrive (fedc__engine_early_*, coordinator/
 * upload_fold.c): rounds whose updates are folded in ragged ranges and
 * counted commit the same models, bit for bit, as rounds whose updates go
 * through fedc_engine_submit, with the sums in memory and in a file, with
 * and without max_weight_delta, and under the share cap (updates it cuts
 * adjusted at finish, mixed with whole ones); an update folded in part and
 * taken out again leaves no trace; a bad weight is refused with nothing
 * folded; the pipelines that cannot fold early (the norm bound, DP) say
 * so; and a container's header decoded alone (FEDC_ST_HEADER_ONLY) places
 * its tensors where the whole container's decode does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "round/engine.h"
#include "round/pipeline.h"
#include "wire/safetensors.h"

#define N 150001 /* slices of 2^16 and a ragged end */
#define CLIENTS 4
#define ROUNDS 2

/* ROUNDS rounds of CLIENTS seeded updates into models[ROUNDS][N]; early:
 * each folded in ragged ranges then counted, and client 3's update of the
 * first round folded in part and taken out before the real one. */
static void run_job(const char *spill, double max_delta, int early, float *models) {
  fedc_engine_params ep = {.rounds = ROUNDS, .clients_per_round = CLIENTS,
                           .min_clients = 1, .seed = 3};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, CLIENTS);
  pp.agg.spill_path = spill;
  pp.max_delta = max_delta;
  float *w0 = fedc_malloc_array(N, sizeof(float)), *w = fedc_malloc_array(N, sizeof(float));
  float *y = fedc_malloc_array(N, sizeof(float));
  assert_true(w0 && w && y);
  for (size_t i = 0; i < N; i++) w0[i] = (float)sin((double)i) * ((i % 7) ? 1.0f : 1e-3f);
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, N, w0, &e), 0);
  int32_t ids[CLIENTS] = {0, 1, 2, 3}, sel[CLIENTS], n_sel;
  for (int32_t r = 1; r <= ROUNDS; r++) {
    assert_int_equal(fedc_engine_open(e, ids, CLIENTS, CLIENTS, sel, &n_sel), 0);
    const float *g = fedc_engine_global(e);
    for (int32_t k = 0; k < n_sel; k++) {
      fedc_rng rng;
      fedc_rng_derive(&rng, 9, (uint64_t)r, (uint64_t)sel[k], 0);
      for (size_t i = 0; i < N; i++) /* some far from x: x + (w - x) is then not w */
        w[i] = (i % 11) ? g[i] + (float)(fedc_rng_uniform(&rng) - 0.5) * 0.01f
                        : g[i] * 1e-4f + (float)fedc_rng_uniform(&rng) * 1e-6f;
      uint64_t samples = 10 + (uint64_t)sel[k] * 7;
      if (!early) {
        assert_int_equal(fedc_engine_submit(e, r, sel[k], w, N, samples, 0.5), 0);
        continue;
      }
      uint64_t gen;
      assert_int_equal(fedc__engine_early_begin(e, r, sel[k], samples, &gen), 1);
      if (r == 1 && sel[k] == 3) { /* a part of another update, taken out */
        for (size_t i = 0; i < N; i++) y[i] = w[i] * 1.5f;
        assert_int_equal(fedc__engine_early_fold(e, 0, y, 70001, (int64_t)samples, y + 70001), 0);
        for (size_t i = 0; i < N; i++) y[i] = w[i] * 1.5f;
        assert_int_equal(fedc__engine_early_fold(e, 0, y, 70001, -(int64_t)samples, y + 70001), 0);
      }
      for (size_t at = 0, step = 1 + (size_t)sel[k] * 12345; at < N; at += step, step += 777) {
        size_t len = N - at < step ? N - at : step;
        assert_int_equal(fedc__engine_early_live(e, gen), 1);
        assert_int_equal(fedc__engine_early_fold(e, at, w + at, len, (int64_t)samples, y), 0);
      }
      assert_int_equal(fedc__engine_submit_folded(e, r, sel[k], samples, 0.5, NULL, 0), 0);
      /* counted: a second count of the same client is refused */
      assert_int_not_equal(fedc__engine_submit_folded(e, r, sel[k], samples, 0.5, NULL, 0), 0);
    }
    fedc_round_metrics m;
    assert_int_equal(fedc_engine_close(e, &m), 0);
    assert_int_equal(m.clients, CLIENTS);
    memcpy(models + (size_t)(r - 1) * N, fedc_engine_global(e), N * sizeof(float));
  }
  fedc_engine_free(e);
  fedc_free(w0);
  fedc_free(w);
  fedc_free(y);
}

static void early_folds_are_the_submits(void **st) {
  (void)st;
  char path[64];
  snprintf(path, sizeof path, "/tmp/fedc_fold_early_%d.acc", (int)getpid());
  float *a = fedc_malloc_array((size_t)ROUNDS * N, sizeof(float));
  float *b = fedc_malloc_array((size_t)ROUNDS * N, sizeof(float));
  assert_true(a && b);
  const double deltas[] = {0.0, 1e4};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 2; s++) {
      const char *spill = s ? path : NULL;
      run_job(spill, deltas[d], 0, a);
      run_job(spill, deltas[d], 1, b);
      assert_memory_equal(a, b, (size_t)ROUNDS * N * sizeof(float));
    }
  fedc_free(a);
  fedc_free(b);
}

/*
 * The share cap with early folds. One round of CAP_N clients with the
 * given counts under max_share s: the clients of early_mask are folded in
 * ragged ranges (half before the others' whole submits, half after) and
 * counted with a file holding their values (at an offset, as in a spool),
 * the others submitted whole. The round is prepared, aborted and prepared
 * again (the two must agree), then committed; two rounds, so that the
 * second begins with the first's kept files gone. models gets both
 * rounds' models, *capped the first round's cut count.
 */
#define CAP_N 5
#define CAP_W 70001

static void run_cap(const char *spill, double max_delta, double s, const uint64_t *counts,
                    int32_t n_cl, unsigned early_mask, float *models, int32_t *capped) {
  fedc_engine_params ep = {.rounds = 2, .clients_per_round = n_cl, .min_clients = 1, .seed = 5};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, n_cl);
  pp.agg.spill_path = spill;
  pp.max_delta = max_delta;
  pp.max_share = s;
  float *w0 = fedc_malloc_array(CAP_W, sizeof(float));
  float *w = fedc_malloc_array((size_t)n_cl * CAP_W, sizeof(float));
  float *y = fedc_malloc_array(CAP_W, sizeof(float));
  float *first = fedc_malloc_array(CAP_W, sizeof(float));
  assert_true(w0 && w && y && first);
  for (size_t i = 0; i < CAP_W; i++) w0[i] = (float)cos((double)i) * ((i % 5) ? 1.0f : 1e-3f);
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, CAP_W, w0, &e), 0);
  int32_t ids[CAP_N] = {0, 1, 2, 3, 4}, sel[CAP_N], n_sel;
  for (int32_t r = 1; r <= 2; r++) {
    assert_int_equal(fedc_engine_open(e, ids, n_cl, n_cl, sel, &n_sel), 0);
    assert_int_equal(n_sel, n_cl);
    const float *g = fedc_engine_global(e);
    uint64_t gen[CAP_N];
    for (int32_t k = 0; k < n_sel; k++) {
      fedc_rng rng;
      fedc_rng_derive(&rng, 11, (uint64_t)r, (uint64_t)sel[k], 0);
      float *wk = w + (size_t)sel[k] * CAP_W;
      for (size_t i = 0; i < CAP_W; i++)
        wk[i] = (i % 13) ? g[i] + (float)(fedc_rng_uniform(&rng) - 0.5) * 0.02f
                         : g[i] * 1e-4f + (float)fedc_rng_uniform(&rng) * 1e-6f;
    }
    /* phase 0: the early ones' first halves; 1: the whole ones; 2: the rest, counted */
    for (int phase = 0; phase < 3; phase++)
      for (int32_t k = 0; k < n_sel; k++) {
        const int32_t cl = sel[k];
        const int early = (early_mask >> cl) & 1u;
        const float *wk = w + (size_t)cl * CAP_W;
        if (!early) {
          if (phase == 1)
            assert_int_equal(fedc_engine_submit(e, r, cl, wk, CAP_W, counts[cl], 0.5), 0);
          continue;
        }
        if (phase == 1) continue;
        if (phase == 0)
          assert_int_equal(fedc__engine_early_begin(e, r, cl, counts[cl], &gen[cl]), 1);
        const size_t from = phase == 0 ? 0 : CAP_W / 2, to = phase == 0 ? CAP_W / 2 : CAP_W;
        for (size_t at = from, step = 1 + (size_t)cl * 9999; at < to; at += step, step += 555) {
          size_t len = to - at < step ? to - at : step;
          assert_int_equal(fedc__engine_early_live(e, gen[cl]), 1);
          assert_int_equal(fedc__engine_early_fold(e, at, wk + at, len, (int64_t)counts[cl], y),
                           0);
        }
        if (phase == 0) continue;
        char path[96];
        snprintf(path, sizeof path, "/tmp/fedc_fold_cap_%d_%d.spool", (int)getpid(), (int)cl);
        FILE *f = fopen(path, "w+b");
        assert_non_null(f);
        assert_int_equal(fwrite("a spool's header", 1, 16, f), 16);
        assert_int_equal(fwrite(wk, sizeof(float), CAP_W, f), CAP_W);
        assert_int_equal(fflush(f), 0);
        int fd = dup(fileno(f));
        fclose(f);
        unlink(path); /* read through the descriptor only, as a removed spool */
        assert_true(fd >= 0);
        assert_int_equal(
            fedc__engine_submit_folded(e, r, cl, counts[cl], 0.5, &fd, 16), 0);
        if (fd >= 0) close(fd); /* not kept: its count is not among the largest */
      }
    fedc_round_metrics m, m2;
    const float *next;
    assert_int_equal(fedc_engine_close_prepare(e, &m, &next), 0);
    memcpy(first, next, CAP_W * sizeof(float));
    assert_int_equal(fedc_engine_close_abort(e), 0);
    assert_int_equal(fedc_engine_close_prepare(e, &m2, &next), 0);
    assert_memory_equal(first, next, CAP_W * sizeof(float)); /* a prepare is repeatable */
    assert_int_equal(m.capped, m2.capped);
    assert_int_equal(fedc_engine_close_commit(e), 0);
    if (r == 1 && capped) *capped = m.capped;
    memcpy(models + (size_t)(r - 1) * CAP_W, fedc_engine_global(e), CAP_W * sizeof(float));
  }
  fedc_engine_free(e);
  fedc_free(w0);
  fedc_free(w);
  fedc_free(y);
  fedc_free(first);
}

/* Rounds the cap cuts one or two clients, none, or all (too few updates:
 * equal weights), with every mix of early-folded and whole updates, sums
 * in memory and in a file, with and without max_weight_delta: the models
 * of the fold-at-completion path, bit for bit. */
static void share_cap_early_folds(void **st) {
  (void)st;
  static const struct {
    double s;
    int32_t n;
    uint64_t counts[CAP_N];
    int32_t capped;
  } cases[] = {
      {0.5, 5, {10, 17, 24, 5000, 31}, 1},    /* one client cut */
      {0.3, 5, {10, 17, 4000, 5000, 31}, 2},  /* two cut */
      {0.5, 5, {10, 17, 24, 30, 31}, 0},      /* none cut */
      {0.25, 2, {10, 500, 0, 0, 0}, 2},       /* fewer than 1/s: equal weights */
      {0.5, 5, {40, 40, 900, 40, 40}, 1},     /* ties below the cut */
  };
  static const unsigned masks[] = {0x1f, 0x15, 0x0a, 0x08, 0x17};
  char path[64];
  snprintf(path, sizeof path, "/tmp/fedc_fold_cap_%d.acc", (int)getpid());
  float *a = fedc_malloc_array(2 * (size_t)CAP_W, sizeof(float));
  float *b = fedc_malloc_array(2 * (size_t)CAP_W, sizeof(float));
  assert_true(a && b);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int v = 0; v < 3; v++) { /* memory; memory + max_weight_delta; a file */
      const char *spill = v == 2 ? path : NULL;
      const double md = v == 1 ? 1e4 : 0.0;
      int32_t ca = -1, cb = -1;
      run_cap(spill, md, cases[c].s, cases[c].counts, cases[c].n, 0, a, &ca);
      assert_int_equal(ca, cases[c].capped);
      for (size_t k = 0; k < sizeof masks / sizeof masks[0]; k++) {
        run_cap(spill, md, cases[c].s, cases[c].counts, cases[c].n, masks[k], b, &cb);
        assert_int_equal(cb, ca);
        assert_memory_equal(a, b, 2 * (size_t)CAP_W * sizeof(float));
      }
    }
  unlink(path);
  fedc_free(a);
  fedc_free(b);
}

/* A bad weight is refused with nothing folded; the pipelines that need
 * more than one update at a time do not fold early. */
static void refusals_and_pipelines(void **st) {
  (void)st;
  fedc_engine_params ep = {.rounds = 1, .clients_per_round = 2, .min_clients = 1, .seed = 3};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  float x[8] = {0}, w[8] = {1, 1, 1, 1, 1, 1, 1, 1}, y[8];
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, 8, x, &e), 0);
  int32_t ids[2] = {0, 1}, sel[2], n_sel;
  uint64_t gen;
  assert_int_equal(fedc__engine_early_begin(e, 1, 0, 10, &gen), 0); /* no round open */
  assert_int_equal(fedc_engine_open(e, ids, 2, 2, sel, &n_sel), 0);
  assert_int_equal(fedc__engine_early_begin(e, 1, 0, 10, &gen), 1);
  assert_int_equal(fedc__engine_early_begin(e, 2, 0, 10, &gen), 0); /* another round */
  assert_int_equal(fedc__engine_early_begin(e, 1, 7, 10, &gen), 0); /* not selected */
  assert_int_equal(fedc__engine_early_begin(e, 1, 0, 0, &gen), 0);  /* no samples */
  w[5] = NAN;
  assert_int_not_equal(fedc__engine_early_fold(e, 0, w, 8, 10, y), 0);
  w[5] = 1;
  assert_int_equal(fedc__engine_early_fold(e, 0, w, 4, 10, y), 0);
  assert_int_equal(fedc__engine_early_fold(e, 4, w + 4, 4, 10, y), 0);
  assert_int_equal(fedc__engine_submit_folded(e, 1, 0, 10, 0.1, NULL, 0), 0);
  assert_int_equal(fedc_engine_submit(e, 1, 1, w, 8, 30, 0.1), 0);
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  for (int i = 0; i < 8; i++) assert_true(fedc_engine_global(e)[i] == 1.0f); /* no NaN folded */
  assert_int_equal(fedc__engine_early_live(e, gen), 0); /* the round is gone */
  fedc_engine_free(e);

  fedc_pipeline *pl;
  fedc_pipeline_params_fedavg(&pp, 2);
  assert_int_equal(fedc_pipeline_new(&pp, 8, &pl), 0);
  assert_int_equal(fedc__pipeline_fold_early_ok(pl, 10), 1);
  fedc_pipeline_free(pl);
  pp.max_share = 0.5; /* the share cap: folded early, adjusted at finish */
  assert_int_equal(fedc_pipeline_new(&pp, 8, &pl), 0);
  assert_int_equal(fedc__pipeline_fold_early_ok(pl, 10), 1);
  assert_int_equal(fedc_pipeline_begin(pl, x), 0);
  int no_fd = -1; /* an early-folded update under the cap needs its values' file */
  assert_int_equal(fedc__pipeline_add_folded(pl, 10, &no_fd, 0), FEDC_EINVAL);
  assert_int_equal(fedc__pipeline_add_folded(pl, 10, NULL, 0), FEDC_EINVAL);
  fedc_pipeline_free(pl);
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.norm_bound = 1.0;
  assert_int_equal(fedc_pipeline_new(&pp, 8, &pl), 0);
  assert_int_equal(fedc__pipeline_fold_early_ok(pl, 10), 0);
  fedc_pipeline_free(pl);
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.max_samples = 5;
  assert_int_equal(fedc_pipeline_new(&pp, 8, &pl), 0);
  assert_int_equal(fedc__pipeline_fold_early_ok(pl, 10), 0);
  fedc_pipeline_free(pl);
}

/* The header alone gives the tensors' places in the whole container. */
static void header_only_decode(void **st) {
  (void)st;
  float a[100], b[7];
  for (int i = 0; i < 100; i++) a[i] = (float)i;
  for (int i = 0; i < 7; i++) b[i] = (float)-i;
  fedc_st_tensor t[2] = {{.name = "a", .ndim = 2, .shape = {10, 10}, .data = a},
                         {.name = "b", .ndim = 1, .shape = {7}, .data = b}};
  fedc_st_meta meta[] = {{"round", "3"}};
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, 2, meta, 1, &buf, &len), 0);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
  /* the header alone, in a buffer of its own size */
  uint8_t *head = fedc_malloc((size_t)hlen + 8);
  memcpy(head, buf, (size_t)hlen + 8);
  fedc_st_file *whole, *part;
  const unsigned fl = FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW;
  assert_int_equal(fedc_st_decode_ex(buf, len, fl, &whole), 0);
  assert_int_equal(fedc_st_decode_ex(head, len, fl | FEDC_ST_HEADER_ONLY, &part), 0);
  for (size_t i = 0; i < 2; i++) {
    fedc_st_tensor tw, tp;
    fedc_st_get(whole, i, &tw);
    fedc_st_get(part, i, &tp);
    assert_string_equal(tw.name, tp.name);
    assert_int_equal((const uint8_t *)tw.data - buf, (const uint8_t *)tp.data - head);
  }
  assert_string_equal(fedc_st_meta_get(part, "round"), "3");
  fedc_st_free(part);
  /* a declared length the tensors do not fill is refused, as for the whole */
  assert_int_not_equal(fedc_st_decode_ex(head, len + 4, fl | FEDC_ST_HEADER_ONLY, &part), 0);
  fedc_st_free(whole);
  fedc_free(head);
  fedc_free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(early_folds_are_the_submits),
      cmocka_unit_test(share_cap_early_folds),
      cmocka_unit_test(refusals_and_pipelines),
      cmocka_unit_test(header_only_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
