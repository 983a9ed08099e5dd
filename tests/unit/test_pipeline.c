/*
 * test_pipeline.c - the engine's strategy pipeline: the norm bound clips
 * (or refuses) an update's distance from the global model; FedBuff weighs
 * deltas by staleness 1/sqrt(1 + tau) and steps every buffer_k updates;
 * differential privacy stops the job at its epsilon budget; the
 * simulator's attackers are a seeded fraction of the clients.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "attack.h"
#include "config/config.h"
#include "round/engine.h"
#include "base/error.h"
#include "round/pipeline.h"

#define NP 4

static fedc_engine *engine_with(const fedc_pipeline_params *pp, int32_t per_round,
                                const float *w0) {
  fedc_engine_params ep = {.rounds = 50, .clients_per_round = per_round,
                           .min_clients = 1, .seed = 3};
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, pp, NP, w0, &e), 0);
  return e;
}

static void norm_bound_clips_and_refuses(void **st) {
  (void)st;
  float x[NP] = {1, 1, 1, 1};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.norm_bound = 2.0;
  fedc_engine *e = engine_with(&pp, 2, x);
  int32_t el[2] = {0, 1}, sel[2], n;
  assert_int_equal(fedc_engine_open(e, el, 2, 2, sel, &n), 0);
  float near[NP] = {2, 1, 1, 1};    /* distance 1: kept as is */
  float far[NP] = {1, 1, 1, 9};     /* distance 8: clipped to 2 */
  assert_int_equal(fedc_engine_submit(e, 1, 0, near, NP, 1, 0), 0);
  assert_int_equal(fedc_engine_submit(e, 1, 1, far, NP, 1, 0), 0);
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  assert_int_equal(m.clipped, 1);
  const float *g = fedc_engine_global(e);
  float want[NP] = {1.5f, 1, 1, 2}; /* mean of (2,1,1,1) and (1,1,1,3) */
  for (int i = 0; i < NP; i++) assert_true(fabsf(g[i] - want[i]) < 1e-6f);
  fedc_engine_free(e);

  pp.norm_refuse = 1;
  e = engine_with(&pp, 2, x);
  assert_int_equal(fedc_engine_open(e, el, 2, 2, sel, &n), 0);
  assert_int_equal(fedc_engine_submit(e, 1, 1, far, NP, 1, 0), FEDC_ERANGE);
  assert_non_null(strstr(fedc_error_msg(), "norm_bound"));
  assert_int_equal(fedc_engine_reported(e), 0);
  /* the refused client may still send a good update: nothing was counted */
  assert_int_equal(fedc_engine_submit(e, 1, 1, near, NP, 1, 0), 0);
  fedc_engine_free(e);
}

static void fedbuff_staleness(void **st) {
  (void)st;
  float x[NP] = {0, 0, 0, 0};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.buffer_k = 2;
  pp.opt.lr = 1.0;
  fedc_engine *e = engine_with(&pp, 2, x);
  float d1[NP] = {1, 0, 0, 0}, d2[NP] = {0, 2, 0, 0};
  int stepped;
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_submit_async(e, 0, 0, d1, NP, 10, 0.5, &stepped, &m), 0);
  assert_int_equal(stepped, 0);
  assert_int_equal(fedc_engine_submit_async(e, 1, 0, d2, NP, 30, 1.5, &stepped, &m), 0);
  assert_int_equal(stepped, 1);
  assert_int_equal(m.round, 1);
  assert_int_equal(m.clients, 2);
  assert_true(fabs(m.train_loss - (10 * 0.5 + 30 * 1.5) / 40) < 1e-12);
  const float *g = fedc_engine_global(e);
  assert_true(fabsf(g[0] - 0.5f) < 1e-6f && fabsf(g[1] - 1.0f) < 1e-6f);
  /* version 1 now: a delta from version 0 has staleness 1, weight 1/sqrt 2 */
  assert_int_equal(fedc_engine_submit_async(e, 2, 0, d1, NP, 1, 0, &stepped, &m), 0);
  assert_int_equal(fedc_engine_submit_async(e, 3, 1, d1, NP, 1, 0, &stepped, &m), 0);
  assert_int_equal(stepped, 1);
  double want = 0.5 + (1.0 / sqrt(2.0) + 1.0) / 2.0;
  assert_true(fabs(fedc_engine_global(e)[0] - want) < 1e-6);
  /* an update from a version that does not exist yet is refused */
  assert_int_equal(fedc_engine_submit_async(e, 4, 7, d1, NP, 1, 0, &stepped, &m), FEDC_ESTALE);
  float bad[NP] = {NAN, 0, 0, 0};
  assert_int_equal(fedc_engine_submit_async(e, 4, 2, bad, NP, 1, 0, &stepped, &m), FEDC_ENONFINITE);
  fedc_engine_free(e);
}

static void dp_budget_stops_the_job(void **st) {
  (void)st;
  float x[NP] = {0, 0, 0, 0};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 1);
  pp.dp_on = 1;
  pp.dp = (fedc_dp_params){.noise_multiplier = 1.0, .clip_norm = 1.0,
                           .clip_quantile = 0.5, .clip_lr = 0.2, .delta = 1e-5,
                           .epsilon_budget = 3.0, .seed = 1};
  pp.population = 10;
  pp.per_round = 1;
  fedc_engine *e = engine_with(&pp, 1, x);
  int32_t el[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sel[1], n;
  int rounds = 0, rc;
  float w[NP] = {0.1f, 0.2f, 0.3f, 0.4f};
  double last_eps = 0.0;
  while ((rc = fedc_engine_open(e, el, 10, 1, sel, &n)) == 0) {
    assert_int_equal(fedc_engine_submit(e, fedc_engine_round(e), sel[0], w, NP, 5, 0), 0);
    fedc_round_metrics m;
    assert_int_equal(fedc_engine_close(e, &m), 0);
    assert_true(m.epsilon > last_eps && m.epsilon <= 3.0);
    last_eps = m.epsilon;
    rounds++;
    assert_true(rounds < 50);
  }
  assert_int_equal(rc, FEDC_EBUDGET);
  assert_non_null(strstr(fedc_error_msg(), "epsilon_budget"));
  print_message("    stopped after %d rounds at epsilon %.3f (budget 3)\n", rounds, last_eps);
  assert_true(rounds >= 1);
  fedc_engine_free(e);
}

static void attackers_are_a_seeded_fraction(void **st) {
  (void)st;
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "sim.attack=sign_flip"), 0);
  assert_int_equal(fedc_config_set(&c, "sim.attack_fraction=0.2"), 0);
  uint8_t *a, *b;
  assert_int_equal(fedc_attackers_pick(&c, &a), 0);
  assert_int_equal(fedc_attackers_pick(&c, &b), 0);
  int count = 0;
  for (int i = 0; i < c.clients; i++) count += a[i];
  assert_int_equal(count, 20);
  assert_memory_equal(a, b, (size_t)c.clients);
  /* sign_flip: x - scale (w - x) */
  float x[2] = {1, 1}, w[2] = {2, 0};
  fedc_attack_update(&c, 1, 0, x, w, 2);
  assert_true(w[0] == 1.0f - 10.0f && w[1] == 1.0f + 10.0f);
  fedc_free(a);
  fedc_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(norm_bound_clips_and_refuses),
      cmocka_unit_test(fedbuff_staleness),
      cmocka_unit_test(dp_budget_stops_the_job),
      cmocka_unit_test(attackers_are_a_seeded_fraction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
