/*
 * test_privacy.c - the RDP accountant (rdp.c) and DP-FedAvg's server side
 * (dp.c).
 *
 * The accountant: the known value (two phases, q = 1e-5 / sigma = 1 for 10
 * steps and q = 1e-4 / sigma = 3 for 4, orders 2..32, delta = 1e-5 give
 * epsilon 0.336 at order 23); closed forms (order 2's A = 1 + q^2 (e^(1/s^2)
 * - 1), q = 1 the Gaussian mechanism's alpha / (2 sigma^2)); values from a
 * 40-digit numerical integration of the defining integral at fractional
 * orders; the fractional series meeting the integer sum at integer orders;
 * monotone in the order, the steps, q and sigma the way privacy says.
 * DP-FedAvg: the clip, the noise's standard deviation over a million
 * coordinates and its determinism, adaptive clipping's step (direction and
 * size) and noise split, the budget stopping at the right round, restore,
 * bad parameters, allocation failure, no leaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "privacy/dp.h"
#include "base/error.h"
#include "privacy/rdp.h"
#include "base/rng.h"

/* the streams dp.h documents: (seed, "dp", round, 0 update / 1 count) */
#define DP_STREAM 0x6470u

static double rel_err(double got, double want) {
  return fabs(got - want) / fabs(want);
}

/* ---- the accountant ---------------------------------------------------- */

static void test_known_value_0336_at_order_23(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  double orders[31];
  for (int i = 0; i < 31; i++) orders[i] = 2.0 + i;
  fedc_accountant *a;
  assert_int_equal(fedc_accountant_new(orders, 31, &a), 0);
  assert_int_equal(fedc_accountant_step(a, 1e-5, 1.0, 10), 0);
  assert_int_equal(fedc_accountant_step(a, 1e-4, 3.0, 4), 0);
  assert_int_equal(fedc_accountant_steps(a), 14);
  double eps = -1, order = -1;
  assert_int_equal(fedc_accountant_epsilon(a, 1e-5, &eps, &order), 0);
  print_message("known value: epsilon = %.10f at order %g\n", eps, order);
  assert_true(fabs(eps - 0.336) < 5e-4);
  assert_true(order == 23.0);
  fedc_accountant_free(a);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Order 2 has a closed form: A_2 = 1 + q^2 (e^(1/sigma^2) - 1). The order
 * just off 2 goes through the fractional series and must agree. */
static void test_order_2_closed_form(void **state) {
  (void)state;
  const double qs[] = {1e-4, 0.01, 0.1, 0.5, 0.9};
  const double ss[] = {0.5, 1.0, 2.0, 5.0};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
    for (size_t j = 0; j < sizeof ss / sizeof ss[0]; j++) {
      double q = qs[i], s = ss[j];
      double want = log1p(q * q * expm1(1.0 / (s * s)));
      double o[2] = {2.0, 2.0 + 1e-9}, r[2];
      assert_int_equal(fedc_rdp_sampled_gaussian(q, s, o, 2, r), 0);
      assert_true(rel_err(r[0], want) < 1e-12);
      assert_true(rel_err(r[1], want) < 1e-6);
    }
}

/*
 * Against numerical integration of A_alpha = E_{z~N(0,s^2)} [((1 - q) + q
 * exp((2z - 1) / (2 s^2)))^alpha] with mpmath at 40 digits (quad over
 * pieces split at 0 and z0): an independent check of both expansions.
 */
static void test_against_numerical_integration(void **state) {
  (void)state;
  static const struct {
    double q, sigma, alpha, rdp;
  } ref[] = {
      {0.01, 1.0, 1.25, 0.000105398005098176},
      {0.01, 1.0, 2.5, 0.00021757533228188},
      {0.1, 0.8, 1.5, 0.0233050462498588},
      {0.1, 0.8, 4.5, 0.646707614641844},
      {0.5, 1.0, 1.75, 0.292690897929542},
      {0.3, 2.0, 2.25, 0.0288216805654533},
      {0.9, 1.0, 3.5, 1.61546096549443},
      {0.05, 0.5, 2.5, 0.486810305440076},
      {0.2, 0.3, 1.25, 1.72541724421142},
      {0.01, 1.0, 3.0, 0.000264637574584661},
      {0.1, 0.8, 10.0, 5.25407993128974},
      {0.5, 5.0, 64.0, 0.66339328189197},
  };
  for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
    double r;
    assert_int_equal(
        fedc_rdp_sampled_gaussian(ref[i].q, ref[i].sigma, &ref[i].alpha, 1, &r),
        0);
    if (rel_err(r, ref[i].rdp) > 1e-9)
      fail_msg("q %g sigma %g order %g: %.15g, want %.15g", ref[i].q,
               ref[i].sigma, ref[i].alpha, r, ref[i].rdp);
  }
}

