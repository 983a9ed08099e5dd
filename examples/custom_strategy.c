/*
 * custom_strategy.c - a strategy fedc does not have, registered from
 * outside the library and run in a simulation on Fashion-MNIST.
 *
 * The strategy is the geometric median of the clients' models (Pillutla,
 * Kakade and Harchaoui, "Robust Aggregation for Federated Learning", 2022:
 * RFA), computed by Weiszfeld's iterations: start from the mean, then
 * repeatedly average the updates with weights 1 / max(eps, ||w_k - z||).
 * Unlike a coordinate-wise median it is rotation invariant, and unlike the
 * mean a few poisoned models cannot drag it far. It needs every update of
 * the round, so it declares FEDC_STRATEGY_INDIVIDUAL and buffers them.
 *
 * Built against the installed library only:
 *     cc custom_strategy.c $(pkg-config --cflags --libs fedc) -o custom_strategy
 *     ./custom_strategy [section.key=value ...]
 * It prints each round from the simulation's callback and the final
 * accuracy, and exits 1 if its strategy was not the one that ran (its
 * callbacks are counted) or the accuracy is below 0.6.
 */
#include <fedc/error.h>
#include <fedc/settings.h>
#include <fedc/sim.h>
#include <fedc/strategy.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEISZFELD_ITERS 8
#define WEISZFELD_EPS 1e-6

/* What the callbacks did, to show that the simulation used them. */
typedef struct counts {
  int create, begin, add, finish;
} counts;

typedef struct geomed {
  size_t n;
  float **upd; /* this round's models */
  size_t count, cap;
  double *z, *next; /* the estimate, and the next one */
  counts *calls;
} geomed;

static int gm_create(size_t n, void *user_data, void **state) {
  geomed *g = calloc(1, sizeof *g);
  if (g == NULL) return fedc_error_set(FEDC_ENOMEM, "geomedian: out of memory");
  g->n = n;
  g->z = calloc(n, sizeof *g->z);
  g->next = calloc(n, sizeof *g->next);
  if (g->z == NULL || g->next == NULL) {
    free(g->z);
    free(g->next);
    free(g);
    return fedc_error_set(FEDC_ENOMEM, "geomedian: out of memory");
  }
  g->calls = user_data;
  g->calls->create++;
  *state = g;
  return 0;
}

static int gm_begin(void *state, const float *global, size_t n) {
  geomed *g = state;
  (void)global;
  (void)n;
  g->count = 0;
  g->calls->begin++;
  return 0;
}

/* Copy the model: the caller reuses its array once add returns. A failure
 * leaves the round as it was. */
