/*
 * job_runner.c - the job queue daemon (job_runner.h): one coordinator per
 * job, started from the queue, stopped when the job is cancelled or when a
 * finished job makes way for the next, all on the program's loop.
 *
 * The runner's states: IDLE (no coordinator), RUNNING (a job's coordinator
 * runs its rounds), DONE (its job finished; it keeps answering clients
 * until another job is queued), STOPPING (stop asked; on_stopped follows).
 * A tick (TICK_MS) reads the queue: it starts the next job when IDLE, stops
 * a RUNNING job that was cancelled, stops a DONE coordinator when a job is
 * waiting. While IDLE with nothing queued, the idle listener (job_idle.c)
 * holds [server] listen so that sites wait on it; a job queued then closes
 * it, and starts on the next tick, once the address is free. The per-job machinery (rounds, commits, resume, status) is the
 * coordinator's, untouched; the runner only builds each job's config (the
 * daemon's config with the job's file read over it, the job's own store)
 * and copies the allow list into the job's store before it starts.
 */
#include "job_runner.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fedc/coordinator.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "config/settings.h"
#include "http_server.h"
#include "store.h"

#define TICK_MS 300

typedef enum { R_IDLE, R_RUNNING, R_DONE, R_STOPPING } runner_state;

struct fedc_job_runner {
  uv_loop_t *loop;
  fedc_config base;
  fedc_store *main; /* locked: one daemon per store */
  fedc_jobq *q;
  fedc_admin_ctx admin_ctx;
  fedc_http_server *admin;
  fedc_http_server *idle; /* job_idle.c, while IDLE with nothing queued */
  double idle_retry_at;   /* an idle listener that could not listen: retried then */
  uv_timer_t tick;
  runner_state state;
  fedc_coordinator *c;
  int32_t job;         /* the job of c */
  const char *outcome; /* set before a stop: "cancelled", or NULL */
  int stopping;        /* the daemon stops */
  int exit_code;
  double retry_at;     /* a start that could not listen is retried then */
};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- checks and admin operations ------------------------------------------ */

