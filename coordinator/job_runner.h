/*
 * job_runner.h - fedc-coordinator's job queue daemon ([server] queue =
 * true): runs the jobs of the store's queue (job_queue.h) one after
 * another, each as today's coordinator (fedc/coordinator.h) over the job's
 * own store, on the same port; and the admin endpoint (admin_api.c).
 *
 * One job runs at a time. When a job finishes its coordinator keeps
 * serving (telling clients the job is finished, and holding the long-polls
 * of site services waiting for the next one) until another job is queued;
 * then it stops and the next one starts, on the same address. A job left
 * "running" by a crash is resumed first, from its store, as a lone
 * coordinator resumes after kill -9. A cancel (command line or admin
 * endpoint) stops the job's coordinator within a tick.
 */
#ifndef FEDC_JOB_RUNNER_H
#define FEDC_JOB_RUNNER_H

#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "job_queue.h"

typedef struct fedc_job_runner fedc_job_runner;

/* Lock the store (one daemon per store), open its queue, listen for admins
 * when [server] admin_listen is set, and start the tick. *exit_code as
 * fedc_coordinator_start's. */
int fedc__runner_start(uv_loop_t *loop, const fedc_config *base, fedc_job_runner **out,
                       int *exit_code);
/* Stop: the running job's coordinator stops (a commit in flight first);
 * the job stays "running" and resumes at the next start. The loop then
 * ends. Idempotent. */
void fedc__runner_stop(fedc_job_runner *r);
int fedc__runner_exit_code(const fedc_job_runner *r);
void fedc__runner_free(fedc_job_runner *r);

/*
 * Check a job file against the daemon's config: base (the [server], [tls]
 * and [store] settings) with the job file read over it must make a valid
 * coordinator config. *rounds gets the job's rounds. The message of a
 * failure names the file, line and key.
 */
int fedc__runner_check_job(const fedc_config *base, const char *job_path, int32_t *rounds);

/* The queue's admin operations, shared by the command line and the admin
 * endpoint. Submit a job file; JSON of the jobs with their declines (new
 * string, fedc_free); the model of job id after round (0 = initial;
 * which: a round number, "latest" or "best") with a note on what was
 * chosen (*bytes freed with fedc_free). */
int fedc__runner_submit(fedc_jobq *q, const fedc_config *base, const char *job_path,
                        const char *name, int32_t *id);
char *fedc__runner_jobs_json(fedc_jobq *q);
int fedc__runner_export(const char *store_path, int32_t id, const char *which, uint8_t **bytes,
                        size_t *len, int32_t *round, char *note, size_t note_cap);

/* admin_api.c: the admin endpoint's listener (NULL out when admin_listen
 * is empty). */
typedef struct fedc_admin_ctx {
  uv_loop_t *loop;
  const fedc_config *base;
  fedc_jobq *q;
  fedc_store *store; /* the store: its admin certificates (certs.h) */
} fedc_admin_ctx;
struct fedc_http_server;
int fedc__admin_start(uv_loop_t *loop, fedc_admin_ctx *ctx, struct fedc_http_server **out);

/* job_idle.c: the listener on [server] listen while no job's coordinator
 * runs (sites wait on it for the next job); closed with
 * fedc_http_server_close before a job starts. */
int fedc__idle_start(fedc_admin_ctx *ctx, struct fedc_http_server **out);

#endif
