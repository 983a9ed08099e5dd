/*
 * agg_robust.c - Byzantine-robust aggregation: coordinate-wise median and
 * trimmed mean (Yin et al. 2018), Krum and Multi-Krum (Blanchard et al.
 * 2017), behind the fedc_strategy_ops table, and the factory that makes an
 * aggregator from the [strategy] section (fedc_strategy_new_params) through
 * the registry.
 *
 * Unlike FedAvg these statistics need every update at once, so a robust
 * strategy copies each update it is given into a buffer of its own (the
 * caller may reuse its array as soon as add returns). It keeps at most
 * max_updates of them - the round's selection size - so its memory is
 * bounded by max_updates x n floats. Buffers are allocated one at a time as
 * updates arrive and reused by later rounds: memory is the high-water mark
 * of one round, not max_updates x n up front. finish adds O(k) floats of
 * scratch, and Krum k x k doubles of distances, for k updates.
 *
 * Sample counts are ignored: robust statistics are unweighted (a weighted
 * median would let one client claim a huge sample count and win). Multi-Krum
 * averages its selected updates unweighted too.
 *
 * Results do not depend on the order in which updates arrive, bit for bit:
 * per-coordinate statistics depend only on the multiset of values; means
 * are summed exactly (exact_mean); Krum's distances are symmetric and its
 * scores summed in ascending order; and equal scores are broken by
 * comparing the updates' values lexicographically, never by arrival index.
 * To make that order total, -0.0 is stored as +0.0 (the same number).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"

typedef fedc_robust_kind robust_kind;
#define R_MEDIAN FEDC_ROBUST_MEDIAN
#define R_TRIMMED FEDC_ROBUST_TRIMMED
#define R_KRUM FEDC_ROBUST_KRUM
#define R_MULTIKRUM FEDC_ROBUST_MULTIKRUM

typedef struct robust {
  fedc_strategy base;
  robust_kind kind;
  double trim_beta;
  int32_t krum_f, multikrum_m;
  size_t max_updates;
  float **upd; /* upd[0..n_buf) allocated; upd[0..count) hold this round's updates */
  size_t n_buf, cap_ptr, count;
  float *col; /* finish: one coordinate's values, col_cap floats */
  size_t col_cap;
  double *dist; /* krum: k x k squared distances; row: one row sorted; score: per update */
  double *row, *score;
  size_t *order;
  size_t krum_cap;
} robust;

static const char *rname(const robust *r) {
  return r->base.ops->name;
}

static int robust_begin(fedc_strategy *s, const float *global, size_t n) {
  robust *r = (robust *)s;
  (void)global;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", rname(r), n, s->n);
  r->count = 0;
  return 0;
}

/*
 * Check, then copy: a refused update (wrong shape, a non-finite weight, one
 * update too many) changes nothing and allocates nothing. Allocation happens
 * only when this round holds more updates than any round before it; a
 * failure is FEDC_ENOMEM with the state as it was.
 */
static int robust_add(fedc_strategy *s, const float *w, size_t n, uint64_t n_samples) {
  robust *r = (robust *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", rname(r), n, s->n);
  if (n_samples == 0) return fedc_error_set(FEDC_ERANGE, "%s: sample count 0", rname(r));
  if (r->count >= r->max_updates)
    return fedc_error_set(FEDC_ERANGE,
                          "%s: round already holds %zu updates, its most (max_updates)", rname(r),
                          r->max_updates);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(w[i]))
      return fedc_error_set(FEDC_ENONFINITE, "%s: weight %zu is %g", rname(r), i, (double)w[i]);
  if (r->count == r->n_buf) {
    if (r->n_buf == r->cap_ptr) {
      size_t cap = r->cap_ptr ? 2 * r->cap_ptr : 8;
      if (cap > r->max_updates) cap = r->max_updates;
      float **p = fedc_realloc(r->upd, cap * sizeof *p);
      if (p == NULL)
        return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu updates", rname(r), cap);
      r->upd = p;
      r->cap_ptr = cap;
    }
    float *b = fedc_malloc_array(n ? n : 1, sizeof *b);
    if (b == NULL)
      return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for update %zu (%zu weights)", rname(r),
                            r->count + 1, n);
    r->upd[r->n_buf++] = b;
  }
  float *dst = r->upd[r->count];
  for (size_t i = 0; i < n; i++)
    dst[i] = w[i] == 0.0f ? 0.0f : w[i]; /* -0 -> +0 */
  r->count++;
  return 0;
}

