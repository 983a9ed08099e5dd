/*
 * sim.h - the simulator driver: many in-process clients on one machine,
 * trained in parallel on a thread pool, driving the shared round engine.
 *
 * fedc_sim_new loads the data named by the config, partitions the training
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
 * round closes (fedc_sim_round_combined). fedc_sim_new is the one share
 * that holds everything.
 */
#ifndef FEDC_SIM_H
#define FEDC_SIM_H

#include "config/config.h"
#include "round/engine.h"
#include "ml/model.h"

typedef struct fedc_sim fedc_sim;

/* One process's share of a simulation spread over size processes: it owns
 * the clients c with c % size == rank. */
typedef struct fedc_sim_share {
  int32_t rank;  /* 0 .. size - 1 */
  int32_t size;  /* >= 1 */
  int evaluator; /* this share evaluates the global model on the test set */
} fedc_sim_share;

int fedc_sim_new(const fedc_config *cfg, fedc_sim **out);
/* A share: only the owned clients' training rows are kept (the test set
 * only by the evaluator). FEDC_EINVAL for a share outside 0 <= rank < size. */
int fedc_sim_new_share(const fedc_config *cfg, const fedc_sim_share *share,
                       fedc_sim **out);
void fedc_sim_free(fedc_sim *s);
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
int fedc_sim_done(const fedc_sim *s);
const fedc_model_spec *fedc_sim_spec(const fedc_sim *s);
const float *fedc_sim_global(const fedc_sim *s);
const fedc_engine *fedc_sim_engine(const fedc_sim *s);
/* Evaluate the current global model on the test set (FEDC_ESTATE on a
 * share that is not the evaluator). */
int fedc_sim_evaluate(fedc_sim *s, double *loss, double *acc);
/* Write the global model as safetensors with round/seed metadata. */
int fedc_sim_save(const fedc_sim *s, const char *path);

#endif
