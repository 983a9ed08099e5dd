/*
 * partition.c - splitting one data set among simulated clients.
 *
 * Three partitioners, all deterministic for a seed: iid (shuffle and deal),
 * dirichlet (label skew: per-class proportions over the clients from
 * Dir(alpha), Yurochkin et al. 2019, the skew studied by Hsu, Qi and Brown
 * 2019; redrawn while some client is too small) and shards (McMahan et al.
 * 2017). Each draws from its own stream, fedc_rng_derive(seed, "part",
 * kind, 0), so a partition never depends on what else the job has drawn.
 * Everything is O(n + n_classes * n_clients) per draw: grouping by label is
 * a counting sort, never a comparison sort. docs/data.md gives the formulas.
 */
#include "data/partition.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"

/* First name of every partition stream ("part" in ASCII); the second name is
 * the kind, so the three partitioners never share draws. */
#define STREAM_PARTITION 0x70617274u

/* Dirichlet redraw rule: every client needs at least
 * min(DIRICHLET_MIN_ROWS, n / n_clients) rows; give up after this many
 * draws and keep the last one. */
#define DIRICHLET_MIN_ROWS 10
#define DIRICHLET_MAX_ATTEMPTS 100

static const char *kind_names[] = {"iid", "dirichlet", "shards"};

int fedc_partition_kind_parse(const char *s) {
  if (s == NULL) return -1;
  for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
    if (strcmp(s, kind_names[k]) == 0) return k;
  return -1;
}

const char *fedc_partition_kind_name(fedc_partition_kind k) {
  if ((int)k < 0 || (int)k >= (int)(sizeof kind_names / sizeof kind_names[0]))
    return "unknown";
  return kind_names[k];
}

void fedc_partition_free(fedc_partition *p) {
  if (p == NULL) return;
  fedc_free(p->offsets);
  fedc_free(p->index);
  memset(p, 0, sizeof *p);
}

/*
 * Check that every label is a class index stored exactly as a float, in
 * 0..n_classes-1. Dirichlet and shards group rows by label, so a regression
 * target or a corrupt label must be refused rather than cast. FEDC_EINVAL
 * with the first bad row in the message.
 */
static int check_classes(const fedc_dataset *ds, const char *kind) {
  if (ds->n_classes < 1)
    return fedc_error_set(FEDC_EINVAL,
                          "partition: %s needs class labels, but the data set "
                          "has n_classes = %d",
                          kind, (int)ds->n_classes);
  if (ds->y == NULL)
    return fedc_error_set(FEDC_EINVAL, "partition: %s needs labels, y is NULL",
                          kind);
  for (int64_t i = 0; i < ds->n; i++) {
    float v = ds->y[i];
    if (!(v >= 0.0f && v < (float)ds->n_classes) || v != floorf(v))
      return fedc_error_set(FEDC_EINVAL,
                            "partition: row %lld has label %g, not a class in "
                            "0..%d",
                            (long long)i, (double)v, (int)ds->n_classes - 1);
  }
  return 0;
}

/*
 * Counting sort of the row indices by label: on success *sorted (n entries)
 * lists rows by ascending label, ties by ascending row index (the sort is
 * stable), and *start (n_classes + 1 entries) gives class c's rows as
 * sorted[start[c] .. start[c+1]). The caller owns both and frees them with
 * fedc_free. Labels must have passed check_classes. FEDC_ENOMEM leaves both
 * NULL.
 */
static int group_by_class(const fedc_dataset *ds, int64_t **sorted,
                          int64_t **start) {
  int32_t nc = ds->n_classes;
  int64_t *s = fedc_malloc_array((size_t)ds->n, sizeof *s);
  int64_t *st = fedc_calloc((size_t)nc + 1, sizeof *st);
  int64_t *cur = fedc_malloc_array((size_t)nc, sizeof *cur);
  if (s == NULL || st == NULL || cur == NULL) {
    fedc_free(s);
    fedc_free(st);
    fedc_free(cur);
    *sorted = NULL;
    *start = NULL;
    return fedc_error_set(FEDC_ENOMEM, "partition: out of memory grouping "
                                       "%lld rows by label",
                          (long long)ds->n);
  }
  for (int64_t i = 0; i < ds->n; i++) st[(int32_t)ds->y[i] + 1]++;
  for (int32_t c = 0; c < nc; c++) st[c + 1] += st[c];
  memcpy(cur, st, (size_t)nc * sizeof *cur);
  for (int64_t i = 0; i < ds->n; i++) s[cur[(int32_t)ds->y[i]]++] = i;
  fedc_free(cur);
  *sorted = s;
  *start = st;
  return 0;
}

