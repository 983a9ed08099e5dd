/*
 * test_registry.c - the strategy registry (fedc/strategy.h): the built-ins
 * and their declared capabilities, a program's strategy registered,
 * refused twice and for bad definitions, found by lookup and by the config
 * reader, run by the engine through the pipeline; and the capability check
 * every driver makes, refusal by refusal. A program's strategy cannot be
 * additive (registration refuses the flag), so the MPI-style partial path
 * refuses it: the check at start, and the engine if asked anyway.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "config/config.h"
#include "round/engine.h"
#include "round/pipeline.h"

#define ADD FEDC_STRATEGY_ADDITIVE
#define IND FEDC_STRATEGY_INDIVIDUAL
#define ASYNC FEDC_STRATEGY_ASYNC
#define DP FEDC_STRATEGY_DP
#define STATE FEDC_STRATEGY_SERVER_STATE
#define SECAGG FEDC_STRATEGY_SECAGG

static void assert_contains(const char *s, const char *sub) {
  if (strstr(s, sub) == NULL) fail_msg("'%s' lacks '%s'", s, sub);
}

/* ---- a program's strategy: the coordinate-wise maximum -------------------- */

typedef struct maxs {
  size_t n;
  float *m;
  int count;
} maxs;

static int calls_create, calls_add, calls_finish, calls_destroy;

static int max_create(size_t n, void *ud, void **state) {
  (void)ud;
  maxs *s = fedc_calloc(1, sizeof *s);
  if (s == NULL || (s->m = fedc_calloc(n, sizeof *s->m)) == NULL) {
    fedc_free(s);
    return fedc_error_set(FEDC_ENOMEM, "max: out of memory");
  }
  s->n = n;
  calls_create++;
  *state = s;
  return 0;
}

static int max_begin(void *st, const float *global, size_t n) {
  (void)global;
  (void)n;
  ((maxs *)st)->count = 0;
  return 0;
}

static int max_add(void *st, const float *w, size_t n, uint64_t n_samples) {
  maxs *s = st;
  (void)n_samples;
  calls_add++;
  for (size_t i = 0; i < n; i++)
    if (s->count == 0 || w[i] > s->m[i]) s->m[i] = w[i];
  s->count++;
  return 0;
}

static int max_finish(void *st, float *out, size_t n) {
  maxs *s = st;
  calls_finish++;
  if (s->count == 0) return fedc_error_set(FEDC_EQUORUM, "max: nothing added");
  memcpy(out, s->m, n * sizeof *out);
  return 0;
}

static void max_destroy(void *st) {
  maxs *s = st;
  calls_destroy++;
  fedc_free(s->m);
  fedc_free(s);
}

static void max_def(fedc_strategy_def *d, const char *name) {
  fedc_strategy_def_init(d);
  d->name = name;
  d->caps = IND | DP;
  d->summary = "coordinate-wise maximum (a test)";
  d->create = max_create;
  d->begin = max_begin;
  d->add = max_add;
  d->finish = max_finish;
  d->destroy = max_destroy;
}

/* ---- tests -------------------------------------------------------------- */

/* Every built-in, in the registry's order, with the capabilities
 * docs/strategies.md tabulates. */
static void builtins_and_capabilities(void **st) {
  (void)st;
  static const struct {
    const char *name;
    uint32_t caps;
  } want[] = {{"fedavg", ADD | DP | SECAGG},
              {"fedavgm", ADD | DP | SECAGG | STATE},
              {"fedadam", ADD | DP | SECAGG | STATE},
              {"fedyogi", ADD | DP | SECAGG | STATE},
              {"fedadagrad", ADD | DP | SECAGG | STATE},
              {"median", IND | DP},
              {"trimmed_mean", IND | DP},
              {"krum", IND | DP},
              {"multikrum", IND | DP},
              {"fedbuff", ADD | ASYNC}};
  assert_true(fedc_strategy_count() >= 10);
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const fedc_strategy_info *at = fedc_strategy_at(i);
    assert_non_null(at);
    assert_string_equal(at->name, want[i].name);
    assert_int_equal(at->caps, want[i].caps);
    assert_int_equal(at->builtin, 1);
    assert_ptr_equal(fedc_strategy_lookup(want[i].name), at);
    /* the aggregator a name makes is additive exactly when declared so */
    fedc_agg_params p = {.name = want[i].name, .max_updates = 8, .krum_f = 1};
    fedc_strategy *s;
    assert_int_equal(fedc_strategy_new_params(&p, 4, &s), 0);
    assert_int_equal(fedc_strategy_is_additive(s), (want[i].caps & ADD) != 0);
    fedc_strategy_free(s);
  }
  assert_null(fedc_strategy_lookup("fedmedian"));
  assert_contains(fedc_error_msg(), "fedmedian is not registered");
  assert_null(fedc_strategy_lookup(NULL));
  assert_null(fedc_strategy_at(fedc_strategy_count()));
}

