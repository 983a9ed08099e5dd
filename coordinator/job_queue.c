/*
 * job_queue.c - the job queue in the coordinator's store file (job_queue.h).
 *
 * Two tables beside the store's own, created on first use: job_queue (one
 * row per submitted job: its INI text, state, times, rounds) and
 * job_declines (a site's refusal of a job, with its reason). They are
 * reached through a sqlite connection of this file's own, so the store's
 * code (store_sqlite.c) and its schema stay as they are; each job's own
 * state is a store of that format in <store>.jobs/. Errors are FEDC_EIO
 * with sqlite's message and the path, as in the store.
 */
#include "job_queue.h"

#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"

#define QUEUE_SQL                                                              \
  "CREATE TABLE IF NOT EXISTS job_queue("                                      \
  " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT '',"      \
  " ini TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',"                  \
  " submitted_at REAL NOT NULL, started_at REAL, finished_at REAL,"            \
  " rounds INTEGER NOT NULL DEFAULT 0, rounds_done INTEGER NOT NULL DEFAULT 0," \
  " note TEXT NOT NULL DEFAULT '');"                                           \
  "CREATE TABLE IF NOT EXISTS job_declines("                                   \
  " job INTEGER NOT NULL REFERENCES job_queue(id), fingerprint TEXT NOT NULL," \
  " site TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,"               \
  " PRIMARY KEY (job, fingerprint));"

struct fedc_jobq {
  sqlite3 *db;
  char *path;
};

static int q_error(fedc_jobq *q, const char *what) {
  return fedc_error_set(FEDC_EIO, "store %s: job queue: %s: %s", q->path, what,
                        sqlite3_errmsg(q->db));
}

static double now_unix(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Prepare, bind (text or int by the format's letters: t text, i int32,
 * d double), step to completion; for one-statement writes. */
static int run(fedc_jobq *q, const char *sql, const char *what, const char *fmt, ...) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK) return q_error(q, what);
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 't') sqlite3_bind_text(s, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
    else if (fmt[i] == 'i') sqlite3_bind_int(s, i + 1, va_arg(ap, int32_t));
    else sqlite3_bind_double(s, i + 1, va_arg(ap, double));
  }
  va_end(ap);
  int rc = sqlite3_step(s);
  int err = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : q_error(q, what);
  sqlite3_finalize(s);
  return err;
}

int fedc__jobq_open(const char *store_path, fedc_jobq **out) {
  *out = NULL;
  /* the store first: it makes (or checks) the file and its schema */
  fedc_store *st = NULL;
  int err = fedc_store_open(store_path, &st);
  fedc_store_close(st);
  if (err) return err;
  fedc_jobq *q = fedc_calloc(1, sizeof *q);
  if (q == NULL || (q->path = fedc_strdup(store_path)) == NULL) {
    fedc_free(q);
    return fedc_error_set(FEDC_ENOMEM, "job queue: out of memory");
  }
  if (sqlite3_open_v2(store_path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    err = q_error(q, "open");
    fedc__jobq_close(q);
    return err;
  }
  sqlite3_busy_timeout(q->db, 5000);
  if (sqlite3_exec(q->db, "PRAGMA synchronous=FULL;" QUEUE_SQL, NULL, NULL, NULL) != SQLITE_OK) {
    err = q_error(q, "create the queue tables");
    fedc__jobq_close(q);
    return err;
  }
  *out = q;
  return 0;
}

void fedc__jobq_close(fedc_jobq *q) {
  if (q == NULL) return;
  sqlite3_close(q->db);
  fedc_free(q->path);
  fedc_free(q);
}

int fedc__jobq_path(const char *store_path, int32_t id, const char *ext, char *out, size_t cap) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s.jobs", store_path);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return fedc_error_set(FEDC_EIO, "cannot make the jobs folder %s: %s", dir, strerror(errno));
  if ((size_t)snprintf(out, cap, "%s/job-%d.%s", dir, (int)id, ext) >= cap)
    return fedc_error_set(FEDC_ERANGE, "job path too long under %s", dir);
  return 0;
}

int fedc__jobq_submit(fedc_jobq *q, const char *ini, const char *name, int32_t rounds,
                      int32_t *id) {
  int err = run(q, "INSERT INTO job_queue(name, ini, submitted_at, rounds) VALUES(?1,?2,?3,?4)",
                "submit", "ttdi", name ? name : "", ini, now_unix(), rounds);
  if (err == 0) *id = (int32_t)sqlite3_last_insert_rowid(q->db);
  return err;
}