/* Allocate the output arrays; on FEDC_ENOMEM nothing stays allocated. */
static int alloc_out(fedc_partition *out, int32_t n_clients, int64_t n) {
  out->offsets = fedc_calloc((size_t)n_clients + 1, sizeof *out->offsets);
  out->index = fedc_malloc_array((size_t)n, sizeof *out->index);
  if (out->offsets == NULL || out->index == NULL) {
    fedc_partition_free(out);
    return fedc_error_set(FEDC_ENOMEM,
                          "partition: out of memory for %lld rows over %d "
                          "clients",
                          (long long)n, (int)n_clients);
  }
  out->n_clients = n_clients;
  return 0;
}

/*
 * iid: shuffle 0..n-1, then client k takes the next n / K rows, plus one
 * more for the first n % K clients, so sizes differ by at most one.
 */
static int make_iid(const fedc_dataset *ds, const fedc_partition_params *p,
                    fedc_partition *out) {
  int64_t n = ds->n;
  int32_t nk = p->n_clients;
  int rc = alloc_out(out, nk, n);
  if (rc < 0) return rc;
  fedc_rng r;
  fedc_rng_derive(&r, p->seed, STREAM_PARTITION, FEDC_PARTITION_IID, 0);
  for (int64_t i = 0; i < n; i++) out->index[i] = i;
  fedc_rng_shuffle_i64(&r, out->index, n);
  int64_t base = n / nk, extra = n % nk;
  for (int32_t k = 0; k < nk; k++)
    out->offsets[k + 1] = out->offsets[k] + base + (k < extra ? 1 : 0);
  return 0;
}

/*
 * One Dirichlet draw for class rows sorted[lo .. lo+cnt): shuffle them, draw
 * p ~ Dir(alpha) over the K clients as normalised Gamma(alpha, 1) variates,
 * and give client k the rows between floor(cnt * P_k-1) and floor(cnt * P_k),
 * P_k being the cumulative proportion (P_K is taken as exactly 1). owner[pos]
 * records the client of sorted position pos; size[k] is incremented.
 *
 * Two limits the gamma sampler can hit in floating point are mapped to the
 * distribution's own limits: all draws underflowing to 0 (tiny alpha) gives
 * the whole class to one client drawn uniformly, the alpha -> 0 limit; a sum
 * that overflows (absurdly large alpha) gives equal proportions, the
 * alpha -> infinity limit.
 */
static void dirichlet_class(fedc_rng *r, double alpha, int32_t nk,
                            int64_t *sorted, int64_t lo, int64_t cnt,
                            double *g, int32_t *owner, int64_t *size) {
  fedc_rng_shuffle_i64(r, sorted + lo, cnt);
  double sum = 0.0;
  for (int32_t k = 0; k < nk; k++) {
    g[k] = fedc_rng_gamma(r, alpha);
    sum += g[k];
  }
  if (sum == 0.0) {
    int32_t j = (int32_t)fedc_rng_below(r, (uint64_t)nk);
    for (int32_t k = 0; k < nk; k++) g[k] = (k == j) ? 1.0 : 0.0;
    sum = 1.0;
  } else if (!isfinite(sum)) {
    for (int32_t k = 0; k < nk; k++) g[k] = 1.0;
    sum = (double)nk;
  }
  double cum = 0.0;
  int64_t prev = 0;
  for (int32_t k = 0; k < nk; k++) {
    int64_t cut;
    if (k == nk - 1) {
      cut = cnt;
    } else {
      cum += g[k];
      cut = (int64_t)floor(cum / sum * (double)cnt);
      if (cut < prev) cut = prev;
      if (cut > cnt) cut = cnt;
    }
    for (int64_t q = prev; q < cut; q++) owner[lo + q] = k;
    size[k] += cut - prev;
    prev = cut;
  }
}

