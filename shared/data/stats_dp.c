/*
 * stats_dp.c - a site's statistics released under differential privacy
 * (schema.h): declared clip bounds per feature ([data] clip = col:lo:hi),
 * the sensitivities they give, and the Gaussian mechanism on the counts,
 * sums and sums of squares.
 *
 * The neighbouring relation is one row added to or removed from one site
 * (record-level DP). A row touches only its own site's release, and each
 * site draws its own noise, so the federation's statistics cost what one
 * site's release costs: one Gaussian mechanism with noise multiplier z,
 * which the coordinator records in its privacy ledger (dp.c, rdp.c) as one
 * step at sampling rate 1.
 *
 * Sources: the Gaussian mechanism and L2 sensitivity, Dwork and Roth 2014,
 * "The Algorithmic Foundations of Differential Privacy", Def. 3.8 and
 * Thm. A.1; its Rényi DP, alpha Delta^2 / (2 sigma^2) for L2 sensitivity
 * Delta, and the additive composition of RDP, Mironov 2017, "Rényi
 * Differential Privacy", Table II and Prop. 1. Sums are released centred on
 * the middle of the clip range, so that a row's term is bounded by the half
 * range rather than the largest magnitude; mean and variance are then
 * post-processing of the noisy counts, sums and sums of squares.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

#define SCALE 281474976710656.0L /* 2^FEDC_STATS_FRAC_BITS */

static int col_index(const fedc_schema *s, const char *name) {
  for (int32_t i = 0; i < s->n_cols; i++)
    if (strcmp(s->col[i].name, name) == 0) return i;
  return -1;
}

/*
 * Parse "col:lo:hi, col:lo:hi": items separated by commas, each a numeric
 * feature of the schema and two finite numbers lo < hi within 2^24 of 0
 * (the exact statistics' range). A categorical column's one-hot inputs are
 * already bounded by [0, 1] and may not be named.
 */
int fedc_schema_set_clip(fedc_schema *s, const char *clip) {
  const char *p = clip;
  while (p && *p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (*p == '\0') break;
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char item[FEDC_SCHEMA_NAME + 96];
    if (len >= sizeof item)
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: item '%.40s...' is too long", p);
    memcpy(item, p, len);
    item[len] = '\0';
    p = e ? e + 1 : p + len;
    char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL)
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: '%s' is not col:lo:hi", item);
    *c1 = '\0';
    *c2 = '\0';
    char *name = item;
    while (*name == ' ') name++;
    for (char *t = c1 - 1; t >= name && *t == ' '; t--) *t = '\0';
    char *end1, *end2;
    double lo = strtod(c1 + 1, &end1), hi = strtod(c2 + 1, &end2);
    while (*end1 == ' ' || *end1 == '\t') end1++;
    while (*end2 == ' ' || *end2 == '\t') end2++;
    int i = col_index(s, name);
    if (i < 0)
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: '%s' is not a feature of the schema", name);
    if (s->col[i].n_vocab > 0)
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: '%s' is categorical: its one-hot inputs "
                            "are bounded by [0, 1] already", name);
    if (end1 == c1 + 1 || *end1 != '\0' || end2 == c2 + 1 || *end2 != '\0' || !isfinite(lo) ||
        !isfinite(hi) || !(lo < hi) || !(fabs(lo) < FEDC_STATS_MAX_ABS) ||
        !(fabs(hi) < FEDC_STATS_MAX_ABS))
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: '%s': the bounds must be two finite "
                            "numbers lo < hi within 2^24 of 0", name);
    s->col[i].has_clip = 1;
    s->col[i].lo = lo;
    s->col[i].hi = hi;
  }
  return 0;
}

int fedc_schema_require_clip(const fedc_schema *s) {
  for (int32_t i = 0; i < s->n_cols; i++)
    if (s->col[i].n_vocab == 0 && !s->col[i].has_clip)
      return fedc_error_set(FEDC_ECONFIG, "[data] clip: feature '%s' has no bounds; statistics "
                            "under differential privacy need col:lo:hi for every numeric "
                            "feature", s->col[i].name);
  return 0;
}