/* q = 1 is the Gaussian mechanism; q just under 1 goes through both series
 * and lands next to it. */
static void test_q1_is_the_gaussian_mechanism(void **state) {
  (void)state;
  const double o[] = {1.5, 2.0, 2.5, 3.0, 7.0, 32.0};
  const size_t n = sizeof o / sizeof o[0];
  const double ss[] = {0.7, 1.0, 3.0};
  for (size_t j = 0; j < 3; j++) {
    double s = ss[j], r[6], r2[6];
    assert_int_equal(fedc_rdp_sampled_gaussian(1.0, s, o, n, r), 0);
    assert_int_equal(fedc_rdp_sampled_gaussian(1.0 - 1e-9, s, o, n, r2), 0);
    for (size_t i = 0; i < n; i++) {
      double want = o[i] / (2.0 * s * s);
      assert_true(rel_err(r[i], want) < 1e-15);
      assert_true(rel_err(r2[i], want) < 1e-6);
      assert_true(r2[i] <= want);
    }
  }
}

/* RDP is non-decreasing in the order (Rényi divergence is): fractional
 * orders fall between their integer neighbours; and the fractional series
 * meets the integer sum at an integer order from both sides. */
static void test_fractional_orders_between_integers(void **state) {
  (void)state;
  const double qs[] = {0.001, 0.01, 0.1, 0.5};
  const double ss[] = {0.6, 1.0, 2.0, 4.0};
  const double o[] = {1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0};
  const size_t n = sizeof o / sizeof o[0];
  for (size_t i = 0; i < 4; i++)
    for (size_t j = 0; j < 4; j++) {
      double r[11];
      assert_int_equal(fedc_rdp_sampled_gaussian(qs[i], ss[j], o, n, r), 0);
      for (size_t k = 1; k < n; k++)
        if (!(r[k] >= r[k - 1] * (1 - 1e-9)))
          fail_msg("q %g sigma %g: RDP(%g) = %g < RDP(%g) = %g", qs[i], ss[j],
                   o[k], r[k], o[k - 1], r[k - 1]);
      double around[3] = {3.0 - 1e-7, 3.0, 3.0 + 1e-7}, ra[3];
      assert_int_equal(fedc_rdp_sampled_gaussian(qs[i], ss[j], around, 3, ra),
                       0);
      assert_true(rel_err(ra[0], ra[1]) < 1e-5);
      assert_true(rel_err(ra[2], ra[1]) < 1e-5);
    }
}