#define JOB_COLS                                                                   \
  "id, state, name, submitted_at, coalesce(started_at,0), coalesce(finished_at,0), " \
  "rounds, rounds_done, note, "                                                    \
  "(SELECT count(*) FROM job_declines d WHERE d.job = job_queue.id)"

static void read_job(sqlite3_stmt *s, fedc_jobq_job *j) {
  memset(j, 0, sizeof *j);
  j->id = sqlite3_column_int(s, 0);
  snprintf(j->state, sizeof j->state, "%s", (const char *)sqlite3_column_text(s, 1));
  snprintf(j->name, sizeof j->name, "%s", (const char *)sqlite3_column_text(s, 2));
  j->submitted_at = sqlite3_column_double(s, 3);
  j->started_at = sqlite3_column_double(s, 4);
  j->finished_at = sqlite3_column_double(s, 5);
  j->rounds = sqlite3_column_int(s, 6);
  j->rounds_done = sqlite3_column_int(s, 7);
  snprintf(j->note, sizeof j->note, "%s", (const char *)sqlite3_column_text(s, 8));
  j->declined = sqlite3_column_int(s, 9);
}

int fedc__jobq_list(fedc_jobq *q, fedc_jobq_job **out, int32_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(q->db, "SELECT " JOB_COLS " FROM job_queue ORDER BY id", -1, &s,
                         NULL) != SQLITE_OK)
    return q_error(q, "list");
  int32_t cap = 0, rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      fedc_jobq_job *g = fedc_realloc(*out, (size_t)cap * sizeof *g);
      if (g == NULL) {
        sqlite3_finalize(s);
        return fedc_error_set(FEDC_ENOMEM, "job queue: out of memory");
      }
      *out = g;
    }
    read_job(s, &(*out)[(*n)++]);
  }
  int err = rc == SQLITE_DONE ? 0 : q_error(q, "list");
  sqlite3_finalize(s);
  return err;
}

int fedc__jobq_get(fedc_jobq *q, int32_t id, fedc_jobq_job *out, char **ini) {
  if (ini) *ini = NULL;
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(q->db, "SELECT " JOB_COLS ", ini FROM job_queue WHERE id = ?1", -1, &s,
                         NULL) != SQLITE_OK)
    return q_error(q, "read a job");
  sqlite3_bind_int(s, 1, id);
  int rc = sqlite3_step(s), err = 0;
  if (rc == SQLITE_ROW) {
    read_job(s, out);
    if (ini && (*ini = fedc_strdup((const char *)sqlite3_column_text(s, 10))) == NULL)
      err = fedc_error_set(FEDC_ENOMEM, "job queue: out of memory");
  } else if (rc == SQLITE_DONE) {
    err = fedc_error_set(FEDC_ENOTFOUND, "store %s: no job %d in the queue", q->path, (int)id);
  } else {
    err = q_error(q, "read a job");
  }
  sqlite3_finalize(s);
  return err;
}

int fedc__jobq_next(fedc_jobq *q, int32_t *id) {
  *id = 0;
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(q->db,
                         "SELECT id FROM job_queue WHERE state IN ('running','queued') "
                         "ORDER BY state = 'running' DESC, id LIMIT 1",
                         -1, &s, NULL) != SQLITE_OK)
    return q_error(q, "next job");
  int rc = sqlite3_step(s), err = 0;
  if (rc == SQLITE_ROW) *id = sqlite3_column_int(s, 0);
  else if (rc != SQLITE_DONE) err = q_error(q, "next job");
  sqlite3_finalize(s);
  return err;
}

int fedc__jobq_set_state(fedc_jobq *q, int32_t id, const char *state, const char *note) {
  int ended = strcmp(state, "running") != 0 && strcmp(state, "queued") != 0;
  return run(q,
             "UPDATE job_queue SET state = ?1, note = coalesce(?2, note), "
             "started_at = CASE WHEN ?1 = 'running' THEN coalesce(started_at, ?3) "
             "ELSE started_at END, "
             "finished_at = CASE WHEN ?4 THEN ?3 ELSE finished_at END WHERE id = ?5",
             "set the state", "ttdii", state, note, now_unix(), ended, id);
}