void fedc_schema_input_bounds(const fedc_schema *s, int32_t j, double *lo, double *hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  for (int32_t i = 0; i < s->n_cols; i++) {
    const fedc_schema_col *c = &s->col[i];
    int32_t w = c->n_vocab > 0 ? c->n_vocab : 1;
    if (j < c->offset || j >= c->offset + w) continue;
    if (c->n_vocab > 0) {
      *lo = 0;
      *hi = 1;
    } else if (c->has_clip) {
      *lo = c->lo;
      *hi = c->hi;
    }
    return;
  }
}

/*
 * Sensitivities under adding or removing one row, with input j clipped to
 * [lo_j, hi_j], centre c_j = (lo_j + hi_j) / 2, half range r_j = (hi_j -
 * lo_j) / 2, and d' the inputs whose range is not empty:
 *
 *   counts: rows, every input's count or missing count (one of the two per
 *     input), and one label count: Delta_1 = sqrt(1 + d + [classes > 0]);
 *   centred sums scaled to unit range, sum (x_j - c_j) / r_j, each term in
 *     [-1, 1]: Delta_2 = sqrt(d');
 *   centred squares scaled likewise, sum ((x_j - c_j)^2 - r_j^2 / 2) /
 *     (r_j^2 / 2), each term in [-1, 1]: Delta_3 = sqrt(d').
 *
 * Each group gets Gaussian noise of std sigma_g = z sqrt(3) Delta_g on the
 * scaled values (so input j's sum gets sigma_2 r_j and its squares sigma_3
 * r_j^2 / 2 once scaled back: each input's noise in proportion to its own
 * range, not to the widest one's). Its RDP is alpha Delta_g^2 / (2
 * sigma_g^2) = alpha / (6 z^2) (Mironov 2017, Table II), and the three
 * compose (Prop. 1) to alpha / (2 z^2), that of one Gaussian mechanism with
 * noise multiplier z. sigma[1] and sigma[2] are those of the scaled values.
 */
int fedc_stats_dp_sigmas(const fedc_schema *s, int32_t n_classes, double z, double sigma[3]) {
  if (!(z > 0) || !isfinite(z))
    return fedc_error_set(FEDC_EINVAL, "statistics: noise multiplier %g is not > 0", z);
  double d2 = 1.0 + s->d + (n_classes > 0 ? 1.0 : 0.0), ranged = 0;
  for (int32_t j = 0; j < s->d; j++) {
    double lo, hi;
    fedc_schema_input_bounds(s, j, &lo, &hi);
    if (!isfinite(lo) || !isfinite(hi)) {
      char name[FEDC_SCHEMA_NAME * 2];
      fedc_schema_input_name(s, j, name, sizeof name);
      return fedc_error_set(FEDC_EINVAL, "statistics: input '%s' has no clip bounds", name);
    }
    ranged += hi > lo;
  }
  double k = z * sqrt(3.0);
  sigma[0] = k * sqrt(d2);
  sigma[1] = k * sqrt(ranged);
  sigma[2] = k * sqrt(ranged);
  return 0;
}

/* A noisy count: rounded, never below 0 (post-processing keeps the DP). */
static int64_t noisy_count(int64_t v, double sd, fedc_rng *rng) {
  double n = nearbyint((double)v + sd * fedc_rng_normal(rng));
  return n > 0 ? (int64_t)n : 0;
}

/*
 * Exact clipped and centred sums per input first (long double: a site's
 * rows times terms below 2^48 stay exact enough for noise of this size),
 * then noise, then the release in the exact form's units: count n, sum
 * S' + c n, sum of squares Q' + 2 c S' + c^2 n with Q' = Q'' + n r^2 / 2
 * (the centring undone; post-processing of the noisy values), rounded to
 * the fixed point once.
 */
