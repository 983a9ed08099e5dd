/*
 * test_engine.c - FedAvg and the round engine: the aggregate equals
 * sum_k n_k w_k / sum_k n_k (recomputed here in long double) within 1e-6 for
 * uneven sample counts, is bit-identical for every arrival order, refuses bad
 * updates without changing state, and the engine's selection, duplicate,
 * stale-round and quorum rules hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "round/engine.h"
#include "round/pipeline.h"
#include "base/error.h"
#include "base/rng.h"
#include "leak_check.h"

#define K 5
#define NP 1000

static float updates[K][NP];
static const uint64_t counts[K] = {1, 600, 37, 12000, 250};

static void make_updates(void) {
  fedc_rng r;
  fedc_rng_seed(&r, 99);
  for (int k = 0; k < K; k++)
    for (int i = 0; i < NP; i++)
      updates[k][i] = (float)(fedc_rng_normal(&r) * pow(10.0, (double)(i % 7) - 3.0));
}

static void aggregate(const int *order, float *out) {
  fedc_strategy *s;
  assert_int_equal(fedc_strategy_new("fedavg", NP, &s), 0);
  assert_int_equal(s->ops->begin(s, NULL, NP), 0);
  for (int j = 0; j < K; j++)
    assert_int_equal(s->ops->add(s, updates[order[j]], NP, counts[order[j]]), 0);
  assert_int_equal(s->ops->finish(s, out, NP), 0);
  fedc_strategy_free(s);
}

/* Heap's algorithm over all 120 orders of 5 updates. */
static void permute(int *a, int n, int *count, float *ref, int *all_same) {
  if (n == 1) {
    float out[NP];
    aggregate(a, out);
    if (memcmp(out, ref, sizeof out) != 0) *all_same = 0;
    (*count)++;
    return;
  }
  for (int i = 0; i < n; i++) {
    permute(a, n - 1, count, ref, all_same);
    int j = n % 2 ? 0 : i, t = a[j];
    a[j] = a[n - 1];
    a[n - 1] = t;
  }
}

static void fedavg_formula_and_order(void **st) {
  (void)st;
  make_updates();
  int order[K] = {0, 1, 2, 3, 4};
  float ref[NP];
  aggregate(order, ref);
  long double total = 0;
  for (int k = 0; k < K; k++) total += counts[k];
  double max_err = 0;
  for (int i = 0; i < NP; i++) {
    long double s = 0;
    for (int k = 0; k < K; k++) s += (long double)counts[k] * updates[k][i];
    double want = (double)(s / total);
    double err = fabs(want - (double)ref[i]) / fmax(1.0, fabs(want));
    if (err > max_err) max_err = err;
  }
  print_message("    max error against the formula: %.3e\n", max_err);
  assert_true(max_err < 1e-6);
  int count = 0, same = 1;
  permute(order, K, &count, ref, &same);
  assert_int_equal(count, 120);
  assert_true(same);
}

static void fedavg_refuses_bad_updates(void **st) {
  (void)st;
  make_updates();
  fedc_strategy *s;
  assert_int_equal(fedc_strategy_new("fedavg", NP, &s), 0);
  assert_int_equal(s->ops->begin(s, NULL, NP), 0);
  assert_int_equal(s->ops->add(s, updates[0], NP, 10), 0);
  float bad[NP];
  memcpy(bad, updates[1], sizeof bad);
  bad[NP - 1] = NAN;
  assert_int_equal(s->ops->add(s, bad, NP, 10), FEDC_ENONFINITE);
  bad[NP - 1] = INFINITY;
  assert_int_equal(s->ops->add(s, bad, NP, 10), FEDC_ENONFINITE);
  bad[NP - 1] = 3e9f;
  assert_int_equal(s->ops->add(s, bad, NP, 10), FEDC_ERANGE);
  assert_int_equal(s->ops->add(s, updates[1], NP - 1, 10), FEDC_ESHAPE);
  assert_int_equal(s->ops->add(s, updates[1], NP, 0), FEDC_ERANGE);
  /* the refused updates changed nothing: the result is update 0 alone */
  float out[NP];
  assert_int_equal(s->ops->finish(s, out, NP), 0);
  for (int i = 0; i < NP; i++)
    assert_true(fabs(out[i] - updates[0][i]) <= 1e-9 + 1e-7 * fabs(updates[0][i]));
  assert_int_equal(s->ops->begin(s, NULL, NP), 0);
  assert_int_equal(s->ops->finish(s, out, NP), FEDC_EQUORUM);
  fedc_strategy_free(s);
  assert_int_equal(fedc_strategy_new("nope", NP, &s), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "nope"));
}