static void test_edge_cases_and_bad_arguments(void **state) {
  (void)state;
  const double o[] = {1.5, 2.0, 64.0};
  double r[3];
  assert_int_equal(fedc_rdp_sampled_gaussian(0.0, 0.0, o, 3, r), 0);
  for (int i = 0; i < 3; i++) assert_true(r[i] == 0.0);
  assert_int_equal(fedc_rdp_sampled_gaussian(0.1, 0.0, o, 3, r), 0);
  for (int i = 0; i < 3; i++) assert_true(isinf(r[i]) && r[i] > 0);
  /* an extreme but legal corner still converges */
  assert_int_equal(fedc_rdp_sampled_gaussian(0.5, 1000.0, o, 3, r), 0);
  assert_true(r[0] > 0 && r[0] < 1e-6);
  /* past sigma 1e4 an upper bound: above the exact value, below the
   * unsampled Gaussian's alpha / (2 sigma^2) */
  double below[3], above[3];
  assert_int_equal(fedc_rdp_sampled_gaussian(0.5, 9999.0, o, 3, below), 0);
  assert_int_equal(fedc_rdp_sampled_gaussian(0.5, 10001.0, o, 3, above), 0);
  for (int i = 0; i < 3; i++) {
    assert_true(above[i] > below[i] * (9999.0 * 9999.0) / (10001.0 * 10001.0));
    assert_true(above[i] <= o[i] / (2.0 * 10001.0 * 10001.0));
  }

  assert_int_equal(fedc_rdp_sampled_gaussian(-0.1, 1.0, o, 3, r), FEDC_EINVAL);
  assert_int_equal(fedc_rdp_sampled_gaussian(1.1, 1.0, o, 3, r), FEDC_EINVAL);
  assert_int_equal(fedc_rdp_sampled_gaussian(NAN, 1.0, o, 3, r), FEDC_EINVAL);
  assert_int_equal(fedc_rdp_sampled_gaussian(0.1, -1.0, o, 3, r), FEDC_EINVAL);
  assert_int_equal(fedc_rdp_sampled_gaussian(0.1, INFINITY, o, 3, r),
                   FEDC_EINVAL);
  const double bad[] = {1.0};
  assert_int_equal(fedc_rdp_sampled_gaussian(0.1, 1.0, bad, 1, r), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "order 1"));
  assert_int_equal(fedc_rdp_sampled_gaussian(0.1, 1.0, o, 0, r), FEDC_EINVAL);

  /* the conversion */
  double eps, order, one = 23.0, rdp = 0.01;
  assert_int_equal(fedc_rdp_to_epsilon(&one, &rdp, 1, 1e-5, &eps, &order), 0);
  double want = 0.01 + log(22.0 / 23.0) - (log(1e-5) + log(23.0)) / 22.0;
  assert_true(rel_err(eps, want) < 1e-14);
  double zeros[3] = {0, 0, 0}, infs[3] = {INFINITY, INFINITY, INFINITY};
  assert_int_equal(fedc_rdp_to_epsilon(o, zeros, 3, 1e-5, &eps, &order), 0);
  assert_true(eps == 0.0);
  assert_int_equal(fedc_rdp_to_epsilon(o, infs, 3, 1e-5, &eps, &order), 0);
  assert_true(isinf(eps));
  assert_int_equal(fedc_rdp_to_epsilon(o, zeros, 3, 0.0, &eps, NULL),
                   FEDC_EINVAL);
  assert_int_equal(fedc_rdp_to_epsilon(o, zeros, 3, 1.0, &eps, NULL),
                   FEDC_EINVAL);
  double neg[3] = {-1, 0, 0};
  assert_int_equal(fedc_rdp_to_epsilon(o, neg, 3, 1e-5, &eps, NULL),
                   FEDC_EINVAL);
}

static double eps_after(double q, double sigma, int64_t steps) {
  fedc_accountant *a;
  double eps;
  assert_int_equal(fedc_accountant_new(NULL, 0, &a), 0);
  assert_int_equal(fedc_accountant_step(a, q, sigma, steps), 0);
  assert_int_equal(fedc_accountant_epsilon(a, 1e-5, &eps, NULL), 0);
  fedc_accountant_free(a);
  return eps;
}

static void test_epsilon_monotone_in_steps_q_sigma(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  double e10 = eps_after(0.01, 1.0, 10), e100 = eps_after(0.01, 1.0, 100),
         e1000 = eps_after(0.01, 1.0, 1000);
  print_message("q 0.01 sigma 1: eps %.4f / %.4f / %.4f after 10 / 100 / "
                "1000 steps\n",
                e10, e100, e1000);
  assert_true(e10 < e100 && e100 < e1000);
  assert_true(eps_after(0.01, 1.0, 100) < eps_after(0.02, 1.0, 100));
  assert_true(eps_after(0.02, 1.0, 100) < eps_after(0.05, 1.0, 100));
  assert_true(eps_after(0.05, 0.8, 100) > eps_after(0.05, 1.0, 100));
  assert_true(eps_after(0.05, 1.0, 100) > eps_after(0.05, 2.0, 100));
  /* no steps: nothing spent */
  fedc_accountant *a;
  double eps = -1;
  assert_int_equal(fedc_accountant_new(NULL, 0, &a), 0);
  assert_int_equal(fedc_accountant_epsilon(a, 1e-5, &eps, NULL), 0);
  assert_true(eps == 0.0);
  /* peek is step-then-epsilon without the step */
  double peek, after;
  assert_int_equal(fedc_accountant_step(a, 0.05, 1.0, 20), 0);
  assert_int_equal(fedc_accountant_peek(a, 0.1, 1.2, 30, 1e-5, &peek), 0);
  assert_int_equal(fedc_accountant_steps(a), 20);
  assert_int_equal(fedc_accountant_step(a, 0.1, 1.2, 30), 0);
  assert_int_equal(fedc_accountant_epsilon(a, 1e-5, &after, NULL), 0);
  assert_true(peek == after);
  assert_int_equal(fedc_accountant_step(a, 0.1, 1.0, -1), FEDC_EINVAL);
  assert_int_equal(fedc_accountant_steps(a), 50);
  fedc_accountant_free(a);
  assert_int_equal(fedc_alloc_live(), live);
}

