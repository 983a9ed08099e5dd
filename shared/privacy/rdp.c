/*
 * rdp.c - the privacy accountant: Rényi DP of the Poisson-subsampled
 * Gaussian mechanism, composed over steps and converted to (epsilon, delta).
 *
 * One step releases f(S) + N(0, sigma^2) where S is a Poisson sample of the
 * data set at rate q and f has L2 sensitivity 1 (the clip norm, after
 * scaling). Mironov, Talwar and Zhang 2019 ("Rényi Differential Privacy of
 * the Sampled Gaussian Mechanism", section 3) show that its RDP at order
 * alpha > 1 is log(A_alpha) / (alpha - 1) with
 *
 *   A_alpha = E_{z ~ mu0} [ (mu(z) / mu0(z))^alpha ],
 *   mu0 = N(0, sigma^2), mu1 = N(1, sigma^2), mu = (1 - q) mu0 + q mu1,
 *
 * which is the worst case over neighbouring data sets and over the two
 * directions. For integer alpha the binomial theorem gives a finite sum;
 * for fractional alpha the integral is split at the point z0 where
 * q mu1 = (1 - q) mu0 and each half is expanded as a convergent binomial
 * series (section 3.3). Everything is computed in log space, so that
 * orders up to 256 and small sigma neither overflow nor underflow. Steps
 * compose by adding RDP at each order (Mironov 2017, proposition 1); the
 * (epsilon, delta) reported takes the best order of the conversion of
 * Canonne, Kamath and Steinke 2020 ("The Discrete Gaussian for Differential
 * Privacy", proposition 12) / Balle et al. 2020
 * ("Hypothesis testing interpretations and Rényi DP", theorem 21).
 */
#include "privacy/rdp.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

/* Orders above this are refused: the integer sum is O(alpha) terms and no
 * accounting needs them (the best order is rarely above a few hundred). */
#define MAX_ORDER 100000.0

/* A fractional order's series stops once what it leaves out is provably
 * below e^-37 (about 8.5e-17): below double precision, since A_alpha >= 1. */
#define LOG_TOL (-37.0)
/* Terms a fractional order may take before giving up (FEDC_ERANGE). The
 * slowest case seen, alpha = 1.25 with q = 0.5 and sigma = 1000, takes
 * about 4e5. */
#define MAX_TERMS 100000000

/* Above this noise multiplier the series are replaced by an upper bound
 * (see fedc_rdp_sampled_gaussian): even without subsampling the RDP is then
 * below 1.3e-6 per step at order 256, and the fractional series, whose
 * terms fall slowly until k exceeds sigma, would take up to seconds. */
#define SIGMA_BOUND 1e4

#define LN2 0.69314718055994530942
#define LOG_SQRT_PI 0.57236494292470008707

struct fedc_accountant {
  size_t n;
  int64_t steps;
  /* the per-step RDP of the last fedc_accountant_step's (q, sigma), so that
   * a run of rounds at one rate costs one evaluation */
  int cache_ok;
  double cache_q, cache_sigma;
  double *orders, *rdp, *cache; /* each n, inside buf */
  double buf[];
};

/* log(e^a + e^b), exact when either is -infinity. */
static double log_add(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  double hi = a > b ? a : b, lo = a > b ? b : a;
  return hi + log1p(exp(lo - hi));
}

/*
 * log(erfcx(x)) = log(e^(x^2) erfc(x)) for x >= 0, where erfcx falls from 1
 * to about 1 / (x sqrt(pi)). Below 20 the C library's erfc is accurate
 * (erfc(20) is 5e-176, far from underflow); above, the asymptotic series
 * erfcx(x) = 1 / (x sqrt(pi)) sum_n (-1)^n (2n - 1)!! / (2 x^2)^n (Abramowitz
 * and Stegun 7.1.23), whose tenth term is below 1e-19 at x = 20.
 */
