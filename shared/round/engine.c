/*
 * engine.c - the round engine (see engine.h). The state is small: the global
 * model, the strategy's accumulator, the open round's selection with one
 * slot per selected client, and the history of committed rounds' metrics.
 * Per-slot metrics are summed in selection order at close, so the metrics,
 * like the model, do not depend on the order updates arrive in. A partial
 * (fedc_engine_partial / fedc_engine_merge) is the open round's accumulator
 * and slots as integers, for drivers that split a round over processes.
 *
 * The engine is the one owner of who was selected and who reported: the
 * open round's slots, and the last committed round's (prev), kept to
 * acknowledge late resends. A close is prepare (the next model into
 * `pending`, after the pipeline has saved what its finish changes: the
 * server optimizer's state and DP's clip norm and ledger) then commit
 * (swap it in), so a driver can make the round durable in between and, if
 * that fails, abort with the round still open and its updates kept, the
 * pipeline put back as it was.
 */
#include "round/engine.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "ml/layout.h"
#include "round/pipeline.h"
#include "base/rng.h"

typedef struct slot {
  int32_t client;
  int reported;
  uint64_t n_samples;
  double train_loss;
} slot;

struct fedc_engine {
  fedc_engine_params p;
  size_t n_params;
  float *global;
  fedc_pipeline *pl; /* norm bounds, DP, the aggregator, the server optimizer */
  int32_t round;   /* open or next */
  int32_t attempt; /* re-opens of the same round after a lost quorum */
  int open;
  uint64_t opens; /* rounds opened: early folds belong to one (fedc__engine_early_*) */
  slot *slots;
  int32_t n_slots, slots_cap, reported;
  int32_t *scratch; /* eligible ids during selection */
  int32_t *sel_ids; /* the open round's selection, for fedc_engine_selected */
  int32_t sel_cap;
  /* the last committed round's reporters (client ids) */
  int32_t prev_round, n_prev, prev_cap;
  int32_t *prev;
  /* a prepared close (fedc_engine_close_prepare) */
  int prepared;
  float *pending;          /* the next global model */
  /* fedc__engine_adopt_global / _close_prepare_into: global, or pending,
   * is the caller's memory (a served model's bytes), never freed here */
  int global_borrowed, pending_borrowed;
  fedc_round_metrics pending_m;
  int32_t scratch_cap;
  fedc_round_metrics *history;
  int32_t n_history, history_cap;
  /* fedbuff's buffer: deltas counted in the pipeline's open round */
  fedc_pipeline_params pp;
  int32_t a_count;
  uint64_t a_samples;
  double a_loss;
};

int fedc_engine_new(const fedc_engine_params *p, size_t n_params,
                    const float *w_init, fedc_engine **out) {
  return fedc__engine_new_pipeline(p, NULL, n_params, w_init, out);
}

int fedc__engine_new_pipeline(const fedc_engine_params *p, const fedc_pipeline_params *pipeline,
                              size_t n_params, const float *w_init, fedc_engine **out) {
  *out = NULL;
  if (p->rounds < 1 || p->clients_per_round < 1 || p->min_clients < 1 ||
      p->min_clients > p->clients_per_round || n_params == 0)
    return fedc_error_set(FEDC_EINVAL,
                          "engine: need rounds >= 1, 1 <= min_clients <= "
                          "clients_per_round and a model");
  fedc_engine *e = fedc_calloc(1, sizeof *e);
  if (e == NULL) return fedc_error_set(FEDC_ENOMEM, "engine: out of memory");
  e->p = *p;
  e->n_params = n_params;
  e->round = 1;
  e->global = fedc_malloc_array(n_params, sizeof(float));
  fedc_pipeline_params pp;
  if (pipeline) {
    pp = *pipeline;
  } else {
    fedc_pipeline_params_fedavg(&pp, p->clients_per_round);
    if (p->strategy) pp.agg.name = pp.opt.name = p->strategy;
  }
  e->pp = pp;
  int rc = e->global ? fedc_pipeline_new(&pp, n_params, &e->pl)
                     : fedc_error_set(FEDC_ENOMEM, "engine: out of memory");
  if (rc == 0 && pp.layout && pp.layout->n_float != n_params)
    rc = fedc_error_set(FEDC_EINVAL, "engine: the layout has %zu float values, the model %zu",
                        pp.layout->n_float, n_params);
  if (rc != 0) {
    fedc_engine_free(e);
    return rc;
  }
  memcpy(e->global, w_init, n_params * sizeof(float));
  *out = e;
  return 0;
}

