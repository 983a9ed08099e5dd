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
 */
#ifndef FEDC_SIM_H
#define FEDC_SIM_H

#include "config.h"
#include "engine.h"
#include "model.h"

typedef struct fedc_sim fedc_sim;

int fedc_sim_new(const fedc_config *cfg, fedc_sim **out);
void fedc_sim_free(fedc_sim *s);
/* Run the next round; *out gets its metrics (test metrics NAN when the
 * round is not one of every [sim] eval_every, except the last). */
int fedc_sim_round(fedc_sim *s, fedc_round_metrics *out);
int fedc_sim_done(const fedc_sim *s);
const fedc_model_spec *fedc_sim_spec(const fedc_sim *s);
const float *fedc_sim_global(const fedc_sim *s);
const fedc_engine *fedc_sim_engine(const fedc_sim *s);
/* Evaluate the current global model on the test set. */
int fedc_sim_evaluate(fedc_sim *s, double *loss, double *acc);
/* Write the global model as safetensors with round/seed metadata. */
int fedc_sim_save(const fedc_sim *s, const char *path);

#endif
