/*
 * agg_device_cases.h - the cases shared by test_agg_device.c (the GPU
 * strategy on a real GPU, through the CUDA module) and
 * test_agg_device_emul.c (the same strategy over a CPU stand-in for
 * agg_cuda.h, so that its wiring runs on machines without a GPU). Each
 * case runs the same updates through two pipelines (round/pipeline.h), one
 * with [strategy] device = cpu and one with device = cuda, and compares:
 *   FedAvg and the strategies that aggregate with it, without a norm
 *   bound (also under DP, the share cap, MPI-style partials, FedBuff):
 *     bit for bit;
 *   median and trimmed mean, and anything through the norm bound:
 *     |gpu - cpu| <= TOL_REL * max(|cpu|, TOL_FLOOR) per weight (the norm
 *     is summed in another order on the device, so a clipped update may
 *     differ in float's last bits).
 * The includer defines REQUIRE_GPU(), which skips a case without a device
 * (or does nothing for the stand-in), before including this file.
 */
#ifndef AGG_DEVICE_CASES_H
#define AGG_DEVICE_CASES_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "round/pipeline.h"

#define TOL_REL 1e-6
#define TOL_FLOOR 1e-3

/* k updates around x: x + spread * N(0,1), and sample counts. */
static void make_updates(uint64_t seed, const float *x, size_t n, int k, double spread, float *w,
                         uint64_t *samples) {
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  for (int j = 0; j < k; j++) {
    for (size_t i = 0; i < n; i++)
      w[(size_t)j * n + i] = (float)(x[i] + spread * fedc_rng_normal(&r));
    samples[j] = 1 + fedc_rng_below(&r, 500);
  }
}

static void base_params(fedc_pipeline_params *p, const char *name, int device, int32_t k) {
  fedc_pipeline_params_fedavg(p, k);
  p->agg.name = p->opt.name = name;
  p->agg.device = device;
  p->agg.trim_beta = 0.2;
}

static fedc_pipeline *pipeline_or_fail(const fedc_pipeline_params *p, size_t n) {
  fedc_pipeline *pl = NULL;
  int rc = fedc_pipeline_new(p, n, &pl);
  if (rc != 0) print_message("pipeline %s: %s\n", p->agg.name, fedc_error_msg());
  assert_int_equal(rc, 0);
  return pl;
}

/* One round of updates order[0..k) through pl; x in, next model out. The
 * add results go to rcs (may be NULL: then every add must succeed). */
static void run_round(fedc_pipeline *pl, int32_t round, float *x, size_t n, const float *w,
                      const uint64_t *samples, const int *order, int k, int *rcs,
                      fedc_pipeline_round *out) {
  assert_int_equal(fedc_pipeline_begin(pl, x), 0);
  int32_t m = 0;
  for (int j = 0; j < k; j++) {
    int i = order ? order[j] : j;
    int rc = fedc_pipeline_add(pl, x, w + (size_t)i * n, n, samples[i]);
    if (rcs)
      rcs[i] = rc;
    else if (rc != 0)
      print_message("add %d: %s\n", i, fedc_error_msg());
    if (!rcs) assert_int_equal(rc, 0);
    if (rc == 0) m++;
  }
  int rc = fedc_pipeline_finish(pl, round, x, n, m, out);
  if (rc != 0) print_message("finish: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what) {
  if (memcmp(a, b, n * sizeof *a) == 0) return;
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof *a) != 0) {
      print_message("%s: weight %zu: cpu %.9g, gpu %.9g\n", what, i, (double)a[i], (double)b[i]);
      break;
    }
  fail();
}

static void assert_close(const float *cpu, const float *gpu, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++) {
    double tol = TOL_REL * fmax(fabs((double)cpu[i]), TOL_FLOOR);
    if (!(fabs((double)cpu[i] - (double)gpu[i]) <= tol)) {
      print_message("%s: weight %zu: cpu %.9g, gpu %.9g (tolerance %.3g)\n", what, i,
                    (double)cpu[i], (double)gpu[i], tol);
      fail();
    }
  }
}

typedef struct pair {
  size_t n;
  int k;
  float *x_cpu, *x_gpu, *w;
  uint64_t *samples;
  fedc_pipeline *cpu, *gpu;
} pair;