void fedc_engine_free(fedc_engine *e) {
  if (e == NULL) return;
  fedc_pipeline_free(e->pl);
  if (!e->global_borrowed) fedc_free(e->global);
  if (e->pending_borrowed) e->pending = NULL;
  fedc_free(e->slots);
  fedc_free(e->scratch);
  fedc_free(e->sel_ids);
  fedc_free(e->prev);
  fedc_free(e->pending);
  fedc_free(e->history);
  fedc_free(e);
}

int32_t fedc_engine_round(const fedc_engine *e) { return e->round; }
int fedc_engine_done(const fedc_engine *e) { return e->round > e->p.rounds; }
int fedc_engine_is_open(const fedc_engine *e) { return e->open; }
size_t fedc_engine_n_params(const fedc_engine *e) { return e->n_params; }
const float *fedc_engine_global(const fedc_engine *e) { return e->global; }
int32_t fedc_engine_reported(const fedc_engine *e) { return e->reported; }
int fedc_engine_all_reported(const fedc_engine *e) {
  return e->open && e->reported == e->n_slots;
}

void fedc_engine_params_init(fedc_engine_params *p) {
  *p = (fedc_engine_params){.rounds = 1, .clients_per_round = 1, .min_clients = 1,
                            .strategy = "fedavg"};
}

int32_t fedc_engine_n_selected(const fedc_engine *e) { return e->open ? e->n_slots : 0; }
const int32_t *fedc_engine_selected(const fedc_engine *e) { return e->sel_ids; }

static const slot *find_slot(const fedc_engine *e, int32_t client) {
  for (int32_t i = 0; e->open && i < e->n_slots; i++)
    if (e->slots[i].client == client) return &e->slots[i];
  return NULL;
}

int fedc_engine_is_selected(const fedc_engine *e, int32_t client) {
  return find_slot(e, client) != NULL;
}

int fedc_engine_has_reported(const fedc_engine *e, int32_t round, int32_t client) {
  if (e->open && round == e->round) {
    const slot *s = find_slot(e, client);
    return s != NULL && s->reported;
  }
  if (round != e->prev_round || round < 1) return 0;
  for (int32_t i = 0; i < e->n_prev; i++)
    if (e->prev[i] == client) return 1;
  return 0;
}

static int grow(void **buf, int32_t *cap, int32_t need, size_t elem) {
  if (need <= *cap) return 0;
  void *nb = fedc_realloc(*buf, (size_t)need * elem);
  if (nb == NULL) return fedc_error_set(FEDC_ENOMEM, "engine: out of memory");
  *buf = nb;
  *cap = need;
  return 0;
}

int fedc_engine_open(fedc_engine *e, const int32_t *eligible,
                     int32_t n_eligible, int32_t n_select, int32_t *selected,
                     int32_t *n_selected) {
  *n_selected = 0;
  if (e->open) return fedc_error_set(FEDC_ESTATE, "engine: round %d is already open", (int)e->round);
  if (fedc_engine_done(e)) return fedc_error_set(FEDC_ESTATE, "engine: the job is finished");
  if (n_select < 1 || n_eligible < 0)
    return fedc_error_set(FEDC_EINVAL, "engine: selection of %d clients", (int)n_select);
  if (fedc_pipeline_budget_exhausted(e->pl))
    return fedc_error_set(FEDC_EBUDGET,
                          "engine: round %d would take the privacy loss past "
                          "[privacy] epsilon_budget (epsilon so far %.4f)",
                          (int)e->round, fedc_pipeline_epsilon(e->pl));
  if (n_eligible < e->p.min_clients)
    return fedc_error_set(FEDC_EQUORUM,
                          "engine: %d eligible clients, quorum needs %d",
                          (int)n_eligible, (int)e->p.min_clients);
  int32_t k = n_select < n_eligible ? n_select : n_eligible;
  int rc = grow((void **)&e->scratch, &e->scratch_cap, n_eligible, sizeof(int32_t));
  if (rc == 0) rc = grow((void **)&e->slots, &e->slots_cap, k, sizeof(slot));
  if (rc == 0) rc = grow((void **)&e->sel_ids, &e->sel_cap, k, sizeof(int32_t));
  if (rc == 0) rc = grow((void **)&e->prev, &e->prev_cap, k, sizeof(int32_t));
  if (rc != 0) return rc;
  /* partial Fisher-Yates: the first k of a seeded shuffle */
  memcpy(e->scratch, eligible, (size_t)n_eligible * sizeof(int32_t));
  fedc_rng rng;
  fedc_rng_derive(&rng, e->p.seed, 0x73656c /* "sel" */, (uint64_t)e->round,
                  (uint64_t)e->attempt);
  for (int32_t i = 0; i < k; i++) {
    int32_t j = i + (int32_t)fedc_rng_below(&rng, (uint64_t)(n_eligible - i));
    int32_t t = e->scratch[i];
    e->scratch[i] = e->scratch[j];
    e->scratch[j] = t;
    e->slots[i] = (slot){.client = e->scratch[i]};
    selected[i] = e->sel_ids[i] = e->scratch[i];
  }
  rc = fedc_pipeline_begin(e->pl, e->global);
  if (rc != 0) return rc;
  e->opens++;
  e->n_slots = k;
  e->reported = 0;
  e->open = 1;
  *n_selected = k;
  return 0;
}

