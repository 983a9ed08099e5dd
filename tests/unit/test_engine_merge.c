/*
 * test_engine_merge.c - splitting a round over engine replicas, as the MPI
 * simulator does: replicas that each count some of the clients, then merge
 * the others' partials (summed modulo 2^128, as the MPI reduction sums
 * them), commit a model and metrics bit-identical to one engine that was
 * sent every update, for 1 to 4 replicas over several rounds. A partial
 * that counts a client twice, belongs to another round, has the wrong size
 * or is inconsistent is refused and changes nothing; the quorum still
 * applies to the merged round.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "round/engine.h"
#include "base/error.h"
#include "base/rng.h"

#define NPAR 777
#define POOL 30
#define PER_ROUND 7
#define MAX_REPLICAS 4

static int32_t pool_ids[POOL];

/* The update client c sends in round r: seeded, of mixed magnitudes, with
 * an uneven sample count and a loss that is not a round number. */
static void client_update(int32_t r, int32_t c, float *w, uint64_t *n,
                          double *loss) {
  fedc_rng g;
  fedc_rng_derive(&g, 42, 0x7570 /* "up" */, (uint64_t)r, (uint64_t)c);
  for (int i = 0; i < NPAR; i++)
    w[i] = (float)(fedc_rng_normal(&g) * pow(10.0, (double)(i % 5) - 2.0));
  *n = 1 + (uint64_t)c * 37 % 500;
  *loss = 0.1 + fedc_rng_normal(&g) * fedc_rng_normal(&g);
}

static fedc_engine *replica(int32_t quorum) {
  static float w_init[NPAR];
  for (int i = 0; i < NPAR; i++) w_init[i] = (float)i * 1e-3f;
  fedc_engine_params p = {.rounds = 4, .clients_per_round = PER_ROUND,
                          .min_clients = quorum, .seed = 11, .strategy = "fedavg"};
  fedc_engine *e = NULL;
  assert_int_equal(fedc_engine_new(&p, NPAR, w_init, &e), 0);
  for (int i = 0; i < POOL; i++) pool_ids[i] = 1000 + i;
  return e;
}

static void open_round(fedc_engine *e, int32_t *sel) {
  int32_t n = 0;
  assert_int_equal(fedc_engine_open(e, pool_ids, POOL, PER_ROUND, sel, &n), 0);
  assert_int_equal(n, PER_ROUND);
}

static void submit_client(fedc_engine *e, int32_t client) {
  static float w[NPAR];
  uint64_t n;
  double loss;
  int32_t r = fedc_engine_round(e);
  client_update(r, client, w, &n, &loss);
  assert_int_equal(fedc_engine_submit(e, r, client, w, NPAR, n, loss), 0);
}

static __int128 *partial_of(const fedc_engine *e) {
  size_t nw = fedc_engine_partial_words(e);
  assert_true(nw > NPAR);
  __int128 *p = fedc_malloc_array(nw, sizeof *p);
  assert_non_null(p);
  assert_int_equal(fedc_engine_partial(e, p, nw), 0);
  return p;
}

/* out = a + b (sign > 0) or a - b, word by word, modulo 2^128, as the MPI
 * operator adds; out may be a or b */
static void add_words(__int128 *out, const __int128 *a, const __int128 *b,
                      size_t n, int sign) {
  for (size_t i = 0; i < n; i++) {
    unsigned __int128 x = (unsigned __int128)a[i], y = (unsigned __int128)b[i];
    out[i] = (__int128)(sign > 0 ? x + y : x - y);
  }
}

static void same_commit(const fedc_round_metrics *want, const fedc_engine *ref,
                        const fedc_round_metrics *got, const fedc_engine *e) {
  assert_memory_equal(fedc_engine_global(e), fedc_engine_global(ref),
                      NPAR * sizeof(float));
  assert_int_equal(got->round, want->round);
  assert_int_equal(got->clients, want->clients);
  assert_int_equal(got->samples, want->samples);
  assert_memory_equal(&got->train_loss, &want->train_loss, sizeof(double));
}