static void pair_new(pair *pr, const fedc_pipeline_params *p, size_t n, int k, uint64_t seed,
                     double spread) {
  memset(pr, 0, sizeof *pr);
  pr->n = n;
  pr->k = k;
  pr->x_cpu = fedc_malloc_array(n, sizeof(float));
  pr->x_gpu = fedc_malloc_array(n, sizeof(float));
  pr->w = fedc_malloc_array((size_t)k * n, sizeof(float));
  pr->samples = fedc_malloc_array((size_t)k, sizeof(uint64_t));
  assert_non_null(pr->x_cpu);
  assert_non_null(pr->x_gpu);
  assert_non_null(pr->w);
  assert_non_null(pr->samples);
  fedc_rng r;
  fedc_rng_seed(&r, seed ^ 0x5eed);
  for (size_t i = 0; i < n; i++)
    pr->x_cpu[i] = pr->x_gpu[i] = (float)fedc_rng_normal(&r);
  make_updates(seed, pr->x_cpu, n, k, spread, pr->w, pr->samples);
  fedc_pipeline_params pc = *p;
  pc.agg.device = FEDC_AGG_DEVICE_CPU;
  pr->cpu = pipeline_or_fail(&pc, n);
  fedc_pipeline_params pg = *p;
  pg.agg.device = FEDC_AGG_DEVICE_CUDA;
  pr->gpu = pipeline_or_fail(&pg, n);
  assert_false(fedc_pipeline_on_gpu(pr->cpu));
  assert_true(fedc_pipeline_on_gpu(pr->gpu));
}

static void pair_free(pair *pr) {
  fedc_pipeline_free(pr->cpu);
  fedc_pipeline_free(pr->gpu);
  fedc_free(pr->x_cpu);
  fedc_free(pr->x_gpu);
  fedc_free(pr->w);
  fedc_free(pr->samples);
}

/* Two rounds, the GPU's second in reverse arrival order; the updates the
 * norm bound clipped in the last. */
static int32_t pair_rounds(pair *pr, int exact, const char *what) {
  int rev[64];
  assert_true(pr->k <= 64);
  for (int j = 0; j < pr->k; j++)
    rev[j] = pr->k - 1 - j;
  fedc_pipeline_round rc_cpu, rc_gpu;
  for (int32_t round = 1; round <= 2; round++) {
    run_round(pr->cpu, round, pr->x_cpu, pr->n, pr->w, pr->samples, NULL, pr->k, NULL, &rc_cpu);
    run_round(pr->gpu, round, pr->x_gpu, pr->n, pr->w, pr->samples, round == 2 ? rev : NULL, pr->k,
              NULL, &rc_gpu);
    assert_int_equal(rc_cpu.clipped, rc_gpu.clipped);
    assert_int_equal(rc_cpu.capped, rc_gpu.capped);
    if (exact)
      assert_same_bits(pr->x_cpu, pr->x_gpu, pr->n, what);
    else
      assert_close(pr->x_cpu, pr->x_gpu, pr->n, what);
    /* the GPU's next round starts from the CPU's model, so a tolerance
     * does not compound */
    memcpy(pr->x_gpu, pr->x_cpu, pr->n * sizeof(float));
  }
  return rc_cpu.clipped;
}

/* FedAvg and a server optimizer over it, several sizes (one past the
 * device's 1 Mi-float staging chunk): bit for bit, in any order. */
static void test_fedavg_exact(void **state) {
  (void)state;
  REQUIRE_GPU();
  const size_t sizes[] = {1, 1003, ((size_t)1 << 20) + 3};
  const char *names[] = {"fedavg", "fedadam"};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t j = 0; j < 2; j++) {
      fedc_pipeline_params p;
      base_params(&p, names[j], FEDC_AGG_DEVICE_CUDA, 7);
      p.opt.lr = 0.1;
      p.opt.beta1 = 0.9;
      p.opt.beta2 = 0.99;
      p.opt.tau = 1e-3;
      pair pr;
      pair_new(&pr, &p, sizes[s], 7, 11 + s, 0.5);
      char what[64];
      snprintf(what, sizeof what, "%s n=%zu", names[j], sizes[s]);
      pair_rounds(&pr, 1, what);
      pair_free(&pr);
    }
}

