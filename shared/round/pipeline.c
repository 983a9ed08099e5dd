/*
 * pipeline.c - norm bounds, DP clipping and noise, aggregation and the
 * server optimizer, in the order pipeline.h gives. Synchronous updates
 * (fedc_pipeline_add) and FedBuff's asynchronous deltas
 * (fedc_pipeline_add_async) share one conditioning step (condition), so a
 * norm bound or a DP clip means the same for both.
 *
 * The share cap. FedAvg weights update k by its sample count n_k; a client
 * that lies about n_k takes the round over. With [strategy]
 * max_client_share = s, the weights become c_k = min(n_k, t), with t the
 * water level for which the largest weights are exactly s of the total:
 * t = s * R / (1 - s * j), where the j largest counts are over t and R is
 * the sum of the others (every c_k / sum c <= s; no cut when no client is
 * over s, so honest rounds whose largest client has at most s of the
 * samples are FedAvg bit for bit). At most floor(1/s) updates can be over
 * t (each has s of the total), so the pipeline holds the floor(1/s)
 * updates with the largest counts aside (ties broken by arrival, which
 * cannot matter: a held update tied with a folded one is not cut) and
 * folds every other update into the aggregator's exact fixed-point sum at
 * once. At finish the held updates are folded with weights floor(t) (at
 * least 1) into the same sum, the aggregate is read, and they are taken
 * out again (integer arithmetic, exact), so a prepare can be repeated.
 * When the round has too few updates for any t (fewer than 1/s), the held
 * ones (all of them) get equal weights. The result depends only on the
 * set of updates and counts, not on their order. An update folded early
 * (as its bytes arrived, fedc__pipeline_fold_early) is in the sums at its
 * count already: at finish the hold_cap largest counts of the held and the
 * early-folded updates are the held set, and an early-folded one the cap
 * cuts is read again from its spool file and adjusted by c_k - n_k for the
 * read, then put back (capped_finish): the same integer sums, bit for bit,
 * as if it had come whole. The cap applies to
 * additive aggregators (FedAvg, the server optimizers) without DP; DP and
 * the robust aggregators weigh updates equally already.
 */
#include "round/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agg/scaffold.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/mapped.h"
#include "ml/kernels.h"

struct fedc_pipeline {
  fedc_pipeline_params p;
  const fedc_strategy_info *info; /* the registry's entry for p.agg.name */
  size_t n;
  fedc_strategy *agg;
  int gpu_norm; /* the GPU aggregator applies the norm bound (gpu_norm_params below) */
  fedc_server_opt *opt;
  fedc_dp *dp;
  float *scratch; /* x + d for a modified update; the DP average delta */
  int32_t clipped, dp_unclipped;
  double dp_clip_used;
  /* fedc_pipeline_save's record, put back by fedc_pipeline_undo */
  int saved;
  float *opt_snap;
  size_t opt_snap_len;
  fedc_dp *dp_snap; /* a spare DP state of the same parameters */
  /* the share cap (see above): held updates, their counts, the largest
   * count folded at once, and the last finish's cut count */
  int32_t hold_cap, n_held, capped;
  float *held;     /* hold_cap updates in memory, or NULL: in held_fd */
  int held_fd;     /* large-model mode: the held updates in <spill_path>.held */
  char held_path[1060];
  int held_rc; /* a failed read or write of the held file: the round is lost */
  int spilled; /* FedAvg's sums are in a file: add_spilled, held_buf a slice */
  float *held_buf; /* large-model mode: one slice of a held update */
  uint64_t *held_n;
  int64_t *held_q; /* fold_held's fixed-point scratch (one slice), made on first use */
  uint64_t folded_max;
  /* the share cap's early-folded updates (see "Early folds under the share
   * cap" below): the hold_cap largest counts of updates folded as they
   * arrived, their spool files (owned) and the offsets of their values;
   * the largest count of one not kept; a slice of scratch for re-reading */
  int32_t n_early;
  uint64_t *early_n, *early_off, early_max;
  int *early_fd;
  float *early_w, *early_y;
  /* SCAFFOLD's server variate and save's copy of it (NULL otherwise) */
  fedc_scaffold_server *variates;
  float *var_snap;
};

void fedc_pipeline_params_fedavg(fedc_pipeline_params *p, int32_t max_updates) {
  memset(p, 0, sizeof *p);
  p->agg = (fedc_agg_params){.name = "fedavg", .max_updates = max_updates};
  p->opt = (fedc_server_opt_params){.name = "fedavg", .lr = 1.0};
  p->buffer_k = 10;
}

/*
 * [strategy] device = cuda | auto (agg/agg_device.c). The GPU aggregator
 * can apply the norm bound itself, on the device, when nothing else
 * conditions an update before it: no DP clip (DP clips and noises on the
 * CPU, then the GPU aggregates), no share cap (its held updates are folded
 * on the host), a synchronous strategy (FedBuff's deltas are conditioned
 * here). The aggregator's parameters then carry the bound, and updates go
 * to it as they came, after max_weight_delta's check here (add_gpu_norm).
 * A CPU aggregator (auto's fallback) ignores them.
 */
static void gpu_norm_params(const fedc_pipeline_params *p, const fedc_strategy_info *info,
                            fedc_agg_params *ap) {
  const uint32_t caps = info ? info->caps : 0;
  const int share = p->max_share > 0.0 && p->max_share < 1.0 && !p->dp_on &&
                    (caps & FEDC_STRATEGY_ADDITIVE);
  if (ap->device == FEDC_AGG_DEVICE_CPU || p->norm_bound <= 0.0 || p->dp_on || share ||
      (caps & FEDC_STRATEGY_ASYNC))
    return;
  ap->norm_bound = p->norm_bound;
  ap->norm_refuse = p->norm_refuse;
}

/* Close the early-folded updates' spool files and forget them. */
static void early_drop(fedc_pipeline *pl) {
  for (int32_t k = 0; k < pl->n_early; k++)
    if (pl->early_fd[k] >= 0) close(pl->early_fd[k]);
  pl->n_early = 0;
  pl->early_max = 0;
}