static double log_erfcx(double x) {
  if (x < 20.0) return log(erfc(x)) + x * x;
  double r = 1.0 / (2.0 * x * x), term = 1.0, sum = 1.0;
  for (int k = 1; k <= 10; k++) {
    term *= -(2.0 * k - 1.0) * r;
    sum += term;
  }
  return -log(x) - LOG_SQRT_PI + log(sum);
}

/* log(e^x - 1) for x > 0, accurate for small and large x. */
static double log_expm1(double x) {
  return x > 1.0 ? x + log1p(-exp(-x)) : log(expm1(x));
}

/*
 * log A_alpha for integer alpha >= 2 and 0 < q < 1 (Mironov, Talwar and
 * Zhang 2019, section 3, the binomial expansion):
 *
 *   A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1 - q)^(alpha - k) q^k
 *             exp((k^2 - k) / (2 sigma^2)).
 *
 * Since the same sum without the exponentials is 1 (binomial theorem),
 *
 *   A_alpha - 1 = sum_{k=2}^{alpha} C(alpha, k) (1 - q)^(alpha - k) q^k
 *                 expm1((k^2 - k) / (2 sigma^2)),
 *
 * a sum of positive terms with no cancellation: small q, where A exceeds 1
 * by O(q^2), keeps full relative precision. It is summed in log space in two
 * passes (the largest term first, then the others relative to it), with
 * log C(alpha, k) built up by the ratio (alpha - k) / (k + 1).
 */
static double log_a_int(double q, double inv2s2, int64_t alpha) {
  const double lq = log(q), l1q = log1p(-q);
  double logc = log((double)alpha) + log((double)(alpha - 1)) - LN2;
  double best = -INFINITY;
  int64_t kbest = 2;
  for (int64_t k = 2; k <= alpha; k++) {
    double kk = (double)k;
    double t = logc + kk * lq + (double)(alpha - k) * l1q +
               log_expm1((kk * kk - kk) * inv2s2);
    if (t > best) {
      best = t;
      kbest = k;
    }
    if (k < alpha) logc += log((double)(alpha - k) / (kk + 1.0));
  }
  double rest = 0.0;
  logc = log((double)alpha) + log((double)(alpha - 1)) - LN2;
  for (int64_t k = 2; k <= alpha; k++) {
    double kk = (double)k;
    double t = logc + kk * lq + (double)(alpha - k) * l1q +
               log_expm1((kk * kk - kk) * inv2s2);
    if (k != kbest) rest += exp(t - best);
    if (k < alpha) logc += log((double)(alpha - k) / (kk + 1.0));
  }
  const double l = best + log1p(rest); /* log(A - 1) */
  return l < 30.0 ? log1p(exp(l)) : l + log1p(exp(-l));
}

/*
 * log A_alpha for fractional alpha > 1 and 0 < q < 1 (Mironov, Talwar and
 * Zhang 2019, section 3.3). With z0 = sigma^2 log(1/q - 1) + 1/2, the point
 * below which the ratio q mu1 / ((1 - q) mu0) is under 1, A = A1 + A2 where
 *
 *   A1 = sum_{k>=0} C(alpha, k) (1 - q)^(alpha - k) q^k
 *        exp((k^2 - k) / (2 sigma^2)) erfc((k - z0) / (sqrt(2) sigma)) / 2
 *   A2 = sum_{k>=0} C(alpha, k) (1 - q)^k q^(alpha - k)
 *        exp(((alpha - k)^2 - (alpha - k)) / (2 sigma^2))
 *        erfc((z0 - (alpha - k)) / (sqrt(2) sigma)) / 2
 *
 * C(alpha, k) being the generalised binomial coefficient, whose sign
 * alternates once k > alpha. Both k-th terms carry C(alpha, k)'s sign; their
 * magnitudes are summed in log space into a positive and a negative part.
 *
 * Where an erfc argument x is >= 0 the term's exponent is rewritten exactly
 * (expand (k - z0)^2 and use 2 z0 / (2 sigma^2) = log((1 - q) / q) +
 * 1 / (2 sigma^2)): both terms are then
 *
 *   |C(alpha, k)| exp(alpha log(1 - q) - z0^2 / (2 sigma^2)) erfcx(x) / 2,
 *
 * which avoids cancelling the large k^2 / (2 sigma^2) against erfc's
 * exp(-x^2), and shows that past both split points (k >= z0 and
 * k >= alpha - z0) the terms decrease in magnitude and alternate in sign:
 * the remainder is then below the last term (the alternating series test).
 * Before that, when z0 is large (small q, large sigma), the series can stop
 * early once rest_bound() proves that all the terms left are negligible.
 */

