/*
 * sim.h - the simulator driver: many in-process clients on one machine,
 * trained in parallel on a thread pool, driving the shared round engine.
 *
 * The public part (fedc_sim_new from settings, rounds with a callback, the
 * global model) is <fedc/sim.h>; this header adds what the fedc-sim and
 * fedc-sim-mpi programs use: construction from a config, shares and the
 * combined round of the MPI driver.
 *
 * fedc_sim_new_config loads the data named by the config, partitions the training
 * set among [sim] clients, builds the model and the engine. Each
 * fedc_sim_round then runs one round: the engine selects clients, the pool
 * trains each on its own rows (seeded by (seed, round, client), so the
 * result does not depend on the thread count), the updates are submitted to
 * the engine as they finish, the engine commits, and the new global model is
 * evaluated on the test set.
 *
 * The MPI driver runs one share of the same simulation in each process
 * (fedc_sim_new_share): every share builds the same engine replica and
 * partition, keeps only its own clients' rows, trains only its own selected
 * clients, and combines the replicas' partials into its engine before the
 * round closes (fedc_sim_round_combined). fedc_sim_new_config is the one
 * share that holds everything.
 */
#ifndef FEDC_SIM_H
#define FEDC_SIM_H

#include <fedc/sim.h>

#include "config/config.h"
#include "round/engine.h"
#include "ml/model.h"

/* One process's share of a simulation spread over size processes: it owns
 * the clients c with c % size == rank. */
typedef struct fedc_sim_share {
  int32_t rank;  /* 0 .. size - 1 */
  int32_t size;  /* >= 1 */
  int evaluator; /* this share evaluates the global model on the test set */
} fedc_sim_share;

/* A simulation of cfg (copied), checked for the simulator's capabilities
 * (fedc_config_check_strategy) before anything is loaded. */
int fedc_sim_new_config(const fedc_config *cfg, fedc_sim **out);
/* A share: only the owned clients' training rows are kept (the test set
 * only by the evaluator). FEDC_EINVAL for a share outside 0 <= rank < size;
 * FEDC_ECONFIG for a strategy that cannot be split over processes (not
 * additive, asynchronous, or under DP). */
int fedc_sim_new_share(const fedc_config *cfg, const fedc_sim_share *share,
                       fedc_sim **out);
/* Run the next round; *out gets its metrics (test metrics NAN when the
 * round is not one of every [sim] eval_every, except the last, and always
 * on a share that is not the evaluator). */
int fedc_sim_round(fedc_sim *s, fedc_round_metrics *out);

/*
 * Called once a round, after this share trained its clients and before the
 * engine closes, to fold the other shares' updates into e (the MPI driver
 * sums partials and calls fedc_engine_merge). It is called on every share
 * even when local training failed (local_rc < 0, its message in
 * fedc_error_msg), so that all processes make the same collective calls;
 * a non-zero return abandons the round with that error.
 */
typedef int (*fedc_sim_combine_fn)(void *ctx, fedc_engine *e, int local_rc);
/* fedc_sim_round with combine (NULL: none) between training and close. */
int fedc_sim_round_combined(fedc_sim *s, fedc_sim_combine_fn combine,
                            void *ctx, fedc_round_metrics *out);
/* Training rows this share holds. */
int64_t fedc_sim_rows(const fedc_sim *s);
/* The simulated clock after the rounds run so far, with client k taking
 * rows_k / speed_k to train (speeds exp(N(0, sim.speed_skew^2)), drawn
 * from the seed): a synchronous round lasts as long as its slowest
 * selected client, FedBuff's steps happen when their updates arrive. */
double fedc_sim_vtime(const fedc_sim *s);
/* [strategy] compression: the mean bytes of an update's body so far and
 * those of a float32 (uncompressed) update's; returns the codec
 * (wire/compress.h's fedc_codec, 0 = none). */
int fedc_sim_bytes_up(const fedc_sim *s, double *per_update, double *float32_per_update);
const fedc_model_spec *fedc_sim_spec(const fedc_sim *s);
const fedc_engine *fedc_sim_engine(const fedc_sim *s);
/* The metrics of the last evaluation on the test set (eval_report.h's
 * JSON, per-class recall and the confusion matrix included), into *out
 * (fedc_free it); *out is NULL when the last round was not evaluated or the
 * model has no report (a softmax of more than 64 classes). FEDC_ENOMEM. */
int fedc_sim_eval_json(const fedc_sim *s, char **out);
/* Where the synchronous rounds so far went, in wall-clock seconds: out[0]
 * local training (the clients' runs, their updates submitted to the
 * engine), out[1] the round's close (aggregation and the server step),
 * out[2] the evaluation on the test set. */
void fedc_sim_phase_secs(const fedc_sim *s, double out[3]);
/* fedc_sim_evaluate (fedc/sim.h) is FEDC_ESTATE on a share that is not the
 * evaluator; fedc_sim_save writes round/seed metadata with the model. */

#endif