/* Median and trimmed mean: within the tolerance, odd and even counts. */
static void test_robust(void **state) {
  (void)state;
  REQUIRE_GPU();
  const char *names[] = {"median", "trimmed_mean"};
  const int counts[] = {1, 4, 9};
  for (size_t j = 0; j < 2; j++)
    for (size_t c = 0; c < 3; c++) {
      fedc_pipeline_params p;
      base_params(&p, names[j], FEDC_AGG_DEVICE_CUDA, counts[c]);
      pair pr;
      pair_new(&pr, &p, 20011, counts[c], 23 + c, 1.0);
      char what[64];
      snprintf(what, sizeof what, "%s k=%d", names[j], counts[c]);
      pair_rounds(&pr, 0, what);
      pair_free(&pr);
    }
}

/* The norm bound, clipping, applied on the device: the same updates are
 * clipped (the round's count) and the models agree within the tolerance.
 * max_weight_delta is on, as by default, and checked on the host. */
static void test_norm_clip(void **state) {
  (void)state;
  REQUIRE_GPU();
  const char *names[] = {"fedavg", "median", "trimmed_mean"};
  for (size_t j = 0; j < 3; j++) {
    fedc_pipeline_params p;
    base_params(&p, names[j], FEDC_AGG_DEVICE_CUDA, 8);
    p.norm_bound = 30.0; /* n = 4001, spread 0.6: norms near 38, some under */
    p.max_delta = 1e4;
    pair pr;
    pair_new(&pr, &p, 4001, 8, 31 + j, 0.6);
    for (int i = 0; i < 8; i += 2) /* every other update well inside */
      for (size_t t = 0; t < pr.n; t++)
        pr.w[(size_t)i * pr.n + t] =
            pr.x_cpu[t] + 0.1f * (pr.w[(size_t)i * pr.n + t] - pr.x_cpu[t]);
    assert_int_equal(pair_rounds(&pr, 0, names[j]), 4);
    pair_free(&pr);
  }
}

/* The norm bound, refusing: the update over the bound is refused on both,
 * with the same words, and changes nothing; so is one over
 * max_weight_delta. */
static void test_norm_refuse(void **state) {
  (void)state;
  REQUIRE_GPU();
  const char *names[] = {"fedavg", "median"};
  for (size_t j = 0; j < 2; j++) {
    fedc_pipeline_params p;
    base_params(&p, names[j], FEDC_AGG_DEVICE_CUDA, 5);
    p.norm_bound = 5.0;
    p.norm_refuse = 1;
    p.max_delta = 3.0;
    pair pr;
    pair_new(&pr, &p, 1000, 5, 41 + j, 0.05); /* norms near 1.6 */
    for (size_t t = 0; t < pr.n; t++)
      pr.w[1 * pr.n + t] = pr.x_cpu[t] + 0.3f; /* norm 9.5 */
    pr.w[3 * pr.n + 7] = pr.x_cpu[7] + 3.5f;   /* delta 3.5 */
    int rc_c[5], rc_g[5];
    char msg_c[2][256], msg_g[2][256];
    fedc_pipeline_round r_c, r_g;
    assert_int_equal(fedc_pipeline_begin(pr.cpu, pr.x_cpu), 0);
    assert_int_equal(fedc_pipeline_begin(pr.gpu, pr.x_gpu), 0);
    for (int i = 0; i < 5; i++) {
      rc_c[i] = fedc_pipeline_add(pr.cpu, pr.x_cpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]);
      if (i == 1 || i == 3) snprintf(msg_c[i / 2], sizeof msg_c[0], "%s", fedc_error_msg());
      rc_g[i] = fedc_pipeline_add(pr.gpu, pr.x_gpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]);
      if (i == 1 || i == 3) snprintf(msg_g[i / 2], sizeof msg_g[0], "%s", fedc_error_msg());
      assert_int_equal(rc_c[i], i == 1 || i == 3 ? FEDC_ERANGE : 0);
      assert_int_equal(rc_g[i], rc_c[i]);
    }
    assert_non_null(strstr(msg_g[0], "exceeds [strategy] norm_bound = 5"));
    assert_string_equal(msg_c[1], msg_g[1]); /* max_weight_delta: the same words */
    assert_int_equal(fedc_pipeline_finish(pr.cpu, 1, pr.x_cpu, pr.n, 3, &r_c), 0);
    assert_int_equal(fedc_pipeline_finish(pr.gpu, 1, pr.x_gpu, pr.n, 3, &r_g), 0);
    assert_close(pr.x_cpu, pr.x_gpu, pr.n, names[j]);
    pair_free(&pr);
  }
}

/* The share cap (pipeline.c) works on the sums themselves: through the
 * host copy of the GPU's sums, bit for bit; a finish, then one more update
 * (the sums go back to the device), then a finish again. */