/* The slot an update of client for round goes to (*out), or the refusal:
 * no round open, the round being committed, another round, a client not
 * selected, or one that already reported. */
static int take_slot(fedc_engine *e, int32_t round, int32_t client, slot **out) {
  *out = NULL;
  if (!e->open) return fedc_error_set(FEDC_ESTATE, "engine: no round is open");
  if (e->prepared)
    return fedc_error_set(FEDC_ESTATE, "engine: round %d is being committed", (int)e->round);
  if (round != e->round)
    return fedc_error_set(FEDC_ESTALE, "engine: update for round %d, open round is %d",
                          (int)round, (int)e->round);
  slot *s = NULL;
  for (int32_t i = 0; i < e->n_slots && s == NULL; i++)
    if (e->slots[i].client == client) s = &e->slots[i];
  if (s == NULL)
    return fedc_error_set(FEDC_EINVAL, "engine: client %d was not selected in round %d",
                          (int)client, (int)round);
  if (s->reported)
    return fedc_error_set(FEDC_EDUPLICATE,
                          "engine: client %d already reported in round %d",
                          (int)client, (int)round);
  *out = s;
  return 0;
}

/* Slot s's update is in the round's sums. */
static void report(fedc_engine *e, slot *s, uint64_t n_samples, double train_loss) {
  s->reported = 1;
  s->n_samples = n_samples;
  s->train_loss = train_loss;
  e->reported++;
}

int fedc_engine_submit(fedc_engine *e, int32_t round, int32_t client,
                       const float *w, size_t n, uint64_t n_samples,
                       double train_loss) {
  slot *s;
  int rc = take_slot(e, round, client, &s);
  if (rc != 0) return rc;
  if (n != e->n_params)
    return fedc_error_set(FEDC_ESHAPE, "engine: update has %zu weights, model has %zu",
                          n, e->n_params);
  rc = fedc_pipeline_add(e->pl, e->global, w, n, n_samples);
  if (rc != 0) return rc;
  report(e, s, n_samples, train_loss);
  return 0;
}

const float *fedc__engine_variate(const fedc_engine *e) {
  return fedc_pipeline_variate(e->pl);
}

int fedc__engine_submit_variate(fedc_engine *e, int32_t round, int32_t client, const float *w,
                                const float *dc, size_t n, uint64_t n_samples,
                                double train_loss) {
  int rc = fedc_pipeline_check_variate(e->pl, dc, n);
  if (rc == 0) rc = fedc_engine_submit(e, round, client, w, n, n_samples, train_loss);
  /* checked above, and the sample count passed the model's own check */
  if (rc == 0) rc = fedc_pipeline_add_variate(e->pl, dc, n, n_samples);
  return rc;
}

/*
 * Prepare: everything a close computes, into e->pending and e->pending_m,
 * leaving the committed state (global, round, history) alone. The
 * aggregators' finish only reads their accumulators, so a prepare can be
 * repeated after an abort; what the pipeline's finish does change (the
 * server optimizer's state, DP's clip norm and privacy ledger) it saves
 * first (fedc_pipeline_save) and an abort puts back. Every allocation the
 * commit needs (the history's next row) is made here, so that
 * fedc_engine_close_commit cannot fail.
 */
static int close_prepare(fedc_engine *e, fedc_round_metrics *out, const float **next);

