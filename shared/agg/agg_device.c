/*
 * agg_device.c - the GPU strategy: [strategy] device = cuda | auto puts a
 * strategy's aggregator on the coordinator's (or the simulator's) GPU
 * behind the same fedc_strategy_ops table as the CPU's (agg.h), so the
 * round engine, the pipeline and every driver use it unchanged. The work is
 * cuda/agg_cuda.h's: each update is streamed to the device as add is given
 * it and checked and folded there (FedAvg's exact 128-bit fixed-point sum,
 * bit-identical to agg_fedavg.c), or kept there for the coordinate-wise
 * median and trimmed mean; finish computes the aggregate on the device.
 *
 * The registry's maker calls fedc__strategy_device_new for a device other
 * than the CPU (registry.c); it decides where the aggregator runs:
 *   - a strategy with no GPU form (krum, multikrum, a program's own) is
 *     refused with device = cuda (FEDC_ECONFIG) and stays on the CPU with
 *     auto;
 *   - no CUDA module or no GPU: refused with cuda (FEDC_ECONFIG, saying
 *     which is missing), the CPU with auto;
 *   - with auto, any failure to set the device up falls back too.
 * Each fallback writes one log line naming the strategy and the reason.
 *
 * FedAvg's running sum stays on the device, but code that works on the
 * sums themselves (the share cap's held updates in pipeline.c, the MPI
 * partials of engine.c) asks for them through the ops' sum: the sums are
 * then copied into a host mirror, which holds the state from then on
 * (those callers change it in place); the next add puts the mirror back
 * on the device first, and a finish while the mirror holds the state
 * computes the mean from it on the host, with agg_fedavg.c's arithmetic.
 * The mirror (n int128) is allocated when the strategy is made, so sum,
 * which cannot fail, never allocates; a copy that fails is kept and
 * reported by the next add or finish.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "cuda/agg_cuda.h"

typedef struct gpu_strategy {
  fedc_strategy base;
  fedc_agg_cuda *a;
  int norm_on;          /* the device applies the norm bound */
  int32_t clipped_seen; /* the device's clip count after the last add */
  int clipped_last;
  __int128 *acc; /* FedAvg: the host mirror of the sums */
  uint64_t total;
  int host;    /* 1: the mirror holds the state, the device's sums are stale */
  int sync_rc; /* a failed copy in sum, reported by the next add or finish */
  char sync_msg[256];
} gpu_strategy;

static int gpu_pending(gpu_strategy *g) {
  if (g->sync_rc == 0) return 0;
  return fedc_error_set(g->sync_rc, "%s (gpu): %s", g->base.ops->name, g->sync_msg);
}

static int gpu_begin(fedc_strategy *s, const float *global, size_t n) {
  gpu_strategy *g = (gpu_strategy *)s;
  if (n != s->n)
    return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", s->ops->name, n, s->n);
  g->host = 0;
  g->sync_rc = 0;
  g->clipped_seen = 0;
  g->clipped_last = 0;
  return fedc_agg_cuda_begin(g->a, global, n);
}

/* Streams w to the device (agg_cuda.h: through pinned buffers, checked
 * there, folded or kept); a refused update changes nothing. */
static int gpu_add(fedc_strategy *s, const float *w, size_t n, uint64_t n_samples) {
  gpu_strategy *g = (gpu_strategy *)s;
  int rc = gpu_pending(g);
  if (rc != 0) return rc;
  if (g->host) {
    rc = fedc_agg_cuda_sums_put(g->a, g->acc, g->total, s->n);
    if (rc != 0) return rc;
    g->host = 0;
  }
  rc = fedc_agg_cuda_add(g->a, w, n, n_samples, NULL);
  if (rc != 0) return rc;
  fedc_agg_cuda_stats st;
  fedc_agg_cuda_stats_get(g->a, &st);
  g->clipped_last = st.clipped > g->clipped_seen;
  g->clipped_seen = st.clipped;
  return 0;
}

static int gpu_finish(fedc_strategy *s, float *out, size_t n) {
  gpu_strategy *g = (gpu_strategy *)s;
  int rc = gpu_pending(g);
  if (rc != 0) return rc;
  if (!g->host) return fedc_agg_cuda_finish(g->a, out, n);
  /* the mirror holds the sums: agg_fedavg.c's finish */
  if (n != s->n)
    return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", s->ops->name, n, s->n);
  if (g->total == 0) return fedc_error_set(FEDC_EQUORUM, "fedavg: no updates to average");
  const double scale = ldexp(1.0, -32) / (double)g->total;
  for (size_t i = 0; i < n; i++)
    out[i] = (float)((double)g->acc[i] * scale);
  return 0;
}

/* The ops' sum (FedAvg): the device's sums into the mirror, which holds
 * the state until the next add (see the top of the file). */
