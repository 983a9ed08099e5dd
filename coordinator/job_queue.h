/*
 * job_queue.h - the job queue of a coordinator's store (fedc-coordinator
 * serve / [server] queue = true).
 *
 * The queue lives in the store file itself (tables job_queue and
 * job_declines, beside the store's own tables, on a connection of its own).
 * Each job's rounds, checkpoints, metrics and privacy ledger are a store of
 * today's format of its own, at <store>.jobs/job-<ID>.db, so that the whole
 * per-job machinery (restore after kill -9, export, the ledger) works on it
 * unchanged; the queue row holds the job's INI text as submitted, and the
 * job file <store>.jobs/job-<ID>.ini is written from it when it starts.
 * The store's allow list (its clients table) is copied into each job's
 * store when the job starts and after every allow or revoke.
 *
 * Job ids are 1, 2, ... in submission order. States: queued -> running ->
 * finished | failed; queued or running -> cancelled. Every call is one
 * sqlite transaction; the daemon and the command line use the file at the
 * same time (WAL, busy timeout).
 */
#ifndef FEDC_JOB_QUEUE_H
#define FEDC_JOB_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct fedc_jobq fedc_jobq;

typedef struct fedc_jobq_job {
  int32_t id;
  char state[16]; /* queued, running, finished, cancelled, failed */
  char name[128];
  double submitted_at, started_at, finished_at; /* unix seconds; 0 = not yet */
  int32_t rounds, rounds_done;
  char note[512]; /* why it failed or was cancelled, or "" */
  int32_t declined; /* sites that declined it */
} fedc_jobq_job;

typedef struct fedc_jobq_decline {
  char site[128]; /* the client's name, else its fingerprint's start */
  char fingerprint[65];
  char reason[512];
  double at;
} fedc_jobq_decline;

/* Open the queue of the store at path (the store is created if missing). */
int fedc__jobq_open(const char *store_path, fedc_jobq **out);
void fedc__jobq_close(fedc_jobq *q);

/* "<store>.jobs/job-<id>.db" (ext "db") or ".ini"; the folder is made. */
int fedc__jobq_path(const char *store_path, int32_t id, const char *ext, char *out, size_t cap);

/* Queue a job (its INI text, checked by the caller); *id its new id. */
int fedc__jobq_submit(fedc_jobq *q, const char *ini, const char *name, int32_t rounds,
                      int32_t *id);
/* Every job by id (*out freed with fedc_free). */
int fedc__jobq_list(fedc_jobq *q, fedc_jobq_job **out, int32_t *n);
/* One job; *ini (if not NULL) gets its INI text (fedc_free). FEDC_ENOTFOUND. */
int fedc__jobq_get(fedc_jobq *q, int32_t id, fedc_jobq_job *out, char **ini);
/* The job to run now: the first running one (resumed after a crash), else
 * the first queued; *id 0 when there is none. */
int fedc__jobq_next(fedc_jobq *q, int32_t *id);
/* Set the state (and note, NULL to keep it); stamps started/finished. */
int fedc__jobq_set_state(fedc_jobq *q, int32_t id, const char *state, const char *note);
int fedc__jobq_set_rounds_done(fedc_jobq *q, int32_t id, int32_t rounds_done);
/* Cancel a queued or running job: FEDC_ESTATE once it has ended,
 * FEDC_ENOTFOUND for an unknown id. */
int fedc__jobq_cancel(fedc_jobq *q, int32_t id);
/* Record (or replace) a site's refusal of a job. */
int fedc__jobq_decline(fedc_jobq *q, int32_t id, const char *fingerprint, const char *site,
                       const char *reason);
int fedc__jobq_declines(fedc_jobq *q, int32_t id, fedc_jobq_decline **out, int32_t *n);

/* Make the allow list of job store dst that of src (same fingerprints,
 * names and allow/revoke status; clients only dst knows are kept). */
int fedc__jobq_sync_clients(fedc_store *src, fedc_store *dst);
/* After an allow or revoke on the store: apply the list to the store of
 * every job that has not ended. */
int fedc__jobq_sync_all(const char *store_path);

#endif
