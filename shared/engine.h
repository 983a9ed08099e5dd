/*
 * engine.h - the round engine: the heart of every fedc driver.
 *
 * One engine runs one FedAvg job: it selects the round's clients (seeded),
 * hands out the global model, takes their updates, aggregates them with the
 * job's strategy and commits the next global model with the round's
 * metrics. It knows nothing of sockets, threads or files: the simulator
 * drives it from its thread pool, the coordinator daemon from its event
 * loop, the MPI simulator from every rank (one replica each, kept in step
 * by fedc_engine_merge). Same calls, same results for the same seed.
 *
 * A round's life:
 *   fedc_engine_open     select clients among the eligible ones
 *   fedc_engine_submit   one update per selected client (any order)
 *   fedc_engine_merge    (MPI) the updates other replicas counted
 *   fedc_engine_close    aggregate and commit, or abandon below quorum
 *
 * The engine is not thread-safe: a driver serializes its calls.
 */
#ifndef FEDC_ENGINE_H
#define FEDC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_engine fedc_engine;

typedef struct fedc_engine_params {
  int32_t rounds;            /* rounds to commit */
  int32_t clients_per_round; /* default selection size */
  int32_t min_clients;       /* quorum: fewer updates abandon the round */
  uint64_t seed;
  const char *strategy;      /* "fedavg" */
} fedc_engine_params;

typedef struct fedc_round_metrics {
  int32_t round;      /* 1-based */
  int32_t selected;   /* clients selected */
  int32_t clients;    /* updates aggregated */
  int64_t samples;    /* sum of their sample counts */
  double train_loss;  /* sample-weighted mean of the clients' training loss */
  double test_loss;   /* NAN until fedc_engine_record_eval */
  double test_acc;    /* NAN until fedc_engine_record_eval */
  double secs;        /* set by the driver (wall time of the round) */
} fedc_round_metrics;

/* w_init: the round-0 global model (n_params floats), copied. */
int fedc_engine_new(const fedc_engine_params *p, size_t n_params,
                    const float *w_init, fedc_engine **out);
void fedc_engine_free(fedc_engine *e);

/* The round that is open, or the next to open (1-based). */
int32_t fedc_engine_round(const fedc_engine *e);
/* 1 once every round is committed. */
int fedc_engine_done(const fedc_engine *e);
int fedc_engine_is_open(const fedc_engine *e);
size_t fedc_engine_n_params(const fedc_engine *e);
/* The current global model (valid until the next commit). */
const float *fedc_engine_global(const fedc_engine *e);

/*
 * Open the next round: select min(n_select, n_eligible) of the eligible
 * client ids, drawn from the stream (seed, round, attempt); selected (room
 * for n_select) gets them in selection order. Errors: FEDC_ESTATE (a round
 * is open or the job is done), FEDC_EQUORUM (fewer eligible than
 * min_clients), FEDC_EINVAL.
 */
int fedc_engine_open(fedc_engine *e, const int32_t *eligible,
                     int32_t n_eligible, int32_t n_select, int32_t *selected,
                     int32_t *n_selected);

/*
 * Fold in a selected client's update for the open round. Checked before it
 * touches state: FEDC_ESTALE (not the open round), FEDC_ESTATE (no round
 * open), FEDC_EINVAL (client not selected this round), FEDC_EDUPLICATE (the
 * client's update was already counted: acknowledge it, it is not counted
 * again), FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ERANGE.
 */
int fedc_engine_submit(fedc_engine *e, int32_t round, int32_t client,
                       const float *w, size_t n, uint64_t n_samples,
                       double train_loss);
/* Updates counted so far in the open round, and whether all are in. */
int32_t fedc_engine_reported(const fedc_engine *e);
int fedc_engine_all_reported(const fedc_engine *e);

/*
 * Close the open round. With at least min_clients updates: aggregate,
 * commit the new global model, fill *out and advance. Otherwise
 * FEDC_EQUORUM: the round is abandoned, the global model is unchanged and
 * the same round number is opened again next time (with a new selection).
 */
int fedc_engine_close(fedc_engine *e, fedc_round_metrics *out);

/*
 * Splitting a round over processes (the MPI simulator). Every process runs
 * an engine replica made with the same parameters and initial model, so the
 * replicas open the same rounds with the same selection; each submits only
 * the updates of the clients it trains. A replica's share of the open round,
 * its partial, is written as 128-bit integers:
 *
 *   words[0 .. n_params)                 FedAvg's fixed-point sums (agg.h)
 *   words[n_params]                      the total sample count
 *   words[n_params + 1 + 3 i + 0, 1, 2]  slot i (selection order): reported
 *                                        (0 or 1), its sample count, the
 *                                        bits of its train_loss (a double)
 *
 * Every field is an integer sum, so the partials of replicas that counted
 * disjoint clients add up, word by word (modulo 2^128, as an MPI reduction
 * adds them), to the partial of one engine that was sent all their updates.
 * Merging the other replicas' sum into a replica's open round therefore
 * closes it to the same model and metrics, bit for bit, as one engine that
 * saw every update: the number of processes cannot change the result.
 */
/* Words in the open round's partial; 0 when no round is open. */
size_t fedc_engine_partial_words(const fedc_engine *e);
/* Write the open round's partial into words (n_words of them). Errors:
 * FEDC_ESTATE (no round open), FEDC_ESHAPE (n_words is not
 * fedc_engine_partial_words), FEDC_EUNSUPPORTED (the strategy keeps no
 * additive accumulator). */
int fedc_engine_partial(const fedc_engine *e, __int128 *words, size_t n_words);
/*
 * Count the updates summed in words (other replicas' partials for round)
 * in the open round, as if each had been submitted here. Checked in full
 * before anything changes: FEDC_ESTATE (no round open), FEDC_ESTALE (round
 * is not the open round), FEDC_ESHAPE (n_words), FEDC_EUNSUPPORTED (as
 * above), FEDC_EDUPLICATE (a client counted twice: already reported here,
 * or reported by two replicas), FEDC_EINVAL (a malformed partial: a report
 * flag or sample count out of range, data in an unreported slot, or a total
 * that is not the sum of the slots' counts). The quorum is checked by
 * fedc_engine_close as usual.
 */
int fedc_engine_merge(fedc_engine *e, int32_t round, const __int128 *words,
                      size_t n_words);

/* Attach test metrics and the wall time to a committed round. */
int fedc_engine_record(fedc_engine *e, int32_t round, double test_loss,
                       double test_acc, double secs);
/* Committed rounds' metrics, oldest first. */
const fedc_round_metrics *fedc_engine_history(const fedc_engine *e,
                                              int32_t *n);

/* Resume a job whose rounds 1..committed are done with global model w
 * (the coordinator, from its store). Only before the first open. */
int fedc_engine_restore(fedc_engine *e, int32_t committed, const float *w);

#endif