void fedc_pipeline_free(fedc_pipeline *pl) {
  if (pl == NULL) return;
  fedc_strategy_free(pl->agg);
  fedc_server_opt_free(pl->opt);
  if (pl->dp) fedc_dp_free(pl->dp);
  if (pl->dp_snap) fedc_dp_free(pl->dp_snap);
  fedc_free(pl->opt_snap);
  fedc_free(pl->scratch);
  fedc_free(pl->held);
  fedc_free(pl->held_buf);
  if (pl->held_fd > 0) {
    close(pl->held_fd);
    unlink(pl->held_path);
  }
  fedc_free(pl->held_n);
  fedc_free(pl->held_q);
  early_drop(pl);
  fedc_free(pl->early_n);
  fedc_free(pl->early_off);
  fedc_free(pl->early_fd);
  fedc_free(pl->early_w);
  fedc_free(pl->early_y);
  fedc_scaffold_server_free(pl->variates);
  fedc_free(pl->var_snap);
  fedc_free(pl);
}

/* Slices of a held update read from or written to the held file. */
#define HELD_SLICE ((size_t)1 << 16)

/* Large-model mode: the share cap's held updates go to <spill_path>.held,
 * update k at k n floats, instead of hold_cap model-sized buffers. */
static int held_file_open(fedc_pipeline *pl) {
  snprintf(pl->held_path, sizeof pl->held_path, "%s.held", pl->p.agg.spill_path);
  if (pl->held_buf == NULL && (pl->held_buf = fedc_malloc_array(HELD_SLICE, sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  pl->held_fd = open(pl->held_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (pl->held_fd < 0) {
    pl->held_fd = 0;
    return fedc_error_set(FEDC_EIO, "pipeline: cannot create %s: %s", pl->held_path,
                          strerror(errno));
  }
  return 0;
}

/* pread/pwrite all of len bytes at off of the held file. */
static int held_io(fedc_pipeline *pl, void *buf, size_t len, off_t off, int write) {
  size_t done = 0;
  while (done < len) {
    ssize_t k = write ? pwrite(pl->held_fd, (char *)buf + done, len - done, off + (off_t)done)
                      : pread(pl->held_fd, (char *)buf + done, len - done, off + (off_t)done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      return pl->held_rc = fedc_error_set(FEDC_EIO, "pipeline: cannot %s %s: %s",
                                          write ? "write" : "read", pl->held_path,
                                          k < 0 ? strerror(errno) : "short file");
    done += (size_t)k;
  }
  return 0;
}

int fedc_pipeline_new(const fedc_pipeline_params *p, size_t n,
                      fedc_pipeline **out) {
  *out = NULL;
  fedc_pipeline *pl = fedc_calloc(1, sizeof *pl);
  if (pl == NULL) return fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  pl->p = *p;
  pl->n = n;
  pl->info = p->agg.name ? fedc_strategy_lookup(p->agg.name) : NULL;
  fedc_agg_params ap = p->agg;
  gpu_norm_params(p, pl->info, &ap);
  int rc = fedc_strategy_new_params(&ap, n, &pl->agg);
  pl->gpu_norm = rc == 0 && ap.norm_bound > 0.0 && fedc__strategy_on_gpu(pl->agg);
  if (rc == 0) rc = fedc_server_opt_new(&p->opt, n, &pl->opt);
  if (rc == 0 && p->dp_on) rc = fedc_dp_new(&p->dp, &pl->dp);
  if (rc == 0 && (pl->scratch = fedc_malloc_array(n, sizeof(float))) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  pl->spilled = rc == 0 && fedc__fedavg_spilled(pl->agg);
  if (pl->spilled && (pl->held_buf = fedc_malloc_array(HELD_SLICE, sizeof(float))) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  if (rc == 0 && p->max_share > 0.0 && p->max_share < 1.0 && !p->dp_on &&
      fedc_strategy_is_additive(pl->agg)) {
    pl->hold_cap = (int32_t)floor(1.0 / p->max_share);
    pl->held_n = fedc_calloc((size_t)pl->hold_cap, sizeof(uint64_t));
    if (p->agg.spill_path) rc = held_file_open(pl);
    else pl->held = fedc_malloc_array((size_t)pl->hold_cap * n, sizeof(float));
    pl->early_n = fedc_calloc((size_t)pl->hold_cap, sizeof(uint64_t));
    pl->early_off = fedc_calloc((size_t)pl->hold_cap, sizeof(uint64_t));
    pl->early_fd = fedc_calloc((size_t)pl->hold_cap, sizeof(int));
    pl->early_w = fedc_malloc_array(HELD_SLICE, sizeof(float));
    pl->early_y = fedc_malloc_array(HELD_SLICE, sizeof(float));
    if (rc == 0 && ((pl->held == NULL && pl->held_fd <= 0) || pl->held_n == NULL ||
                    !pl->early_n || !pl->early_off || !pl->early_fd || !pl->early_w ||
                    !pl->early_y))
      rc = fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory for the share cap");
  }
  if (rc == 0 && pl->info && (pl->info->caps & FEDC_STRATEGY_VARIATES)) {
    rc = fedc_scaffold_server_new(n, p->variate_total >= 1.0 ? p->variate_total : 1.0,
                                  &pl->variates);
    if (rc == 0 && (pl->var_snap = fedc_malloc_array(n ? n : 1, sizeof(float))) == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  }
  if (rc != 0) {
    fedc_pipeline_free(pl);
    return rc;
  }
  *out = pl;
  return 0;
}

fedc_strategy *fedc_pipeline_aggregator(fedc_pipeline *pl) { return pl->agg; }
int fedc_pipeline_on_gpu(const fedc_pipeline *pl) { return fedc__strategy_on_gpu(pl->agg); }
const fedc_strategy_info *fedc_pipeline_strategy(const fedc_pipeline *pl) { return pl->info; }
int fedc_pipeline_dp_on(const fedc_pipeline *pl) { return pl->dp != NULL; }

int fedc_pipeline_begin(fedc_pipeline *pl, const float *x) {
  pl->held_rc = 0;
  pl->clipped = pl->dp_unclipped = pl->n_held = pl->capped = 0;
  pl->folded_max = 0;
  early_drop(pl);
  pl->dp_clip_used = pl->dp ? fedc_dp_clip_norm(pl->dp) : NAN;
  if (pl->variates) {
    int rc = fedc_scaffold_server_begin(pl->variates);
    if (rc != 0) return rc;
  }
  return pl->agg->ops->begin(pl->agg, x, pl->n);
}

/*
 * One update's delta d (d_i = w_i - x_i, or delta_i when w is NULL) through
 * the per-update stages: the norm bound (clip or refuse), the DP clip, then
 * a weight; pl->scratch gets x + the result, for the aggregator. Non-finite
 * values and an update over a refusing bound are refused before anything
 * changes. *clipped and *unclipped say what the two clips did.
 */
static int condition_checked(fedc_pipeline *pl, const float *x, const float *w,
                             const float *delta, double weight, size_t n, int *clipped,
                             int *unclipped);

/*
 * The common case, an update's weights without a norm bound or DP (the
 * norm is then not needed): one branch-free pass checks every weight (a
 * non-finite weight, or one over max_weight_delta, fails |w - x| <= limit)
 * and writes x + (float)(w - x), the values the general path writes. Any
 * failure goes to the general path, which writes them again, finds the
 * first bad weight and says so. The pass vectorizes; the general path's
 * running sum of squares does not.
 */
static int condition(fedc_pipeline *pl, const float *x, const float *w, const float *delta,
                     double weight, size_t n, int *clipped, int *unclipped) {
  if (w == NULL || pl->p.norm_bound > 0.0 || pl->dp != NULL || weight != 1.0)
    return condition_checked(pl, x, w, delta, weight, n, clipped, unclipped);
  const double limit = pl->p.max_delta > 0.0 ? pl->p.max_delta : 1.7976931348623157e308;
  int ok = 1;
  float *y = pl->scratch;
#pragma omp simd reduction(& : ok) /* gcc vectorizes the int reduction only when told */
  for (size_t i = 0; i < n; i++) {
    double d = (double)w[i] - (double)x[i];
    ok &= fabs(d) <= limit;
    y[i] = (float)d + x[i];
  }
  if (!ok) return condition_checked(pl, x, w, delta, weight, n, clipped, unclipped);
  *clipped = *unclipped = 0;
  return 0;
}

static int condition_checked(fedc_pipeline *pl, const float *x, const float *w,
                             const float *delta, double weight, size_t n, int *clipped,
                             int *unclipped) {
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    const float v = w ? w[i] : delta[i];
    if (!isfinite(v))
      return fedc_error_set(FEDC_ENONFINITE, "update %s %zu is %g", w ? "weight" : "delta", i,
                            (double)v);
    double d = w ? (double)w[i] - (double)x[i] : (double)delta[i];
    if (pl->p.max_delta > 0.0 && fabs(d) > pl->p.max_delta)
      return fedc_error_set(FEDC_ERANGE,
                            "update's weight %zu is %.6g from %s, over "
                            "[strategy] max_weight_delta = %.6g",
                            i, fabs(d), w ? "the global model's" : "its base model's",
                            pl->p.max_delta);
    ss += d * d;
  }
  double norm = sqrt(ss), scale = 1.0;
  *clipped = *unclipped = 0;
  if (pl->p.norm_bound > 0.0 && norm > pl->p.norm_bound) {
    if (pl->p.norm_refuse)
      return fedc_error_set(FEDC_ERANGE,
                            "update's distance from %s %.6g exceeds "
                            "[strategy] norm_bound = %.6g",
                            w ? "the global model" : "its base model", norm, pl->p.norm_bound);
    scale = pl->p.norm_bound / norm;
    *clipped = 1;
  }
  float *y = pl->scratch;
  for (size_t i = 0; i < n; i++) {
    double d = w ? (double)w[i] - (double)x[i] : (double)delta[i];
    y[i] = (float)(d * scale);
  }
  if (pl->dp && !pl->p.dp.noise_at_sites) { /* else the sites clipped */
    double dnorm;
    int rc = fedc_dp_clip(pl->dp, y, n, unclipped, &dnorm);
    if (rc != 0) return rc;
  }
  if (weight == 1.0)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
  else
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)x[i] + weight * (double)y[i]);
  return 0;
}

#define W_LIMIT 2147483648.0 /* fedavg's bound on a weight (agg_fedavg.c) */
#define TWO_POW_FRAC 4294967296.0 /* fedavg's fixed-point scale, 2^32 */

/* Fold (sign +1) or take out (-1) held update k with weight m into the
 * additive aggregator's fixed-point sum, as fedavg's add does, a slice at a
 * time: sums in memory (CPU or the GPU's host mirror) through the fold's
 * own kernels (the same exact integers), sums in a file through
 * fedc__fedavg_fold_range; held updates in a file are read a slice at a
 * time. Only an I/O failure of large-model mode's files can fail it. */
static int fold_held(fedc_pipeline *pl, int32_t k, uint64_t m, int sign) {
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(pl->agg, &acc, &total);
  const size_t n = pl->n;
  if (pl->held_q == NULL) pl->held_q = fedc_malloc_array(HELD_SLICE, sizeof(int64_t));
  const fedc_kernels *kern = fedc_kernels_get();
  for (size_t i = 0; i < n; i += HELD_SLICE) {
    size_t len = n - i < HELD_SLICE ? n - i : HELD_SLICE;
    const float *w = pl->held ? pl->held + (size_t)k * n + i : pl->held_buf;
    if (pl->held == NULL) {
      int rc = held_io(pl, pl->held_buf, len * sizeof(float),
                       (off_t)(((size_t)k * n + i) * sizeof(float)), 0);
      if (rc != 0) return rc;
    }
    if (acc == NULL) {
      fedc__fedavg_fold_range(pl->agg, i, w, len, (int64_t)m * sign);
    } else if (pl->held_q != NULL &&
               kern->fx_convert(pl->held_q, w, len, TWO_POW_FRAC, W_LIMIT) == len) {
      /* a held update was checked, so the conversion passes */
      kern->fx_fold(acc + i, pl->held_q, len, (int64_t)m * sign);
    } else { /* the scratch could not be had */
      const __int128 mm = (__int128)m * sign;
      for (size_t j = 0; j < len; j++)
        acc[i + j] += mm * (int64_t)nearbyint((double)w[j] * TWO_POW_FRAC);
    }
  }
  *total = sign > 0 ? *total + m : *total - m;
  return 0;
}

/* Keep update y as held update k (memory or the held file). */
static int held_put(fedc_pipeline *pl, int32_t k, const float *y) {
  if (pl->held) {
    memcpy(pl->held + (size_t)k * pl->n, y, pl->n * sizeof(float));
    return 0;
  }
  int rc = held_io(pl, (void *)(uintptr_t)y, pl->n * sizeof(float),
                   (off_t)((size_t)k * pl->n * sizeof(float)), 1);
  for (size_t i = 0; rc == 0 && i < pl->n; i += HELD_SLICE) /* read: drop a mapping's pages */
    fedc__mapped_drop(y + i, (pl->n - i < HELD_SLICE ? pl->n - i : HELD_SLICE) * sizeof(float));
  return rc;
}

/* Hold update y (n_samples) aside for the share cap, or fold it (or the
 * held update with the smallest count, which it replaces) at once. */
static int hold_or_fold(fedc_pipeline *pl, const float *y, uint64_t n_samples) {
  if (pl->held_rc) return pl->held_rc;
  if (n_samples == 0 || n_samples > (1ull << 40))
    return pl->agg->ops->add(pl->agg, y, pl->n, n_samples); /* its refusal */
  int ok = 1;
#pragma omp simd reduction(& : ok)
  for (size_t i = 0; i < pl->n; i++) ok &= fabs((double)y[i]) < W_LIMIT; /* false for NaN, inf */
  if (!ok) return pl->agg->ops->add(pl->agg, y, pl->n, n_samples); /* its refusal */
  int32_t k = pl->n_held;
  if (k == pl->hold_cap) { /* full: the smallest held count gives way */
    k = 0;
    for (int32_t i = 1; i < pl->n_held; i++)
      if (pl->held_n[i] < pl->held_n[k]) k = i;
    if (n_samples <= pl->held_n[k]) {
      int rc = pl->agg->ops->add(pl->agg, y, pl->n, n_samples);
      if (rc == 0 && n_samples > pl->folded_max) pl->folded_max = n_samples;
      return rc;
    }
    /* the smallest is folded first, then y takes its place: a failure of
     * either (large-model mode's files) leaves the round unusable */
    int rc = fold_held(pl, k, pl->held_n[k], +1);
    if (rc != 0) return rc;
    if (pl->held_n[k] > pl->folded_max) pl->folded_max = pl->held_n[k];
    rc = held_put(pl, k, y);
    if (rc != 0) return rc;
  } else {
    int rc = held_put(pl, k, y);
    if (rc != 0) return rc;
    pl->n_held++;
  }
  pl->held_n[k] = n_samples;
  return 0;
}

void fedc_pipeline_flush(fedc_pipeline *pl) {
  for (int32_t k = 0; k < pl->n_held; k++) {
    fold_held(pl, k, pl->held_n[k], +1);
    if (pl->held_n[k] > pl->folded_max) pl->folded_max = pl->held_n[k];
  }
  pl->n_held = 0;
  /* early-folded updates are in the sums with their full weights already */
  for (int32_t k = 0; k < pl->n_early; k++)
    if (pl->early_n[k] > pl->folded_max) pl->folded_max = pl->early_n[k];
  if (pl->early_max > pl->folded_max) pl->folded_max = pl->early_max;
  early_drop(pl);
}

/*
 * The held updates' weights under the share cap (see the top of the file),
 * for the h held counts hn, the total of every other update's count and
 * the largest of them: sort the held counts down, find the smallest j
 * whose water level t = s R / (1 - s j) is at least the (j+1)-th count (or
 * the largest folded count), and cut the j largest to floor(t). No j:
 * every update is held; they get equal weights.
 */
static void share_weights(double s, const uint64_t *hn, int32_t h, uint64_t folded_total,
                          uint64_t folded_max, uint64_t *wt, int32_t *n_cut) {
  int32_t ord[h > 0 ? h : 1];
  for (int32_t i = 0; i < h; i++) {
    ord[i] = i;
    wt[i] = hn[i];
  }
  for (int32_t i = 1; i < h; i++) /* insertion sort, counts down */
    for (int32_t j = i; j > 0 && hn[ord[j]] > hn[ord[j - 1]]; j--) {
      int32_t t = ord[j];
      ord[j] = ord[j - 1];
      ord[j - 1] = t;
    }
  *n_cut = 0;
  uint64_t total = folded_total;
  for (int32_t i = 0; i < h; i++) total += hn[i];
  if (h == 0 || (double)hn[ord[0]] <= s * (double)total) return;
  uint64_t rest = total;
  for (int32_t j = 1; j <= h && s * j < 1.0; j++) {
    rest -= hn[ord[j - 1]];
    double t = s * (double)rest / (1.0 - s * j);
    uint64_t next = j < h ? hn[ord[j]] : folded_max;
    if (t >= (double)next) {
      uint64_t c = (uint64_t)floor(t);
      if (c < 1) c = 1;
      for (int32_t i = 0; i < j; i++) wt[ord[i]] = c;
      *n_cut = j;
      return;
    }
  }
  for (int32_t i = 0; i < h; i++) wt[i] = 1; /* too few updates: equal */
  *n_cut = h;
}

/* Conditioned update y (pl->scratch, or the client's own w) into the
 * aggregator: held aside under the share cap, else folded. */
static int fold(fedc_pipeline *pl, const float *y, uint64_t n_samples, int one_client) {
  if (one_client && pl->hold_cap > 0) return hold_or_fold(pl, y, n_samples);
  int rc = pl->agg->ops->add(pl->agg, y, pl->n, n_samples);
  if (rc == 0 && n_samples > pl->folded_max) pl->folded_max = n_samples;
  return rc;
}

/* The GPU aggregator bounds the norm (gpu_norm_params): only max_weight_delta
 * is checked here, in one read, with condition's words. */
static int add_gpu_norm(fedc_pipeline *pl, const float *x, const float *w, uint64_t n_samples) {
  for (size_t i = 0; pl->p.max_delta > 0.0 && i < pl->n; i++) {
    double d = fabs((double)w[i] - (double)x[i]);
    if (d > pl->p.max_delta)
      return fedc_error_set(FEDC_ERANGE,
                            "update's weight %zu is %.6g from the global model's, over "
                            "[strategy] max_weight_delta = %.6g",
                            i, d, pl->p.max_delta);
  }
  int rc = pl->agg->ops->add(pl->agg, w, pl->n, n_samples);
  if (rc != 0) return rc;
  if (n_samples > pl->folded_max) pl->folded_max = n_samples;
  pl->clipped += fedc__strategy_gpu_clipped_last(pl->agg);
  return 0;
}

/*
 * Large-model mode (sums in a file): an update conditioned only by
 * max_weight_delta (or by nothing) goes through in slices, so that no
 * model-sized copy is made. A read-only pass checks every weight first,
 * as condition and fedavg's add would (the same refusals and messages,
 * for the first bad weight), then y = x + (float)(w - x), the values
 * condition writes, is made a slice at a time and folded into the sums or
 * written to the held file, as fold would: the same integers. Each slice
 * of w is dropped once read when w is a registered mapping.
 */
static int add_spilled(fedc_pipeline *pl, const float *x, const float *w, uint64_t n_samples,
                       int one_client) {
  const size_t n = pl->n;
  const double limit = pl->p.max_delta > 0.0 ? pl->p.max_delta : 1.7976931348623157e308;
  int ok = 1;
  for (size_t i = 0; i < n && ok; i += HELD_SLICE) {
    size_t len = n - i < HELD_SLICE ? n - i : HELD_SLICE;
#pragma omp simd reduction(& : ok)
    for (size_t j = i; j < i + len; j++) {
      double d = (double)w[j] - (double)x[j];
      ok &= fabs(d) <= limit && fabs((double)((float)d + x[j])) < W_LIMIT;
    }
    fedc__mapped_drop(w + i, len * sizeof *w);
  }
  if (!ok) /* the first bad weight, with the words of the path it would take */
    for (size_t i = 0; i < n; i++) {
      double d = (double)w[i] - (double)x[i], y = (double)((float)d + x[i]);
      if (!isfinite(w[i]))
        return fedc_error_set(FEDC_ENONFINITE, "update %s %zu is %g", "weight", i, (double)w[i]);
      if (fabs(d) > limit)
        return fedc_error_set(FEDC_ERANGE,
                              "update's weight %zu is %.6g from %s, over "
                              "[strategy] max_weight_delta = %.6g",
                              i, fabs(d), "the global model's", pl->p.max_delta);
      if (!(fabs(y) < W_LIMIT)) {
        if (!isfinite(y)) return fedc_error_set(FEDC_ENONFINITE, "fedavg: weight %zu is %g", i, y);
        return fedc_error_set(FEDC_ERANGE, "fedavg: weight %zu = %g is outside +-2^31", i, y);
      }
    }
  if (n_samples == 0 || n_samples > (1ull << 40))
    return fedc_error_set(FEDC_ERANGE, "fedavg: sample count %llu outside 1..2^40",
                          (unsigned long long)n_samples);
  if (pl->held_rc) return pl->held_rc;
  /* where y goes: the sums (weight n_samples), or held slot k (hold_or_fold's choice) */
  int32_t k = -1;
  if (one_client && pl->hold_cap > 0) {
    if (pl->n_held < pl->hold_cap) {
      k = pl->n_held;
    } else {
      int32_t s = 0;
      for (int32_t i = 1; i < pl->n_held; i++)
        if (pl->held_n[i] < pl->held_n[s]) s = i;
      if (n_samples > pl->held_n[s]) {
        int rc = fold_held(pl, s, pl->held_n[s], +1);
        if (rc != 0) return rc;
        if (pl->held_n[s] > pl->folded_max) pl->folded_max = pl->held_n[s];
        k = s;
      }
    }
  }
  float *y = pl->held_buf;
  for (size_t i = 0; i < n; i += HELD_SLICE) {
    size_t len = n - i < HELD_SLICE ? n - i : HELD_SLICE;
    for (size_t j = 0; j < len; j++) {
      double d = (double)w[i + j] - (double)x[i + j];
      y[j] = (float)d + x[i + j];
    }
    fedc__mapped_drop(w + i, len * sizeof *w);
    if (k < 0) {
      fedc__fedavg_fold_range(pl->agg, i, y, len, (int64_t)n_samples);
    } else {
      int rc = held_io(pl, y, len * sizeof *y, (off_t)(((size_t)k * n + i) * sizeof *y), 1);
      if (rc != 0) return rc;
    }
  }
  if (k < 0) {
    __int128 *acc;
    uint64_t *total;
    fedc_fedavg_state(pl->agg, &acc, &total);
    *total += n_samples;
    if (n_samples > pl->folded_max) pl->folded_max = n_samples;
  } else {
    if (k == pl->n_held) pl->n_held++;
    pl->held_n[k] = n_samples;
  }
  return 0;
}

static int add_update(fedc_pipeline *pl, const float *x, const float *w, size_t n,
                      uint64_t n_samples, int one_client) {
  if (n != pl->n)
    return fedc_error_set(FEDC_ESHAPE, "update has %zu weights, model has %zu", n, pl->n);
  if (one_client && pl->p.max_samples > 0 && n_samples > pl->p.max_samples)
    return fedc_error_set(FEDC_ERANGE,
                          "update claims %llu samples, over [server] max_samples = %llu",
                          (unsigned long long)n_samples,
                          (unsigned long long)pl->p.max_samples);
  if (pl->gpu_norm) return add_gpu_norm(pl, x, w, n_samples);
  if (pl->spilled && pl->p.norm_bound <= 0.0 && pl->dp == NULL)
    return add_spilled(pl, x, w, n_samples, one_client);
  if (pl->p.norm_bound <= 0.0 && pl->dp == NULL && pl->p.max_delta <= 0.0)
    return fold(pl, w, n_samples, one_client);
  int clipped, unclipped;
  int rc = condition(pl, x, w, NULL, 1.0, n, &clipped, &unclipped);
  if (rc != 0) return rc;
  /* DP-FedAvg averages clipped updates with equal weights: each client's
   * influence is bounded by S whatever its sample count */
  rc = fold(pl, pl->scratch, pl->dp ? 1 : n_samples, one_client);
  if (rc != 0) return rc;
  pl->clipped += clipped;
  pl->dp_unclipped += unclipped;
  return 0;
}

int fedc_pipeline_add(fedc_pipeline *pl, const float *x, const float *w,
                      size_t n, uint64_t n_samples) {
  return add_update(pl, x, w, n, n_samples, 1);
}

int fedc_pipeline_add_sum(fedc_pipeline *pl, const float *x, const float *w,
                          size_t n, uint64_t n_samples) {
  return add_update(pl, x, w, n, n_samples, 0);
}

/*
 * FedBuff's delta: conditioned like a synchronous update, weighted by its
 * staleness, and folded unweighted by samples (FedBuff averages the
 * buffer's deltas), as x + weight * d: the aggregator's mean minus x is
 * then the buffer's mean weighted delta, and the server step with
 * [strategy] server_lr completes Nguyen et al.'s update.
 */
int fedc_pipeline_add_async(fedc_pipeline *pl, const float *x, const float *delta, size_t n,
                            double weight) {
  if (n != pl->n)
    return fedc_error_set(FEDC_ESHAPE, "update has %zu weights, model has %zu", n, pl->n);
  if (!(isfinite(weight) && weight > 0.0))
    return fedc_error_set(FEDC_EINVAL, "pipeline: staleness weight %g", weight);
  int clipped, unclipped;
  int rc = condition(pl, x, NULL, delta, weight, n, &clipped, &unclipped);
  if (rc != 0) return rc;
  rc = pl->agg->ops->add(pl->agg, pl->scratch, n, 1);
  if (rc != 0) return rc;
  pl->clipped += clipped;
  pl->dp_unclipped += unclipped;
  return 0;
}

/*
 * Early-folded update k's values read again from its spool file and folded
 * with weight m (negative: taken out), a slice at a time, as its early
 * folds made them (against base, the round's global model); the sums'
 * total moves by m. A failed read fails the round (held_rc).
 */
static int early_adjust(fedc_pipeline *pl, const float *base, int32_t k, int64_t m) {
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(pl->agg, &acc, &total);
  for (size_t i = 0; i < pl->n; i += HELD_SLICE) {
    size_t len = pl->n - i < HELD_SLICE ? pl->n - i : HELD_SLICE, done = 0;
    const off_t at = (off_t)(pl->early_off[k] + i * sizeof(float));
    while (done < len * sizeof(float)) {
      ssize_t r = pread(pl->early_fd[k], (char *)pl->early_w + done, len * sizeof(float) - done,
                        at + (off_t)done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        return pl->held_rc = fedc_error_set(FEDC_EIO,
                                            "pipeline: cannot read an early-folded update "
                                            "again for the share cap: %s",
                                            r < 0 ? strerror(errno) : "short file");
      done += (size_t)r;
    }
    if (fedc__pipeline_fold_early(pl, base, i, pl->early_w, len, m, pl->early_y) != 0)
      return pl->held_rc = fedc_error_set(FEDC_EIO, "pipeline: an early-folded update "
                                                    "changed on disk");
  }
  *total = (uint64_t)((int64_t)*total + m);
  return 0;
}

/*
 * The share cap at finish (see the top of the file), over the updates held
 * aside (values kept, not in the sums) and the early-folded ones kept as
 * candidates (in the sums at their full counts): the hold_cap largest
 * counts of the two are the ones today's path would hold, every other one
 * being folded at its count (a held update not among them is folded at
 * its count for the read, as hold_or_fold would have done on its
 * arrival); the folded total and the largest folded count are the same
 * share_weights would see, so the weights are the same. Each update is
 * then put at its weight (held: folded with it; early: adjusted by weight
 * - count, which is 0 unless the cap cuts it), the aggregate is read and
 * everything is put back, so that a prepare can be repeated.
 */
typedef struct cap_entry {
  uint64_t n;
  int32_t k, early;
} cap_entry;

static int capped_finish(fedc_pipeline *pl, const float *base, float *avg, size_t n) {
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(pl->agg, &acc, &total);
  const int32_t nc = pl->n_held + pl->n_early;
  const int32_t h = nc < pl->hold_cap ? nc : pl->hold_cap;
  cap_entry c[nc];
  for (int32_t k = 0; k < pl->n_held; k++) c[k] = (cap_entry){pl->held_n[k], k, 0};
  for (int32_t k = 0; k < pl->n_early; k++)
    c[pl->n_held + k] = (cap_entry){pl->early_n[k], k, 1};
  for (int32_t i = 1; i < nc; i++) /* insertion sort, counts down (stable) */
    for (int32_t j = i; j > 0 && c[j].n > c[j - 1].n; j--) {
      cap_entry t = c[j];
      c[j] = c[j - 1];
      c[j - 1] = t;
    }
  uint64_t ftotal = *total, fmax = pl->folded_max > pl->early_max ? pl->folded_max
                                                                    : pl->early_max;
  uint64_t hn[h > 0 ? h : 1], wt[h > 0 ? h : 1], wk[nc];
  for (int32_t i = 0; i < nc; i++) {
    if (i < h) {
      hn[i] = c[i].n;
      if (c[i].early) ftotal -= c[i].n;
    } else {
      if (c[i].n > fmax) fmax = c[i].n;
      if (!c[i].early) ftotal += c[i].n;
    }
  }
  share_weights(pl->p.max_share, hn, h, ftotal, fmax, wt, &pl->capped);
  for (int32_t i = 0; i < nc; i++) wk[i] = i < h ? wt[i] : c[i].n;
  int need_base = pl->spilled || pl->p.max_delta > 0.0;
  for (int32_t i = 0; i < nc; i++)
    if (c[i].early && wk[i] != c[i].n && need_base && base == NULL)
      return fedc_error_set(FEDC_EINVAL, "pipeline: the share cap cuts an early-folded "
                                         "update, and the round's model is not given");
  for (int32_t i = 0; i < nc; i++) {
    if (!c[i].early) fold_held(pl, c[i].k, wk[i], +1);
    else if (wk[i] != c[i].n) early_adjust(pl, base, c[i].k, (int64_t)wk[i] - (int64_t)c[i].n);
  }
  int rc = pl->held_rc ? pl->held_rc : pl->agg->ops->finish(pl->agg, avg, n);
  for (int32_t i = 0; i < nc; i++) {
    if (!c[i].early) fold_held(pl, c[i].k, wk[i], -1);
    else if (wk[i] != c[i].n) early_adjust(pl, base, c[i].k, (int64_t)c[i].n - (int64_t)wk[i]);
  }
  if (rc == 0 && pl->held_rc) rc = pl->held_rc;
  return rc;
}

int fedc_pipeline_finish(fedc_pipeline *pl, int32_t round, float *x, size_t n,
                         int32_t m, fedc_pipeline_round *out) {
  return fedc__pipeline_finish_base(pl, round, x, NULL, n, m, out);
}

int fedc__pipeline_finish_base(fedc_pipeline *pl, int32_t round, float *x, const float *base,
                               size_t n, int32_t m, fedc_pipeline_round *out) {
  /* a step that sets x to the aggregate (plain FedAvg, FedBuff at
   * server_lr 1, no DP): the aggregate goes straight into x, and the step
   * only checks it, so no second model-sized buffer is written */
  const int direct = pl->dp == NULL && pl->p.opt.lr == 1.0 &&
                     fedc_server_opt_state_len(pl->opt) == 0; /* the averaging step */
  float *avg = direct ? x : pl->scratch;
  int rc;
  if (pl->held_rc) return pl->held_rc;
  if (pl->n_held > 0 || pl->n_early > 0) { /* the share cap: fold, read, take out again */
    rc = capped_finish(pl, base, avg, n);
  } else {
    rc = pl->agg->ops->finish(pl->agg, avg, n);
  }
  if (rc != 0) return rc;
  fedc_pipeline_round r = {.clipped = pl->clipped, .capped = pl->capped,
                           .dp_unclipped = pl->dp_unclipped,
                           .epsilon = NAN, .delta = NAN, .clip_norm = NAN};
  if (pl->dp) {
    for (size_t i = 0; i < n; i++) avg[i] -= x[i];
    double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
    if (q > 1.0) q = 1.0;
    rc = fedc_dp_finish_round(pl->dp, round, avg, n, m, pl->dp_unclipped, q);
    if (rc != 0) return rc;
    for (size_t i = 0; i < n; i++) avg[i] += x[i];
    double order;
    fedc_dp_epsilon(pl->dp, &r.epsilon, &order);
    r.delta = pl->p.dp.delta;
    r.clip_norm = pl->dp_clip_used;
  }
  rc = fedc_server_opt_step(pl->opt, x, avg, n);
  if (rc == 0 && pl->variates) rc = fedc_scaffold_server_finish(pl->variates);
  if (rc != 0) return rc;
  if (out) *out = r;
  return 0;
}

int fedc_pipeline_save(fedc_pipeline *pl) {
  pl->saved = 0;
  size_t olen = fedc_server_opt_state_len(pl->opt);
  if (olen > pl->opt_snap_len) {
    float *o = fedc_realloc(pl->opt_snap, olen * sizeof(float));
    if (o == NULL) return fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
    pl->opt_snap = o;
    pl->opt_snap_len = olen;
  }
  if (pl->dp && pl->dp_snap == NULL) {
    int rc = fedc_dp_new(&pl->p.dp, &pl->dp_snap);
    if (rc != 0) return rc;
  }
  int rc = olen > 0 ? fedc_server_opt_state_get(pl->opt, pl->opt_snap, olen) : 0;
  if (rc == 0 && pl->dp) rc = fedc_dp_copy_state(pl->dp_snap, pl->dp);
  if (rc != 0) return rc;
  if (pl->variates)
    memcpy(pl->var_snap, fedc_scaffold_server_variate(pl->variates), pl->n * sizeof(float));
  pl->saved = 1;
  return 0;
}

int fedc_pipeline_undo(fedc_pipeline *pl) {
  if (!pl->saved) return fedc_error_set(FEDC_ESTATE, "pipeline: nothing saved to undo");
  size_t olen = fedc_server_opt_state_len(pl->opt);
  int rc = olen > 0 ? fedc_server_opt_state_set(pl->opt, pl->opt_snap, olen) : 0;
  if (rc == 0 && pl->dp) rc = fedc_dp_copy_state(pl->dp, pl->dp_snap);
  if (rc == 0 && pl->variates) rc = fedc_scaffold_server_set(pl->variates, pl->var_snap, pl->n);
  return rc;
}

int fedc_pipeline_budget_exhausted(const fedc_pipeline *pl) {
  if (pl->dp == NULL || pl->p.dp.epsilon_budget <= 0.0) return 0;
  double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
  int exceed = 0;
  /* if the accountant cannot say, do not spend: stop */
  if (fedc_dp_would_exceed(pl->dp, q > 1.0 ? 1.0 : q, &exceed) != 0) return 1;
  return exceed;
}

double fedc_pipeline_epsilon(const fedc_pipeline *pl) {
  double eps = NAN, order;
  if (pl->dp) fedc_dp_epsilon(pl->dp, &eps, &order);
  return eps;
}

int fedc_pipeline_account_release(fedc_pipeline *pl, double sigma) {
  return pl->dp == NULL ? 0 : fedc_dp_account_release(pl->dp, sigma);
}

int fedc_pipeline_restore_privacy(fedc_pipeline *pl, double clip_norm,
                                  int32_t rounds) {
  if (pl->dp == NULL || rounds <= 0) return 0;
  double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
  return fedc_dp_restore(pl->dp, clip_norm, q > 1.0 ? 1.0 : q, rounds);
}

/* The optimizer's state, then SCAFFOLD's server variate when there is one. */
size_t fedc_pipeline_opt_state_len(const fedc_pipeline *pl) {
  return fedc_server_opt_state_len(pl->opt) + (pl->variates ? pl->n : 0);
}

int fedc_pipeline_opt_state_get(const fedc_pipeline *pl, float *buf, size_t len) {
  size_t olen = fedc_server_opt_state_len(pl->opt);
  if (pl->variates == NULL) return fedc_server_opt_state_get(pl->opt, buf, len);
  if (len != olen + pl->n)
    return fedc_error_set(FEDC_ESHAPE, "pipeline: state of %zu floats, want %zu", len,
                          olen + pl->n);
  int rc = olen > 0 ? fedc_server_opt_state_get(pl->opt, buf, olen) : 0;
  if (rc == 0)
    memcpy(buf + olen, fedc_scaffold_server_variate(pl->variates), pl->n * sizeof(float));
  return rc;
}

int fedc_pipeline_opt_state_set(fedc_pipeline *pl, const float *buf, size_t len) {
  size_t olen = fedc_server_opt_state_len(pl->opt);
  if (pl->variates == NULL) return fedc_server_opt_state_set(pl->opt, buf, len);
  if (len != olen + pl->n)
    return fedc_error_set(FEDC_ESHAPE, "pipeline: state of %zu floats, want %zu", len,
                          olen + pl->n);
  int rc = fedc_scaffold_server_set(pl->variates, buf + olen, pl->n);
  if (rc == 0 && olen > 0) rc = fedc_server_opt_state_set(pl->opt, buf, olen);
  return rc;
}

const float *fedc_pipeline_variate(const fedc_pipeline *pl) {
  return pl->variates ? fedc_scaffold_server_variate(pl->variates) : NULL;
}

/* What fedc_scaffold_server_add would refuse, checked without folding. */
int fedc_pipeline_check_variate(const fedc_pipeline *pl, const float *delta, size_t n) {
  if (pl->variates == NULL)
    return fedc_error_set(FEDC_ESTATE, "strategy %s keeps no control variates",
                          pl->info ? pl->info->name : "?");
  if (n != pl->n)
    return fedc_error_set(FEDC_ESHAPE, "variate delta has %zu weights, model has %zu", n,
                          pl->n);
  for (size_t i = 0; i < n; i++) {
    double v = (double)delta[i];
    if (!isfinite(v))
      return fedc_error_set(FEDC_ENONFINITE, "variate delta %zu is %g", i, v);
    if (fabs(v) >= W_LIMIT)
      return fedc_error_set(FEDC_ERANGE, "variate delta %zu = %g is outside +-2^31", i, v);
  }
  return 0;
}

int fedc_pipeline_add_variate(fedc_pipeline *pl, const float *delta, size_t n,
                              uint64_t n_samples) {
  int rc = fedc_pipeline_check_variate(pl, delta, n);
  return rc == 0 ? fedc_scaffold_server_add(pl->variates, delta, n, n_samples) : rc;
}

/* ---- early folds (a chunked upload folded as its bytes arrive) ------------ */

/*
 * The pipelines whose fold of one update acts weight by weight and needs
 * nothing but the update, its sample count and the global model: plain
 * FedAvg's CPU sums (in memory or in a file) with any server optimizer
 * that steps on the aggregate, and max_weight_delta (a per-weight check
 * against the global model), with or without the share cap (an update it
 * cuts is adjusted at finish: fedc__pipeline_add_folded); not the norm
 * bound (a norm over the whole update), DP (its clip), FedBuff, SCAFFOLD,
 * robust strategies or the GPU's sums.
 */
int fedc__pipeline_fold_early_ok(const fedc_pipeline *pl, uint64_t n_samples) {
  const uint32_t caps = pl->info ? pl->info->caps : 0;
  if (!(caps & FEDC_STRATEGY_ADDITIVE) || (caps & (FEDC_STRATEGY_ASYNC | FEDC_STRATEGY_VARIATES)))
    return 0;
  if (!fedc_strategy_is_additive(pl->agg) || strcmp(pl->agg->ops->name, "fedavg") != 0 ||
      fedc__strategy_on_gpu(pl->agg) || pl->gpu_norm || pl->variates)
    return 0;
  if (pl->dp != NULL || pl->p.norm_bound > 0.0) return 0;
  if (n_samples == 0 || n_samples > (1ull << 40)) return 0;
  return pl->p.max_samples == 0 || n_samples <= pl->p.max_samples;
}

/*
 * Weights [off, off + len) of one update: the values the whole update's
 * add would fold (w itself for in-memory sums without max_weight_delta,
 * else x + (float)(w - x), as condition and add_spilled make them) into y,
 * checked as they would be (finite, |w - x| <= max_weight_delta, inside
 * FedAvg's +-2^31) when m > 0, then folded with weight m (negative: taken
 * out again, exactly). FEDC_ENONFINITE / FEDC_ERANGE, with nothing folded,
 * for a bad weight; the update's own add then finds it and says so.
 */
int fedc__pipeline_fold_early(fedc_pipeline *pl, const float *x, size_t off, const float *w,
                              size_t len, int64_t m, float *y) {
  const int raw = !pl->spilled && pl->p.max_delta <= 0.0;
  const double limit = pl->p.max_delta > 0.0 ? pl->p.max_delta : 1.7976931348623157e308;
  int ok = 1;
  if (raw) {
#pragma omp simd reduction(& : ok)
    for (size_t j = 0; j < len; j++) ok &= fabs((double)w[j]) < W_LIMIT;
  } else {
#pragma omp simd reduction(& : ok)
    for (size_t j = 0; j < len; j++) {
      double d = (double)w[j] - (double)x[off + j];
      y[j] = (float)d + x[off + j];
      ok &= fabs(d) <= limit && fabs((double)y[j]) < W_LIMIT && fabs((double)w[j]) < W_LIMIT;
    }
  }
  if (m > 0 && !ok)
    return fedc_error_set(FEDC_ERANGE, "an early fold met a weight it cannot fold");
  fedc__fedavg_fold_range(pl->agg, off, raw ? w : y, len, m);
  return 0;
}

/*
 * Early folds under the share cap. An update folded as it arrived is in
 * the sums at its full count n_k; the cap may cut it to c_k < n_k at
 * finish, which then needs (n_k - c_k) times its values taken out again
 * (and put back after the read), so its values are read again from its
 * spool file. Only an update among the hold_cap largest counts can be
 * cut, so the pipeline keeps the spool files of the hold_cap largest
 * early-folded counts (a smaller one gives way, its count going to the
 * largest count folded at once), and capped_finish chooses among them and
 * the held updates.
 */
int fedc__pipeline_add_folded(fedc_pipeline *pl, uint64_t n_samples, int *fd, uint64_t off) {
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(pl->agg, &acc, &total);
  if (pl->hold_cap == 0) {
    *total += n_samples;
    if (n_samples > pl->folded_max) pl->folded_max = n_samples;
    return 0;
  }
  if (fd == NULL || *fd < 0)
    return fedc_error_set(FEDC_EINVAL, "pipeline: an early-folded update under the share cap "
                                       "needs its values' file");
  *total += n_samples;
  int32_t k = pl->n_early;
  if (k == pl->hold_cap) { /* full: the smallest count gives way */
    k = 0;
    for (int32_t i = 1; i < pl->n_early; i++)
      if (pl->early_n[i] < pl->early_n[k]) k = i;
    if (n_samples <= pl->early_n[k]) {
      if (n_samples > pl->early_max) pl->early_max = n_samples;
      return 0;
    }
    if (pl->early_n[k] > pl->early_max) pl->early_max = pl->early_n[k];
    close(pl->early_fd[k]);
  } else {
    pl->n_early++;
  }
  pl->early_n[k] = n_samples;
  pl->early_fd[k] = *fd;
  pl->early_off[k] = off;
  *fd = -1;
  return 0;
}

/* The sums cannot be trusted (an early fold that could not be taken out):
 * the round's finish fails, as after a failed write of the held file. */
void fedc__pipeline_fail(fedc_pipeline *pl) {
  pl->held_rc = fedc_error_set(FEDC_EIO, "pipeline: an early fold could not be taken out");
}