/* ---- DP-FedAvg --------------------------------------------------------- */

static fedc_dp_params base_params(void) {
  fedc_dp_params p;
  memset(&p, 0, sizeof p);
  p.noise_multiplier = 1.0;
  p.clip_norm = 2.0;
  p.clip_quantile = 0.5;
  p.clip_lr = 0.2;
  p.delta = 1e-5;
  p.seed = 20240607;
  return p;
}

static void test_clip(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_dp_params p = base_params();
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  const double S = fedc_dp_clip_norm(d);
  assert_true(S == 2.0);

  /* norm 2S: (3, 4) * 0.8 has norm 4 = 2S; scaled to exactly S */
  float v[2] = {2.4f, 3.2f};
  int unclipped = -1;
  double norm = -1;
  assert_int_equal(fedc_dp_clip(d, v, 2, &unclipped, &norm), 0);
  assert_int_equal(unclipped, 0);
  assert_true(rel_err(norm, 4.0) < 1e-6);
  double after = sqrt((double)v[0] * v[0] + (double)v[1] * v[1]);
  assert_true(rel_err(after, S) < 1e-7);
  assert_true(rel_err(v[1] / v[0], 4.0 / 3.0) < 1e-6); /* direction kept */

  /* under S: untouched, bit for bit */
  float w[3] = {0.5f, -1.0f, 0.25f}, w0[3];
  memcpy(w0, w, sizeof w);
  assert_int_equal(fedc_dp_clip(d, w, 3, &unclipped, &norm), 0);
  assert_int_equal(unclipped, 1);
  assert_memory_equal(w, w0, sizeof w);

  /* a large vector of norm 2S scaled to S */
  enum { N = 100000 };
  float *big = fedc_malloc(N * sizeof(float));
  assert_non_null(big);
  for (int i = 0; i < N; i++) big[i] = (float)(2.0 * S / sqrt((double)N));
  assert_int_equal(fedc_dp_clip(d, big, N, &unclipped, &norm), 0);
  assert_int_equal(unclipped, 0);
  double ss = 0;
  for (int i = 0; i < N; i++) ss += (double)big[i] * big[i];
  assert_true(rel_err(sqrt(ss), S) < 1e-6);
  fedc_free(big);

  /* non-finite: refused, untouched */
  float bad[2] = {1.0f, NAN};
  assert_int_equal(fedc_dp_clip(d, bad, 2, &unclipped, &norm),
                   FEDC_ENONFINITE);
  assert_true(bad[0] == 1.0f);
  fedc_dp_free(d);
  assert_int_equal(fedc_alloc_live(), live);
}

/* N(0, (z S / m)^2) on each of a million coordinates: the sample standard
 * deviation within 1% (its own standard error is 0.07%), mean near 0, drawn
 * from the documented stream, the same for the same (seed, round) and not
 * for another round. */