int fedc__runner_check_job(const fedc_config *base, const char *job_path, int32_t *rounds) {
  fedc_config *cfg = fedc_malloc(sizeof *cfg);
  if (cfg == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  *cfg = *base;
  cfg->server_queue = 0;
  int rc = fedc_config_load(cfg, job_path);
  /* the daemon's own settings are not a job's to change */
  static const char *const daemon_keys[][2] = {
      {"server", "listen"},   {"server", "status_listen"}, {"server", "admin_listen"},
      {"server", "admins"},   {"server", "queue"},         {"server", "enroll"},
      {"tls", "ca"},          {"tls", "cert"},             {"tls", "key"},
      {"tls", "require_client_cert"}, {"store", "path"}};
  size_t plen = strlen(job_path);
  for (size_t i = 0; rc == 0 && i < sizeof daemon_keys / sizeof daemon_keys[0]; i++) {
    const char *o = fedc_config_origin(cfg, daemon_keys[i][0], daemon_keys[i][1]);
    if (o && strncmp(o, job_path, plen) == 0 && o[plen] == ':')
      rc = fedc_error_set(FEDC_ECONFIG,
                          "%s: [%s] %s is the queue daemon's setting; a job file may not set it",
                          o, daemon_keys[i][0], daemon_keys[i][1]);
  }
  if (rc == 0) rc = fedc_config_check_role(cfg, FEDC_ROLE_COORDINATOR);
  if (rc == 0 && rounds) *rounds = cfg->rounds;
  fedc_free(cfg);
  return rc;
}

int fedc__runner_submit(fedc_jobq *q, const fedc_config *base, const char *job_path,
                        const char *name, int32_t *id) {
  int32_t rounds = 0;
  int rc = fedc__runner_check_job(base, job_path, &rounds);
  if (rc != 0) return rc;
  FILE *f = fopen(job_path, "rb");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: cannot read it", job_path);
  char *text = fedc_malloc(1 << 20);
  size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
  fclose(f);
  if (text == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  text[n] = '\0';
  if (name == NULL || name[0] == '\0') {
    const char *b = strrchr(job_path, '/');
    name = b ? b + 1 : job_path;
  }
  rc = fedc__jobq_submit(q, text, name, rounds, id);
  fedc_free(text);
  return rc;
}

static const char *iso_time(double t, char buf[32]) {
  if (t <= 0) return "";
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

char *fedc__runner_jobs_json(fedc_jobq *q) {
  fedc_jobq_job *jobs = NULL;
  int32_t n = 0;
  if (fedc__jobq_list(q, &jobs, &n) != 0) return NULL;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "jobs");
  char t[32];
  for (int32_t i = 0; arr && i < n; i++) {
    const fedc_jobq_job *j = &jobs[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "id", j->id);
    cJSON_AddStringToObject(e, "name", j->name);
    cJSON_AddStringToObject(e, "state", j->state);
    cJSON_AddNumberToObject(e, "rounds", j->rounds);
    cJSON_AddNumberToObject(e, "rounds_done", j->rounds_done);
    cJSON_AddStringToObject(e, "submitted_at", iso_time(j->submitted_at, t));
    cJSON_AddStringToObject(e, "started_at", iso_time(j->started_at, t));
    cJSON_AddStringToObject(e, "finished_at", iso_time(j->finished_at, t));
    cJSON_AddStringToObject(e, "note", j->note);
    cJSON *dl = cJSON_AddArrayToObject(e, "declined");
    fedc_jobq_decline *d = NULL;
    int32_t nd = 0;
    if (fedc__jobq_declines(q, j->id, &d, &nd) == 0)
      for (int32_t k = 0; k < nd; k++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "site", d[k].site);
        cJSON_AddStringToObject(x, "fingerprint", d[k].fingerprint);
        cJSON_AddStringToObject(x, "reason", d[k].reason);
        cJSON_AddItemToArray(dl, x);
      }
    fedc_free(d);
    cJSON_AddItemToArray(arr, e);
  }
  fedc_free(jobs);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *copy = text ? fedc_strdup(text) : NULL;
  cJSON_free(text);
  return copy;
}

/*
 * The model of a job: a round number, "latest" (the last committed round),
 * or "best": the best round by the federated evaluation ([eval],
 * fedc_store_eval_best), else the committed round with the highest test
 * accuracy the coordinator measured on its [data] test set; with no round
 * evaluated either way, the latest, and the note says so.
 */
int fedc__runner_export(const char *store_path, int32_t id, const char *which, uint8_t **bytes,
                        size_t *len, int32_t *round, char *note, size_t note_cap) {
  char path[4200];
  note[0] = '\0';
  int rc = fedc__jobq_path(store_path, id, "db", path, sizeof path);
  if (rc != 0) return rc;
  if (access(path, R_OK) != 0)
    return fedc_error_set(FEDC_ENOTFOUND, "job %d has no store yet (%s): has it started?",
                          (int)id, path);
  fedc_store *st = NULL;
  if ((rc = fedc_store_open(path, &st)) != 0) return rc;
  int32_t r = 0;
  if (strcmp(which, "latest") == 0) {
    rc = fedc_store_last_round(st, &r);
  } else if (strcmp(which, "best") == 0 && fedc_store_eval_best(st, &r) == 0) {
    snprintf(note, note_cap, "best round by the federated evaluation: %d", (int)r);
  } else if (strcmp(which, "best") == 0) {
    /* no federated evaluation: the coordinator's own test accuracy */
    fedc_store_round *rs = NULL;
    int32_t n = 0;
    rc = fedc_store_rounds(st, &rs, &n);
    double best = -1;
    for (int32_t i = 0; rc == 0 && i < n; i++)
      if (!isnan(rs[i].test_acc) && rs[i].test_acc > best) {
        best = rs[i].test_acc;
        r = rs[i].round;
      }
    if (rc == 0 && best < 0) {
      rc = fedc_store_last_round(st, &r);
      snprintf(note, note_cap,
               "no round of job %d was evaluated ([eval] every, [data] test): \"best\" is the "
               "latest round, %d",
               (int)id, (int)r);
    } else if (rc == 0) {
      snprintf(note, note_cap, "best: round %d, test accuracy %.4f", (int)r, best);
    }
    fedc_free(rs);
  } else {
    char *end;
    long v = strtol(which, &end, 10);
    if (*which == '\0' || *end != '\0' || v < 0 || v > INT32_MAX)
      rc = fedc_error_set(FEDC_EINVAL, "export: '%s' is not a round, latest or best", which);
    r = (int32_t)v;
  }
  if (rc == 0) rc = fedc_store_checkpoint(st, r, bytes, len);
  if (rc == 0) *round = r;
  fedc_store_close(st);
  return rc;
}

/* ---- the daemon ------------------------------------------------------------ */

static void runner_closed(uv_handle_t *h) { (void)h; }

static void on_round(fedc_coordinator *c, const fedc_round_metrics *m, void *ud) {
  fedc_job_runner *r = ud;
  (void)c;
  if (fedc__jobq_set_rounds_done(r->q, r->job, m->round) != 0)
    fedc_log_warn("msg=\"job queue: %s\"", fedc_error_msg());
}

static void on_finished(fedc_coordinator *c, void *ud) {
  fedc_job_runner *r = ud;
  (void)c;
  fedc_log_info("msg=\"job finished\" job=%d", (int)r->job);
  if (fedc__jobq_set_state(r->q, r->job, "finished", NULL) != 0)
    fedc_log_warn("msg=\"job queue: %s\"", fedc_error_msg());
  if (r->state == R_RUNNING) r->state = R_DONE;
}

static void on_declined(fedc_coordinator *c, const char *fpr, const char *name,
                        const char *reason, void *ud) {
  fedc_job_runner *r = ud;
  (void)c;
  char site[128];
  snprintf(site, sizeof site, "%s", name && name[0] ? name : fpr);
  if (fedc__jobq_decline(r->q, r->job, fpr, site, reason) != 0)
    fedc_log_warn("msg=\"job queue: %s\"", fedc_error_msg());
}

static void close_idle(fedc_job_runner *r) {
  if (r->idle == NULL) return;
  fedc_http_server_close(r->idle); /* drops the held polls: the sites join again */
  r->idle = NULL;
}

static void close_all(fedc_job_runner *r) {
  if (r->admin) fedc_http_server_close(r->admin);
  r->admin = NULL;
  close_idle(r);
  if (!uv_is_closing((uv_handle_t *)&r->tick)) uv_close((uv_handle_t *)&r->tick, runner_closed);
}

static void on_stopped(fedc_coordinator *c, int exit_code, void *ud) {
  fedc_job_runner *r = ud;
  if (r->outcome == NULL && exit_code != FEDC_COORD_EXIT_OK && !r->stopping) {
    char note[512];
    snprintf(note, sizeof note, "the coordinator stopped with exit code %d: %s", exit_code,
             fedc_error_msg());
    fedc_log_error("msg=\"job failed\" job=%d error=\"%s\"", (int)r->job, note);
    fedc__jobq_set_state(r->q, r->job, "failed", note);
    if (r->stopping == 0 && exit_code == FEDC_COORD_EXIT_STORE) r->exit_code = exit_code;
  }
  fedc_log_info("msg=\"job coordinator stopped\" job=%d exit=%d", (int)r->job, exit_code);
  fedc_coordinator_free(c);
  r->c = NULL;
  r->job = 0;
  r->outcome = NULL;
  r->state = R_IDLE;
  if (r->stopping) close_all(r);
}

/* Start job id: its config, its store with the allow list, its coordinator. */
static void start_job(fedc_job_runner *r, int32_t id) {
  fedc_jobq_job j;
  char *ini = NULL, ini_path[4200], db_path[4200];
  int rc = fedc__jobq_get(r->q, id, &j, &ini);
  if (rc == 0) rc = fedc__jobq_path(r->base.store_path, id, "ini", ini_path, sizeof ini_path);
  if (rc == 0) rc = fedc__jobq_path(r->base.store_path, id, "db", db_path, sizeof db_path);
  if (rc == 0) {
    FILE *f = fopen(ini_path, "wb");
    if (f == NULL || fputs(ini, f) < 0 || fclose(f) != 0)
      rc = fedc_error_set(FEDC_EIO, "cannot write %s", ini_path);
  }
  fedc_free(ini);
  fedc_settings *s = NULL;
  if (rc == 0) rc = fedc_settings_new(&s);
  if (rc == 0) {
    s->cfg = r->base;
    s->cfg.server_queue = 0;
    rc = fedc_config_load(&s->cfg, ini_path);
    if (rc == 0 && strlen(db_path) < sizeof s->cfg.store_path)
      snprintf(s->cfg.store_path, sizeof s->cfg.store_path, "%s", db_path);
  }
  if (rc == 0) {
    fedc_store *js = NULL;
    rc = fedc_store_open(db_path, &js);
    if (rc == 0) rc = fedc__jobq_sync_clients(r->main, js);
    fedc_store_close(js);
  }
  int code = FEDC_COORD_EXIT_USAGE;
  if (rc == 0) {
    fedc_coordinator_params p;
    fedc_coordinator_params_init(&p);
    p.loop = r->loop;
    p.settings = s;
    p.user_data = r;
    p.on_round = on_round;
    p.on_finished = on_finished;
    p.on_stopped = on_stopped;
    p.on_declined = on_declined;
    r->job = id;
    rc = fedc_coordinator_start(&p, &r->c, &code);
  }
  fedc_settings_free(s);
  if (rc != 0) {
    r->job = 0;
    if (code == FEDC_COORD_EXIT_LISTEN) { /* the address may still be closing: retry */
      fedc_log_warn("msg=\"job %d cannot listen yet, retrying\" error=\"%s\"", (int)id,
                    fedc_error_msg());
      r->retry_at = mono_s() + 1.0;
      return;
    }
    char note[512];
    snprintf(note, sizeof note, "cannot start: %s", fedc_error_msg());
    fedc_log_error("msg=\"job failed\" job=%d error=\"%s\"", (int)id, note);
    fedc__jobq_set_state(r->q, id, "failed", note);
    return;
  }
  fedc__jobq_set_state(r->q, id, "running", NULL);
  r->state = R_RUNNING;
  fedc_log_info("msg=\"job started\" job=%d name=\"%s\" store=%s port=%d", (int)id, j.name,
                db_path, fedc_coordinator_port(r->c));
}

static void on_tick(uv_timer_t *t) {
  fedc_job_runner *r = t->data;
  if (r->stopping || r->state == R_STOPPING) return;
  int32_t next = 0;
  if (fedc__jobq_next(r->q, &next) != 0) {
    fedc_log_warn("msg=\"job queue: %s\"", fedc_error_msg());
    return;
  }
  if (r->state == R_IDLE) {
    if (next != 0 && r->idle) {
      close_idle(r); /* the address is free by the next tick */
    } else if (next != 0 && mono_s() >= r->retry_at) {
      start_job(r, next);
    } else if (next == 0 && r->idle == NULL && mono_s() >= r->idle_retry_at) {
      /* the last coordinator's listener may still be closing: retried */
      if (fedc__idle_start(&r->admin_ctx, &r->idle) != 0) {
        fedc_log_debug("msg=\"idle listener: %s\"", fedc_error_msg());
        r->idle = NULL;
        r->idle_retry_at = mono_s() + 1.0;
      }
    }
  } else if (r->state == R_RUNNING) {
    fedc_jobq_job j;
    if (fedc__jobq_get(r->q, r->job, &j, NULL) == 0 && strcmp(j.state, "cancelled") == 0) {
      fedc_log_info("msg=\"job cancelled: stopping it\" job=%d", (int)r->job);
      r->outcome = "cancelled";
      r->state = R_STOPPING;
      fedc_coordinator_stop(r->c);
    }
  } else if (r->state == R_DONE && next != 0) {
    fedc_log_info("msg=\"next job queued: stopping finished job %d\"", (int)r->job);
    r->outcome = "finished";
    r->state = R_STOPPING;
    fedc_coordinator_stop(r->c);
  }
}

int fedc__runner_start(uv_loop_t *loop, const fedc_config *base, fedc_job_runner **out,
                       int *exit_code) {
  *out = NULL;
  *exit_code = FEDC_COORD_EXIT_STORE;
  fedc_job_runner *r = fedc_calloc(1, sizeof *r);
  if (r == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  r->loop = loop;
  r->base = *base;
  int rc = fedc__jobq_open(base->store_path, &r->q);
  if (rc == 0) rc = fedc_store_open(base->store_path, &r->main);
  if (rc == 0) rc = fedc_store_lock(r->main);
  if (rc == 0) {
    r->admin_ctx.loop = loop;
    r->admin_ctx.base = &r->base;
    r->admin_ctx.q = r->q;
    r->admin_ctx.store = r->main;
    rc = fedc__admin_start(loop, &r->admin_ctx, &r->admin);
    if (rc != 0) *exit_code = rc == FEDC_ECONFIG ? FEDC_COORD_EXIT_USAGE : FEDC_COORD_EXIT_LISTEN;
  }
  if (rc != 0) {
    fedc_store_close(r->main);
    fedc__jobq_close(r->q);
    fedc_free(r);
    return rc;
  }
  uv_timer_init(loop, &r->tick);
  r->tick.data = r;
  uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
  *exit_code = FEDC_COORD_EXIT_OK;
  *out = r;
  return 0;
}

void fedc__runner_stop(fedc_job_runner *r) {
  if (r->stopping) return;
  r->stopping = 1;
  if (r->c) {
    r->state = R_STOPPING;
    fedc_coordinator_stop(r->c); /* on_stopped closes the rest */
  } else {
    close_all(r);
  }
}

int fedc__runner_exit_code(const fedc_job_runner *r) { return r->exit_code; }

void fedc__runner_free(fedc_job_runner *r) {
  if (r == NULL) return;
  if (r->c) fedc_coordinator_free(r->c);
  fedc_store_close(r->main);
  fedc__jobq_close(r->q);
  fedc_free(r);
}
