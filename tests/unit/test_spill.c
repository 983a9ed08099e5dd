/*
 * test_spill.c - large-model mode ([server] spill_above_mb): FedAvg's sums
 * in a file and the share cap's held updates in a file give the same
 * committed models, bit for bit, as the in-memory path; a refused update
 * (a bad weight past the first slice) leaves either path's sums as they
 * were; the files go when the engine is freed; a spilled round cannot be
 * split over processes; an engine whose global model is the caller's memory
 * (fedc__engine_adopt_global) and that writes its next model there
 * (fedc__engine_close_prepare_into), aborted once, commits the same models
 * as the usual engine; and a registered read-only file mapping's pages
 * are dropped by fedc__mapped_drop, other memory untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/mapped.h"
#include "base/rng.h"
#include "round/engine.h"
#include "round/pipeline.h"

#define N 150001 /* three slices of 2^16 and a ragged end */
#define CLIENTS 5
#define ROUNDS 3

static char dir[64];
static double max_delta; /* [strategy] max_weight_delta of run_job's jobs */

static int setup(void **st) {
  (void)st;
  snprintf(dir, sizeof dir, "/tmp/fedc_spill_XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st) {
  (void)st;
  return rmdir(dir);
}

/* The committed models of ROUNDS rounds of CLIENTS seeded updates (sample
 * counts that make the share cap cut one client at max_share 0.3), with
 * (bad) one bad update per round refused first, into models[ROUNDS][N]. */
static void run_job(const char *spill, double max_share, int bad, float *models) {
  fedc_engine_params ep = {.rounds = ROUNDS, .clients_per_round = CLIENTS,
                           .min_clients = 1, .seed = 11};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, CLIENTS);
  pp.max_share = max_share;
  pp.agg.spill_path = spill;
  pp.max_delta = max_delta; /* 1e4, the default: updates go through condition */
  float *w0 = fedc_malloc_array(N, sizeof(float));
  float *w = fedc_malloc_array(N, sizeof(float));
  assert_non_null(w0);
  assert_non_null(w);
  for (size_t i = 0; i < N; i++) w0[i] = (float)sin((double)i);
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, N, w0, &e), 0);
  int32_t ids[CLIENTS] = {0, 1, 2, 3, 4}, sel[CLIENTS], n_sel;
  for (int32_t r = 1; r <= ROUNDS; r++) {
    assert_int_equal(fedc_engine_open(e, ids, CLIENTS, CLIENTS, sel, &n_sel), 0);
    const float *g = fedc_engine_global(e);
    for (int32_t k = 0; k < n_sel; k++) {
      fedc_rng rng;
      fedc_rng_derive(&rng, 5, (uint64_t)r, (uint64_t)sel[k], 0);
      for (size_t i = 0; i < N; i++)
        w[i] = g[i] + (float)(fedc_rng_uniform(&rng) - 0.5) * 0.1f;
      uint64_t samples = sel[k] == 3 ? 5000 : 10 + (uint64_t)sel[k] * 7;
      if (bad && k == 1) { /* refused whole, a slice and more in */
        float keep = w[N - 7];
        w[N - 7] = NAN;
        assert_int_equal(fedc_engine_submit(e, r, sel[k], w, N, samples, 0.5),
                         FEDC_ENONFINITE);
        w[N - 7] = keep;
      }
      assert_int_equal(fedc_engine_submit(e, r, sel[k], w, N, samples, 0.5), 0);
    }
    fedc_round_metrics m;
    assert_int_equal(fedc_engine_close(e, &m), 0);
    assert_int_equal(m.capped, max_share > 0 ? 1 : 0);
    memcpy(models + (size_t)(r - 1) * N, fedc_engine_global(e), N * sizeof(float));
  }
  fedc_engine_free(e);
  fedc_free(w0);
  fedc_free(w);
}

static void spilled_rounds_match_memory(void **st) {
  (void)st;
  char path[128], held[160];
  snprintf(path, sizeof path, "%s/store.db.acc", dir);
  snprintf(held, sizeof held, "%s.held", path);
  const double shares[2] = {0.0, 0.3};
  for (int s = 0; s < 4; s++) {
    max_delta = s < 2 ? 0.0 : 1e4; /* 0: fedavg's own add, and its undo */
    float *a = fedc_malloc_array((size_t)ROUNDS * N, sizeof(float));
    float *b = fedc_malloc_array((size_t)ROUNDS * N, sizeof(float));
    float *ref = fedc_malloc_array((size_t)ROUNDS * N, sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(ref);
    run_job(NULL, shares[s % 2], 0, ref); /* no refused update at all */
    run_job(NULL, shares[s % 2], 1, a);
    run_job(path, shares[s % 2], 1, b);
    assert_memory_equal(ref, a, (size_t)ROUNDS * N * sizeof(float));
    assert_memory_equal(ref, b, (size_t)ROUNDS * N * sizeof(float));
    fedc_free(ref);
    assert_int_not_equal(access(path, F_OK), 0); /* removed with the engine */
    assert_int_not_equal(access(held, F_OK), 0);
    fedc_free(a);
    fedc_free(b);
  }
}

static void spilled_round_is_not_split(void **st) {
  (void)st;
  char path[128];
  snprintf(path, sizeof path, "%s/split.acc", dir);
  fedc_engine_params ep = {.rounds = 1, .clients_per_round = 1, .min_clients = 1};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 1);
  pp.agg.spill_path = path;
  float w0[8] = {0};
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, 8, w0, &e), 0);
  int32_t id = 0, sel, n_sel;
  assert_int_equal(fedc_engine_open(e, &id, 1, 1, &sel, &n_sel), 0);
  size_t nw = fedc_engine_partial_words(e);
  __int128 *words = fedc_calloc(nw, sizeof *words);
  assert_int_equal(fedc_engine_partial(e, words, nw), FEDC_EUNSUPPORTED);
  assert_non_null(strstr(fedc_error_msg(), "spill_above_mb"));
  fedc_free(words);
  fedc_engine_free(e);
}