static fedc_engine *new_engine(int32_t rounds, int32_t per_round, int32_t quorum) {
  static float w0[NP];
  fedc_engine_params p = {.rounds = rounds, .clients_per_round = per_round,
                          .min_clients = quorum, .seed = 5, .strategy = "fedavg"};
  fedc_engine *e;
  assert_int_equal(fedc_engine_new(&p, NP, w0, &e), 0);
  return e;
}

static void engine_round_rules(void **st) {
  (void)st;
  make_updates();
  fedc_engine *e = new_engine(3, 3, 2);
  int32_t eligible[20], sel[3], n;
  for (int i = 0; i < 20; i++) eligible[i] = 100 + i;
  assert_int_equal(fedc_engine_submit(e, 1, 100, updates[0], NP, 1, 0), FEDC_ESTATE);
  assert_int_equal(fedc_engine_open(e, eligible, 20, 3, sel, &n), 0);
  assert_int_equal(n, 3);
  assert_true(sel[0] != sel[1] && sel[1] != sel[2] && sel[0] != sel[2]);
  assert_int_equal(fedc_engine_open(e, eligible, 20, 3, sel, &n), FEDC_ESTATE);
  int32_t outsider = 99;
  assert_int_equal(fedc_engine_submit(e, 1, outsider, updates[0], NP, 5, 0), FEDC_EINVAL);
  assert_int_equal(fedc_engine_submit(e, 2, sel[0], updates[0], NP, 5, 0), FEDC_ESTALE);
  assert_int_equal(fedc_engine_submit(e, 1, sel[0], updates[0], NP, 5, 0.5), 0);
  assert_int_equal(fedc_engine_submit(e, 1, sel[0], updates[1], NP, 5, 0.5), FEDC_EDUPLICATE);
  assert_int_equal(fedc_engine_reported(e), 1);
  /* below quorum: abandoned, global unchanged, same round again */
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), FEDC_EQUORUM);
  assert_int_equal(fedc_engine_round(e), 1);
  for (int i = 0; i < NP; i++) assert_true(fedc_engine_global(e)[i] == 0.0f);
  int32_t sel2[3];
  assert_int_equal(fedc_engine_open(e, eligible, 20, 3, sel2, &n), 0);
  assert_true(memcmp(sel, sel2, sizeof sel) != 0); /* a new draw */
  assert_int_equal(fedc_engine_submit(e, 1, sel2[1], updates[1], NP, 600, 1.0), 0);
  assert_int_equal(fedc_engine_submit(e, 1, sel2[2], updates[2], NP, 200, 2.0), 0);
  assert_int_equal(fedc_engine_close(e, &m), 0);
  assert_int_equal(m.round, 1);
  assert_int_equal(m.clients, 2);
  assert_int_equal(m.selected, 3);
  assert_int_equal(m.samples, 800);
  assert_true(fabs(m.train_loss - (600 * 1.0 + 200 * 2.0) / 800) < 1e-12);
  for (int i = 0; i < NP; i++) {
    double want = (600.0 * updates[1][i] + 200.0 * updates[2][i]) / 800.0;
    assert_true(fabs(fedc_engine_global(e)[i] - want) <= 1e-6 * fmax(1, fabs(want)));
  }
  assert_int_equal(fedc_engine_round(e), 2);
  /* an update for the committed round is stale */
  assert_int_equal(fedc_engine_open(e, eligible, 20, 3, sel, &n), 0);
  assert_int_equal(fedc_engine_submit(e, 1, sel[0], updates[0], NP, 5, 0), FEDC_ESTALE);
  assert_int_equal(fedc_engine_open(e, eligible, 1, 3, sel, &n), FEDC_ESTATE);
  fedc_engine_free(e);
}

/* Same seed, same selections; a different seed, different ones. */
static void engine_selection_seeded(void **st) {
  (void)st;
  int32_t eligible[100], a[10], b[10], n;
  for (int i = 0; i < 100; i++) eligible[i] = i;
  fedc_engine *e1 = new_engine(5, 10, 1), *e2 = new_engine(5, 10, 1);
  assert_int_equal(fedc_engine_open(e1, eligible, 100, 10, a, &n), 0);
  assert_int_equal(fedc_engine_open(e2, eligible, 100, 10, b, &n), 0);
  assert_memory_equal(a, b, sizeof a);
  fedc_engine_free(e1);
  fedc_engine_free(e2);
  float w0[NP] = {0};
  fedc_engine_params p = {.rounds = 5, .clients_per_round = 10, .min_clients = 1,
                          .seed = 6, .strategy = "fedavg"};
  assert_int_equal(fedc_engine_new(&p, NP, w0, &e1), 0);
  assert_int_equal(fedc_engine_open(e1, eligible, 100, 10, b, &n), 0);
  assert_true(memcmp(a, b, sizeof a) != 0);
  assert_int_equal(fedc_engine_open(e1, eligible, 0, 10, b, &n), FEDC_ESTATE);
  fedc_engine_free(e1);
  /* quorum larger than the eligible clients */
  e1 = new_engine(5, 10, 4);
  assert_int_equal(fedc_engine_open(e1, eligible, 3, 10, b, &n), FEDC_EQUORUM);
  fedc_engine_free(e1);
}