static int grow_col(robust *r, size_t k) {
  if (k <= r->col_cap) return 0;
  float *c = fedc_malloc_array(k, sizeof *c);
  if (c == NULL)
    return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu-value scratch", rname(r), k);
  fedc_free(r->col);
  r->col = c;
  r->col_cap = k;
  return 0;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static inline void swapf(float *a, ptrdiff_t i, ptrdiff_t j) {
  float t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/*
 * Rearrange a[0..len) so that a[k] holds the value it would hold sorted,
 * with a[0..k) <= a[k] <= a(k..len) (Hoare's quickselect, in the manner of
 * C++'s nth_element). Median-of-three pivots and a three-way partition keep
 * it O(len) on the inputs a round sees, runs of equal values included;
 * should a hostile pattern of values defeat the pivots, it falls back to
 * sorting after 2 log2(len) + 8 passes (introselect), so the worst case is
 * O(len log len). The values are finite (add refuses others), so < is a
 * total order.
 */
static void select_kth(float *a, size_t len, size_t k) {
  ptrdiff_t lo = 0, hi = (ptrdiff_t)len - 1, kk = (ptrdiff_t)k;
  int budget = 8;
  for (size_t l = len; l > 1; l >>= 1)
    budget += 2;
  while (hi > lo) {
    if (budget-- == 0) {
      qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_float);
      return;
    }
    ptrdiff_t mid = lo + (hi - lo) / 2;
    if (a[mid] < a[lo]) swapf(a, mid, lo);
    if (a[hi] < a[lo]) swapf(a, hi, lo);
    if (a[hi] < a[mid]) swapf(a, hi, mid);
    const float p = a[mid];
    ptrdiff_t lt = lo, i = lo, gt = hi; /* [lo,lt) < p, [lt,i) == p, (gt,hi] > p */
    while (i <= gt) {
      if (a[i] < p) {
        swapf(a, lt, i);
        lt++;
        i++;
      } else if (a[i] > p) {
        swapf(a, i, gt);
        gt--;
      } else {
        i++;
      }
    }
    if (kk < lt)
      hi = lt - 1;
    else if (kk > gt)
      lo = gt + 1;
    else
      return;
  }
}

/*
 * The mean of v[0..cnt), exactly independent of the values' order. Each
 * value is put on a fixed-point grid of 2^(e-95), where 2^e bounds the
 * largest |v|, and the integers are summed in 128 bits: |q| <= 2^95 and cnt
 * < 2^31, so the sum cannot overflow, and integer addition is associative.
 * The grid loses at most 2^-96 of the largest value per term, far below
 * float resolution; a plain floating-point sum would round differently for
 * different arrival orders.
 */
static float exact_mean(const float *v, size_t cnt) {
  float amax = 0.0f;
  for (size_t i = 0; i < cnt; i++)
    amax = fmaxf(amax, fabsf(v[i]));
  if (amax == 0.0f) return 0.0f;
  int e;
  (void)frexp((double)amax, &e); /* amax < 2^e */
  const double scale = ldexp(1.0, 95 - e);
  __int128 sum = 0;
  for (size_t i = 0; i < cnt; i++)
    sum += (__int128)nearbyint((double)v[i] * scale);
  return (float)(ldexp((double)sum, e - 95) / (double)cnt);
}

/*
 * Coordinate-wise median (Yin et al. 2018, "Byzantine-Robust Distributed
 * Learning: Towards Optimal Statistical Rates", ICML): per coordinate, the
 * middle value of the k updates; for an even k the mean of the two middle
 * values. O(k) per coordinate: one quickselect for the upper middle, then
 * the lower middle is the largest value left of it.
 */
static int median_finish(fedc_strategy *s, float *out, size_t n) {
  robust *r = (robust *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", rname(r), n, s->n);
  const size_t k = r->count;
  if (k == 0) return fedc_error_set(FEDC_EQUORUM, "%s: no updates to aggregate", rname(r));
  int rc = grow_col(r, k);
  if (rc != 0) return rc;
  float *col = r->col;
  const size_t h = k / 2;
  for (size_t c = 0; c < n; c++) {
    for (size_t j = 0; j < k; j++)
      col[j] = r->upd[j][c];
    select_kth(col, k, h);
    if (k & 1) {
      out[c] = col[h];
    } else {
      float lower = col[0];
      for (size_t j = 1; j < h; j++)
        lower = fmaxf(lower, col[j]);
      out[c] = (float)(((double)lower + (double)col[h]) / 2.0);
    }
  }
  return 0;
}

/* floor(beta * k), with a hair of slack so that a decimal beta such as 0.29
 * cuts 29 of 100 even though 0.29 * 100 is 28.999999999999996 in double. */
static size_t trim_count(double beta, size_t k) {
  return (size_t)floor(beta * (double)k + 1e-9);
}

/*
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, drop the
 * t = floor(beta k) smallest and the t largest of the k values and average
 * the k - 2t left. Two quickselects bracket the kept block, so O(k) per
 * coordinate. With beta < 0.5 something is always kept; should the cut
 * still leave nothing, finish is FEDC_EINVAL.
 */
static int trimmed_finish(fedc_strategy *s, float *out, size_t n) {
  robust *r = (robust *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", rname(r), n, s->n);
  const size_t k = r->count;
  if (k == 0) return fedc_error_set(FEDC_EQUORUM, "%s: no updates to aggregate", rname(r));
  const size_t t = trim_count(r->trim_beta, k);
  if (2 * t >= k)
    return fedc_error_set(FEDC_EINVAL,
                          "%s: trim_beta = %g cuts %zu of %zu updates at each end, "
                          "leaving none",
                          rname(r), r->trim_beta, t, k);
  int rc = grow_col(r, k);
  if (rc != 0) return rc;
  float *col = r->col;
  for (size_t c = 0; c < n; c++) {
    for (size_t j = 0; j < k; j++)
      col[j] = r->upd[j][c];
    if (t > 0) {
      select_kth(col, k, t);                 /* col[0..t) are the t smallest */
      select_kth(col + t, k - t, k - 2 * t); /* col[k-t..k) the t largest */
    }
    out[c] = exact_mean(col + t, k - 2 * t);
  }
  return 0;
}

/* Squared L2 distance in double. (a-b)^2 == (b-a)^2 exactly, so the matrix
 * is the same whichever of the pair arrived first. */
static double sqdist(const float *a, const float *b, size_t n) {
  double acc = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    acc += d * d;
  }
  return acc;
}

/* A total order on updates: lexicographic on the values (finite, -0 stored
 * as +0, so equal under it means identical). */
static int cmp_update(const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

static int grow_krum(robust *r, size_t k) {
  if (k <= r->krum_cap) return 0;
  double *dist = fedc_malloc_array(k * k, sizeof *dist);
  double *row = fedc_malloc_array(k, sizeof *row);
  double *score = fedc_malloc_array(k, sizeof *score);
  size_t *order = fedc_malloc_array(k, sizeof *order);
  if (dist == NULL || row == NULL || score == NULL || order == NULL) {
    fedc_free(dist);
    fedc_free(row);
    fedc_free(score);
    fedc_free(order);
    return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu x %zu distances", rname(r), k, k);
  }
  fedc_free(r->dist);
  fedc_free(r->row);
  fedc_free(r->score);
  fedc_free(r->order);
  r->dist = dist;
  r->row = row;
  r->score = score;
  r->order = order;
  r->krum_cap = k;
  return 0;
}

/*
 * Krum and Multi-Krum (Blanchard et al. 2017, "Machine Learning with
 * Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS). With k
 * updates of which up to f may be Byzantine, update i scores
 *     score(i) = sum of ||w_i - w_j||^2 over its k - f - 2 nearest w_j, j != i,
 * and Krum returns the update with the lowest score; the paper's guarantee
 * needs k > 2f + 2, else FEDC_EQUORUM. Multi-Krum returns the unweighted
 * mean of the m lowest-scoring updates (m = 1 is Krum; m = 0 in the config
 * means k - f). Distances are summed in double, each row's in ascending
 * order so a score does not depend on which index a neighbour had; equal
 * scores are ordered by the updates' values (cmp_update). The k x k matrix
 * costs O(k^2 n) time and k^2 doubles.
 */
static int krum_finish(fedc_strategy *s, float *out, size_t n) {
  robust *r = (robust *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", rname(r), n, s->n);
  const size_t k = r->count;
  const size_t f = (size_t)r->krum_f;
  if (k == 0) return fedc_error_set(FEDC_EQUORUM, "%s: no updates to aggregate", rname(r));
  if (k <= 2 * f + 2)
    return fedc_error_set(FEDC_EQUORUM,
                          "%s: k = %zu updates with krum_f = %zu; Krum needs "
                          "k > 2f + 2 = %zu",
                          rname(r), k, f, 2 * f + 2);
  size_t m = 1;
  if (r->kind == R_MULTIKRUM) m = r->multikrum_m > 0 ? (size_t)r->multikrum_m : k - f;
  if (m > k)
    return fedc_error_set(FEDC_EQUORUM, "%s: multikrum_m = %zu but the round has k = %zu updates",
                          rname(r), m, k);
  int rc = grow_krum(r, k);
  if (rc == 0 && m > 1) rc = grow_col(r, m);
  if (rc != 0) return rc;

  double *dist = r->dist;
  for (size_t i = 0; i < k; i++) {
    dist[i * k + i] = 0.0;
    for (size_t j = i + 1; j < k; j++)
      dist[i * k + j] = dist[j * k + i] = sqdist(r->upd[i], r->upd[j], n);
  }
  const size_t nb = k - f - 2; /* neighbours scored; >= 1 since k > 2f + 2 */
  for (size_t i = 0; i < k; i++) {
    size_t len = 0;
    for (size_t j = 0; j < k; j++)
      if (j != i) r->row[len++] = dist[i * k + j];
    qsort(r->row, len, sizeof *r->row, cmp_double);
    double sc = 0.0;
    for (size_t j = 0; j < nb; j++)
      sc += r->row[j];
    r->score[i] = sc;
  }
  /* insertion sort by (score, values): k is a round's selection, small
   * next to the O(k^2 n) distances */
  for (size_t i = 0; i < k; i++) {
    size_t j = i;
    while (j > 0) {
      size_t a = r->order[j - 1];
      double sa = r->score[a], si = r->score[i];
      if (sa < si || (sa == si && cmp_update(r->upd[a], r->upd[i], n) <= 0)) break;
      r->order[j] = a;
      j--;
    }
    r->order[j] = i;
  }
  if (m == 1) {
    memcpy(out, r->upd[r->order[0]], n * sizeof *out);
    return 0;
  }
  for (size_t c = 0; c < n; c++) {
    for (size_t j = 0; j < m; j++)
      r->col[j] = r->upd[r->order[j]][c];
    out[c] = exact_mean(r->col, m);
  }
  return 0;
}

static void robust_free(fedc_strategy *s) {
  robust *r = (robust *)s;
  for (size_t i = 0; i < r->n_buf; i++)
    fedc_free(r->upd[i]);
  fedc_free(r->upd);
  fedc_free(r->col);
  fedc_free(r->dist);
  fedc_free(r->row);
  fedc_free(r->score);
  fedc_free(r->order);
  fedc_free(r);
}

static const fedc_strategy_ops median_ops = {"median", robust_begin, robust_add, median_finish,
                                             robust_free, NULL};
static const fedc_strategy_ops trimmed_ops = {"trimmed_mean", robust_begin, robust_add,
                                              trimmed_finish, robust_free, NULL};
static const fedc_strategy_ops krum_ops = {"krum", robust_begin, robust_add, krum_finish,
                                           robust_free, NULL};
static const fedc_strategy_ops multikrum_ops = {"multikrum", robust_begin, robust_add, krum_finish,
                                                robust_free, NULL};

/*
 * The factory behind [strategy]: see agg.h. The registry says which
 * aggregator a name makes; nothing here reads the name.
 */
int fedc_strategy_new_params(const fedc_agg_params *p, size_t n, fedc_strategy **out) {
  *out = NULL;
  if (p == NULL || p->name == NULL)
    return fedc_error_set(FEDC_EINVAL, "[strategy] name: no strategy named");
  const fedc_strategy_info *info = fedc_strategy_lookup(p->name);
  if (info == NULL)
    return fedc_error_set(FEDC_EINVAL, "[strategy] name = %s: unknown strategy", p->name);
  return fedc__strategy_make(info, p, n, out);
}

/*
 * A robust aggregator of the given kind. Parameters it cannot work with
 * are FEDC_EINVAL here rather than a failure in every round: trim_beta
 * outside [0, 0.5), a negative krum_f or multikrum_m, max_updates < 1, a
 * Krum that the round's selection can never satisfy (max_updates <=
 * 2 krum_f + 2) or multikrum_m > max_updates.
 */
int fedc__robust_new(robust_kind kind, const fedc_agg_params *p, size_t n,
                     fedc_strategy **out) {
  static const fedc_strategy_ops *const ops_of[] = {
      [R_MEDIAN] = &median_ops, [R_TRIMMED] = &trimmed_ops, [R_KRUM] = &krum_ops,
      [R_MULTIKRUM] = &multikrum_ops};
  *out = NULL;
  const fedc_strategy_ops *ops = ops_of[kind];
  p = &(fedc_agg_params){.name = ops->name, .trim_beta = p->trim_beta, .krum_f = p->krum_f,
                         .multikrum_m = p->multikrum_m, .max_updates = p->max_updates};
  if (p->max_updates < 1)
    return fedc_error_set(FEDC_EINVAL, "%s: max_updates = %d, want >= 1", p->name,
                          (int)p->max_updates);
  if (kind == R_TRIMMED && !(p->trim_beta >= 0.0 && p->trim_beta < 0.5))
    return fedc_error_set(FEDC_EINVAL, "%s: trim_beta = %g outside [0, 0.5)", p->name,
                          p->trim_beta);
  if (kind == R_KRUM || kind == R_MULTIKRUM) {
    if (p->krum_f < 0 || p->multikrum_m < 0)
      return fedc_error_set(FEDC_EINVAL, "%s: krum_f = %d, multikrum_m = %d; want >= 0", p->name,
                            (int)p->krum_f, (int)p->multikrum_m);
    if ((int64_t)p->max_updates <= 2 * (int64_t)p->krum_f + 2)
      return fedc_error_set(FEDC_EINVAL,
                            "%s: krum_f = %d needs more than %lld updates a round, "
                            "the selection holds %d",
                            p->name, (int)p->krum_f, 2 * (long long)p->krum_f + 2,
                            (int)p->max_updates);
    if (kind == R_MULTIKRUM && p->multikrum_m > p->max_updates)
      return fedc_error_set(FEDC_EINVAL, "%s: multikrum_m = %d exceeds the %d updates of a round",
                            p->name, (int)p->multikrum_m, (int)p->max_updates);
  }
  robust *r = fedc_calloc(1, sizeof *r);
  if (r == NULL) return fedc_error_set(FEDC_ENOMEM, "%s: out of memory", p->name);
  r->base.ops = ops;
  r->base.n = n;
  r->kind = kind;
  r->trim_beta = p->trim_beta;
  r->krum_f = p->krum_f;
  r->multikrum_m = p->multikrum_m;
  r->max_updates = (size_t)p->max_updates;
  *out = &r->base;
  return 0;
}