static void test_noise_std_and_determinism(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  enum { N = 1000000 };
  fedc_dp_params p = base_params();
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  const int32_t m = 10;
  const double want = p.noise_multiplier * p.clip_norm / m; /* 0.2 */
  double got_std;
  assert_int_equal(fedc_dp_noise_std(d, m, &got_std), 0);
  assert_true(rel_err(got_std, want) < 1e-15);

  float *a = fedc_calloc(N, sizeof(float));
  float *b = fedc_calloc(N, sizeof(float));
  float *c = fedc_calloc(N, sizeof(float));
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_int_equal(fedc_dp_finish_round(d, 7, a, N, m, m, 0.1), 0);
  double sum = 0, ss = 0;
  for (int i = 0; i < N; i++) {
    sum += a[i];
    ss += (double)a[i] * a[i];
  }
  double mean = sum / N, sd = sqrt(ss / N - mean * mean);
  print_message("noise: sd %.6f (want %.6f), mean %.2e\n", sd, want, mean);
  assert_true(rel_err(sd, want) < 0.01);
  assert_true(fabs(mean) < 5.0 * want / sqrt((double)N));

  fedc_rng r;
  fedc_rng_derive(&r, p.seed, DP_STREAM, 7, 0);
  for (int i = 0; i < 8; i++)
    assert_true(a[i] == (float)(want * fedc_rng_normal(&r)));

  /* same (seed, round) from a fresh state: the same bytes; another round:
   * different */
  fedc_dp *d2;
  assert_int_equal(fedc_dp_new(&p, &d2), 0);
  assert_int_equal(fedc_dp_finish_round(d2, 7, b, N, m, m, 0.1), 0);
  assert_memory_equal(a, b, N * sizeof(float));
  assert_int_equal(fedc_dp_finish_round(d2, 8, c, N, m, m, 0.1), 0);
  assert_true(memcmp(a, c, N * sizeof(float)) != 0);

  fedc_free(a);
  fedc_free(b);
  fedc_free(c);
  fedc_dp_free(d);
  fedc_dp_free(d2);
  assert_int_equal(fedc_alloc_live(), live);
}

/* One adaptive round of m updates of which `unclipped` were under S: the
 * new S over the old. */
static double adaptive_ratio(int32_t m, int32_t unclipped, int32_t round,
                             double *expected) {
  fedc_dp_params p = base_params();
  p.adaptive = 1;
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  float v[4] = {0};
  double s0 = fedc_dp_clip_norm(d);
  assert_int_equal(fedc_dp_finish_round(d, round, v, 4, m, unclipped, 0.1), 0);
  double s1 = fedc_dp_clip_norm(d);
  /* the documented rule, replayed from the documented count stream */
  fedc_rng r;
  fedc_rng_derive(&r, p.seed, DP_STREAM, (uint64_t)round, 1);
  double b = (unclipped + (m / 20.0) * fedc_rng_normal(&r)) / m;
  *expected = s0 * exp(-p.clip_lr * (b - p.clip_quantile));
  fedc_dp_free(d);
  return s1 / s0;
}

static void test_adaptive_clip_step(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  /* every update unclipped: b ~ 1 +- 0.05, S falls by about exp(-0.1);
   * none: S grows by about exp(0.1); at the quantile: about still */
  for (int32_t round = 0; round < 5; round++) {
    double want, ratio = adaptive_ratio(100, 100, round, &want);
    assert_true(ratio < 1.0);
    assert_true(fabs(log(ratio) + 0.1) < 0.05);
    assert_true(rel_err(ratio * 2.0, want) < 1e-12);
    ratio = adaptive_ratio(100, 0, round, &want);
    assert_true(ratio > 1.0);
    assert_true(fabs(log(ratio) - 0.1) < 0.05);
    assert_true(rel_err(ratio * 2.0, want) < 1e-12);
    ratio = adaptive_ratio(100, 50, round, &want);
    assert_true(fabs(log(ratio)) < 0.05);
  }
  /* many rounds of all-unclipped updates: S shrinks geometrically */
  fedc_dp_params p = base_params();
  p.adaptive = 1;
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  float v[4] = {0};
  for (int32_t round = 0; round < 20; round++)
    assert_int_equal(fedc_dp_finish_round(d, round, v, 4, 100, 100, 0.1), 0);
  double s = fedc_dp_clip_norm(d);
  assert_true(s < 2.0 * exp(-0.1 * 20 * 0.8) && s > 2.0 * exp(-0.1 * 20 * 1.2));

  /* the noise split: z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), sigma_b =
   * m / 20 */
  double std;
  assert_int_equal(fedc_dp_noise_std(d, 100, &std), 0);
  double zd = 1.0 / sqrt(1.0 - 1.0 / 100.0);
  assert_true(rel_err(std, zd * s / 100.0) < 1e-14);
  fedc_dp_free(d);
  assert_int_equal(fedc_alloc_live(), live);
}