/*
 * dirichlet: the per-class split of Yurochkin et al. 2019, which gives the
 * label skew of Hsu, Qi and Brown 2019. Each draw runs dirichlet_class over every class, continuing one
 * stream; while some client has fewer than min(10, n / K) rows the whole
 * partition is drawn again from the same stream, at most 100 times, after
 * which the last draw is kept (with a warning in the log). Each client's
 * rows are then shuffled, continuing the same stream.
 */
static int make_dirichlet(const fedc_dataset *ds,
                          const fedc_partition_params *p,
                          fedc_partition *out) {
  int64_t n = ds->n;
  int32_t nk = p->n_clients, nc = ds->n_classes;
  int64_t min_rows = n / nk < DIRICHLET_MIN_ROWS ? n / nk : DIRICHLET_MIN_ROWS;
  int64_t smallest = 0;
  int attempt;
  fedc_rng r;
  int64_t *sorted = NULL, *start = NULL;
  int rc = group_by_class(ds, &sorted, &start);
  if (rc < 0) return rc;
  int32_t *owner = fedc_malloc_array((size_t)n, sizeof *owner);
  int64_t *size = fedc_malloc_array((size_t)nk, sizeof *size);
  double *g = fedc_malloc_array((size_t)nk, sizeof *g);
  if (owner == NULL || size == NULL || g == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM,
                        "partition: out of memory for a dirichlet draw of "
                        "%lld rows over %d clients",
                        (long long)n, (int)nk);
    goto done;
  }
  fedc_rng_derive(&r, p->seed, STREAM_PARTITION, FEDC_PARTITION_DIRICHLET, 0);
  for (attempt = 1; attempt <= DIRICHLET_MAX_ATTEMPTS; attempt++) {
    memset(size, 0, (size_t)nk * sizeof *size);
    for (int32_t c = 0; c < nc; c++)
      dirichlet_class(&r, p->alpha, nk, sorted, start[c],
                      start[c + 1] - start[c], g, owner, size);
    smallest = size[0];
    for (int32_t k = 1; k < nk; k++)
      if (size[k] < smallest) smallest = size[k];
    if (smallest >= min_rows) break;
  }
  if (attempt > DIRICHLET_MAX_ATTEMPTS)
    fedc_log_warn("partition: dirichlet alpha=%g clients=%d: a client still "
                  "has %lld rows (< %lld) after %d draws; keeping the last",
                  p->alpha, (int)nk, (long long)smallest, (long long)min_rows,
                  DIRICHLET_MAX_ATTEMPTS);
  else
    fedc_log_debug("partition: dirichlet alpha=%g clients=%d: %d draw(s), "
                   "smallest client %lld rows",
                   p->alpha, (int)nk, attempt, (long long)smallest);
  rc = alloc_out(out, nk, n);
  if (rc < 0) goto done;
  for (int32_t k = 0; k < nk; k++)
    out->offsets[k + 1] = out->offsets[k] + size[k];
  /* size[] becomes each client's write cursor. */
  memcpy(size, out->offsets, (size_t)nk * sizeof *size);
  for (int64_t q = 0; q < n; q++) out->index[size[owner[q]]++] = sorted[q];
  /* As the reference code does, mix each client's rows so that they do not
   * come grouped by class; the stream continues after the accepted draw. */
  for (int32_t k = 0; k < nk; k++)
    fedc_rng_shuffle_i64(&r, out->index + out->offsets[k],
                         out->offsets[k + 1] - out->offsets[k]);
done:
  fedc_free(sorted);
  fedc_free(start);
  fedc_free(owner);
  fedc_free(size);
  fedc_free(g);
  return rc;
}

/*
 * shards: McMahan et al. 2017. Rows sorted by label (ties by row index) are
 * cut into S = K * shards_per_client shards of floor(n / S) rows; shard s is
 * sorted[s * len .. (s+1) * len). The shard ids are shuffled and client k
 * takes perm[k * spc .. (k+1) * spc). The L = n - S * len leftover rows at
 * the end of the sorted order (L < S) go round-robin: leftover j to client
 * j % K, so every row belongs to exactly one client.
 */