int fedc__jobq_set_rounds_done(fedc_jobq *q, int32_t id, int32_t rounds_done) {
  return run(q, "UPDATE job_queue SET rounds_done = ?1 WHERE id = ?2", "count rounds", "ii",
             rounds_done, id);
}

int fedc__jobq_cancel(fedc_jobq *q, int32_t id) {
  fedc_jobq_job j;
  int err = fedc__jobq_get(q, id, &j, NULL);
  if (err) return err;
  if (strcmp(j.state, "queued") != 0 && strcmp(j.state, "running") != 0)
    return fedc_error_set(FEDC_ESTATE, "job %d has already ended (%s)", (int)id, j.state);
  return fedc__jobq_set_state(q, id, "cancelled", "cancelled by an administrator");
}

int fedc__jobq_decline(fedc_jobq *q, int32_t id, const char *fingerprint, const char *site,
                       const char *reason) {
  return run(q,
             "INSERT OR REPLACE INTO job_declines(job, fingerprint, site, reason, at) "
             "VALUES(?1,?2,?3,?4,?5)",
             "record a decline", "itttd", id, fingerprint, site, reason, now_unix());
}

int fedc__jobq_declines(fedc_jobq *q, int32_t id, fedc_jobq_decline **out, int32_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(q->db,
                         "SELECT site, fingerprint, reason, at FROM job_declines "
                         "WHERE job = ?1 ORDER BY at",
                         -1, &s, NULL) != SQLITE_OK)
    return q_error(q, "declines");
  sqlite3_bind_int(s, 1, id);
  int32_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 8;
      fedc_jobq_decline *g = fedc_realloc(*out, (size_t)cap * sizeof *g);
      if (g == NULL) {
        sqlite3_finalize(s);
        return fedc_error_set(FEDC_ENOMEM, "job queue: out of memory");
      }
      *out = g;
    }
    fedc_jobq_decline *d = &(*out)[(*n)++];
    snprintf(d->site, sizeof d->site, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(d->fingerprint, sizeof d->fingerprint, "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(d->reason, sizeof d->reason, "%s", (const char *)sqlite3_column_text(s, 2));
    d->at = sqlite3_column_double(s, 3);
  }
  int err = rc == SQLITE_DONE ? 0 : q_error(q, "declines");
  sqlite3_finalize(s);
  return err;
}

int fedc__jobq_sync_clients(fedc_store *src, fedc_store *dst) {
  fedc_store_client *list = NULL;
  int32_t n = 0;
  int err = fedc_store_client_list(src, &list, &n);
  for (int32_t i = 0; err == 0 && i < n; i++) {
    fedc_store_client have;
    int found = fedc_store_client_find(dst, list[i].fingerprint, &have) == 0;
    int32_t id;
    if (list[i].status == FEDC_CLIENT_REVOKED) {
      if (found && have.status != FEDC_CLIENT_REVOKED)
        err = fedc_store_client_revoke(dst, list[i].fingerprint);
    } else if (!found || have.status == FEDC_CLIENT_REVOKED) {
      err = fedc_store_client_allow(dst, list[i].fingerprint,
                                    list[i].name[0] ? list[i].name : NULL, &id);
    }
  }
  fedc_free(list);
  return err;
}

int fedc__jobq_sync_all(const char *store_path) {
  fedc_jobq *q = NULL;
  int err = fedc__jobq_open(store_path, &q);
  fedc_jobq_job *jobs = NULL;
  int32_t n = 0;
  if (err == 0) err = fedc__jobq_list(q, &jobs, &n);
  fedc_store *src = NULL;
  if (err == 0 && n > 0) err = fedc_store_open(store_path, &src);
  for (int32_t i = 0; err == 0 && i < n; i++) {
    if (strcmp(jobs[i].state, "running") != 0) continue; /* the others sync when they start */
    char path[4200];
    fedc_store *dst = NULL;
    err = fedc__jobq_path(store_path, jobs[i].id, "db", path, sizeof path);
    if (err == 0) err = fedc_store_open(path, &dst);
    if (err == 0) err = fedc__jobq_sync_clients(src, dst);
    fedc_store_close(dst);
  }
  fedc_store_close(src);
  fedc_free(jobs);
  fedc__jobq_close(q);
  return err;
}