/* z must be < m / 10 for the split: at fedc_dp_new when clients_per_round
 * says m, else at the round, which then changes nothing. */
static void test_adaptive_split_needs_enough_clients(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_dp_params p = base_params();
  p.adaptive = 1;
  p.clients_per_round = 10; /* z = 1 = m / 10: not enough */
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_null(d);
  print_message("%s\n", fedc_error_msg());
  assert_non_null(strstr(fedc_error_msg(), "noise_multiplier = 1"));
  assert_non_null(strstr(fedc_error_msg(), "10 clients"));
  p.clients_per_round = 11;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  fedc_dp_free(d);

  p.clients_per_round = 0;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  float v[3] = {1, 2, 3}, v0[3];
  memcpy(v0, v, sizeof v);
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 3, 8, 4, 0.1), FEDC_EINVAL);
  assert_memory_equal(v, v0, sizeof v);
  assert_true(fedc_dp_clip_norm(d) == p.clip_norm);
  assert_int_equal(fedc_dp_rounds(d), 0);
  double eps;
  assert_int_equal(fedc_dp_epsilon(d, &eps, NULL), 0);
  assert_true(eps == 0.0);
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 3, 20, 4, 0.1), 0);
  assert_int_equal(fedc_dp_rounds(d), 1);
  fedc_dp_free(d);
  assert_int_equal(fedc_alloc_live(), live);
}

/*
 * A budget between epsilon after 5 and after 6 rounds (q = 0.1, z = 1):
 * would_exceed is 0 before rounds 1..5 and 1 before round 6; the ledger
 * after each round equals a bare accountant's.
 */