/*
 * For R = 1..4: every replica counts the selected clients c with
 * c % R == its rank, merges the sum of all partials minus its own, and
 * commits exactly what the reference engine commits, round after round.
 */
static void replicas_commit_what_one_engine_commits(void **st) {
  (void)st;
  for (int32_t nr = 1; nr <= MAX_REPLICAS; nr++) {
    fedc_engine *ref = replica(1), *rep[MAX_REPLICAS];
    for (int32_t r = 0; r < nr; r++) rep[r] = replica(1);
    while (!fedc_engine_done(ref)) {
      int32_t sel[PER_ROUND], sel_r[PER_ROUND];
      open_round(ref, sel);
      for (int i = 0; i < PER_ROUND; i++) submit_client(ref, sel[i]);
      fedc_round_metrics want;
      assert_int_equal(fedc_engine_close(ref, &want), 0);

      __int128 *own[MAX_REPLICAS], *sum = NULL;
      size_t nw = 0;
      for (int32_t r = 0; r < nr; r++) {
        open_round(rep[r], sel_r);
        assert_memory_equal(sel_r, sel, sizeof sel);
        for (int i = 0; i < PER_ROUND; i++)
          if (sel[i] % nr == r) submit_client(rep[r], sel[i]);
        own[r] = partial_of(rep[r]);
        nw = fedc_engine_partial_words(rep[r]);
        if (sum == NULL) {
          sum = fedc_calloc(nw, sizeof *sum);
          assert_non_null(sum);
        }
        add_words(sum, sum, own[r], nw, +1);
      }
      for (int32_t r = 0; r < nr; r++) {
        add_words(own[r], sum, own[r], nw, -1); /* the others' partials */
        assert_int_equal(fedc_engine_merge(rep[r], want.round, own[r], nw), 0);
        assert_true(fedc_engine_all_reported(rep[r]));
        fedc_round_metrics got;
        assert_int_equal(fedc_engine_close(rep[r], &got), 0);
        same_commit(&want, ref, &got, rep[r]);
        fedc_free(own[r]);
      }
      fedc_free(sum);
    }
    for (int32_t r = 0; r < nr; r++) fedc_engine_free(rep[r]);
    fedc_engine_free(ref);
  }
}

/* Bad partials are refused whole; the round then merges a good one and
 * still commits the reference model. */