/* The checks and the history's room a prepare needs first. */
static int prepare_check(fedc_engine *e) {
  if (!e->open) return fedc_error_set(FEDC_ESTATE, "engine: no round is open");
  if (e->prepared)
    return fedc_error_set(FEDC_ESTATE, "engine: round %d is already prepared", (int)e->round);
  if (e->reported < e->p.min_clients) {
    e->open = 0;
    e->attempt++;
    return fedc_error_set(FEDC_EQUORUM,
                          "engine: round %d got %d updates, quorum is %d; "
                          "not committed",
                          (int)e->round, (int)e->reported, (int)e->p.min_clients);
  }
  return grow((void **)&e->history, &e->history_cap, e->n_history + 1,
              sizeof(fedc_round_metrics));
}

int fedc_engine_close_prepare(fedc_engine *e, fedc_round_metrics *out,
                              const float **next) {
  int rc = prepare_check(e);
  if (rc != 0) return rc;
  if (e->pending_borrowed) { /* a borrowed buffer from an aborted prepare_into */
    e->pending = NULL;
    e->pending_borrowed = 0;
  }
  if (e->pending == NULL &&
      (e->pending = fedc_malloc_array(e->n_params, sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "engine: out of memory");
  return close_prepare(e, out, next);
}

/* The prepare's work once e->pending is the buffer to fill. */
static int close_prepare(fedc_engine *e, fedc_round_metrics *out, const float **next) {
  int rc;
  if ((rc = fedc_pipeline_save(e->pl)) != 0) return rc;
  memcpy(e->pending, e->global, e->n_params * sizeof(float));
  fedc_pipeline_round pr;
  rc = fedc__pipeline_finish_base(e->pl, e->round, e->pending, e->global, e->n_params,
                                  e->reported, &pr);
  if (rc != 0) {
    fedc_pipeline_undo(e->pl); /* finish may have stepped DP before failing */
    return rc;
  }
  if (e->pp.layout) fedc_layout_round(e->pp.layout, e->pending); /* F16/BF16 tensors */
  fedc_round_metrics m = {.round = e->round, .selected = e->n_slots,
                          .clients = e->reported, .test_loss = NAN,
                          .test_acc = NAN, .secs = NAN, .epsilon = pr.epsilon,
                          .delta = pr.delta, .clip_norm = pr.clip_norm,
                          .clipped = pr.clipped, .capped = pr.capped};
  double loss = 0.0;
  for (int32_t i = 0; i < e->n_slots; i++) {
    if (!e->slots[i].reported) continue;
    m.samples += (int64_t)e->slots[i].n_samples;
    loss += e->slots[i].train_loss * (double)e->slots[i].n_samples;
  }
  if (m.samples) loss /= (double)m.samples;
  /* finite losses times sample counts can overflow to inf: then each loss
   * times its share of the samples, whose sum stays finite; a mean that
   * still is not finite is stored as NAN, "no loss" */
  if (m.samples && !isfinite(loss)) {
    loss = 0.0;
    for (int32_t i = 0; i < e->n_slots; i++)
      if (e->slots[i].reported)
        loss += e->slots[i].train_loss * ((double)e->slots[i].n_samples / (double)m.samples);
  }
  m.train_loss = m.samples && isfinite(loss) ? loss : NAN;
  e->pending_m = m;
  e->prepared = 1;
  if (out) *out = m;
  if (next) *next = e->pending;
  return 0;
}

int fedc_engine_close_commit(fedc_engine *e) {
  if (!e->prepared) return fedc_error_set(FEDC_ESTATE, "engine: no close is prepared");
  float *t = e->global;
  int t_borrowed = e->global_borrowed;
  e->global = e->pending;
  e->global_borrowed = e->pending_borrowed;
  /* the old global is the next prepare's buffer, unless it is the caller's
   * (then gone) or the new one is (a large model: its memory is freed) */
  e->pending = t_borrowed ? NULL : t;
  e->pending_borrowed = 0;
  if (e->global_borrowed && e->pending) {
    fedc_free(e->pending);
    e->pending = NULL;
  }
  e->history[e->n_history++] = e->pending_m;
  /* the reporters, kept for late resends (prev has room: sized at open) */
  e->n_prev = 0;
  for (int32_t i = 0; i < e->n_slots; i++)
    if (e->slots[i].reported) e->prev[e->n_prev++] = e->slots[i].client;
  e->prev_round = e->round;
  e->prepared = 0;
  e->open = 0;
  e->attempt = 0;
  e->round++;
  return 0;
}

/* The pipeline saved at the prepare; its undo cannot fail after a save
 * that succeeded (the prepare's). */
int fedc_engine_close_abort(fedc_engine *e) {
  if (!e->prepared) return fedc_error_set(FEDC_ESTATE, "engine: no close is prepared");
  e->prepared = 0;
  return fedc_pipeline_undo(e->pl);
}

int fedc__engine_close_prepare_into(fedc_engine *e, float *next, fedc_round_metrics *out) {
  int rc = prepare_check(e);
  if (rc != 0) return rc;
  if (e->pending && !e->pending_borrowed) fedc_free(e->pending);
  e->pending = next;
  e->pending_borrowed = 1;
  return close_prepare(e, out, NULL);
}

void fedc__engine_adopt_global(fedc_engine *e, float *global) {
  if (!e->global_borrowed) fedc_free(e->global);
  if (e->pending && !e->pending_borrowed) fedc_free(e->pending);
  e->pending = NULL;
  e->pending_borrowed = 0;
  e->global = global;
  e->global_borrowed = 1;
}

int fedc_engine_close(fedc_engine *e, fedc_round_metrics *out) {
  int rc = fedc_engine_close_prepare(e, out, NULL);
  return rc != 0 ? rc : fedc_engine_close_commit(e);
}

int fedc_engine_restore_reporters(fedc_engine *e, const int32_t *clients, int32_t n) {
  if (e->open || n < 0) return fedc_error_set(FEDC_ESTATE, "engine: restore only between rounds");
  int rc = grow((void **)&e->prev, &e->prev_cap, n, sizeof(int32_t));
  if (rc != 0) return rc;
  if (n > 0) memcpy(e->prev, clients, (size_t)n * sizeof(int32_t));
  e->n_prev = n;
  e->prev_round = e->round - 1;
  return 0;
}

/* Words a partial gives each slot: reported, n_samples, train_loss bits. */
#define SLOT_WORDS 3
#define MAX_SAMPLES ((__int128)1 << 40) /* fedavg's bound on one update */

/* The checks a partial of n_words words shares with the open round, then
 * the round's FedAvg accumulator (the only additive strategy so far). */
static int partial_state(const fedc_engine *e, size_t n_words, __int128 **acc,
                         uint64_t **total) {
  if (!e->open) return fedc_error_set(FEDC_ESTATE, "engine: no round is open");
  if (n_words != fedc_engine_partial_words(e))
    return fedc_error_set(FEDC_ESHAPE, "engine: partial of %zu words, round has %zu",
                          n_words, fedc_engine_partial_words(e));
  fedc_strategy *agg = fedc_pipeline_aggregator(e->pl);
  /* the share cap's held updates go into the sums at full weight: a round
   * split over processes is not capped (pipeline.h) */
  fedc_pipeline_flush(e->pl);
  if (!fedc_strategy_is_additive(agg) || fedc_pipeline_dp_on(e->pl))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "engine: strategy %s%s cannot be split over processes",
                          agg->ops->name,
                          fedc_pipeline_dp_on(e->pl) ? " with differential privacy" : "");
  fedc_fedavg_state(agg, acc, total);
  if (*acc == NULL)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "engine: a model in large-model mode ([server] spill_above_mb) keeps "
                          "its sums in a file and cannot be split over processes");
  return 0;
}

