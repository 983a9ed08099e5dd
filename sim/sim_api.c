/*
 * sim_api.c - the public simulator API (fedc/sim.h) over the driver's own
 * functions (sim.h): settings in, rounds out through a callback. It adds
 * no behaviour of its own, so a program gets what fedc-sim does for the
 * same settings, round by round.
 */
#include <math.h>

#include "base/error.h"
#include "config/settings.h"
#include "sim.h"

int fedc_sim_new(const fedc_settings *s, fedc_sim **out) {
  if (out == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_sim_new: NULL argument");
  *out = NULL;
  if (s == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_sim_new: NULL settings");
  const fedc_config *c = fedc__settings_config(s);
  int rc = fedc_config_check(c);
  if (rc != 0) return rc;
  return fedc_sim_new_config(c, out);
}

int fedc_sim_run_round(fedc_sim *sim, fedc_round_metrics *out) {
  if (sim == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_sim_run_round: NULL simulation");
  if (fedc_sim_done(sim)) return fedc_error_set(FEDC_ESTATE, "sim: every round has run");
  fedc_round_metrics m;
  int rc = fedc_sim_round(sim, &m);
  if (rc != 0) return rc;
  if (out) *out = m;
  return 0;
}

/* The DP budget ends a job early but normally, as in fedc-sim. */
int fedc_sim_run(fedc_sim *sim, fedc_sim_round_fn on_round, void *user_data) {
  if (sim == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_sim_run: NULL simulation");
  while (!fedc_sim_done(sim)) {
    fedc_round_metrics m;
    int rc = fedc_sim_run_round(sim, &m);
    if (rc == FEDC_EBUDGET) return 0;
    if (rc != 0) return rc;
    if (on_round && on_round(&m, user_data) != 0)
      return fedc_error_set(FEDC_ECANCELED, "sim: stopped by the round callback after round %d",
                            (int)m.round);
  }
  return 0;
}

size_t fedc_sim_n_params(const fedc_sim *sim) {
  return fedc_engine_n_params(fedc_sim_engine(sim));
}