static void test_budget_stops_at_the_right_round(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  const double q = 0.1;
  double e5 = eps_after(q, 1.0, 5), e6 = eps_after(q, 1.0, 6);
  fedc_dp_params p = base_params();
  p.epsilon_budget = 0.5 * (e5 + e6);
  print_message("budget %.4f between eps(5) = %.4f and eps(6) = %.4f\n",
                p.epsilon_budget, e5, e6);
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  float v[4] = {0};
  int rounds = 0;
  for (;;) {
    int exceed = -1;
    assert_int_equal(fedc_dp_would_exceed(d, q, &exceed), 0);
    if (exceed) break;
    assert_int_equal(fedc_dp_finish_round(d, rounds, v, 4, 10, 5, q), 0);
    rounds++;
    double eps, order, want = eps_after(q, 1.0, rounds);
    assert_int_equal(fedc_dp_epsilon(d, &eps, &order), 0);
    assert_true(rel_err(eps, want) < 1e-12);
    assert_true(eps <= p.epsilon_budget);
    assert_true(order > 1.0);
    assert_true(rounds < 100);
  }
  assert_int_equal(rounds, 5);

  /* no budget: never */
  fedc_dp_params p0 = base_params();
  fedc_dp *d0;
  assert_int_equal(fedc_dp_new(&p0, &d0), 0);
  int exceed = -1;
  assert_int_equal(fedc_dp_restore(d0, 1.0, 1.0, 100000), 0);
  assert_int_equal(fedc_dp_would_exceed(d0, 1.0, &exceed), 0);
  assert_int_equal(exceed, 0);
  assert_int_equal(fedc_dp_would_exceed(d0, 0.0, &exceed), FEDC_EINVAL);
  fedc_dp_free(d0);
  fedc_dp_free(d);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Restoring the ledger in runs gives the epsilon of the rounds played. */
static void test_restore(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_dp_params p = base_params();
  p.adaptive = 1;
  fedc_dp *played, *restored;
  assert_int_equal(fedc_dp_new(&p, &played), 0);
  assert_int_equal(fedc_dp_new(&p, &restored), 0);
  float v[2] = {0};
  for (int32_t r = 0; r < 7; r++)
    assert_int_equal(
        fedc_dp_finish_round(played, r, v, 2, 40, 30, r < 4 ? 0.05 : 0.02), 0);
  assert_int_equal(fedc_dp_restore(restored, 1.7, 0.05, 4), 0);
  assert_int_equal(fedc_dp_restore(restored, fedc_dp_clip_norm(played), 0.02,
                                   3),
                   0);
  double e1, e2;
  assert_int_equal(fedc_dp_epsilon(played, &e1, NULL), 0);
  assert_int_equal(fedc_dp_epsilon(restored, &e2, NULL), 0);
  assert_true(rel_err(e2, e1) < 1e-12);
  assert_true(fedc_dp_clip_norm(restored) == fedc_dp_clip_norm(played));
  assert_int_equal(fedc_dp_rounds(restored), 7);
  assert_int_equal(fedc_dp_restore(restored, 0.0, 0.05, 1), FEDC_EINVAL);
  assert_int_equal(fedc_dp_restore(restored, 1.0, 0.05, -1), FEDC_EINVAL);
  assert_int_equal(fedc_dp_rounds(restored), 7);
  fedc_dp_free(played);
  fedc_dp_free(restored);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_bad_parameters(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_dp *d;
  fedc_dp_params p = base_params();
  p.noise_multiplier = 0.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "noise_multiplier"));
  p = base_params();
  p.clip_norm = 0.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "clip_norm"));
  p = base_params();
  p.delta = 0.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "delta"));
  p = base_params();
  p.epsilon_budget = -1.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "epsilon_budget"));
  p = base_params();
  p.adaptive = 1;
  p.clip_quantile = 1.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "clip_quantile"));
  p = base_params();
  p.adaptive = 1;
  p.clip_lr = 0.0;
  assert_int_equal(fedc_dp_new(&p, &d), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "clip_lr"));

  p = base_params();
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  float v[2] = {0};
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 2, 0, 0, 0.1), FEDC_EINVAL);
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 2, 5, 6, 0.1), FEDC_EINVAL);
  assert_int_equal(fedc_dp_finish_round(d, -1, v, 2, 5, 5, 0.1), FEDC_EINVAL);
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 2, 5, 5, 0.0), FEDC_EINVAL);
  assert_int_equal(fedc_dp_finish_round(d, 0, v, 2, 5, 5, 1.5), FEDC_EINVAL);
  assert_int_equal(fedc_dp_finish_round(d, 0, NULL, 2, 5, 5, 0.1),
                   FEDC_EINVAL);
  assert_int_equal(fedc_dp_rounds(d), 0);
  fedc_dp_free(d);
  fedc_dp_free(NULL);
  fedc_accountant_free(NULL);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_out_of_memory_is_clean(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_dp_params p = base_params();
  p.epsilon_budget = 10.0;
  fedc_dp *d;
  for (int64_t k = 1; k <= 2; k++) {
    fedc_alloc_fail_after(k, 0);
    assert_int_equal(fedc_dp_new(&p, &d), FEDC_ENOMEM);
    assert_int_equal(fedc_alloc_live(), live);
  }
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  int exceed = -1;
  fedc_alloc_fail_after(1, 0);
  assert_int_equal(fedc_dp_would_exceed(d, 0.1, &exceed), FEDC_ENOMEM);
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_dp_would_exceed(d, 0.1, &exceed), 0);
  assert_int_equal(exceed, 0);
  fedc_dp_free(d);

  fedc_accountant *a;
  fedc_alloc_fail_after(1, 0);
  assert_int_equal(fedc_accountant_new(NULL, 0, &a), FEDC_ENOMEM);
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_alloc_live(), live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_value_0336_at_order_23),
      cmocka_unit_test(test_order_2_closed_form),
      cmocka_unit_test(test_against_numerical_integration),
      cmocka_unit_test(test_q1_is_the_gaussian_mechanism),
      cmocka_unit_test(test_fractional_orders_between_integers),
      cmocka_unit_test(test_edge_cases_and_bad_arguments),
      cmocka_unit_test(test_epsilon_monotone_in_steps_q_sigma),
      cmocka_unit_test(test_clip),
      cmocka_unit_test(test_noise_std_and_determinism),
      cmocka_unit_test(test_adaptive_clip_step),
      cmocka_unit_test(test_adaptive_split_needs_enough_clients),
      cmocka_unit_test(test_budget_stops_at_the_right_round),
      cmocka_unit_test(test_restore),
      cmocka_unit_test(test_bad_parameters),
      cmocka_unit_test(test_out_of_memory_is_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