static void engine_restore(void **st) {
  (void)st;
  fedc_engine *e = new_engine(10, 2, 1);
  float w[NP];
  for (int i = 0; i < NP; i++) w[i] = (float)i;
  assert_int_equal(fedc_engine_restore(e, 4, w), 0);
  assert_int_equal(fedc_engine_round(e), 5);
  assert_true(fedc_engine_global(e)[7] == 7.0f);
  assert_int_equal(fedc_engine_restore(e, 11, w), FEDC_ESTATE);
  fedc_engine_free(e);
}

/* Every allocation in new/open/submit/close fails cleanly, leaking nothing. */
static void engine_out_of_memory(void **st) {
  (void)st;
  make_updates();
  int32_t eligible[4] = {0, 1, 2, 3}, sel[2], n;
  float w0[NP] = {0};
  fedc_engine_params p = {.rounds = 2, .clients_per_round = 2, .min_clients = 1,
                          .seed = 1, .strategy = "fedavg"};
  int failures = 0;
  for (int64_t k = 1; k < 100; k++) {
    int64_t live = fedc_alloc_live();
    fedc_alloc_fail_after(k, 1);
    fedc_engine *e = NULL;
    int rc = fedc_engine_new(&p, NP, w0, &e);
    if (rc == 0) rc = fedc_engine_open(e, eligible, 4, 2, sel, &n);
    if (rc == 0) rc = fedc_engine_submit(e, 1, sel[0], updates[0], NP, 3, 0);
    fedc_round_metrics m;
    if (rc == 0) rc = fedc_engine_close(e, &m);
    fedc_alloc_fail_after(0, 0);
    fedc_engine_free(e);
    assert_int_equal(fedc_alloc_live(), live);
    if (rc == 0) break;
    assert_int_equal(rc, FEDC_ENOMEM);
    failures++;
  }
  assert_true(failures >= 5);
}


/* Runs rounds 1..2 of a 2-client job with strategy s; with abort_first, round
 * 1 is prepared and aborted once (and round 2 twice) before its commit. With
 * dp, under differential privacy with adaptive clipping: hist gets the
 * rounds' metrics (epsilon, clip norm). */