size_t fedc_engine_partial_words(const fedc_engine *e) {
  return e->open ? e->n_params + 1 + SLOT_WORDS * (size_t)e->n_slots : 0;
}

int fedc_engine_partial(const fedc_engine *e, __int128 *words, size_t n_words) {
  __int128 *acc;
  uint64_t *total;
  int rc = partial_state(e, n_words, &acc, &total);
  if (rc != 0) return rc;
  memcpy(words, acc, e->n_params * sizeof *acc);
  words[e->n_params] = (__int128)*total;
  __int128 *w = words + e->n_params + 1;
  for (int32_t i = 0; i < e->n_slots; i++) {
    const slot *s = &e->slots[i];
    uint64_t bits = 0;
    if (s->reported) memcpy(&bits, &s->train_loss, sizeof bits);
    w[SLOT_WORDS * i] = s->reported ? 1 : 0;
    w[SLOT_WORDS * i + 1] = s->reported ? (__int128)s->n_samples : 0;
    w[SLOT_WORDS * i + 2] = (__int128)bits;
  }
  return 0;
}

/*
 * Validate every slot of the incoming partial against the open round before
 * touching anything, so that a bad partial (a client trained by two ranks, a
 * buffer summed wrongly) is refused whole and the round stays as it was.
 * The accumulator words themselves cannot be checked: they are trusted as
 * much as the replicas that produced them.
 */
