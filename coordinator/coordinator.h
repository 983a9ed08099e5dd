/*
 * coordinator.h - the coordinator daemon: the round engine driven over
 * HTTPS, with its state in a sqlite store.
 *
 * fedc_coord_start opens (or resumes) the job from the store named by the
 * config, listens, and runs rounds on the given libuv loop: it returns once
 * everything is set up, and the caller runs the loop. The loop ends when
 * the coordinator has stopped: after SIGTERM/SIGINT (the commit in flight,
 * if any, is finished first), or after a fatal store failure.
 */
#ifndef FEDC_COORDINATOR_H
#define FEDC_COORDINATOR_H

#include <stdint.h>
#include <uv.h>

#include "config/config.h"

typedef struct fedc_coord fedc_coord;

/* Exit codes of fedc-coordinator (docs/operations.md; never renumbered). */
enum {
  FEDC_COORD_EXIT_OK = 0,
  FEDC_COORD_EXIT_RUNTIME = 1,
  FEDC_COORD_EXIT_USAGE = 2,
  FEDC_COORD_EXIT_LISTEN = 3,
  FEDC_COORD_EXIT_STORE = 4
};

/* Errors: FEDC_ECONFIG (bad TLS files, model shape, job mismatch with the
 * store), FEDC_EIO (store or listen failure), FEDC_ENOMEM. *exit_code gets
 * the matching exit code. */
int fedc_coord_start(uv_loop_t *loop, const fedc_config *cfg, fedc_coord **out,
                     int *exit_code);
/* Ask for a clean stop (what SIGTERM does). */
void fedc_coord_stop(fedc_coord *c);
/* After the loop has ended: the exit code, and free everything. */
int fedc_coord_exit_code(const fedc_coord *c);
void fedc_coord_free(fedc_coord *c);
/* The TLS port actually bound (for tests using port 0). */
int fedc_coord_port(const fedc_coord *c);

/* The job's model spec from a coordinator config ([model] inputs, classes). */
int fedc_coord_model_spec(const fedc_config *cfg, void *spec_out);

#endif
