/*
 * fedc/strategy.h - aggregation strategies: the registry of built-in and
 * program-defined strategies, their declared capabilities, and the check
 * every driver makes before it runs a job.
 *
 * A strategy folds a round's client updates into the next global model.
 * Each one is registered under a name with the capabilities it declares;
 * the [strategy] name of a job is looked up here, by the config reader and
 * by every driver, and nothing else in fedc interprets a strategy's name.
 * A program adds its own:
 *
 *     static int med_new(size_t n, void *ud, void **state) { ... }
 *     static int med_add(void *st, const float *w, size_t n, uint64_t n_samples) { ... }
 *     ...
 *     fedc_strategy_def d;
 *     fedc_strategy_def_init(&d);
 *     d.name = "geomedian";
 *     d.caps = FEDC_STRATEGY_INDIVIDUAL;
 *     d.create = med_new; d.begin = med_begin; d.add = med_add;
 *     d.finish = med_finish; d.destroy = med_free;
 *     if (fedc_strategy_register(&d) != 0) fprintf(stderr, "%s\n", fedc_error_msg());
 *     ... then a job with [strategy] name = geomedian (fedc_settings_set).
 *
 * Threads: register strategies from one thread before any job (simulation,
 * coordinator) starts; lookups and jobs may then run on any thread.
 * Registrations last until the process exits (there is no unregister), and
 * the registry holds at most FEDC_STRATEGY_MAX_CUSTOM of them.
 */
#ifndef FEDC_PUBLIC_STRATEGY_H
#define FEDC_PUBLIC_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Capabilities a strategy declares (fedc_strategy_info.caps). */
enum {
  /* Folds updates into an exact additive sum, so a round can be split over
   * processes (MPI ranks) and merged, and fed by secure aggregation's sum.
   * Built-ins only (fedavg and its server optimizers): a program's strategy
   * keeps an opaque state that fedc cannot add up, so fedc_strategy_register
   * refuses this flag. */
  FEDC_STRATEGY_ADDITIVE = 1u << 0,
  /* Needs each update on its own and buffers them: memory grows with the
   * round's updates (at most the selection size x the model). */
  FEDC_STRATEGY_INDIVIDUAL = 1u << 1,
  /* Asynchronous: clients are not in lockstep (FedBuff). */
  FEDC_STRATEGY_ASYNC = 1u << 2,
  /* Runs under differential privacy (clipped updates, noise on the
   * aggregate). */
  FEDC_STRATEGY_DP = 1u << 3,
  /* Keeps a server optimizer's state between rounds (momentum, moments),
   * checkpointed by the coordinator. */
  FEDC_STRATEGY_SERVER_STATE = 1u << 4,
  /* Secure aggregation gives it one sample-weighted average of the
   * survivors' updates in place of the updates: the result is the same as
   * with the updates one by one. Needs FEDC_STRATEGY_ADDITIVE. */
  FEDC_STRATEGY_SECAGG = 1u << 5,
  /* Keeps control variates: one on the server, one at each client, both
   * updated every round (SCAFFOLD). The driver must exchange and keep
   * them; each client's variate delta is seen on its own. Built-ins only. */
  FEDC_STRATEGY_VARIATES = 1u << 6
};

#define FEDC_STRATEGY_NAME_MAX 32  /* bytes, with the NUL */
#define FEDC_STRATEGY_MAX_CUSTOM 32

/* What the registry knows of a strategy; read-only, valid until exit. */
typedef struct fedc_strategy_info {
  const char *name;
  uint32_t caps;       /* FEDC_STRATEGY_* */
  const char *summary; /* one line for people; never NULL */
  int32_t builtin;     /* 1 for fedc's own */
} fedc_strategy_info;

/*
 * A program's strategy. Every callback gets back the state its create made.
 * Each returns 0 or a negative FEDC_E* code set with fedc_error_set; an
 * add that fails must leave the state as it was (the update is refused and
 * the round goes on). They are called from the job's thread, one at a time
 * for a given state (never concurrently), and may be called on a different
 * thread each time.
 */
typedef struct fedc_strategy_def {
  const char *name;    /* 1..31 bytes of [a-z0-9_]; copied */
  uint32_t caps;       /* FEDC_STRATEGY_INDIVIDUAL, FEDC_STRATEGY_DP, ... */
  const char *summary; /* optional; copied */
  /* A new state for models of n_params weights, in *state. */
  int (*create)(size_t n_params, void *user_data, void **state);
  /* A round starts from the global model global (n weights): forget the
   * last round's updates. */
  int (*begin)(void *state, const float *global, size_t n);
  /* One update w (n weights; the caller keeps its array, copy what you
   * keep) trained on n_samples >= 1 samples. Weights are finite. */
  int (*add)(void *state, const float *w, size_t n, uint64_t n_samples);
  /* Write the round's aggregate into out (n weights); FEDC_EQUORUM if
   * nothing was added. */
  int (*finish)(void *state, float *out, size_t n);
  void (*destroy)(void *state);
  void *user_data;     /* given to create */
} fedc_strategy_def;

/* Zero every field (no callbacks, no capabilities). */
void fedc_strategy_def_init(fedc_strategy_def *def);

/*
 * Add def to the registry (its fields are copied). Errors, with nothing
 * registered: FEDC_EINVAL for a NULL or badly formed name, a missing
 * callback, an unknown capability bit, FEDC_STRATEGY_ADDITIVE,
 * FEDC_STRATEGY_SECAGG, FEDC_STRATEGY_ASYNC, FEDC_STRATEGY_SERVER_STATE or
 * FEDC_STRATEGY_VARIATES (built-in only);
 * FEDC_EDUPLICATE for a name already registered (built-in or not);
 * FEDC_ERANGE when FEDC_STRATEGY_MAX_CUSTOM are registered. Call before
 * starting jobs (see above).
 */
int fedc_strategy_register(const fedc_strategy_def *def);

/* The strategy registered as name, or NULL (with FEDC_ENOTFOUND's message
 * set). Any thread. */
const fedc_strategy_info *fedc_strategy_lookup(const char *name);

/* Strategies registered, built-ins first in a fixed order, then the
 * program's in registration order: the count, and the i-th (NULL past the
 * end). Any thread. */
size_t fedc_strategy_count(void);
const fedc_strategy_info *fedc_strategy_at(size_t i);

/*
 * What a driver is asked to do with a strategy, and what it can do.
 * fedc_strategy_needs_init sets every field to 0: one process, synchronous
 * rounds, no privacy, and a driver that can do neither secure aggregation
 * nor asynchronous rounds.
 */
typedef struct fedc_strategy_needs {
  int32_t split;       /* the round is split over processes (MPI ranks) */
  int32_t secagg;      /* secure aggregation: only the sum is seen */
  int32_t dp;          /* differential privacy */
  int32_t norm_bound;  /* a per-update norm bound ([strategy] norm_bound) */
  int32_t can_secagg;  /* the driver implements secure aggregation */
  int32_t can_async;   /* the driver runs asynchronous strategies */
  const char *driver;  /* for messages: "fedc-sim", "the coordinator" */
  int32_t can_variates; /* the driver keeps and exchanges control variates */
} fedc_strategy_needs;

void fedc_strategy_needs_init(fedc_strategy_needs *needs);

/*
 * Can info's strategy run as needs asks? 0, or FEDC_EUNSUPPORTED with a
 * message saying which capability is missing. Every driver calls it when it
 * reads its settings, so that no combination is silently ignored. Any
 * thread.
 */
int fedc_strategy_check(const fedc_strategy_info *info, const fedc_strategy_needs *needs);

#ifdef __cplusplus
}
#endif

#endif