static void test_share_cap(void **state) {
  (void)state;
  REQUIRE_GPU();
  fedc_pipeline_params p;
  base_params(&p, "fedavg", FEDC_AGG_DEVICE_CUDA, 8);
  p.max_share = 0.3;
  pair pr;
  pair_new(&pr, &p, 3001, 8, 51, 0.5);
  const uint64_t counts[] = {1000, 10, 10, 20, 30, 5000, 40, 7};
  memcpy(pr.samples, counts, sizeof counts);
  float *save_c = fedc_malloc_array(pr.n, sizeof(float));
  float *save_g = fedc_malloc_array(pr.n, sizeof(float));
  assert_non_null(save_c);
  assert_non_null(save_g);
  memcpy(save_c, pr.x_cpu, pr.n * sizeof(float));
  memcpy(save_g, pr.x_gpu, pr.n * sizeof(float));
  fedc_pipeline_round r_c, r_g;
  assert_int_equal(fedc_pipeline_begin(pr.cpu, pr.x_cpu), 0);
  assert_int_equal(fedc_pipeline_begin(pr.gpu, pr.x_gpu), 0);
  for (int i = 0; i < 7; i++) {
    assert_int_equal(fedc_pipeline_add(pr.cpu, pr.x_cpu, pr.w + (size_t)i * pr.n, pr.n, counts[i]),
                     0);
    assert_int_equal(fedc_pipeline_add(pr.gpu, pr.x_gpu, pr.w + (size_t)i * pr.n, pr.n, counts[i]),
                     0);
  }
  assert_int_equal(fedc_pipeline_finish(pr.cpu, 1, pr.x_cpu, pr.n, 7, &r_c), 0);
  assert_int_equal(fedc_pipeline_finish(pr.gpu, 1, pr.x_gpu, pr.n, 7, &r_g), 0);
  assert_true(r_c.capped > 0);
  assert_int_equal(r_c.capped, r_g.capped);
  assert_same_bits(pr.x_cpu, pr.x_gpu, pr.n, "share cap");
  /* the round goes on (as after an aborted commit): one more update */
  memcpy(pr.x_cpu, save_c, pr.n * sizeof(float));
  memcpy(pr.x_gpu, save_g, pr.n * sizeof(float));
  assert_int_equal(fedc_pipeline_add(pr.cpu, pr.x_cpu, pr.w + 7 * pr.n, pr.n, counts[7]), 0);
  assert_int_equal(fedc_pipeline_add(pr.gpu, pr.x_gpu, pr.w + 7 * pr.n, pr.n, counts[7]), 0);
  assert_int_equal(fedc_pipeline_finish(pr.cpu, 1, pr.x_cpu, pr.n, 8, &r_c), 0);
  assert_int_equal(fedc_pipeline_finish(pr.gpu, 1, pr.x_gpu, pr.n, 8, &r_g), 0);
  assert_same_bits(pr.x_cpu, pr.x_gpu, pr.n, "share cap, one more update");
  fedc_free(save_c);
  fedc_free(save_g);
  pair_free(&pr);
}

/* What the MPI driver does (engine.c's partial and merge): read the sums,
 * add another process's to them in place, finish; then fold on. */