static void register_lookup_and_refusals(void **st) {
  (void)st;
  size_t before = fedc_strategy_count();
  fedc_strategy_def d;
  max_def(&d, "maximum");
  assert_int_equal(fedc_strategy_register(&d), 0);
  assert_int_equal(fedc_strategy_count(), before + 1);
  const fedc_strategy_info *info = fedc_strategy_lookup("maximum");
  assert_non_null(info);
  assert_ptr_equal(info, fedc_strategy_at(before));
  assert_int_equal(info->caps, IND | DP);
  assert_int_equal(info->builtin, 0);
  assert_string_equal(info->summary, "coordinate-wise maximum (a test)");

  /* the same name again, or a built-in's, is a duplicate */
  assert_int_equal(fedc_strategy_register(&d), FEDC_EDUPLICATE);
  assert_contains(fedc_error_msg(), "maximum");
  max_def(&d, "median");
  assert_int_equal(fedc_strategy_register(&d), FEDC_EDUPLICATE);

  /* bad definitions, each refused with nothing registered */
  static const char *const bad_names[] = {"", "Upper", "has space", "a-b",
                                          "abcdefghijabcdefghijabcdefghijab"};
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
    max_def(&d, bad_names[i]);
    assert_int_equal(fedc_strategy_register(&d), FEDC_EINVAL);
  }
  max_def(&d, NULL);
  assert_int_equal(fedc_strategy_register(&d), FEDC_EINVAL);
  assert_int_equal(fedc_strategy_register(NULL), FEDC_EINVAL);
  max_def(&d, "nofinish");
  d.finish = NULL;
  assert_int_equal(fedc_strategy_register(&d), FEDC_EINVAL);
  const uint32_t builtin_only[] = {ADD, SECAGG, ASYNC, STATE, 1u << 20};
  for (size_t i = 0; i < sizeof builtin_only / sizeof *builtin_only; i++) {
    max_def(&d, "flagged");
    d.caps |= builtin_only[i];
    assert_int_equal(fedc_strategy_register(&d), FEDC_EINVAL);
  }
  assert_int_equal(fedc_strategy_count(), before + 1);
  assert_null(fedc_strategy_lookup("flagged"));

  /* the config reader accepts a registered name, and only that */
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.name=maximum"), 0);
  assert_string_equal(c.strategy, "maximum");
  assert_int_equal(fedc_config_check(&c), 0);
  assert_int_equal(fedc_config_set(&c, "strategy.name=minimum"), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [strategy] name = minimum");
  assert_contains(fedc_error_msg(), "maximum");
}

/* The engine runs the program's strategy through the pipeline: a norm
 * bound clips before the callbacks see the update, and the result is the
 * coordinate-wise maximum. */
static void custom_strategy_runs_in_the_engine(void **st) {
  (void)st;
  if (fedc_strategy_lookup("maximum") == NULL) {
    fedc_strategy_def d;
    max_def(&d, "maximum");
    assert_int_equal(fedc_strategy_register(&d), 0);
  }
  enum { NP = 3 };
  calls_create = calls_add = calls_finish = calls_destroy = 0;
  int64_t live = fedc_alloc_live();
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, 3);
  pp.agg.name = pp.opt.name = "maximum";
  pp.norm_bound = 10.0;
  float x0[NP] = {0, 0, 0};
  fedc_engine_params ep = {.rounds = 2, .clients_per_round = 3, .min_clients = 1, .seed = 3};
  fedc_engine *e;
  assert_int_equal(fedc__engine_new_pipeline(&ep, &pp, NP, x0, &e), 0);
  assert_int_equal(calls_create, 1);
  int32_t elig[3] = {0, 1, 2}, sel[3], nsel;
  assert_int_equal(fedc_engine_open(e, elig, 3, 3, sel, &nsel), 0);
  float u[3][NP] = {{1, -2, 3}, {4, 0, -1}, {30, 40, 0}}; /* the last: norm 50, clipped to 10 */
  for (int i = 0; i < 3; i++)
    assert_int_equal(fedc_engine_submit(e, 1, sel[i], u[sel[i]], NP, 5, 0.1), 0);
  /* the MPI-style partial path: not additive, so refused */
  __int128 words[NP + 1 + 9];
  assert_int_equal(fedc_engine_partial(e, words, fedc_engine_partial_words(e)),
                   FEDC_EUNSUPPORTED);
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  assert_int_equal(calls_add, 3);
  assert_int_equal(calls_finish, 1);
  assert_int_equal(m.clipped, 1);
  const float *g = fedc_engine_global(e);
  assert_true(fabsf(g[0] - 6.0f) < 1e-6f && fabsf(g[1] - 8.0f) < 1e-6f &&
              fabsf(g[2] - 3.0f) < 1e-6f);
  fedc_engine_free(e);
  assert_int_equal(calls_destroy, 1);
  assert_int_equal(fedc_alloc_live(), live);
}

static fedc_strategy_needs needs(const char *driver, int can_secagg, int can_async) {
  fedc_strategy_needs n;
  fedc_strategy_needs_init(&n);
  n.driver = driver;
  n.can_secagg = can_secagg;
  n.can_async = can_async;
  return n;
}