int fedc_engine_merge(fedc_engine *e, int32_t round, const __int128 *words,
                      size_t n_words) {
  if (e->open && round != e->round)
    return fedc_error_set(FEDC_ESTALE, "engine: partial for round %d, open round is %d",
                          (int)round, (int)e->round);
  if (e->prepared)
    return fedc_error_set(FEDC_ESTATE, "engine: round %d is being committed", (int)e->round);
  __int128 *acc;
  uint64_t *total;
  int rc = partial_state(e, n_words, &acc, &total);
  if (rc != 0) return rc;
  const __int128 *w = words + e->n_params + 1;
  __int128 samples = 0;
  int32_t added = 0;
  for (int32_t i = 0; i < e->n_slots; i++) {
    __int128 flag = w[SLOT_WORDS * i], n = w[SLOT_WORDS * i + 1],
             bits = w[SLOT_WORDS * i + 2];
    int client = (int)e->slots[i].client;
    if (flag == 0) {
      if (n != 0 || bits != 0)
        return fedc_error_set(FEDC_EINVAL, "engine: partial has data for client "
                              "%d but no report", client);
      continue;
    }
    if (flag > 1 && flag <= INT32_MAX)
      return fedc_error_set(FEDC_EDUPLICATE, "engine: client %d was counted by "
                            "%d replicas in round %d", client, (int)flag, (int)round);
    if (flag != 1)
      return fedc_error_set(FEDC_EINVAL, "engine: partial's report flag for "
                            "client %d is out of range", client);
    if (e->slots[i].reported)
      return fedc_error_set(FEDC_EDUPLICATE, "engine: client %d already reported "
                            "in round %d", client, (int)round);
    if (n < 1 || n > MAX_SAMPLES || bits < 0 || bits > (__int128)UINT64_MAX)
      return fedc_error_set(FEDC_EINVAL, "engine: partial's sample count or "
                            "loss for client %d is out of range", client);
    samples += n;
    added++;
  }
  if (words[e->n_params] != samples)
    return fedc_error_set(FEDC_EINVAL, "engine: partial's total sample count "
                          "is not the sum of its slots'");
  /* modulo 2^128 like the reduction that produced words; a genuine sum
   * stays far inside the range (see agg.h) */
  for (size_t j = 0; j < e->n_params; j++)
    acc[j] = (__int128)((unsigned __int128)acc[j] + (unsigned __int128)words[j]);
  *total += (uint64_t)samples;
  for (int32_t i = 0; i < e->n_slots; i++) {
    if (w[SLOT_WORDS * i] == 0) continue;
    slot *s = &e->slots[i];
    uint64_t bits = (uint64_t)w[SLOT_WORDS * i + 2];
    s->reported = 1;
    s->n_samples = (uint64_t)w[SLOT_WORDS * i + 1];
    memcpy(&s->train_loss, &bits, sizeof bits);
  }
  e->reported += added;
  return 0;
}

int fedc_engine_record(fedc_engine *e, int32_t round, double test_loss,
                       double test_acc, double secs) {
  for (int32_t i = e->n_history - 1; i >= 0; i--) {
    if (e->history[i].round != round) continue;
    e->history[i].test_loss = test_loss;
    e->history[i].test_acc = test_acc;
    e->history[i].secs = secs;
    return 0;
  }
  return fedc_error_set(FEDC_ENOTFOUND, "engine: round %d is not committed", (int)round);
}

const fedc_round_metrics *fedc_engine_history(const fedc_engine *e, int32_t *n) {
  *n = e->n_history;
  return e->history;
}

int fedc_engine_restore(fedc_engine *e, int32_t committed, const float *w) {
  if (e->open || e->n_history > 0 || e->round != 1)
    return fedc_error_set(FEDC_ESTATE, "engine: restore only before the first round");
  if (committed < 0 || committed > e->p.rounds)
    return fedc_error_set(FEDC_EINVAL, "engine: restore to round %d of %d",
                          (int)committed, (int)e->p.rounds);
  memcpy(e->global, w, e->n_params * sizeof(float));
  e->round = committed + 1;
  return 0;
}