static void test_partial_sums(void **state) {
  (void)state;
  REQUIRE_GPU();
  fedc_pipeline_params p;
  base_params(&p, "fedavg", FEDC_AGG_DEVICE_CUDA, 6);
  pair pr;
  pair_new(&pr, &p, 2003, 6, 61, 0.5);
  assert_int_equal(fedc_pipeline_begin(pr.cpu, pr.x_cpu), 0);
  assert_int_equal(fedc_pipeline_begin(pr.gpu, pr.x_gpu), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(
        fedc_pipeline_add(pr.cpu, pr.x_cpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]), 0);
    assert_int_equal(
        fedc_pipeline_add(pr.gpu, pr.x_gpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]), 0);
  }
  fedc_strategy *sc = fedc_pipeline_aggregator(pr.cpu), *sg = fedc_pipeline_aggregator(pr.gpu);
  assert_true(fedc_strategy_is_additive(sg));
  __int128 *acc_c, *acc_g;
  uint64_t *tot_c, *tot_g;
  fedc_fedavg_state(sc, &acc_c, &tot_c);
  fedc_fedavg_state(sg, &acc_g, &tot_g);
  assert_int_equal(*tot_c, *tot_g);
  assert_memory_equal(acc_c, acc_g, pr.n * sizeof *acc_c);
  for (size_t i = 0; i < pr.n; i++) { /* another process's partial */
    __int128 v = (__int128)(int64_t)(i * 2654435761u % 1000003) << 20;
    acc_c[i] += v;
    acc_g[i] += v;
  }
  *tot_c += 17;
  *tot_g += 17;
  float *out_c = fedc_malloc_array(pr.n, sizeof(float));
  float *out_g = fedc_malloc_array(pr.n, sizeof(float));
  assert_non_null(out_c);
  assert_non_null(out_g);
  assert_int_equal(sc->ops->finish(sc, out_c, pr.n), 0);
  assert_int_equal(sg->ops->finish(sg, out_g, pr.n), 0);
  assert_same_bits(out_c, out_g, pr.n, "merged partial");
  for (int i = 3; i < 6; i++) { /* the sums go back to the device */
    assert_int_equal(
        fedc_pipeline_add(pr.cpu, pr.x_cpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]), 0);
    assert_int_equal(
        fedc_pipeline_add(pr.gpu, pr.x_gpu, pr.w + (size_t)i * pr.n, pr.n, pr.samples[i]), 0);
  }
  assert_int_equal(sc->ops->finish(sc, out_c, pr.n), 0);
  assert_int_equal(sg->ops->finish(sg, out_g, pr.n), 0);
  assert_same_bits(out_c, out_g, pr.n, "merged partial, then more updates");
  fedc_free(out_c);
  fedc_free(out_g);
  pair_free(&pr);
}

/* DP clips and noises on the CPU around the GPU's fold; FedBuff's deltas
 * are conditioned on the CPU and folded on the GPU: bit for bit. */
static void test_dp_and_async(void **state) {
  (void)state;
  REQUIRE_GPU();
  fedc_pipeline_params p;
  base_params(&p, "fedavg", FEDC_AGG_DEVICE_CUDA, 6);
  p.dp_on = 1;
  p.dp = (fedc_dp_params){
      .noise_multiplier = 1.0, .clip_norm = 1.0, .delta = 1e-5, .seed = 7, .clients_per_round = 6};
  p.population = 60;
  p.per_round = 6;
  p.norm_bound = 2.0; /* with DP the bound is applied on the CPU */
  pair pr;
  pair_new(&pr, &p, 1501, 6, 71, 0.1);
  pair_rounds(&pr, 1, "fedavg under DP");
  pair_free(&pr);

  base_params(&p, "fedbuff", FEDC_AGG_DEVICE_CUDA, 6);
  p.opt.lr = 0.5;
  p.norm_bound = 1.0;
  pair_new(&pr, &p, 1501, 6, 72, 0.1);
  fedc_pipeline_round r_c, r_g;
  for (int32_t round = 1; round <= 2; round++) {
    assert_int_equal(fedc_pipeline_begin(pr.cpu, pr.x_cpu), 0);
    assert_int_equal(fedc_pipeline_begin(pr.gpu, pr.x_gpu), 0);
    for (int i = 0; i < 6; i++) {
      float *d = pr.w + (size_t)i * pr.n;
      double wt = 1.0 / (1.0 + i);
      assert_int_equal(fedc_pipeline_add_async(pr.cpu, pr.x_cpu, d, pr.n, wt), 0);
      assert_int_equal(fedc_pipeline_add_async(pr.gpu, pr.x_gpu, d, pr.n, wt), 0);
    }
    assert_int_equal(fedc_pipeline_finish(pr.cpu, round, pr.x_cpu, pr.n, 6, &r_c), 0);
    assert_int_equal(fedc_pipeline_finish(pr.gpu, round, pr.x_gpu, pr.n, 6, &r_g), 0);
    assert_int_equal(r_c.clipped, r_g.clipped);
    assert_same_bits(pr.x_cpu, pr.x_gpu, pr.n, "fedbuff");
  }
  pair_free(&pr);
}

#define AGG_DEVICE_CASES                                                                           \
  cmocka_unit_test(test_fedavg_exact), cmocka_unit_test(test_robust),                              \
      cmocka_unit_test(test_norm_clip), cmocka_unit_test(test_norm_refuse),                        \
      cmocka_unit_test(test_share_cap), cmocka_unit_test(test_partial_sums),                       \
      cmocka_unit_test(test_dp_and_async)

#endif
