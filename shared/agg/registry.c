/*
 * registry.c - the one table of strategies (public API in
 * <fedc/strategy.h>): the built-ins in a fixed order, then those a program
 * registers. An entry is what its name means everywhere: the aggregator it
 * makes, the server optimizer that steps after it, and the capabilities it
 * declares. Nothing else in fedc compares strategy names; the config
 * reader, the pipeline, the server optimizer and every driver look the
 * name up here and ask the entry.
 *
 * Registration is meant to happen before jobs start (see strategy.h); it
 * is still serialized by a mutex, and the count of program entries is
 * published with release/acquire ordering, so a lookup racing with a
 * registration sees either the old table or the new entry in full.
 */
#include <pthread.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "cuda/agg_cuda.h"

typedef enum { MAKE_FEDAVG, MAKE_ROBUST, MAKE_CUSTOM } make_kind;

typedef struct entry {
  fedc_strategy_info info; /* first: a fedc_strategy_info * is an entry * */
  make_kind make;
  fedc_robust_kind robust;
  fedc_opt_kind opt;
  fedc_strategy_def def; /* MAKE_CUSTOM */
  char name[FEDC_STRATEGY_NAME_MAX];
  char summary[128];
} entry;

#define ADD FEDC_STRATEGY_ADDITIVE
#define IND FEDC_STRATEGY_INDIVIDUAL
#define ASYNC FEDC_STRATEGY_ASYNC
#define DP FEDC_STRATEGY_DP
#define STATE FEDC_STRATEGY_SERVER_STATE
#define SECAGG FEDC_STRATEGY_SECAGG
#define VARIATES FEDC_STRATEGY_VARIATES
#define ALL_CAPS (ADD | IND | ASYNC | DP | STATE | SECAGG | VARIATES)

/* The built-ins. Robust strategies run under DP too: the pipeline clips
 * each update before the aggregator sees it and noises the aggregate, with
 * the noise calibrated to the clip norm over the round's update count
 * (exact for the means; the median's sensitivity is no larger). */
