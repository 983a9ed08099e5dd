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
  const char *strategy;      /* "fedavg"; used when pipeline is NULL */
  /* norm bounds, DP, aggregator and server optimizer (pipeline.h); NULL =
   * plain FedAvg (or the named strategy with its defaults). Copied. */
  const struct fedc_pipeline_params *pipeline;
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
  double epsilon;     /* DP: privacy spent so far at delta; NAN without DP */
  double delta;
  double clip_norm;   /* DP clip norm used in the round; NAN without DP */
  int32_t clipped;    /* updates clipped by [strategy] norm_bound */
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
 * min_clients), FEDC_EBUDGET (differential privacy: one more round would
 * exceed the epsilon budget; the job stops here), FEDC_EINVAL.
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

/*
 * Asynchronous rounds (FedBuff, Nguyen et al. 2022; [strategy] name =
 * fedbuff): nobody is selected and clients are not in lockstep. A client
 * trains from the global model of version v (v = rounds committed when it
 * started, fedc_engine_round(e) - 1) and sends delta = w - x_v. Each delta
 * is weighted down by its staleness tau = (rounds committed now) - v:
 * s(tau) = 1 / sqrt(1 + tau). Every buffer_k updates the engine steps
 *     x <- x + server_lr * (sum_k s(tau_k) delta_k) / buffer_k
 * and commits a round (its metrics count the buffer's updates). Each delta
 * goes through the job's pipeline (norm bound, DP clip, the aggregator, the
 * server step: pipeline.h) like a synchronous update. *stepped
 * is 1 when this update completed a step, and *out then has the round's
 * metrics. Errors, before anything changes: FEDC_ESTATE (a synchronous
 * round is open, or the job is done), FEDC_ESTALE (v in the future),
 * FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ERANGE (over [strategy] norm_bound
 * with norm_action = refuse; clipped otherwise).
 */
int fedc_engine_submit_async(fedc_engine *e, int32_t client, int32_t base,
                             const float *delta, size_t n, uint64_t n_samples,
                             double train_loss, int *stepped,
                             fedc_round_metrics *out);

/* Attach test metrics and the wall time to a committed round. */
int fedc_engine_record(fedc_engine *e, int32_t round, double test_loss,
                       double test_acc, double secs);
/* Committed rounds' metrics, oldest first. */
const fedc_round_metrics *fedc_engine_history(const fedc_engine *e,
                                              int32_t *n);

/* Resume a job whose rounds 1..committed are done with global model w
 * (the coordinator, from its store). Only before the first open. */
int fedc_engine_restore(fedc_engine *e, int32_t committed, const float *w);
/* After fedc_engine_restore under differential privacy: the privacy already
 * spent (rounds taken at the job's sampling rate) and the clip norm in use,
 * from the store's ledger. A no-op without DP. */
int fedc_engine_restore_privacy(fedc_engine *e, double clip_norm, int32_t rounds);
/* The server optimizer's state after the last commit (pipeline.h), to
 * checkpoint with the model and restore after a restart. */
size_t fedc_engine_opt_state_len(const fedc_engine *e);
int fedc_engine_opt_state_get(const fedc_engine *e, float *buf, size_t len);
int fedc_engine_opt_state_set(fedc_engine *e, const float *buf, size_t len);

/*
 * Secure aggregation (secagg.h): count the survivors' sample-weighted
 * average avg (n weights) as the updates of the n_clients clients listed,
 * with their sample counts and training losses (NULL: 0), as if each had
 * been submitted. Checked whole before anything changes: FEDC_ESTATE,
 * FEDC_ESTALE, FEDC_ESHAPE, FEDC_EINVAL (a client not selected),
 * FEDC_EDUPLICATE (already reported, or listed twice), and the pipeline's
 * refusals. Only for pipelines that act on the aggregate (FedAvg and the
 * server optimizers); the driver refuses secure aggregation with the
 * others.
 */
int fedc_engine_submit_sum(fedc_engine *e, int32_t round, const int32_t *clients,
                           const uint64_t *n_samples, const double *train_loss,
                           int32_t n_clients, const float *avg, size_t n);

#endif