/* Ingredients of the tail bound, fixed for one (q, sigma, alpha). */
typedef struct {
  double alpha, lq, l1q, inv2s2, z0, base; /* base = alpha log(1-q) - z0^2/(2s^2) */
} frac_ctx;

/*
 * An upper bound on log of sum_{j>=k} (|A1 term j| + |A2 term j|), for
 * k > alpha, logc = log |C(alpha, k)|. For j >= k > alpha |C(alpha, j)|
 * falls and sum_{j>=k} |C(alpha, j)| <= |C(alpha, k)| (1 + (k + 1) / alpha)
 * (the ratio is 1 - (alpha + 1) / (j + 1) <= exp(-(alpha + 1) / (j + 1))).
 * Each term without its coefficient is at most e^base / 2 where its erfc
 * argument is >= 0 (erfcx <= 1 there); elsewhere erfc / 2 <= 1 and the rest
 * of the exponent is alpha log(1 - q) plus a convex function of j, whose
 * maximum over the segment is at one of its ends.
 */
static double rest_bound(const frac_ctx *c, double k, double logc) {
  double s = c->base; /* both series' tails past their split points */
  if (k < c->z0) {
    /* A1, k <= j < z0: j log(q / (1-q)) + (j^2 - j) / (2 sigma^2) */
    double h_k = k * (c->lq - c->l1q) + (k * k - k) * c->inv2s2;
    double h_z = c->z0 * (c->lq - c->l1q) + (c->z0 * c->z0 - c->z0) * c->inv2s2;
    s = log_add(s, c->alpha * c->l1q + (h_k > h_z ? h_k : h_z));
  }
  double i = k - c->alpha, iz = -c->z0;
  if (i < iz) {
    /* A2, i = j - alpha in [k - alpha, -z0): i log((1-q)/q) + (i^2 + i) / (2 sigma^2) */
    double g_k = i * (c->l1q - c->lq) + (i * i + i) * c->inv2s2;
    double g_z = iz * (c->l1q - c->lq) + (iz * iz + iz) * c->inv2s2;
    s = log_add(s, c->alpha * c->l1q + (g_k > g_z ? g_k : g_z));
  }
  return logc + log1p((k + 1.0) / c->alpha) + s;
}

