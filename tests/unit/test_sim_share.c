/*
 * test_sim_share.c - a simulation split into shares, without MPI: two
 * shares run in two threads and combine each round in process the way
 * fedc-sim-mpi's ranks do (each writes its engine partial, each merges the
 * other's), on the real Fashion-MNIST data. They end with plain fedc-sim's
 * model and metrics bit for bit; each holds only its own clients' rows;
 * only the evaluator reports test metrics; a share outside 0..size-1 is
 * refused. This covers the share code on machines without OpenMPI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "config/config.h"
#include "base/error.h"
#include "ml/model.h"
#include "sim.h"

#define SHARES 2

/* what the two shares pass each other in a round */
typedef struct board {
  pthread_barrier_t meet;
  __int128 *partial[SHARES];
} board;

typedef struct share_run {
  board *b;
  int32_t rank;
  fedc_sim *sim;
  int rc;
  fedc_round_metrics last;
} share_run;

/* A fedc_sim_combine_fn over shared memory: post this share's partial,
 * wait for the other's, merge it, wait until both have merged. */
static int combine(void *ctx, fedc_engine *e, int local_rc) {
  share_run *r = ctx;
  size_t n = fedc_engine_partial_words(e);
  __int128 *mine = fedc_malloc_array(n, sizeof *mine);
  int rc = local_rc;
  if (rc == 0 && mine == NULL) rc = FEDC_ENOMEM;
  if (rc == 0) rc = fedc_engine_partial(e, mine, n);
  r->b->partial[r->rank] = mine;
  pthread_barrier_wait(&r->b->meet);
  const __int128 *theirs = r->b->partial[SHARES - 1 - r->rank];
  if (rc == 0 && theirs == NULL) rc = FEDC_ENOMEM;
  if (rc == 0) rc = fedc_engine_merge(e, fedc_engine_round(e), theirs, n);
  pthread_barrier_wait(&r->b->meet);
  fedc_free(mine);
  return rc;
}

static void *run_share(void *arg) {
  share_run *r = arg;
  while (r->rc == 0 && !fedc_sim_done(r->sim))
    r->rc = fedc_sim_round_combined(r->sim, combine, r, &r->last);
  return NULL;
}

static void job(fedc_config *c) {
  fedc_config_defaults(c);
  assert_int_equal(fedc_config_set(c, "job.rounds=3"), 0);
  assert_int_equal(fedc_config_set(c, "sim.clients=20"), 0);
  assert_int_equal(fedc_config_set(c, "job.clients_per_round=5"), 0);
  assert_int_equal(fedc_config_set(c, "train.threads=1"), 0);
  assert_int_equal(fedc_config_check(c), 0);
}

static void shares_give_the_plain_model(void **st) {
  (void)st;
  int64_t live = fedc_alloc_live();
  fedc_config c;
  job(&c);
  fedc_sim *ref;
  if (fedc_sim_new_config(&c, &ref) != 0) fail_msg("fedc_sim_new: %s", fedc_error_msg());
  fedc_round_metrics want = {0};
  while (!fedc_sim_done(ref)) assert_int_equal(fedc_sim_round(ref, &want), 0);
  int64_t all_rows = fedc_sim_rows(ref);

  board b = {0};
  pthread_barrier_init(&b.meet, NULL, SHARES);
  share_run runs[SHARES];
  int64_t rows = 0;
  for (int32_t r = 0; r < SHARES; r++) {
    fedc_sim_share sh = {.rank = r, .size = SHARES, .evaluator = r == 0};
    runs[r] = (share_run){.b = &b, .rank = r};
    if (fedc_sim_new_share(&c, &sh, &runs[r].sim) != 0)
      fail_msg("fedc_sim_new_share: %s", fedc_error_msg());
    assert_true(fedc_sim_rows(runs[r].sim) < all_rows);
    rows += fedc_sim_rows(runs[r].sim);
  }
  assert_int_equal(rows, all_rows); /* every row kept once, by its owner */
  pthread_t t[SHARES];
  for (int32_t r = 0; r < SHARES; r++)
    assert_int_equal(pthread_create(&t[r], NULL, run_share, &runs[r]), 0);
  for (int32_t r = 0; r < SHARES; r++) pthread_join(t[r], NULL);
  pthread_barrier_destroy(&b.meet);

  size_t np = fedc_model_n_params(fedc_sim_spec(ref));
  for (int32_t r = 0; r < SHARES; r++) {
    if (runs[r].rc != 0) fail_msg("share %d: %s", (int)r, fedc_error_msg());
    assert_memory_equal(fedc_sim_global(runs[r].sim), fedc_sim_global(ref),
                        np * sizeof(float));
    assert_int_equal(runs[r].last.round, want.round);
    assert_int_equal(runs[r].last.samples, want.samples);
    assert_memory_equal(&runs[r].last.train_loss, &want.train_loss, sizeof(double));
  }
  assert_memory_equal(&runs[0].last.test_acc, &want.test_acc, sizeof(double));
  assert_true(isnan(runs[1].last.test_acc));
  double loss, acc;
  assert_int_equal(fedc_sim_evaluate(runs[1].sim, &loss, &acc), FEDC_ESTATE);
  for (int32_t r = 0; r < SHARES; r++) fedc_sim_free(runs[r].sim);
  fedc_sim_free(ref);

  fedc_sim *bad = NULL;
  fedc_sim_share outside = {.rank = 2, .size = 2, .evaluator = 0};
  assert_int_equal(fedc_sim_new_share(&c, &outside, &bad), FEDC_EINVAL);
  assert_null(bad);
  assert_int_equal(fedc_alloc_live(), live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shares_give_the_plain_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