int fedc__engine_account_release(fedc_engine *e, double sigma) {
  return fedc_pipeline_account_release(e->pl, sigma);
}

int fedc_engine_restore_privacy(fedc_engine *e, double clip_norm, int32_t rounds) {
  return fedc_pipeline_restore_privacy(e->pl, clip_norm, rounds);
}

/*
 * FedBuff (see engine.h). Each delta goes through the pipeline like a
 * synchronous update (norm bound, DP clip, the aggregator), weighted by its
 * staleness; the buffer is a pipeline round opened at its first delta and
 * closed, with the server step, at its buffer_k-th. Updates come in an
 * order the driver fixes (the simulator's virtual clock), so the result is
 * reproducible for a seed.
 */
int fedc_engine_submit_async(fedc_engine *e, int32_t client, int32_t base,
                             const float *delta, size_t n, uint64_t n_samples,
                             double train_loss, int *stepped,
                             fedc_round_metrics *out) {
  *stepped = 0;
  (void)client;
  if (e->open) return fedc_error_set(FEDC_ESTATE, "engine: a synchronous round is open");
  if (fedc_engine_done(e)) return fedc_error_set(FEDC_ESTATE, "engine: the job is finished");
  int32_t version = e->round - 1;
  if (base < 0 || base > version)
    return fedc_error_set(FEDC_ESTALE, "engine: update from version %d, newest is %d",
                          (int)base, (int)version);
  if (n != e->n_params)
    return fedc_error_set(FEDC_ESHAPE, "engine: update has %zu weights, model has %zu",
                          n, e->n_params);
  int rc = grow((void **)&e->history, &e->history_cap, e->n_history + 1,
                sizeof(fedc_round_metrics));
  if (rc == 0 && e->a_count == 0) rc = fedc_pipeline_begin(e->pl, e->global);
  if (rc != 0) return rc;
  double tau = (double)(version - base);
  rc = fedc_pipeline_add_async(e->pl, e->global, delta, n, 1.0 / sqrt(1.0 + tau));
  if (rc != 0) return rc;
  e->a_count++;
  e->a_samples += n_samples;
  e->a_loss += train_loss * (double)n_samples;
  int32_t k = e->pp.buffer_k > 0 ? e->pp.buffer_k : 1;
  if (e->a_count < k) return 0;
  fedc_pipeline_round pr;
  rc = fedc_pipeline_finish(e->pl, e->round, e->global, e->n_params, e->a_count, &pr);
  if (rc != 0) return rc;
  if (e->pp.layout) fedc_layout_round(e->pp.layout, e->global);
  fedc_round_metrics m = {.round = e->round, .selected = k, .clients = e->a_count,
                          .samples = (int64_t)e->a_samples,
                          .train_loss = e->a_samples && isfinite(e->a_loss)
                                            ? e->a_loss / (double)e->a_samples : NAN,
                          .test_loss = NAN, .test_acc = NAN, .secs = NAN,
                          .epsilon = pr.epsilon, .delta = pr.delta, .clip_norm = pr.clip_norm,
                          .clipped = pr.clipped, .capped = pr.capped};
  e->history[e->n_history++] = m;
  e->round++;
  e->a_count = 0;
  e->a_samples = 0;
  e->a_loss = 0.0;
  *stepped = 1;
  if (out) *out = m;
  return 0;
}

/* ---- secure aggregation (shared/secagg.h) ----------------------------------
 * Kept at the end of the file and self-contained: it uses the slots and
 * the pipeline the same way fedc_engine_submit does. */

/*
 * The coordinator never sees single updates under secure aggregation, only
 * the sample-weighted average of the survivors'. Count it as their updates:
 * each client's slot is marked reported with its sample count and loss
 * (for the round's metrics), and the average goes through the pipeline
 * once, weighted by the total. FedAvg then gives the same model as the
 * updates one by one, up to its fixed-point rounding; server optimizers act
 * on the aggregate as usual. Everything is checked before the state
 * changes.
 */
