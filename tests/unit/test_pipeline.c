/*
 * test_pipeline.c - the engine's strategy pipeline: the norm bound clips
 * (or refuses) an update's distance from the global model; FedBuff weighs
 * deltas by staleness 1/sqrt(1 + tau) and steps every buffer_k updates;
 * differential privacy stops the job at its epsilon budget; the
 * simulator's attackers are a seeded fraction of the clients; the share
 * cap, max_samples and max_weight_delta bound what one lying client does.
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


/* One round of per_round clients with counts ns and one-weight-per-client
 * models (client k's update is all ws[k]); the first weight of the result. */
static float capped_round(const fedc_pipeline_params *pp, int32_t k, const uint64_t *ns,
                          const float *ws, const int32_t *order, int32_t *capped) {
  float x[NP] = {0, 0, 0, 0};
  fedc_engine *e = engine_with(pp, k, x);
  int32_t el[8] = {0, 1, 2, 3, 4, 5, 6, 7}, sel[8], n;
  assert_int_equal(fedc_engine_open(e, el, k, k, sel, &n), 0);
  for (int32_t j = 0; j < k; j++) {
    int32_t i = order ? order[j] : j;
    float w[NP] = {ws[i], ws[i], ws[i], ws[i]};
    assert_int_equal(fedc_engine_submit(e, 1, i, w, NP, ns[i], 0), 0);
  }
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  float g = fedc_engine_global(e)[0];
  if (capped) *capped = m.capped;
  fedc_engine_free(e);
  return g;
}

/* A client claiming 2^40 samples among three honest ones of 100 moves the
 * model by at most max_client_share of its pull; honest rounds whose
 * largest client has at most the share are plain FedAvg bit for bit; the
 * result does not depend on the order updates arrive in. */
static void share_cap_bounds_one_client(void **st) {
  (void)st;
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 4);
  pp.max_share = 0.5;
  uint64_t ns[4] = {1ull << 40, 100, 100, 100};
  float ws[4] = {1000, 1, 1, 1};
  int32_t capped;
  float g = capped_round(&pp, 4, ns, ws, NULL, &capped);
  /* water level t = 0.5 * 300 / 0.5 = 300: weights 300,100,100,100 */
  assert_int_equal(capped, 1);
  assert_true(fabsf(g - (300.0f * 1000 + 300) / 600) < 1e-3f);
  int32_t rev[4] = {3, 2, 1, 0}, mid[4] = {1, 0, 3, 2};
  assert_true(g == capped_round(&pp, 4, ns, ws, rev, NULL));
  assert_true(g == capped_round(&pp, 4, ns, ws, mid, NULL));
  /* without the cap the liar sets the model */
  fedc_pipeline_params off = pp;
  off.max_share = 0;
  assert_true(capped_round(&off, 4, ns, ws, NULL, NULL) > 999.0f);
  /* honest: largest share 0.4, no cut, same bits as uncapped FedAvg */
  uint64_t hn[4] = {400, 300, 200, 100};
  float hw[4] = {0.25f, -1.5f, 3.0f, 0.125f};
  assert_true(capped_round(&pp, 4, hn, hw, NULL, &capped) ==
              capped_round(&off, 4, hn, hw, NULL, NULL));
  assert_int_equal(capped, 0);
  /* two liars, share 0.3: both cut to t = 0.3 * 100 / 0.4 = 75 */
  pp.max_share = 0.3;
  uint64_t n2[4] = {1ull << 39, 1ull << 38, 50, 50};
  float w2[4] = {100, 100, 0, 0};
  g = capped_round(&pp, 4, n2, w2, rev, &capped);
  assert_int_equal(capped, 2);
  assert_true(fabsf(g - 100.0f * 150 / 250) < 1e-3f);
  /* a single update is the whole round whatever the cap */
  uint64_t n1[1] = {1ull << 40};
  float w1[1] = {7};
  assert_true(capped_round(&pp, 1, n1, w1, NULL, NULL) == 7.0f);
}

/* [server] max_samples and [strategy] max_weight_delta refuse. */
static void max_samples_and_delta_refuse(void **st) {
  (void)st;
  float x[NP] = {0, 0, 0, 0};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  pp.max_samples = 1000;
  pp.max_delta = 1e4;
  fedc_engine *e = engine_with(&pp, 2, x);
  int32_t el[2] = {0, 1}, sel[2], n;
  assert_int_equal(fedc_engine_open(e, el, 2, 2, sel, &n), 0);
  float ok[NP] = {1, 2, 3, 4}, big[NP] = {1, 2, 3, 2147483000.0f};
  assert_int_equal(fedc_engine_submit(e, 1, 0, ok, NP, 1001, 0), FEDC_ERANGE);
  assert_non_null(strstr(fedc_error_msg(), "max_samples"));
  assert_int_equal(fedc_engine_submit(e, 1, 0, big, NP, 10, 0), FEDC_ERANGE);
  assert_non_null(strstr(fedc_error_msg(), "max_weight_delta"));
  assert_int_equal(fedc_engine_submit(e, 1, 0, ok, NP, 1000, 0), 0);
  fedc_engine_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(norm_bound_clips_and_refuses),
      cmocka_unit_test(share_cap_bounds_one_client),
      cmocka_unit_test(max_samples_and_delta_refuse),
      cmocka_unit_test(fedbuff_staleness),
      cmocka_unit_test(dp_budget_stops_the_job),
      cmocka_unit_test(attackers_are_a_seeded_fraction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
