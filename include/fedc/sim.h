/*
 * fedc/sim.h - the simulator driven from a program: many in-process
 * clients on this machine, trained on a thread pool, through the same
 * round engine, strategies and pipeline as the coordinator.
 *
 *     static int on_round(const fedc_round_metrics *m, void *ud) {
 *       printf("round %d acc %.4f\n", (int)m->round, m->test_acc);
 *       return 0;                                  // non-zero stops the run
 *     }
 *     ...
 *     fedc_settings *s;
 *     fedc_sim *sim;
 *     fedc_settings_new(&s);
 *     fedc_settings_set(s, "job.rounds=5");
 *     if (fedc_sim_new(s, &sim) != 0) { fprintf(stderr, "%s\n", fedc_error_msg()); ... }
 *     fedc_settings_free(s);                       // the simulation made its copy
 *     if (fedc_sim_run(sim, on_round, NULL) != 0) ...;
 *     const float *w = fedc_sim_global(sim);       // fedc_sim_n_params(sim) floats
 *     fedc_sim_free(sim);
 *
 * The settings are those of fedc-sim (docs/config.md): [data] names the
 * data set, [sim] the clients and their partition, [strategy] a registered
 * strategy (<fedc/strategy.h>, a program's own included). The same
 * settings and seed give the same model, bit for bit, whatever the thread
 * count.
 *
 * Each committed round is reported as a fedc_round_metrics (<fedc/engine.h>),
 * the struct the coordinator's round callback gets too.
 *
 * Threads: a simulation is used from one thread at a time (any one); it
 * runs its own worker threads inside fedc_sim_run_round and fedc_sim_run
 * and joins them before those return. Callbacks run on the calling thread,
 * never after the call that runs them has returned.
 */
#ifndef FEDC_PUBLIC_SIM_H
#define FEDC_PUBLIC_SIM_H

#include <fedc/engine.h>
#include <fedc/settings.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedc_sim fedc_sim;


/* Called after each committed round with its metrics and the user_data
 * given to fedc_sim_run; a non-zero return stops the run. */
typedef int (*fedc_sim_round_fn)(const fedc_round_metrics *m, void *user_data);

/*
 * A simulation of the job s describes (s is copied; the caller keeps it):
 * loads the data, partitions it among the clients, builds the model and
 * the engine. Errors: FEDC_ECONFIG (keys that do not fit together, or a
 * strategy that cannot run as asked, e.g. secure aggregation, which the
 * simulator does not implement; the message names the key), FEDC_EIO or
 * FEDC_EFORMAT for the data (naming the file), FEDC_ENOMEM. The caller
 * frees *out with fedc_sim_free.
 */
int fedc_sim_new(const fedc_settings *s, fedc_sim **out);
void fedc_sim_free(fedc_sim *sim);

/* Run the next round into *out (may be NULL). FEDC_ESTATE once every
 * round is done; FEDC_EBUDGET when differential privacy's budget would be
 * overspent (the job stops there); training or aggregation errors. */
int fedc_sim_run_round(fedc_sim *sim, fedc_round_metrics *out);
/* Run the rounds left, calling on_round (may be NULL) after each. 0 when
 * all rounds ran or the DP budget stopped the job; FEDC_ECANCELED when
 * on_round returned non-zero; a round's error otherwise. */
int fedc_sim_run(fedc_sim *sim, fedc_sim_round_fn on_round, void *user_data);
/* 1 once every round is committed. */
int fedc_sim_done(const fedc_sim *sim);

/* The current global model: fedc_sim_n_params floats, owned by sim and
 * valid until the next round or fedc_sim_free. */
const float *fedc_sim_global(const fedc_sim *sim);
size_t fedc_sim_n_params(const fedc_sim *sim);
/* Evaluate the global model on the test set: mean loss and accuracy (NAN
 * for linreg). */
int fedc_sim_evaluate(fedc_sim *sim, double *loss, double *acc);
/* Write the global model to path as safetensors. FEDC_EIO. */
int fedc_sim_save(const fedc_sim *sim, const char *path);

#ifdef __cplusplus
}
#endif

#endif
