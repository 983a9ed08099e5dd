/*
 * fedc/engine.h - the round engine: the heart of every fedc driver.
 *
 * One engine runs one federated job: it selects the round's clients
 * (seeded), takes their updates, aggregates them with the job's strategy
 * and commits the next global model with the round's metrics. It knows
 * nothing of sockets, threads or files: the simulator drives it from its
 * thread pool, the coordinator daemon from its event loop, the MPI
 * simulator from every rank. Same calls, same results for the same seed.
 *
 * The engine is the one owner of a round's facts: who was selected in the
 * open round, who has reported, who was counted in the last committed
 * round. Drivers ask it (fedc_engine_is_selected, fedc_engine_has_reported)
 * rather than keep copies.
 *
 *     fedc_engine_params p;
 *     fedc_engine_params_init(&p);
 *     p.rounds = 10; p.clients_per_round = 4; p.min_clients = 2; p.seed = 7;
 *     fedc_engine *e;
 *     if (fedc_engine_new(&p, n, w0, &e) != 0) ...;        // fedc_error_msg()
 *     while (!fedc_engine_done(e)) {
 *       int32_t sel[4], k;
 *       fedc_engine_open(e, ids, n_ids, 4, sel, &k);
 *       for (i < k) fedc_engine_submit(e, fedc_engine_round(e), sel[i], w_i, n,
 *                                      samples_i, loss_i);
 *       fedc_round_metrics m;
 *       fedc_engine_close(e, &m);                           // or FEDC_EQUORUM
 *     }
 *     fedc_engine_free(e);
 *
 * A round's commit can be split in two so that a driver makes it durable in
 * between: fedc_engine_close_prepare computes the next model without
 * changing the engine's committed state, fedc_engine_close_commit makes it
 * the global model (it cannot fail), fedc_engine_close_abort forgets it and
 * leaves the round open with its updates, to be prepared again.
 *
 * Threads: an engine is not thread-safe; a driver serializes its calls
 * (any thread). Nothing here calls back. Every pointer an engine returns
 * points into the engine and stays valid as documented per function.
 */
#ifndef FEDC_PUBLIC_ENGINE_H
#define FEDC_PUBLIC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedc_engine fedc_engine;

typedef struct fedc_engine_params {
  int32_t rounds;            /* rounds to commit */
  int32_t clients_per_round; /* default selection size */
  int32_t min_clients;       /* quorum: fewer updates abandon the round */
  uint64_t seed;
  const char *strategy;      /* a registered strategy (<fedc/strategy.h>); NULL = "fedavg" */
} fedc_engine_params;

/* The metrics of one committed round, shared by the engine, the
 * coordinator's round-committed callback and the simulator. */
typedef struct fedc_round_metrics {
  int32_t round;      /* 1-based */
  int32_t selected;   /* clients selected */
  int32_t clients;    /* updates aggregated */
  int64_t samples;    /* sum of their sample counts */
  double train_loss;  /* sample-weighted mean of the clients' training loss */
  double test_loss;   /* NAN until evaluated (fedc_engine_record) */
  double test_acc;    /* NAN until evaluated (NAN for regression) */
  double secs;        /* set by the driver (wall time of the round) */
  double epsilon;     /* DP: privacy spent so far at delta; NAN without DP */
  double delta;
  double clip_norm;   /* DP clip norm used in the round; NAN without DP */
  int32_t clipped;    /* updates clipped by [strategy] norm_bound */
  int32_t capped;     /* updates whose weight [strategy] max_client_share cut */
} fedc_round_metrics;

/* Defaults: 1 round, 1 client per round, quorum 1, seed 0, "fedavg". */
void fedc_engine_params_init(fedc_engine_params *p);

/* w_init: the round-0 global model (n_params floats), copied. *out is the
 * caller's, freed with fedc_engine_free. FEDC_EINVAL, FEDC_ENOMEM. */
int fedc_engine_new(const fedc_engine_params *p, size_t n_params,
                    const float *w_init, fedc_engine **out);
void fedc_engine_free(fedc_engine *e);

/* The round that is open, or the next to open (1-based). */
int32_t fedc_engine_round(const fedc_engine *e);
/* 1 once every round is committed. */
int fedc_engine_done(const fedc_engine *e);
int fedc_engine_is_open(const fedc_engine *e);
size_t fedc_engine_n_params(const fedc_engine *e);
/* The current (committed) global model, valid until the next commit. */
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
 * open, or it is being committed), FEDC_EINVAL (client not selected this
 * round), FEDC_EDUPLICATE (the client's update was already counted:
 * acknowledge it, it is not counted again), FEDC_ESHAPE, FEDC_ENONFINITE,
 * FEDC_ERANGE.
 */
int fedc_engine_submit(fedc_engine *e, int32_t round, int32_t client,
                       const float *w, size_t n, uint64_t n_samples,
                       double train_loss);