static int log_a_frac(double q, double sigma, double alpha, double *out) {
  frac_ctx c;
  c.alpha = alpha;
  c.lq = log(q);
  c.l1q = log1p(-q);
  c.inv2s2 = 1.0 / (2.0 * sigma * sigma);
  c.z0 = sigma * sigma * (c.l1q - c.lq) + 0.5;
  c.base = alpha * c.l1q - c.z0 * c.z0 * c.inv2s2;
  const double rs = 1.0 / (sqrt(2.0) * sigma);
  double pos = -INFINITY, neg = -INFINITY, logc = 0.0;
  int sign = 1;
  for (int64_t k = 0; k < MAX_TERMS; k++) {
    const double kk = (double)k, j = alpha - kk;
    double x1 = (kk - c.z0) * rs, x2 = (c.z0 - j) * rs, t1, t2;
    if (x1 >= 0.0)
      t1 = c.base + log_erfcx(x1);
    else
      t1 = kk * c.lq + j * c.l1q + (kk * kk - kk) * c.inv2s2 + log(erfc(x1));
    if (x2 >= 0.0)
      t2 = c.base + log_erfcx(x2);
    else
      t2 = j * c.lq + kk * c.l1q + (j * j - j) * c.inv2s2 + log(erfc(x2));
    double t = logc - LN2 + log_add(t1, t2);
    if (sign > 0)
      pos = log_add(pos, t);
    else
      neg = log_add(neg, t);
    if (kk > alpha) {
      /* alternating and decreasing: what is left is below this term */
      if (x1 >= 0.0 && x2 >= 0.0 && t < LOG_TOL) break;
      if (rest_bound(&c, kk + 1.0,
                     logc + log((kk - alpha) / (kk + 1.0))) < LOG_TOL)
        break;
    }
    /* C(alpha, k + 1) = C(alpha, k) (alpha - k) / (k + 1) */
    double f = (alpha - kk) / (kk + 1.0);
    if (f < 0.0) {
      sign = -sign;
      f = -f;
    }
    logc += log(f);
    if (k == MAX_TERMS - 1)
      return fedc_error_set(FEDC_ERANGE,
                            "rdp: the series for order %g (q = %g, sigma = "
                            "%g) did not converge in %d terms",
                            alpha, q, sigma, MAX_TERMS);
  }
  if (!(neg < pos))
    return fedc_error_set(FEDC_ERANGE,
                          "rdp: order %g (q = %g, sigma = %g) lost its "
                          "precision (A = %g - %g)",
                          alpha, q, sigma, exp(pos), exp(neg));
  *out = pos + log1p(-exp(neg - pos));
  return 0;
}

static int check_orders(const double *orders, size_t n) {
  if (orders == NULL || n == 0)
    return fedc_error_set(FEDC_EINVAL, "rdp: no orders");
  for (size_t i = 0; i < n; i++)
    if (!(orders[i] > 1.0 && orders[i] <= MAX_ORDER))
      return fedc_error_set(FEDC_EINVAL,
                            "rdp: order %g (index %zu) is not in (1, %g]",
                            orders[i], i, MAX_ORDER);
  return 0;
}

static int check_q_sigma(double q, double sigma) {
  if (!(q >= 0.0 && q <= 1.0))
    return fedc_error_set(FEDC_EINVAL,
                          "rdp: sampling rate q = %g is not in [0, 1]", q);
  if (!(sigma >= 0.0 && isfinite(sigma)))
    return fedc_error_set(FEDC_EINVAL,
                          "rdp: noise multiplier sigma = %g is not finite and "
                          ">= 0",
                          sigma);
  return 0;
}

/*
 * The cases the series do not need: q = 0 releases nothing about anyone; a
 * zero (or underflowing) variance with q > 0 is not private at any order;
 * q = 1 is the Gaussian mechanism, RDP alpha / (2 sigma^2) (Mironov 2017).
 * For sigma > SIGMA_BOUND, the joint convexity of exp((alpha - 1) D_alpha)
 * (van Erven and Harremoës 2014) gives A_alpha <= 1 - q + q A_alpha(mu1 ||
 * mu0), i.e. RDP <= log(1 + q expm1(alpha (alpha - 1) / (2 sigma^2))) /
 * (alpha - 1): an upper bound, so the accounting stays valid, and of no
 * consequence at that noise. Otherwise integer orders take the finite sum
 * and the others the two series. A value a rounding error below 0 is taken as 0. On an error rdp
 * may be partly written.
 */