int fedc_stats_compute_dp(const fedc_dataset *ds, int32_t n_classes, const fedc_schema *s,
                          double scale, fedc_rng *rng, fedc_stats *out) {
  double sigma[3];
  memset(out, 0, sizeof *out);
  if (ds->d != s->d)
    return fedc_error_set(FEDC_ESHAPE, "statistics: %lld inputs, the schema has %d",
                          (long long)ds->d, (int)s->d);
  int rc = fedc_stats_dp_sigmas(s, n_classes, s->noise_multiplier, sigma);
  if (rc != 0) return rc;
  if (!(scale >= 1) || !isfinite(scale))
    return fedc_error_set(FEDC_EINVAL, "statistics: noise scale %g is not >= 1", scale);
  for (int g = 0; g < 3; g++) sigma[g] *= scale;
  rc = fedc_stats_init(out, s->d, n_classes);
  if (rc != 0) return rc;
  int32_t d = s->d;
  long double *acc = fedc_calloc((size_t)d * 2, sizeof *acc);
  double *bound = fedc_malloc_array((size_t)d * 2, sizeof *bound);
  if (acc == NULL || bound == NULL) {
    fedc_free(acc);
    fedc_free(bound);
    fedc_stats_free(out);
    return fedc_error_set(FEDC_ENOMEM, "statistics: out of memory");
  }
  long double *cs = acc, *cq = acc + d;
  for (int32_t j = 0; j < d; j++) fedc_schema_input_bounds(s, j, &bound[2 * j], &bound[2 * j + 1]);
  for (int64_t i = 0; i < ds->n; i++) {
    const float *row = ds->x + i * ds->d;
    for (int32_t j = 0; j < d; j++) {
      double v = row[j], lo = bound[2 * j], hi = bound[2 * j + 1];
      if (isnan(v)) {
        out->missing[j]++;
        continue;
      }
      v = v < lo ? lo : v > hi ? hi : v;
      double c = (lo + hi) / 2, r = (hi - lo) / 2;
      out->count[j]++;
      cs[j] += v - c;
      cq[j] += (v - c) * (v - c) - r * r / 2;
    }
    if (n_classes > 0) {
      double lv = ds->y[i];
      if (!(lv >= 0 && lv < n_classes && lv == floor(lv))) {
        fedc_free(acc);
        fedc_free(bound);
        fedc_stats_free(out);
        return fedc_error_set(FEDC_ERANGE, "statistics: label %g outside the job's classes 0..%d",
                              lv, (int)n_classes - 1);
      }
      out->label_count[(int)lv]++;
    }
  }
  out->rows = noisy_count(ds->n, sigma[0], rng);
  for (int32_t k = 0; k < n_classes; k++)
    out->label_count[k] = noisy_count(out->label_count[k], sigma[0], rng);
  for (int32_t j = 0; j < d; j++) {
    double lo = bound[2 * j], hi = bound[2 * j + 1], c = (lo + hi) / 2, r = (hi - lo) / 2;
    int64_t n = noisy_count(out->count[j], sigma[0], rng);
    out->count[j] = n;
    out->missing[j] = noisy_count(out->missing[j], sigma[0], rng);
    /* the noise of the unit-range values, scaled back by this input's range */
    long double sp = cs[j] + (long double)(sigma[1] * r * fedc_rng_normal(rng));
    long double qp = cq[j] + (long double)(sigma[2] * (r * r / 2) * fedc_rng_normal(rng)) +
                     (long double)n * r * r / 2;
    if (qp < 0) qp = 0;
    long double sum = sp + (long double)c * n;
    long double sumsq = qp + 2.0L * c * sp + (long double)c * c * n;
    out->sum[j] = (__int128)roundl(sum * SCALE);
    out->sumsq[j] = (__int128)roundl(sumsq * SCALE);
    out->min[j] = n > 0 ? lo : INFINITY;
    out->max[j] = n > 0 ? hi : -INFINITY;
  }
  out->noise_multiplier = s->noise_multiplier;
  fedc_free(acc);
  fedc_free(bound);
  return 0;
}