static int gm_add(void *state, const float *w, size_t n, uint64_t n_samples) {
  geomed *g = state;
  (void)n_samples; /* a robust statistic: one client, one vote */
  if (g->count == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 8;
    float **p = realloc(g->upd, cap * sizeof *p);
    if (p == NULL) return fedc_error_set(FEDC_ENOMEM, "geomedian: out of memory");
    memset(p + g->cap, 0, (cap - g->cap) * sizeof *p);
    g->upd = p;
    g->cap = cap;
  }
  if (g->upd[g->count] == NULL && (g->upd[g->count] = malloc(n * sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "geomedian: out of memory");
  memcpy(g->upd[g->count], w, n * sizeof(float));
  g->count++;
  g->calls->add++;
  return 0;
}

/* Weiszfeld: z <- sum_k w_k / d_k / sum_k 1 / d_k, d_k = max(eps, ||w_k - z||),
 * from the mean, a fixed number of times. */
static int gm_finish(void *state, float *out, size_t n) {
  geomed *g = state;
  if (g->count == 0) return fedc_error_set(FEDC_EQUORUM, "geomedian: no updates");
  for (size_t i = 0; i < n; i++) {
    double s = 0.0;
    for (size_t k = 0; k < g->count; k++) s += g->upd[k][i];
    g->z[i] = s / (double)g->count;
  }
  for (int it = 0; it < WEISZFELD_ITERS; it++) {
    double wsum = 0.0;
    memset(g->next, 0, n * sizeof *g->next);
    for (size_t k = 0; k < g->count; k++) {
      double d2 = 0.0;
      for (size_t i = 0; i < n; i++) {
        double d = g->upd[k][i] - g->z[i];
        d2 += d * d;
      }
      double wk = 1.0 / fmax(WEISZFELD_EPS, sqrt(d2));
      wsum += wk;
      for (size_t i = 0; i < n; i++) g->next[i] += wk * g->upd[k][i];
    }
    for (size_t i = 0; i < n; i++) g->z[i] = g->next[i] / wsum;
  }
  for (size_t i = 0; i < n; i++) out[i] = (float)g->z[i];
  g->calls->finish++;
  return 0;
}

static void gm_destroy(void *state) {
  geomed *g = state;
  for (size_t k = 0; k < g->cap; k++) free(g->upd[k]);
  free(g->upd);
  free(g->z);
  free(g->next);
  free(g);
}

static int on_round(const fedc_round_metrics *m, void *user_data) {
  int *rounds = user_data;
  (*rounds)++;
  printf("round %d: %d clients, %lld samples, train_loss %.4f, test_acc %.4f, %.3fs\n",
         (int)m->round, (int)m->clients, (long long)m->samples, m->train_loss, m->test_acc,
         m->secs);
  return 0;
}

int main(int argc, char **argv) {
  counts calls = {0};
  fedc_strategy_def def;
  fedc_strategy_def_init(&def);
  def.name = "geomedian";
  def.caps = FEDC_STRATEGY_INDIVIDUAL;
  def.summary = "geometric median of the models (Weiszfeld)";
  def.create = gm_create;
  def.begin = gm_begin;
  def.add = gm_add;
  def.finish = gm_finish;
  def.destroy = gm_destroy;
  def.user_data = &calls;
  if (fedc_strategy_register(&def) != 0) {
    fprintf(stderr, "custom_strategy: %s\n", fedc_error_msg());
    return 1;
  }
  const fedc_strategy_info *info = fedc_strategy_lookup("geomedian");
  printf("registered %s (%s), %zu strategies in all\n", info->name, info->summary,
         fedc_strategy_count());

  /* a small job: 20 clients, 5 a round, 3 rounds, evaluated every round */
  static const char *const job[] = {"strategy.name=geomedian", "job.rounds=3",
                                    "sim.clients=20",          "job.clients_per_round=5",
                                    "sim.eval_every=1",        "train.threads=2"};
  fedc_settings *s;
  if (fedc_settings_new(&s) != 0) return 1;
  for (size_t i = 0; i < sizeof job / sizeof *job; i++)
    if (fedc_settings_set(s, job[i]) != 0) goto config_error;
  for (int i = 1; i < argc; i++)
    if (fedc_settings_set(s, argv[i]) != 0) goto config_error;
  char rounds_text[32], per_round_text[32];
  fedc_settings_get(s, "job.rounds", rounds_text, sizeof rounds_text);
  fedc_settings_get(s, "job.clients_per_round", per_round_text, sizeof per_round_text);

  fedc_sim *sim;
  if (fedc_sim_new(s, &sim) != 0) goto config_error;
  fedc_settings_free(s);
  int rounds = 0;
  if (fedc_sim_run(sim, on_round, &rounds) != 0) {
    fprintf(stderr, "custom_strategy: %s\n", fedc_error_msg());
    fedc_sim_free(sim);
    return 1;
  }
  double loss, acc;
  int rc = fedc_sim_evaluate(sim, &loss, &acc);
  fedc_sim_free(sim);
  if (rc != 0) {
    fprintf(stderr, "custom_strategy: %s\n", fedc_error_msg());
    return 1;
  }
  int want_rounds = (int)strtol(rounds_text, NULL, 10);
  int per_round = (int)strtol(per_round_text, NULL, 10);
  printf("geomedian callbacks: create %d, begin %d, add %d, finish %d\n", calls.create,
         calls.begin, calls.add, calls.finish);
  printf("final accuracy %.4f (test loss %.4f) after %d rounds\n", acc, loss, rounds);
  if (calls.create != 1 || calls.finish != want_rounds || rounds != want_rounds ||
      calls.add != want_rounds * per_round) {
    fprintf(stderr, "custom_strategy: the simulation did not run geomedian as asked\n");
    return 1;
  }
  if (!(acc >= 0.6)) {
    fprintf(stderr, "custom_strategy: accuracy %.4f is below 0.6\n", acc);
    return 1;
  }
  return 0;

config_error:
  fprintf(stderr, "custom_strategy: %s\n", fedc_error_msg());
  fedc_settings_free(s);
  return 2;
}