int fedc_rdp_sampled_gaussian(double q, double sigma, const double *orders,
                              size_t n, double *rdp) {
  int rc = check_q_sigma(q, sigma);
  if (rc < 0) return rc;
  if ((rc = check_orders(orders, n)) < 0) return rc;
  if (rdp == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no output");
  const double inv2s2 = 1.0 / (2.0 * sigma * sigma);
  for (size_t i = 0; i < n; i++) {
    const double a = orders[i];
    double v;
    if (q == 0.0) {
      v = 0.0;
    } else if (!isfinite(inv2s2)) {
      v = INFINITY;
    } else if (q == 1.0) {
      v = a * inv2s2;
    } else if (sigma > SIGMA_BOUND) {
      v = log1p(q * expm1(a * (a - 1.0) * inv2s2)) / (a - 1.0);
    } else if (a == floor(a)) {
      v = log_a_int(q, inv2s2, (int64_t)a) / (a - 1.0);
    } else {
      double la = 0.0;
      if ((rc = log_a_frac(q, sigma, a, &la)) < 0) return rc;
      v = la / (a - 1.0);
    }
    if (isnan(v))
      return fedc_error_set(FEDC_ERANGE,
                            "rdp: order %g (q = %g, sigma = %g) gave NaN", a,
                            q, sigma);
    rdp[i] = v > 0.0 ? v : 0.0;
  }
  return 0;
}

/*
 * epsilon(alpha) = rdp + log((alpha - 1) / alpha) - (log delta + log alpha)
 * / (alpha - 1): Canonne, Kamath and Steinke 2020, proposition 12; the same
 * bound as Balle et al. 2020, theorem 21. It is below Mironov's 2017
 * rdp + log(1 / delta) / (alpha - 1) at every order, by
 * log(alpha) / (alpha - 1) - log((alpha - 1) / alpha).
 */
int fedc_rdp_to_epsilon(const double *orders, const double *rdp, size_t n,
                        double delta, double *eps, double *best_order) {
  int rc = check_orders(orders, n);
  if (rc < 0) return rc;
  if (rdp == NULL || eps == NULL)
    return fedc_error_set(FEDC_EINVAL, "rdp: no RDP values or no output");
  if (!(delta > 0.0 && delta < 1.0))
    return fedc_error_set(FEDC_EINVAL, "rdp: delta = %g is not in (0, 1)",
                          delta);
  for (size_t i = 0; i < n; i++)
    if (!(rdp[i] >= 0.0))
      return fedc_error_set(FEDC_EINVAL,
                            "rdp: RDP %g at order %g is not >= 0", rdp[i],
                            orders[i]);
  const double log_delta = log(delta);
  double best = INFINITY, order = orders[0];
  for (size_t i = 0; i < n; i++) {
    const double a = orders[i];
    if (rdp[i] == 0.0) {
      best = 0.0;
      order = a;
      break;
    }
    if (isinf(rdp[i])) continue;
    double e = rdp[i] + log1p(-1.0 / a) - (log_delta + log(a)) / (a - 1.0);
    if (e < best) {
      best = e;
      order = a;
    }
  }
  *eps = best > 0.0 ? best : 0.0;
  if (best_order) *best_order = order;
  return 0;
}

static void default_orders(double *o) {
  static const double head[] = {1.25, 1.5, 1.75, 2.0, 2.25,
                                2.5,  3.0, 3.5,  4.0, 4.5};
  size_t i = 0;
  for (; i < sizeof head / sizeof head[0]; i++) o[i] = head[i];
  for (int k = 5; k <= 64; k++) o[i++] = (double)k;
  o[i++] = 128.0;
  o[i++] = 256.0;
}

int fedc_accountant_new(const double *orders, size_t n, fedc_accountant **out) {
  if (out == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no output");
  *out = NULL;
  if (orders == NULL) {
    n = FEDC_RDP_DEFAULT_ORDERS;
  } else {
    int rc = check_orders(orders, n);
    if (rc < 0) return rc;
  }
  if (n > (SIZE_MAX - sizeof(fedc_accountant)) / (3 * sizeof(double)))
    return fedc_error_set(FEDC_EINVAL, "rdp: %zu orders are too many", n);
  fedc_accountant *a =
      fedc_calloc(1, sizeof(fedc_accountant) + 3 * n * sizeof(double));
  if (a == NULL)
    return fedc_error_set(FEDC_ENOMEM,
                          "rdp: out of memory for an accountant of %zu orders",
                          n);
  a->n = n;
  a->orders = a->buf;
  a->rdp = a->buf + n;
  a->cache = a->buf + 2 * n;
  if (orders == NULL)
    default_orders(a->orders);
  else
    memcpy(a->orders, orders, n * sizeof(double));
  *out = a;
  return 0;
}

void fedc_accountant_free(fedc_accountant *a) { fedc_free(a); }

int fedc_accountant_copy(fedc_accountant *dst, const fedc_accountant *src) {
  if (dst == NULL || src == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no accountant");
  if (dst == src) return 0;
  if (dst->n != src->n || memcmp(dst->orders, src->orders, src->n * sizeof(double)) != 0)
    return fedc_error_set(FEDC_EINVAL, "rdp: copy between accountants of other orders");
  dst->steps = src->steps;
  dst->cache_ok = src->cache_ok;
  dst->cache_q = src->cache_q;
  dst->cache_sigma = src->cache_sigma;
  memcpy(dst->rdp, src->rdp, src->n * sizeof(double));
  memcpy(dst->cache, src->cache, src->n * sizeof(double));
  return 0;
}

int64_t fedc_accountant_steps(const fedc_accountant *a) {
  return a ? a->steps : 0;
}

/* The per-step RDP at (q, sigma) into the cache; on failure the cache is
 * marked stale and the totals are untouched. */
static int fill_cache(fedc_accountant *a, double q, double sigma) {
  if (a->cache_ok && a->cache_q == q && a->cache_sigma == sigma) return 0;
  a->cache_ok = 0;
  int rc = fedc_rdp_sampled_gaussian(q, sigma, a->orders, a->n, a->cache);
  if (rc < 0) return rc;
  a->cache_ok = 1;
  a->cache_q = q;
  a->cache_sigma = sigma;
  return 0;
}

int fedc_accountant_step(fedc_accountant *a, double q, double sigma,
                         int64_t steps) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no accountant");
  int rc = check_q_sigma(q, sigma);
  if (rc < 0) return rc;
  if (steps < 0 || steps > INT64_MAX - a->steps)
    return fedc_error_set(FEDC_EINVAL,
                          "rdp: %lld steps after %lld is out of range",
                          (long long)steps, (long long)a->steps);
  if (steps == 0) return 0;
  if ((rc = fill_cache(a, q, sigma)) < 0) return rc;
  for (size_t i = 0; i < a->n; i++) a->rdp[i] += (double)steps * a->cache[i];
  a->steps += steps;
  return 0;
}

int fedc_accountant_epsilon(const fedc_accountant *a, double delta,
                            double *eps, double *best_order) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no accountant");
  return fedc_rdp_to_epsilon(a->orders, a->rdp, a->n, delta, eps, best_order);
}

int fedc_accountant_peek(const fedc_accountant *a, double q, double sigma,
                         int64_t steps, double delta, double *eps) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "rdp: no accountant");
  int rc = check_q_sigma(q, sigma);
  if (rc < 0) return rc;
  if (steps < 0)
    return fedc_error_set(FEDC_EINVAL, "rdp: %lld steps is negative",
                          (long long)steps);
  if (steps == 0) return fedc_accountant_epsilon(a, delta, eps, NULL);
  double *tmp = fedc_malloc_array(a->n, sizeof(double));
  if (tmp == NULL)
    return fedc_error_set(FEDC_ENOMEM, "rdp: out of memory for %zu orders",
                          a->n);
  if (a->cache_ok && a->cache_q == q && a->cache_sigma == sigma)
    memcpy(tmp, a->cache, a->n * sizeof(double));
  else
    rc = fedc_rdp_sampled_gaussian(q, sigma, a->orders, a->n, tmp);
  if (rc == 0) {
    for (size_t i = 0; i < a->n; i++)
      tmp[i] = a->rdp[i] + (double)steps * tmp[i];
    rc = fedc_rdp_to_epsilon(a->orders, tmp, a->n, delta, eps, NULL);
  }
  fedc_free(tmp);
  return rc;
}