static void run_split(const char *strategy, int abort_first, int dp, float *out,
                      fedc_round_metrics hist[2]) {
  float w0[NP] = {0};
  fedc_engine_params p;
  fedc_engine_params_init(&p);
  p.rounds = 2;
  p.clients_per_round = 2;
  p.min_clients = 1;
  p.seed = 3;
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.opt.name = strategy; /* the server optimizer: fedavg is none */
  pp.opt.lr = 0.5;
  pp.opt.momentum = 0.9;
  pp.opt.beta1 = 0.9;
  pp.opt.beta2 = 0.99;
  pp.opt.tau = 1e-3;
  if (dp) {
    pp.dp_on = 1;
    pp.dp = (fedc_dp_params){.noise_multiplier = 0.1, .clip_norm = 0.5, .adaptive = 1,
                             .clip_quantile = 0.5, .clip_lr = 0.2, .delta = 1e-5,
                             .seed = 0x5eed};
    pp.population = 3;
    pp.per_round = 2;
  }
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&p, &pp, NP, w0, &e), 0);
  int32_t eligible[3] = {4, 7, 9}, sel[2], n;
  for (int32_t r = 1; r <= 2; r++) {
    assert_int_equal(fedc_engine_open(e, eligible, 3, 2, sel, &n), 0);
    assert_int_equal(fedc_engine_n_selected(e), 2);
    assert_memory_equal(fedc_engine_selected(e), sel, sizeof sel);
    assert_true(fedc_engine_is_selected(e, sel[0]) && fedc_engine_is_selected(e, sel[1]));
    int32_t other = sel[0] != 4 && sel[1] != 4 ? 4 : sel[0] != 7 && sel[1] != 7 ? 7 : 9;
    assert_false(fedc_engine_is_selected(e, other));
    for (int k = 0; k < 2; k++) {
      assert_false(fedc_engine_has_reported(e, r, sel[k]));
      assert_int_equal(fedc_engine_submit(e, r, sel[k], updates[k + r], NP, counts[k + r], 0.5), 0);
      assert_true(fedc_engine_has_reported(e, r, sel[k]));
    }
    for (int a = 0; a < abort_first * r; a++) {
      const float *next = NULL;
      fedc_round_metrics m;
      float g0 = fedc_engine_global(e)[0];
      assert_int_equal(fedc_engine_close_prepare(e, &m, &next), 0);
      assert_non_null(next);
      assert_int_equal(m.round, r);
      assert_int_equal(m.clients, 2);
      assert_true(dp ? m.epsilon > 0.0 : isnan(m.epsilon));
      /* nothing committed yet, and no update taken meanwhile */
      assert_int_equal(fedc_engine_round(e), r);
      assert_true(fedc_engine_global(e)[0] == g0);
      assert_int_equal(fedc_engine_submit(e, r, sel[0], updates[0], NP, 1, 0), FEDC_ESTATE);
      assert_int_equal(fedc_engine_close_abort(e), 0);
      assert_int_equal(fedc_engine_close_abort(e), FEDC_ESTATE);
      assert_true(fedc_engine_is_open(e));
      assert_int_equal(fedc_engine_reported(e), 2);
      assert_int_equal(fedc_engine_submit(e, r, sel[0], updates[0], NP, 1, 0), FEDC_EDUPLICATE);
    }
    fedc_round_metrics m;
    assert_int_equal(fedc_engine_close(e, &m), 0);
    assert_int_equal(m.round, r);
    /* the last round's reporters answer for late resends */
    assert_true(fedc_engine_has_reported(e, r, sel[0]));
    assert_false(fedc_engine_has_reported(e, r, other));
    assert_int_equal(fedc_engine_n_selected(e), 0);
  }
  int32_t nh;
  const fedc_round_metrics *h = fedc_engine_history(e, &nh);
  assert_int_equal(nh, 2);
  memcpy(hist, h, 2 * sizeof *h);
  memcpy(out, fedc_engine_global(e), sizeof(float) * NP);
  fedc_engine_free(e);
}

/* Compare two runs' metrics field by field, the doubles by their bits
 * (NAN equals NAN: no DP). */
static void same_metrics(const fedc_round_metrics *a, const fedc_round_metrics *b) {
  for (int r = 0; r < 2; r++) {
    assert_int_equal(a[r].round, b[r].round);
    assert_int_equal(a[r].clients, b[r].clients);
    assert_memory_equal(&a[r].epsilon, &b[r].epsilon, sizeof(double));
    assert_memory_equal(&a[r].clip_norm, &b[r].clip_norm, sizeof(double));
    assert_memory_equal(&a[r].train_loss, &b[r].train_loss, sizeof(double));
  }
}

/* A prepared close that is aborted leaves the engine as it was: the same
 * rounds then commit the same model, bit for bit, with a stateful server
 * optimizer too, and under differential privacy the same noise, clip norm
 * and epsilon (the accountant's ledger is put back). */
static void engine_prepare_abort_commit(void **st) {
  (void)st;
  make_updates();
  static float a[NP], b[NP];
  fedc_round_metrics ha[2], hb[2];
  const char *strategies[] = {"fedavg", "fedadam", "fedavgm"};
  for (int dp = 0; dp < 2; dp++)
    for (int i = 0; i < 3; i++) {
      run_split(strategies[i], 0, dp, a, ha);
      run_split(strategies[i], 1, dp, b, hb);
      assert_memory_equal(a, b, sizeof a);
      same_metrics(ha, hb);
    }
  /* under DP: the privacy spent grows by round, the clip norm adapts */
  run_split("fedavg", 1, 1, b, hb);
  assert_true(hb[0].epsilon > 0.0 && hb[1].epsilon > hb[0].epsilon);
  assert_true(hb[0].clip_norm == 0.5 && hb[1].clip_norm != 0.5);
  fedc_engine *e = new_engine(2, 2, 1);
  assert_int_equal(fedc_engine_close_commit(e), FEDC_ESTATE);
  assert_int_equal(fedc_engine_close_prepare(e, NULL, NULL), FEDC_ESTATE);
  int32_t done[2] = {3, 5};
  assert_int_equal(fedc_engine_restore_reporters(e, done, 2), 0);
  assert_int_equal(fedc_engine_has_reported(e, 0, 3), 0); /* no round 0 */
  fedc_engine_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(fedavg_formula_and_order, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(fedavg_refuses_bad_updates, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(engine_round_rules, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(engine_selection_seeded, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(engine_restore, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(engine_out_of_memory, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(engine_prepare_abort_commit, leak_setup, leak_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