static const entry builtins[] = {
    {{"fedavg", ADD | DP | SECAGG, "FedAvg: the sample-weighted mean, exact in fixed point", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_NONE, {0}, "", ""},
    {{"fedavgm", ADD | DP | SECAGG | STATE, "FedAvg, then a server step with momentum", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_AVGM, {0}, "", ""},
    {{"fedadam", ADD | DP | SECAGG | STATE, "FedAvg, then an Adam server step", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_ADAM, {0}, "", ""},
    {{"fedyogi", ADD | DP | SECAGG | STATE, "FedAvg, then a Yogi server step", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_YOGI, {0}, "", ""},
    {{"fedadagrad", ADD | DP | SECAGG | STATE, "FedAvg, then an Adagrad server step", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_ADAGRAD, {0}, "", ""},
    {{"median", IND | DP, "coordinate-wise median (unweighted)", 1},
     MAKE_ROBUST, FEDC_ROBUST_MEDIAN, FEDC_OPT_NONE, {0}, "", ""},
    {{"trimmed_mean", IND | DP, "coordinate-wise trimmed mean (unweighted)", 1},
     MAKE_ROBUST, FEDC_ROBUST_TRIMMED, FEDC_OPT_NONE, {0}, "", ""},
    {{"krum", IND | DP, "Krum: the update closest to its neighbours", 1},
     MAKE_ROBUST, FEDC_ROBUST_KRUM, FEDC_OPT_NONE, {0}, "", ""},
    {{"multikrum", IND | DP, "Multi-Krum: the mean of the m best Krum scores", 1},
     MAKE_ROBUST, FEDC_ROBUST_MULTIKRUM, FEDC_OPT_NONE, {0}, "", ""},
    {{"fedbuff", ADD | ASYNC, "FedBuff: asynchronous, staleness-weighted buffer of deltas", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_AVG, {0}, "", ""},
    /* SCAFFOLD (Karimireddy et al. 2020): the mean of the clients' models,
     * a server step x + server_lr (avg - x), and control variates kept by
     * the driver (agg/scaffold.h). Not DP or secure-aggregation safe: see
     * fedc_strategy_check. */
    {{"scaffold", ADD | VARIATES,
      "SCAFFOLD: FedAvg with server and client control variates against client drift", 1},
     MAKE_FEDAVG, 0, FEDC_OPT_AVG, {0}, "", ""},
};
#define N_BUILTIN (sizeof builtins / sizeof *builtins)

static entry custom[FEDC_STRATEGY_MAX_CUSTOM];
static size_t n_custom; /* read with __atomic_load_n (acquire) */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

size_t fedc_strategy_count(void) {
  return N_BUILTIN + __atomic_load_n(&n_custom, __ATOMIC_ACQUIRE);
}

const fedc_strategy_info *fedc_strategy_at(size_t i) {
  if (i < N_BUILTIN) return &builtins[i].info;
  i -= N_BUILTIN;
  return i < __atomic_load_n(&n_custom, __ATOMIC_ACQUIRE) ? &custom[i].info : NULL;
}

/* The lookup every part of fedc uses; no other place compares names. */
const fedc_strategy_info *fedc_strategy_lookup(const char *name) {
  if (name == NULL) {
    fedc_error_set(FEDC_ENOTFOUND, "strategy: no name given");
    return NULL;
  }
  size_t n = fedc_strategy_count();
  for (size_t i = 0; i < n; i++) {
    const fedc_strategy_info *info = fedc_strategy_at(i);
    if (strcmp(info->name, name) == 0) return info;
  }
  fedc_error_set(FEDC_ENOTFOUND, "strategy %s is not registered", name);
  return NULL;
}

void fedc_strategy_def_init(fedc_strategy_def *def) {
  memset(def, 0, sizeof *def);
}

static int name_ok(const char *name) {
  size_t len = 0;
  for (const char *c = name; *c; c++, len++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
  return len >= 1 && len < FEDC_STRATEGY_NAME_MAX;
}

/*
 * Check the definition in full, then copy it into the next free slot
 * under the mutex and publish it by bumping the count. Capabilities that
 * need fedc's own accumulator (additive, secure aggregation) or driver
 * support it does not offer to callbacks (asynchronous) are refused.
 */
int fedc_strategy_register(const fedc_strategy_def *def) {
  if (def == NULL) return fedc_error_set(FEDC_EINVAL, "strategy: no definition");
  if (def->name == NULL || !name_ok(def->name))
    return fedc_error_set(FEDC_EINVAL,
                          "strategy: name '%s' must be 1 to %d characters of a-z, 0-9 and _",
                          def->name ? def->name : "(null)", FEDC_STRATEGY_NAME_MAX - 1);
  if (def->create == NULL || def->begin == NULL || def->add == NULL || def->finish == NULL ||
      def->destroy == NULL)
    return fedc_error_set(FEDC_EINVAL,
                          "strategy %s: create, begin, add, finish and destroy are all needed",
                          def->name);
  if (def->caps & ~(uint32_t)ALL_CAPS)
    return fedc_error_set(FEDC_EINVAL, "strategy %s: unknown capability bits 0x%x", def->name,
                          (unsigned)(def->caps & ~(uint32_t)ALL_CAPS));
  if (def->caps & (ADD | SECAGG | ASYNC | STATE | VARIATES))
    return fedc_error_set(FEDC_EINVAL,
                          "strategy %s: the additive, secure-aggregation, asynchronous, "
                          "server-state and control-variate capabilities are for built-in "
                          "strategies only "
                          "(docs/strategies.md)",
                          def->name);
  pthread_mutex_lock(&reg_mu);
  int rc = 0;
  size_t at = n_custom;
  for (size_t i = 0; rc == 0 && i < N_BUILTIN + at; i++)
    if (strcmp(fedc_strategy_at(i)->name, def->name) == 0)
      rc = fedc_error_set(FEDC_EDUPLICATE, "strategy %s is already registered", def->name);
  if (rc == 0 && at == FEDC_STRATEGY_MAX_CUSTOM)
    rc = fedc_error_set(FEDC_ERANGE, "strategy %s: the registry holds %d strategies already",
                        def->name, FEDC_STRATEGY_MAX_CUSTOM);
  if (rc == 0) {
    entry *e = &custom[at];
    memset(e, 0, sizeof *e);
    memcpy(e->name, def->name, strlen(def->name) + 1);
    if (def->summary) {
      size_t len = strnlen(def->summary, sizeof e->summary - 1);
      memcpy(e->summary, def->summary, len);
    }
    e->def = *def;
    e->def.name = e->name;
    e->def.summary = e->summary;
    e->info = (fedc_strategy_info){e->name, def->caps, e->summary, 0};
    e->make = MAKE_CUSTOM;
    e->opt = FEDC_OPT_NONE;
    __atomic_store_n(&n_custom, at + 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&reg_mu);
  return rc;
}

fedc_opt_kind fedc__strategy_opt_kind(const fedc_strategy_info *info) {
  return info ? ((const entry *)info)->opt : FEDC_OPT_NONE;
}

int fedc__strategy_make(const fedc_strategy_info *info, const fedc_agg_params *p, size_t n,
                        fedc_strategy **out) {
  *out = NULL;
  const entry *e = (const entry *)info;
  if (p->spill_path && p->device == FEDC_AGG_DEVICE_CUDA)
    return fedc_error_set(FEDC_ECONFIG, "[strategy] device = cuda keeps the sums on the GPU; "
                          "a model in large-model mode ([server] spill_above_mb) aggregates "
                          "on the CPU");
  if (p->device != FEDC_AGG_DEVICE_CPU && !p->spill_path) { /* the GPU, or auto's fallback */
    int rc = fedc__strategy_device_new(info, p, n, out);
    if (rc != 0 || *out != NULL) return rc;
  }
  switch (e->make) {
  case MAKE_FEDAVG:
    return fedc__fedavg_new_spill(n, p->spill_path, out);
  case MAKE_ROBUST:
    return fedc__robust_new(e->robust, p, n, out);
  case MAKE_CUSTOM:
    return fedc__custom_new(&e->def, n, out);
  }
  return fedc_error_set(FEDC_EINVAL, "strategy %s: no maker", info->name);
}

int fedc__strategy_gpu_kind(const fedc_strategy_info *info) {
  const entry *e = (const entry *)info;
  if (info == NULL || e->make == MAKE_CUSTOM) return -1;
  if (e->make == MAKE_FEDAVG) return FEDC_AGG_CUDA_FEDAVG;
  if (e->robust == FEDC_ROBUST_MEDIAN) return FEDC_AGG_CUDA_MEDIAN;
  if (e->robust == FEDC_ROBUST_TRIMMED) return FEDC_AGG_CUDA_TRIMMED_MEAN;
  return -1;
}

void fedc_strategy_needs_init(fedc_strategy_needs *needs) {
  memset(needs, 0, sizeof *needs);
}

/*
 * The capability check shared by the drivers. The order of the tests
 * gives the most useful message first: what the driver cannot do at all,
 * then what the strategy does not declare.
 */
int fedc_strategy_check(const fedc_strategy_info *info, const fedc_strategy_needs *needs) {
  if (info == NULL) return fedc_error_set(FEDC_EINVAL, "strategy: not registered");
  const char *drv = needs->driver ? needs->driver : "this driver";
  const char *nm = info->name;
  const uint32_t caps = info->caps;
  if ((caps & ASYNC) && !needs->can_async)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s is asynchronous; %s runs synchronous rounds only", nm,
                          drv);
  if ((caps & VARIATES) && !needs->can_variates)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s keeps a control variate at every client and on the "
                          "server; %s does not exchange control variates", nm, drv);
  if ((caps & VARIATES) && needs->split)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s updates its server control variate from every client's "
                          "variate delta; %s cannot merge those across processes", nm, drv);
  if ((caps & VARIATES) && needs->secagg)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s needs each client's control-variate delta in the clear, "
                          "and a client's variate summarizes its gradients: secure aggregation "
                          "would hide the model update but not the variates", nm);
  if ((caps & VARIATES) && needs->dp)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s sends each client's control variate (its mean gradient) "
                          "unclipped and unnoised, so differential privacy's guarantee would "
                          "not hold; use fedavg or a server optimizer with DP", nm);
  if ((caps & ASYNC) && needs->split)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s is asynchronous and cannot be split over processes", nm);
  if (needs->split && !(caps & ADD))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s is not additive (it needs each update), so %s cannot "
                          "split its rounds over processes",
                          nm, drv);
  if (needs->split && needs->dp)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "differential privacy clips each update and noises the aggregate "
                          "on one process; %s cannot split such rounds over processes",
                          drv);
  if (needs->secagg && !needs->can_secagg)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "%s does not implement secure aggregation (the coordinator does)", drv);
  if (needs->secagg && !((caps & ADD) && (caps & SECAGG)))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "secure aggregation shows only the sum of the updates, and strategy "
                          "%s %s; use fedavg or a server optimizer",
                          nm, (caps & ADD) ? "is not secure-aggregation safe"
                                           : "is not additive (it needs each update)");
  if (needs->secagg && (needs->dp || needs->norm_bound))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "secure aggregation cannot be combined with a norm bound or "
                          "differential privacy: both need single updates");
  if (needs->dp && !(caps & DP))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "strategy %s does not declare differential-privacy support", nm);
  return 0;
}