static void bad_partials_change_nothing(void **st) {
  (void)st;
  fedc_engine *ref = replica(1), *a = replica(1), *b = replica(1);
  int32_t sel[PER_ROUND];
  __int128 one = 1;
  assert_int_equal(fedc_engine_partial_words(a), 0);
  assert_int_equal(fedc_engine_partial(a, &one, 1), FEDC_ESTATE);
  assert_int_equal(fedc_engine_merge(a, 1, &one, 1), FEDC_ESTATE);
  open_round(ref, sel);
  open_round(a, sel);
  open_round(b, sel);
  for (int i = 0; i < PER_ROUND; i++) submit_client(ref, sel[i]);
  submit_client(a, sel[0]);
  submit_client(a, sel[1]);
  for (int i = 1; i < PER_ROUND; i++) submit_client(b, sel[i]); /* sel[1] twice */
  size_t nw = fedc_engine_partial_words(b);
  assert_int_equal(nw, NPAR + 1 + 3 * PER_ROUND);
  __int128 *pb = partial_of(b), *bad = fedc_malloc_array(nw, sizeof *bad);
  assert_non_null(bad);

  assert_int_equal(fedc_engine_merge(a, 1, pb, nw), FEDC_EDUPLICATE);
  assert_non_null(strstr(fedc_error_msg(), "already reported"));
  assert_int_equal(fedc_engine_merge(a, 2, pb, nw), FEDC_ESTALE);
  assert_int_equal(fedc_engine_merge(a, 1, pb, nw - 1), FEDC_ESHAPE);
  assert_int_equal(fedc_engine_partial(b, bad, nw + 1), FEDC_ESHAPE);
  /* two replicas that both counted sel[1]: the summed flag is 2 */
  add_words(bad, pb, pb, nw, +1);
  assert_int_equal(fedc_engine_merge(a, 1, bad, nw), FEDC_EDUPLICATE);
  assert_non_null(strstr(fedc_error_msg(), "2 replicas"));
  /* c counts sel[2..], which a lacks: its partial, spoiled three ways */
  fedc_engine *c = replica(1);
  open_round(c, sel);
  for (int i = 2; i < PER_ROUND; i++) submit_client(c, sel[i]);
  __int128 *pc = partial_of(c);
  memcpy(bad, pc, nw * sizeof *bad);
  bad[NPAR] += 1; /* a total that is not the slots' sum */
  assert_int_equal(fedc_engine_merge(a, 1, bad, nw), FEDC_EINVAL);
  memcpy(bad, pc, nw * sizeof *bad);
  bad[NPAR + 2] = 5; /* samples in slot 0, which reports nothing */
  bad[NPAR] += 5;
  assert_int_equal(fedc_engine_merge(a, 1, bad, nw), FEDC_EINVAL);
  memcpy(bad, pc, nw * sizeof *bad);
  bad[NPAR + 1 + 3 * 2] = -1; /* a negative report flag */
  assert_int_equal(fedc_engine_merge(a, 1, bad, nw), FEDC_EINVAL);
  assert_int_equal(fedc_engine_reported(a), 2);

  assert_int_equal(fedc_engine_merge(a, 1, pc, nw), 0);
  /* merging it again counts nobody twice */
  assert_int_equal(fedc_engine_merge(a, 1, pc, nw), FEDC_EDUPLICATE);
  fedc_round_metrics want, got;
  assert_int_equal(fedc_engine_close(ref, &want), 0);
  assert_int_equal(fedc_engine_close(a, &got), 0);
  same_commit(&want, ref, &got, a);
  fedc_free(pb);
  fedc_free(pc);
  fedc_free(bad);
  fedc_engine_free(a);
  fedc_engine_free(b);
  fedc_engine_free(c);
  fedc_engine_free(ref);
}

/* Quorum 3: one update on each of two replicas is not enough, and both
 * abandon the round alike; the next attempt commits on both. */
static void merged_round_keeps_quorum(void **st) {
  (void)st;
  fedc_engine *a = replica(3), *b = replica(3);
  int32_t sel[PER_ROUND], sel_b[PER_ROUND];
  for (int attempt = 0; attempt < 2; attempt++) {
    open_round(a, sel);
    open_round(b, sel_b);
    assert_memory_equal(sel, sel_b, sizeof sel);
    submit_client(a, sel[0]);
    if (attempt == 1) submit_client(a, sel[1]);
    submit_client(b, sel[2]);
    __int128 *pa = partial_of(a), *pb = partial_of(b);
    size_t nw = fedc_engine_partial_words(a);
    assert_int_equal(fedc_engine_merge(a, 1, pb, nw), 0);
    assert_int_equal(fedc_engine_merge(b, 1, pa, nw), 0);
    fedc_free(pa);
    fedc_free(pb);
    fedc_round_metrics ma, mb;
    int want = attempt == 0 ? FEDC_EQUORUM : 0;
    assert_int_equal(fedc_engine_close(a, &ma), want);
    assert_int_equal(fedc_engine_close(b, &mb), want);
    if (attempt == 1) {
      assert_int_equal(ma.clients, 3);
      same_commit(&ma, a, &mb, b);
    }
  }
  assert_int_equal(fedc_engine_round(a), 2);
  fedc_engine_free(a);
  fedc_engine_free(b);
}

int main(void) {
  /* each test frees all it allocates: the allocator's count says so */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replicas_commit_what_one_engine_commits),
      cmocka_unit_test(bad_partials_change_nothing),
      cmocka_unit_test(merged_round_keeps_quorum),
  };
  int64_t live = fedc_alloc_live();
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  if (fedc_alloc_live() != live) {
    fprintf(stderr, "test_engine_merge: %lld blocks leaked\n",
            (long long)(fedc_alloc_live() - live));
    failed++;
  }
  return failed;
}