/* Updates counted so far in the open round, and whether all are in. */
int32_t fedc_engine_reported(const fedc_engine *e);
int fedc_engine_all_reported(const fedc_engine *e);

/* The open round's selection: its size (0 when no round is open) and the
 * client ids in selection order (valid until the round closes). */
int32_t fedc_engine_n_selected(const fedc_engine *e);
const int32_t *fedc_engine_selected(const fedc_engine *e);
/* 1 when client was selected in the open round, else 0. */
int fedc_engine_is_selected(const fedc_engine *e, int32_t client);
/* 1 when client's update is counted in round: the open round, or the last
 * committed one (so that a late resend is acknowledged as a duplicate);
 * else 0. */
int fedc_engine_has_reported(const fedc_engine *e, int32_t round, int32_t client);

/*
 * Close the open round. With at least min_clients updates: aggregate,
 * commit the new global model, fill *out (may be NULL) and advance.
 * Otherwise FEDC_EQUORUM: the round is abandoned, the global model is
 * unchanged and the same round number is opened again next time (with a
 * new selection). Other errors (FEDC_ENOMEM...) leave the round open.
 * fedc_engine_close is fedc_engine_close_prepare then _commit.
 */
int fedc_engine_close(fedc_engine *e, fedc_round_metrics *out);

/*
 * The first half of a close: below quorum, abandon the round as
 * fedc_engine_close does (FEDC_EQUORUM). Otherwise aggregate into a pending
 * model (*next, n_params floats, valid until _commit or _abort; NULL
 * allowed) and fill *out with the round's metrics, changing neither the
 * global model nor the round nor the history. Until _commit or _abort the
 * round takes no update (FEDC_ESTATE). Errors other than FEDC_EQUORUM
 * leave the round open as it was.
 */
int fedc_engine_close_prepare(fedc_engine *e, fedc_round_metrics *out,
                              const float **next);
/* Make the prepared model the global model, record the round in the
 * history and advance. Cannot fail once prepared (FEDC_ESTATE otherwise). */
int fedc_engine_close_commit(fedc_engine *e);
/*
 * Forget the prepared model: the round stays open with the updates it had,
 * as before fedc_engine_close_prepare, to be prepared again: the server
 * optimizer's state and, under differential privacy, the clip norm and the
 * privacy ledger are put back, so the round prepared again has the same
 * model and epsilon, bit for bit (its noise is drawn from the same
 * stream). FEDC_ESTATE (nothing prepared); otherwise it cannot fail.
 */
int fedc_engine_close_abort(fedc_engine *e);

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
 * server step) like a synchronous update. *stepped
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

/* Attach test metrics and the wall time to a committed round.
 * FEDC_ENOTFOUND. */
int fedc_engine_record(fedc_engine *e, int32_t round, double test_loss,
                       double test_acc, double secs);
/* Committed rounds' metrics, oldest first; valid until the next commit. */
const fedc_round_metrics *fedc_engine_history(const fedc_engine *e,
                                              int32_t *n);

/* Resume a job whose rounds 1..committed are done with global model w
 * (the coordinator, from its store). Only before the first open. */
int fedc_engine_restore(fedc_engine *e, int32_t committed, const float *w);
/* After fedc_engine_restore: the clients counted in round `committed`, so
 * that their late resends are still acknowledged as duplicates. Copied. */
int fedc_engine_restore_reporters(fedc_engine *e, const int32_t *clients,
                                  int32_t n);
/* After fedc_engine_restore under differential privacy: the privacy already
 * spent (rounds taken at the job's sampling rate) and the clip norm in use,
 * from the driver's ledger. A no-op without DP. */
int fedc_engine_restore_privacy(fedc_engine *e, double clip_norm, int32_t rounds);
/* The server optimizer's state after the last commit, to checkpoint with
 * the model and restore after a restart. */
size_t fedc_engine_opt_state_len(const fedc_engine *e);
int fedc_engine_opt_state_get(const fedc_engine *e, float *buf, size_t len);
int fedc_engine_opt_state_set(fedc_engine *e, const float *buf, size_t len);

/*
 * Secure aggregation: count the survivors' sample-weighted average avg (n
 * weights) as the updates of the n_clients clients listed, with their
 * sample counts and training losses (NULL: 0), as if each had been
 * submitted. Checked whole before anything changes: FEDC_ESTATE,
 * FEDC_ESTALE, FEDC_ESHAPE, FEDC_EINVAL (a client not selected),
 * FEDC_EDUPLICATE (already reported, or listed twice), and the pipeline's
 * refusals. Only for strategies that act on the aggregate (FedAvg and the
 * server optimizers).
 */
int fedc_engine_submit_sum(fedc_engine *e, int32_t round, const int32_t *clients,
                           const uint64_t *n_samples, const double *train_loss,
                           int32_t n_clients, const float *avg, size_t n);

#ifdef __cplusplus
}
#endif

#endif
