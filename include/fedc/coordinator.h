/*
 * fedc/coordinator.h - a federated learning coordinator embedded in a
 * program's own libuv loop: the round engine driven over HTTPS with mutual
 * TLS, its state in a sqlite store (the library behind fedc-coordinator).
 *
 *     static void on_round(fedc_coordinator *c, const fedc_round_metrics *m, void *ud) {
 *       printf("round %d: %d clients, test_acc %.4f\n", m->round, m->clients, m->test_acc);
 *     }
 *     static void on_finished(fedc_coordinator *c, void *ud) { fedc_coordinator_stop(c); }
 *     static void on_stopped(fedc_coordinator *c, int exit_code, void *ud) { ... }
 *
 *     fedc_coordinator_params p;
 *     fedc_coordinator_params_init(&p);
 *     p.loop = uv_default_loop();
 *     p.settings = s;                   // <fedc/settings.h>: [server], [tls], [store]...
 *     p.on_round = on_round; p.on_finished = on_finished; p.on_stopped = on_stopped;
 *     fedc_coordinator *c;
 *     int code;
 *     if (fedc_coordinator_start(&p, &c, &code) != 0) { ...fedc_error_msg(), exit(code) }
 *     uv_run(p.loop, UV_RUN_DEFAULT);   // the program's loop, with its own handles
 *     code = fedc_coordinator_exit_code(c);
 *     fedc_coordinator_free(c);
 *
 * The library installs no signal handler, reads no environment variable and
 * runs no loop: the program does (fedc-coordinator's main.c stops on
 * SIGTERM and SIGINT). It uses the loop's thread pool (uv_queue_work) for
 * the heavy work. Every function here, and every callback, runs on the
 * loop's thread; no callback runs before the call that starts it returns.
 */
#ifndef FEDC_PUBLIC_COORDINATOR_H
#define FEDC_PUBLIC_COORDINATOR_H

#include <stdint.h>

#include <fedc/engine.h>
#include <fedc/settings.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's loop (uv_loop_t in <uv.h>), which the program includes itself:
 * this header does not need <uv.h> to compile. */
struct uv_loop_s;

typedef struct fedc_coordinator fedc_coordinator;

/* Exit codes of fedc-coordinator, and of a coordinator that stopped
 * (docs/operations.md; never renumbered). */
enum {
  FEDC_COORD_EXIT_OK = 0,
  FEDC_COORD_EXIT_RUNTIME = 1,
  FEDC_COORD_EXIT_USAGE = 2,  /* usage or config error */
  FEDC_COORD_EXIT_LISTEN = 3, /* cannot listen */
  FEDC_COORD_EXIT_STORE = 4   /* store failure */
};

typedef struct fedc_coordinator_params {
  struct uv_loop_s *loop;         /* the program's uv_loop_t (<uv.h>); required */
  const fedc_settings *settings;  /* the job; required; copied at start */
  void *user_data;                /* given back to every callback */
  /* A round was committed, durably (m: valid during the call). */
  void (*on_round)(fedc_coordinator *c, const fedc_round_metrics *m, void *user_data);
  /* A client sent /v1/join (name: valid during the call). */
  void (*on_client_joined)(fedc_coordinator *c, int32_t client_id, const char *name,
                           void *user_data);
  /* Every round is committed (or the DP budget is spent): clients are told
   * the job is finished. Once per start; the coordinator keeps serving
   * until stopped. */
  void (*on_finished)(fedc_coordinator *c, void *user_data);
  /* The coordinator has stopped (after fedc_coordinator_stop, or on its own
   * after a fatal store failure) and holds no handle of the loop: free it
   * now or after the loop ends. */
  void (*on_stopped)(fedc_coordinator *c, int exit_code, void *user_data);
  /* Test hooks (docs/hardening.md), off when NULL: fail the Nth allocation
   * ("N[,sticky]"), the Nth store write ("N[,ioerr|full][,sticky]") or the
   * Nth commit before its durable write ("N[,sticky]") after the
   * coordinator listens; a folder where each masked update of secure
   * aggregation is written. fedc-coordinator takes them from FEDC_FAIL_ALLOC_AFTER,
   * FEDC_FAIL_STORE_AFTER, FEDC_FAIL_COMMIT_AFTER and FEDC_SECAGG_DEBUG_DIR. */
  const char *fail_alloc_after;
  const char *fail_store_after;
  const char *fail_commit_after;
  const char *secagg_debug_dir;
  /* A site declined the job by its policy (POST /v1/decline): the client's
   * certificate fingerprint, its name ("" if none) and its reason, valid
   * during the call. The client is not selected in this job again. */
  void (*on_declined)(fedc_coordinator *c, const char *fingerprint, const char *name,
                      const char *reason, void *user_data);
} fedc_coordinator_params;

/* Every field NULL or 0. */
void fedc_coordinator_params_init(fedc_coordinator_params *p);

/*
 * Open (or resume) the job in the store the settings name, and listen. On
 * success *out is the caller's (fedc_coordinator_free after it stopped)
 * and rounds run as the loop runs. Errors: FEDC_EINVAL (no loop or
 * settings), FEDC_ECONFIG (bad TLS files, model shape, a job that does not
 * match its store), FEDC_EIO (store or listen failure), FEDC_ENOMEM;
 * *exit_code gets the matching exit code, *out is NULL and no callback
 * runs; handles already opened are closed (and their memory freed) the
 * next time the loop runs.
 */
int fedc_coordinator_start(const fedc_coordinator_params *p, fedc_coordinator **out,
                           int *exit_code);
/* Ask for a clean stop: no new round; a commit in flight finishes first
 * (an open round is not committed: it runs again after a restart). Then
 * on_stopped. Idempotent. */
void fedc_coordinator_stop(fedc_coordinator *c);
/* The exit code: FEDC_COORD_EXIT_OK, or why it stopped on its own. */
int fedc_coordinator_exit_code(const fedc_coordinator *c);
/* The TLS port bound (the settings may ask for port 0). */
int fedc_coordinator_port(const fedc_coordinator *c);

/*
 * The federation's label counts, from the statistics phase of a job with a
 * schema ([data] features or schema_from): copies up to cap counts (class
 * 0, 1, ...) into counts and returns the number of classes; 0 when the job
 * has no schema, is a regression, or its statistics are not yet combined.
 * Errors: FEDC_EINVAL (c is NULL).
 */
int fedc_coordinator_label_counts(const fedc_coordinator *c, int64_t *counts, int32_t cap);
/* Free a coordinator that has stopped (on_stopped ran, or the loop ended). */
void fedc_coordinator_free(fedc_coordinator *c);

#ifdef __cplusplus
}
#endif

#endif