static void gpu_sum(fedc_strategy *s, __int128 **acc, uint64_t **total) {
  gpu_strategy *g = (gpu_strategy *)s;
  if (!g->host && g->sync_rc == 0) {
    int rc = fedc_agg_cuda_sums_get(g->a, g->acc, &g->total, s->n);
    if (rc != 0) {
      g->sync_rc = rc;
      snprintf(g->sync_msg, sizeof g->sync_msg, "%s", fedc_error_msg());
      memset(g->acc, 0, s->n * sizeof *g->acc);
      g->total = 0;
    }
    g->host = 1;
  }
  *acc = g->acc;
  *total = &g->total;
}

static void gpu_free(fedc_strategy *s) {
  gpu_strategy *g = (gpu_strategy *)s;
  fedc_agg_cuda_free(g->a);
  fedc_free(g->acc);
  fedc_free(g);
}

static const fedc_strategy_ops fedavg_gpu_ops = {"fedavg",   gpu_begin, gpu_add,
                                                 gpu_finish, gpu_free,  gpu_sum};
static const fedc_strategy_ops median_gpu_ops = {"median",   gpu_begin, gpu_add,
                                                 gpu_finish, gpu_free,  NULL};
static const fedc_strategy_ops trimmed_gpu_ops = {"trimmed_mean", gpu_begin, gpu_add,
                                                  gpu_finish,     gpu_free,  NULL};

int fedc__strategy_on_gpu(const fedc_strategy *s) {
  return s != NULL &&
         (s->ops == &fedavg_gpu_ops || s->ops == &median_gpu_ops || s->ops == &trimmed_gpu_ops);
}

int fedc__strategy_gpu_clipped_last(const fedc_strategy *s) {
  return fedc__strategy_on_gpu(s) && ((const gpu_strategy *)s)->norm_on
             ? ((const gpu_strategy *)s)->clipped_last
             : 0;
}

/* auto's fallback: the one log line, and the CPU maker goes on. */
static int fall_back(const fedc_strategy_info *info, const char *why) {
  fedc_log_warn("strategy=%s device=cpu msg=\"[strategy] device = auto: aggregating on the "
                "CPU\" reason=\"%s\"",
                info->name, why);
  return 0;
}

/*
 * The decision of the top of the file, then the device set up. With
 * device = cuda every reason not to run on the GPU is an error naming the
 * key; with auto it is the log line and *out stays NULL.
 */
int fedc__strategy_device_new(const fedc_strategy_info *info, const fedc_agg_params *p, size_t n,
                              fedc_strategy **out) {
  *out = NULL;
  const int demand = p->device == FEDC_AGG_DEVICE_CUDA;
  const int kind = fedc__strategy_gpu_kind(info);
  char why[512];
  if (kind < 0) {
    snprintf(why, sizeof why,
             "strategy %s has no GPU form; the GPU aggregates fedavg (and fedavgm, fedadam, "
             "fedyogi, fedadagrad, fedbuff, which aggregate with it), median and trimmed_mean",
             info->name);
    if (demand) return fedc_error_set(FEDC_ECONFIG, "[strategy] device = cuda: %s", why);
    return fall_back(info, why);
  }
  const fedc_agg_cuda_params cp = {.kind = (fedc_agg_cuda_kind)kind,
                                   .trim_beta = p->trim_beta,
                                   .max_updates = p->max_updates,
                                   .norm_bound = p->norm_bound > 0.0 ? p->norm_bound : 0.0,
                                   .norm_refuse = p->norm_refuse};
  gpu_strategy *g = fedc_calloc(1, sizeof *g);
  if (g == NULL) return fedc_error_set(FEDC_ENOMEM, "%s (gpu): out of memory", info->name);
  int rc = 0;
  if (kind == FEDC_AGG_CUDA_FEDAVG && (g->acc = fedc_calloc(n ? n : 1, sizeof *g->acc)) == NULL)
    rc =
        fedc_error_set(FEDC_ENOMEM, "fedavg (gpu): out of memory for the host copy of %zu sums", n);
  if (rc == 0) rc = fedc_agg_cuda_new(&cp, n, &g->a);
  if (rc != 0) {
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    fedc_free(g->acc);
    fedc_free(g);
    /* a missing module or GPU is the config's demand unmet; a device
     * that fails keeps its own code */
    if (demand)
      return fedc_error_set(rc == FEDC_EUNSUPPORTED ? FEDC_ECONFIG : rc,
                            "[strategy] device = cuda: %s", why);
    return fall_back(info, why);
  }
  g->base.ops = kind == FEDC_AGG_CUDA_FEDAVG   ? &fedavg_gpu_ops
                : kind == FEDC_AGG_CUDA_MEDIAN ? &median_gpu_ops
                                               : &trimmed_gpu_ops;
  g->base.n = n;
  g->norm_on = cp.norm_bound > 0.0;
  fedc_log_info("strategy=%s device=cuda msg=\"aggregating on the GPU\"", info->name);
  *out = &g->base;
  return 0;
}