/* Two engines on the same updates, one with its models in buffers of its
 * caller's (adopted, prepared into, an abort in between): the same models. */
static void borrowed_models_match(void **st) {
  (void)st;
  enum { NB = 70001 };
  fedc_engine_params ep = {.rounds = 3, .clients_per_round = 2, .min_clients = 1, .seed = 2};
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 2);
  float *w0 = fedc_malloc_array(NB, sizeof(float)), *w = fedc_malloc_array(NB, sizeof(float));
  float *buf[4];
  for (int i = 0; i < 4; i++) assert_non_null(buf[i] = fedc_malloc_array(NB, sizeof(float)));
  for (size_t i = 0; i < NB; i++) w0[i] = (float)cos((double)i);
  fedc_engine *a, *b;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, NB, w0, &a), 0);
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, NB, w0, &b), 0);
  memcpy(buf[0], w0, NB * sizeof(float));
  fedc__engine_adopt_global(b, buf[0]);
  int32_t ids[2] = {0, 1}, sel[2], n_sel;
  for (int32_t r = 1; r <= 3; r++) {
    assert_int_equal(fedc_engine_open(a, ids, 2, 2, sel, &n_sel), 0);
    assert_int_equal(fedc_engine_open(b, ids, 2, 2, sel, &n_sel), 0);
    for (int32_t k = 0; k < n_sel; k++) {
      for (size_t i = 0; i < NB; i++)
        w[i] = fedc_engine_global(a)[i] + 0.01f * (float)((i * 7 + (size_t)(r * 3 + k)) % 13);
      assert_int_equal(fedc_engine_submit(a, r, sel[k], w, NB, 10 + (uint64_t)k, 0.1), 0);
      assert_int_equal(fedc_engine_submit(b, r, sel[k], w, NB, 10 + (uint64_t)k, 0.1), 0);
    }
    fedc_round_metrics m;
    assert_int_equal(fedc_engine_close(a, &m), 0);
    if (r == 2) { /* prepared into a buffer, then taken back */
      assert_int_equal(fedc__engine_close_prepare_into(b, buf[3], &m), 0);
      assert_int_equal(fedc_engine_close_abort(b), 0);
    }
    assert_int_equal(fedc__engine_close_prepare_into(b, buf[r], &m), 0);
    assert_int_equal(fedc_engine_close_commit(b), 0);
    assert_ptr_equal(fedc_engine_global(b), buf[r]);
    assert_memory_equal(fedc_engine_global(a), buf[r], NB * sizeof(float));
  }
  fedc_engine_free(a);
  fedc_engine_free(b); /* frees none of buf */
  for (int i = 0; i < 4; i++) fedc_free(buf[i]);
  fedc_free(w0);
  fedc_free(w);
}

/* The process's resident pages (/proc/self/statm). */
static long resident(void) {
  long size = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  assert_int_equal(fscanf(f, "%ld %ld", &size, &res), 2);
  fclose(f);
  return res;
}

static void mapped_pages_are_dropped(void **st) {
  (void)st;
  char path[128];
  snprintf(path, sizeof path, "%s/map.bin", dir);
  const size_t len = 16u << 20, page = (size_t)sysconf(_SC_PAGESIZE);
  const long pages = (long)(len / page);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  char *buf = malloc(len);
  assert_non_null(buf);
  memset(buf, 7, len);
  assert_int_equal(write(fd, buf, len), (ssize_t)len);
  const char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  assert_true(m != MAP_FAILED);
  volatile unsigned sum = 0;
  for (size_t i = 0; i < len; i += page) sum += (unsigned)m[i];
  assert_int_equal(sum, 7u * (unsigned)pages);
  long before = resident();
  fedc__mapped_drop(m, len); /* not registered: nothing happens */
  assert_true(before - resident() < pages / 4);
  assert_int_equal(fedc__mapped_register(m, len), 0);
  fedc__mapped_drop(m + 100, len - 200); /* the whole pages inside */
  long after = resident();
  assert_true(before - after > pages * 3 / 4);
  assert_int_equal(m[5 * page], 7); /* read again from the file */
  fedc__mapped_unregister(m);
  /* heap memory is never dropped */
  before = resident();
  fedc__mapped_drop(buf, len);
  assert_true(before - resident() < pages / 4);
  assert_int_equal(buf[len / 2], 7);
  munmap((void *)m, len);
  close(fd);
  unlink(path);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spilled_rounds_match_memory),
      cmocka_unit_test(spilled_round_is_not_split),
      cmocka_unit_test(borrowed_models_match),
      cmocka_unit_test(mapped_pages_are_dropped),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