/* Each refusal of the capability check, and what passes. */
static void capability_check(void **st) {
  (void)st;
  const fedc_strategy_info *fedavg = fedc_strategy_lookup("fedavg"),
                           *fedadam = fedc_strategy_lookup("fedadam"),
                           *median = fedc_strategy_lookup("median"),
                           *fedbuff = fedc_strategy_lookup("fedbuff");
  fedc_strategy_needs coord = needs("the coordinator", 1, 0), sim = needs("fedc-sim", 0, 1),
                      mpi = needs("fedc-sim-mpi", 0, 0);
  mpi.split = 1;
  /* plain runs */
  assert_int_equal(fedc_strategy_check(fedavg, &coord), 0);
  assert_int_equal(fedc_strategy_check(median, &sim), 0);
  assert_int_equal(fedc_strategy_check(fedbuff, &sim), 0);
  assert_int_equal(fedc_strategy_check(fedadam, &mpi), 0);
  /* asynchronous on a synchronous driver */
  assert_int_equal(fedc_strategy_check(fedbuff, &coord), FEDC_EUNSUPPORTED);
  assert_contains(fedc_error_msg(), "asynchronous");
  assert_int_equal(fedc_strategy_check(fedbuff, &mpi), FEDC_EUNSUPPORTED);
  /* split over processes: additive only, and no DP */
  assert_int_equal(fedc_strategy_check(median, &mpi), FEDC_EUNSUPPORTED);
  assert_contains(fedc_error_msg(), "not additive");
  mpi.dp = 1;
  assert_int_equal(fedc_strategy_check(fedavg, &mpi), FEDC_EUNSUPPORTED);
  /* secure aggregation: the driver must do it; additive and safe only;
   * no norm bound or DP beside it */
  sim.secagg = coord.secagg = 1;
  assert_int_equal(fedc_strategy_check(fedavg, &sim), FEDC_EUNSUPPORTED);
  assert_contains(fedc_error_msg(), "fedc-sim does not implement secure aggregation");
  assert_int_equal(fedc_strategy_check(fedadam, &coord), 0);
  assert_int_equal(fedc_strategy_check(median, &coord), FEDC_EUNSUPPORTED);
  assert_contains(fedc_error_msg(), "median is not additive");
  coord.norm_bound = 1;
  assert_int_equal(fedc_strategy_check(fedavg, &coord), FEDC_EUNSUPPORTED);
  coord.norm_bound = 0;
  coord.dp = 1;
  assert_int_equal(fedc_strategy_check(fedavg, &coord), FEDC_EUNSUPPORTED);
  /* DP needs the strategy to declare it */
  sim.secagg = 0;
  sim.dp = 1;
  assert_int_equal(fedc_strategy_check(median, &sim), 0);
  assert_int_equal(fedc_strategy_check(fedbuff, &sim), FEDC_EUNSUPPORTED);
  assert_contains(fedc_error_msg(), "differential-privacy");
  assert_int_equal(fedc_strategy_check(NULL, &sim), FEDC_EINVAL);
}

/* The config's refusals name the key that asked and where it was set. */
static void config_names_the_key(void **st) {
  (void)st;
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "model.inputs=784"), 0);
  assert_int_equal(fedc_config_set(&c, "model.classes=10"), 0);
  assert_int_equal(fedc_config_set(&c, "strategy.name=fedbuff"), 0);
  /* the coordinator runs fedbuff (async_rounds.c): what stops it here is
   * the next check, its TLS files */
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[tls] cert = (empty): must be set for the coordinator");
  assert_int_equal(fedc_config_set(&c, "privacy.noise_multiplier=1.1"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [privacy] noise_multiplier = 1.1: strategy fedbuff "
                                    "does not declare differential-privacy support");
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [privacy] noise_multiplier = 1.1");
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "privacy.secure_aggregation=true"), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [privacy] secure_aggregation = true: the simulator "
                                    "does not implement secure aggregation");
  assert_int_equal(fedc_config_set(&c, "strategy.name=krum"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[privacy] secure_aggregation = true");
  assert_contains(fedc_error_msg(), "krum is not additive");
  /* a split run (fedc-sim-mpi) refuses what is not additive */
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.name=trimmed_mean"), 0);
  fedc_strategy_needs mpi = needs("fedc-sim-mpi", 0, 0);
  mpi.split = 1;
  assert_int_equal(fedc_config_check_strategy(&c, &mpi), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [strategy] name = trimmed_mean: strategy "
                                    "trimmed_mean is not additive");
  assert_int_equal(fedc_config_set(&c, "strategy.name=fedyogi"), 0);
  assert_int_equal(fedc_config_check_strategy(&c, &mpi), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(builtins_and_capabilities),
      cmocka_unit_test(register_lookup_and_refusals),
      cmocka_unit_test(custom_strategy_runs_in_the_engine),
      cmocka_unit_test(capability_check),
      cmocka_unit_test(config_names_the_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