static int make_shards(const fedc_dataset *ds, const fedc_partition_params *p,
                       fedc_partition *out) {
  int64_t n = ds->n;
  int32_t nk = p->n_clients, spc = p->shards_per_client;
  int64_t ns = (int64_t)nk * spc, len = n / ns, left = n - ns * len;
  int64_t pos = 0;
  fedc_rng r;
  int64_t *sorted = NULL, *start = NULL;
  int rc = group_by_class(ds, &sorted, &start);
  if (rc < 0) return rc;
  int64_t *perm = fedc_malloc_array((size_t)ns, sizeof *perm);
  if (perm == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "partition: out of memory for %lld shards",
                        (long long)ns);
    goto done;
  }
  rc = alloc_out(out, nk, n);
  if (rc < 0) goto done;
  fedc_rng_derive(&r, p->seed, STREAM_PARTITION, FEDC_PARTITION_SHARDS, 0);
  for (int64_t s = 0; s < ns; s++) perm[s] = s;
  fedc_rng_shuffle_i64(&r, perm, ns);
  for (int32_t k = 0; k < nk; k++) {
    for (int32_t t = 0; t < spc; t++) {
      int64_t s = perm[(int64_t)k * spc + t];
      memcpy(out->index + pos, sorted + s * len, (size_t)len * sizeof *sorted);
      pos += len;
    }
    for (int64_t j = k; j < left; j += nk)
      out->index[pos++] = sorted[ns * len + j];
    out->offsets[k + 1] = pos;
  }
done:
  fedc_free(sorted);
  fedc_free(start);
  fedc_free(perm);
  return rc;
}

/*
 * Validate the parameters against the data set, then dispatch. On any error
 * *out is zeroed, nothing stays allocated, and the message names the bad
 * parameter. On success the caller owns *out and frees it with
 * fedc_partition_free.
 */
int fedc_partition_make(const fedc_dataset *ds, const fedc_partition_params *p,
                        fedc_partition *out) {
  if (out != NULL) memset(out, 0, sizeof *out);
  if (ds == NULL || p == NULL || out == NULL)
    return fedc_error_set(FEDC_EINVAL, "partition: NULL %s",
                          ds == NULL  ? "data set"
                          : p == NULL ? "params"
                                      : "out");
  if (ds->n < 1)
    return fedc_error_set(FEDC_EINVAL, "partition: the data set has no rows "
                                       "(n = %lld)",
                          (long long)ds->n);
  if (p->n_clients < 1)
    return fedc_error_set(FEDC_EINVAL,
                          "partition: n_clients = %d must be >= 1",
                          (int)p->n_clients);
  if ((int64_t)p->n_clients > ds->n)
    return fedc_error_set(FEDC_EINVAL,
                          "partition: n_clients = %d exceeds the %lld rows of "
                          "the data set",
                          (int)p->n_clients, (long long)ds->n);
  int rc;
  switch (p->kind) {
  case FEDC_PARTITION_IID:
    return make_iid(ds, p, out);
  case FEDC_PARTITION_DIRICHLET:
    if (!isfinite(p->alpha) || p->alpha <= 0.0)
      return fedc_error_set(FEDC_EINVAL,
                            "partition: alpha = %g must be finite and > 0",
                            p->alpha);
    rc = check_classes(ds, "dirichlet");
    if (rc < 0) return rc;
    return make_dirichlet(ds, p, out);
  case FEDC_PARTITION_SHARDS:
    if (p->shards_per_client < 1)
      return fedc_error_set(FEDC_EINVAL,
                            "partition: shards_per_client = %d must be >= 1",
                            (int)p->shards_per_client);
    if (ds->n < (int64_t)p->n_clients * p->shards_per_client)
      return fedc_error_set(FEDC_EINVAL,
                            "partition: %lld rows are fewer than the %lld "
                            "shards (n_clients = %d * shards_per_client = %d)",
                            (long long)ds->n,
                            (long long)p->n_clients * p->shards_per_client,
                            (int)p->n_clients, (int)p->shards_per_client);
    rc = check_classes(ds, "shards");
    if (rc < 0) return rc;
    return make_shards(ds, p, out);
  }
  return fedc_error_set(FEDC_EINVAL, "partition: kind = %d is not iid, "
                                     "dirichlet or shards",
                        (int)p->kind);
}