int fedc_engine_submit_sum(fedc_engine *e, int32_t round, const int32_t *clients,
                           const uint64_t *n_samples, const double *train_loss,
                           int32_t n_clients, const float *avg, size_t n) {
  if (!e->open) return fedc_error_set(FEDC_ESTATE, "engine: no round is open");
  if (e->prepared)
    return fedc_error_set(FEDC_ESTATE, "engine: round %d is being committed", (int)e->round);
  if (round != e->round)
    return fedc_error_set(FEDC_ESTALE, "engine: sum for round %d, open round is %d",
                          (int)round, (int)e->round);
  if (n != e->n_params)
    return fedc_error_set(FEDC_ESHAPE, "engine: sum has %zu weights, model has %zu", n,
                          e->n_params);
  if (n_clients < 1 || clients == NULL || n_samples == NULL || avg == NULL)
    return fedc_error_set(FEDC_EINVAL, "engine: a sum of %d clients", (int)n_clients);
  uint64_t total = 0;
  for (int32_t k = 0; k < n_clients; k++) {
    slot *s = NULL;
    for (int32_t i = 0; i < e->n_slots && s == NULL; i++)
      if (e->slots[i].client == clients[k]) s = &e->slots[i];
    if (s == NULL)
      return fedc_error_set(FEDC_EINVAL, "engine: client %d was not selected in round %d",
                            (int)clients[k], (int)round);
    if (s->reported)
      return fedc_error_set(FEDC_EDUPLICATE, "engine: client %d already reported in round %d",
                            (int)clients[k], (int)round);
    for (int32_t j = 0; j < k; j++)
      if (clients[j] == clients[k])
        return fedc_error_set(FEDC_EDUPLICATE, "engine: client %d twice in a sum",
                              (int)clients[k]);
    if (n_samples[k] < 1)
      return fedc_error_set(FEDC_ERANGE, "engine: client %d has no samples", (int)clients[k]);
    total += n_samples[k];
  }
  int rc = fedc_pipeline_add_sum(e->pl, e->global, avg, n, total);
  if (rc != 0) return rc;
  for (int32_t k = 0; k < n_clients; k++)
    for (int32_t i = 0; i < e->n_slots; i++)
      if (e->slots[i].client == clients[k]) {
        e->slots[i].reported = 1;
        e->slots[i].n_samples = n_samples[k];
        e->slots[i].train_loss = train_loss ? train_loss[k] : 0.0;
      }
  e->reported += n_clients;
  return 0;
}

size_t fedc_engine_opt_state_len(const fedc_engine *e) {
  return fedc_pipeline_opt_state_len(e->pl);
}

int fedc_engine_opt_state_get(const fedc_engine *e, float *buf, size_t len) {
  return fedc_pipeline_opt_state_get(e->pl, buf, len);
}

int fedc_engine_opt_state_set(fedc_engine *e, const float *buf, size_t len) {
  return fedc_pipeline_opt_state_set(e->pl, buf, len);
}

/* ---- early folds (coordinator/upload_fold.c; engine.h) ------------------- */

/* The open round's slot of a selected client that has not reported, or NULL. */
int fedc__engine_early_begin(fedc_engine *e, int32_t round, int32_t client, uint64_t n_samples,
                             uint64_t *gen) {
  slot *s;
  if (take_slot(e, round, client, &s) != 0 || !fedc__pipeline_fold_early_ok(e->pl, n_samples))
    return 0;
  *gen = e->opens;
  return 1;
}

int fedc__engine_early_live(const fedc_engine *e, uint64_t gen) {
  return e->open && !e->prepared && e->opens == gen;
}

int fedc__engine_early_fold(fedc_engine *e, size_t off, const float *w, size_t len, int64_t m,
                            float *y) {
  if (off > e->n_params || len > e->n_params - off)
    return fedc_error_set(FEDC_ESHAPE, "engine: weights %zu..%zu of %zu", off, off + len,
                          e->n_params);
  return fedc__pipeline_fold_early(e->pl, e->global, off, w, len, m, y);
}

int fedc__engine_submit_folded(fedc_engine *e, int32_t round, int32_t client,
                               uint64_t n_samples, double train_loss, int *fd,
                               uint64_t data_off) {
  slot *s;
  int rc = take_slot(e, round, client, &s);
  if (rc != 0) return rc;
  if (!fedc__pipeline_fold_early_ok(e->pl, n_samples))
    return fedc_error_set(FEDC_ESTATE, "engine: this round's updates are not folded early");
  rc = fedc__pipeline_add_folded(e->pl, n_samples, fd, data_off);
  if (rc != 0) return rc;
  report(e, s, n_samples, train_loss);
  return 0;
}

void fedc__engine_early_fail(fedc_engine *e) { fedc__pipeline_fail(e->pl); }
