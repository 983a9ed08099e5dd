/*
 * api.c - the coordinator's HTTP endpoints (docs/protocol.md): routing,
 * who may call what, and the glue from requests to the round state machine
 * in coordinator.c. Runs on the loop thread; store writes (enrolling a
 * client) and the heavy work on updates go to worker threads.
 *
 * Identity is the client certificate's fingerprint. /v1/join, /v1/task,
 * /v1/model and /v1/update need an enrolled, non-revoked one, and so do the
 * read-only pages (/, /v1/status, /metrics) on the TLS port (under enroll =
 * open a CA-signed certificate not yet enrolled reads them too); the
 * plain-HTTP status listener on loopback serves them without identity. The
 * refusals that need no body are decided once the headers are in
 * (fedc__coord_admit), so that a request that will be refused never has its
 * body read; the handlers check again, since a client may be revoked while
 * its body arrives.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_rounds.h"
#include "base/alloc.h"
#include "coord_internal.h"
#include "stats_phase.h"
#include "dashboard.h"
#include "base/error.h"
#include "wire/join_body.h"
#include "base/log.h"

/* ---- read-only pages ----------------------------------------------------- */

static coord_client *authorize(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req);
/*
 * Who may pass, decided in one place for the header-time admission, the
 * handlers and the read-only pages: NULL when the certificate behind fpr is
 * enrolled and not revoked (or, for a join, not yet known under enroll =
 * open), else the reason as a format that takes the fingerprint. *out (if
 * not NULL) gets the client, NULL when it is unknown.
 */
static const char *client_refusal(fedc_coord *c, const char *fpr, int join,
                                  coord_client **out) {
  coord_client *cl = fpr && fpr[0] ? fedc__coord_client_by_fpr(c, fpr) : NULL;
  if (out) *out = cl;
  if (fpr == NULL || fpr[0] == '\0') return "a client certificate is required%s";
  if (cl && cl->revoked) return "certificate %.16s... is revoked";
  if (cl == NULL && !(join && c->cfg.server_enroll == FEDC_ENROLL_OPEN))
    return "certificate %.16s... is not enrolled in this job (fedc-coordinator allow)";
  return NULL;
}

static int is_read_only_path(const char *p) {
  return strcmp(p, "/") == 0 || strcmp(p, "/v1/status") == 0 || strcmp(p, "/metrics") == 0;
}

static void send_text(fedc_http_exchange *x, const char *type, char *text) {
  if (text == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  fedc_http_respond(x, 200, type, text, strlen(text), NULL);
  fedc_free(text);
}

/* Serve /, /v1/status and /metrics; returns 0 if the path is not one. */
static int serve_read_only(fedc_coord *c, fedc_http_exchange *x,
                           const fedc_http_request *req) {
  const char *p = req->path;
  if (strcmp(p, "/") != 0 && strcmp(p, "/v1/status") != 0 && strcmp(p, "/metrics") != 0)
    return 0;
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    fedc_http_respond_error(x, 405, "method_not_allowed", "%s takes GET", p);
    return 1;
  }
  if (strcmp(p, "/") == 0) {
    size_t len;
    const char *html = fedc_dashboard_html(&len);
    fedc_http_respond(x, 200, "text/html; charset=utf-8", html, len, NULL);
  } else if (strcmp(p, "/v1/status") == 0) {
    send_text(x, "application/json", fedc__coord_status_json(c));
  } else {
    send_text(x, "text/plain; version=0.0.4", fedc__coord_metrics_text(c));
  }
  return 1;
}

/*
 * The read-only pages on the TLS port: they list every client's name and
 * fingerprint, so they need what the API needs, a certificate that is not
 * revoked and is enrolled (under enroll = open, one from the CA that has
 * not joined yet may read them too, since it could join). 403 otherwise,
 * as on every other path. The plain status listener (loopback, the
 * operator's) does not come through here.
 */
static int read_only_allowed(fedc_coord *c, fedc_http_exchange *x,
                             const fedc_http_request *req) {
  const char *fp = req->peer_fingerprint;
  const char *why = client_refusal(c, fp, 1, NULL);
  if (why == NULL) return 1;
  fedc__coord_reject(c, REJECT_forbidden);
  fedc_http_respond_error(x, 403, "forbidden", why, fp ? fp : "");
  return 0;
}

void fedc__coord_handle_status_only(void *ctx, fedc_http_exchange *x,
                                    const fedc_http_request *req) {
  if (!serve_read_only(ctx, x, req))
    fedc_http_respond_error(x, 404, "not_found",
                            "this listener serves only /, /v1/status and /metrics");
}

/* ---- identity ------------------------------------------------------------ */

/* The enrolled, non-revoked client behind this request, or NULL after
 * answering 403. */
static coord_client *authorize(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req) {
  const char *fpr = req->peer_fingerprint;
  coord_client *cl;
  const char *why = client_refusal(c, fpr, 0, &cl);
  if (why != NULL) {
    fedc__coord_reject(c, REJECT_forbidden);
    fedc_http_respond_error(x, 403, "forbidden", why, fpr ? fpr : "");
    return NULL;
  }
  cl->last_seen = fedc__coord_now();
  return cl;
}

/* ---- join ---------------------------------------------------------------- */

typedef struct join_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_http_exchange *x;
  char fingerprint[65];
  char name[128];
  int enroll; /* enroll = open and the fingerprint is new */
  int probe;  /* join?probe=1: the job is read, the client not yet eligible */
  int rc;
  char err[256];
  fedc_store_client sc;
} join_work;

static void join_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  ((join_work *)ud)->x = NULL;
}

/*
 * Names are unique: a name another certificate already has is taken by
 * this one as "<name>~<its fingerprint's first 8 hex digits>" (cut on a
 * character boundary to fit), so that no client can pass for another in
 * the logs or the dashboard and an honest client whose name clashes still
 * joins. Under c->mu.
 */
static int unique_name(fedc_coord *c, join_work *w) {
  int taken = 0;
  if (w->name[0] == '\0') return 0;
  int rc = fedc_store_client_name_taken(c->store, w->name, w->fingerprint, &taken);
  if (rc != 0 || !taken) return rc;
  size_t keep = strlen(w->name), room = sizeof w->name - 10;
  if (keep > room) {
    keep = room;
    while (keep > 0 && ((unsigned char)w->name[keep] & 0xC0) == 0x80) keep--;
  }
  char old[sizeof w->name];
  snprintf(old, sizeof old, "%s", w->name);
  snprintf(w->name, sizeof w->name, "%.*s~%.8s", (int)keep, old, w->fingerprint);
  return fedc_store_client_name_taken(c->store, w->name, w->fingerprint, &taken);
}

static void join_run(uv_work_t *req) {
  join_work *w = req->data;
  fedc_coord *c = w->c;
  pthread_mutex_lock(&c->mu);
  int32_t id;
  int rc = unique_name(c, w);
  if (rc == 0 && w->enroll) rc = fedc_store_client_allow(c->store, w->fingerprint, w->name, &id);
  if (rc == 0) {
    rc = fedc_store_client_find(c->store, w->fingerprint, &w->sc);
    /* the operator's name (from `allow --name`) wins; a client names
     * itself only when the operator gave none */
    if (rc == 0 && w->name[0] && w->sc.name[0] == '\0' &&
        fedc_store_client_set_name(c->store, w->sc.id, w->name) == 0)
      snprintf(w->sc.name, sizeof w->sc.name, "%s", w->name);
  }
  w->rc = rc;
  snprintf(w->err, sizeof w->err, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&c->mu);
}

static void join_done(uv_work_t *req, int status) {
  join_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  coord_client *cl = NULL;
  if (w->rc == 0) {
    cl = fedc__coord_client_by_fpr(c, w->fingerprint);
    if (cl == NULL && fedc__coord_client_add(c, &w->sc, &cl) != 0) cl = NULL;
  }
  if (cl) {
    snprintf(cl->name, sizeof cl->name, "%s", w->sc.name);
    if (!w->probe) cl->joined = 1; /* a probe (job_site.c) is eligible once it polls */
    cl->last_seen = fedc__coord_now();
    fedc_log_info("client=%d name=\"%s\" msg=\"joined\"", (int)cl->id, cl->name);
  }
  if (w->x) {
    fedc_http_exchange_on_abort(w->x, NULL, NULL);
    if (cl == NULL) {
      fedc_http_respond_error(w->x, 503, "unavailable", "%s%s", w->rc ? "store: " : "",
                              w->rc ? w->err : "out of memory");
    } else {
      char *body = NULL;
      size_t cap = strlen(c->job_json) + 128;
      body = fedc_malloc(cap);
      if (body == NULL) {
        fedc_http_respond_error(w->x, 503, "unavailable", "out of memory");
      } else {
        /* the job object with the current round spliced in */
        int n = snprintf(body, cap, "{\"client_id\":%d,\"job\":%.*s,\"round\":%d}}",
                         (int)cl->id, (int)strlen(c->job_json) - 1, c->job_json,
                         (int)c->round);
        fedc_http_respond(w->x, 200, "application/json", body, (size_t)n, NULL);
        fedc_free(body);
      }
    }
  }
  c->other_work--;
  if (cl && c->params.on_client_joined) {
    char name[sizeof cl->name];
    int32_t id = cl->id;
    snprintf(name, sizeof name, "%s", cl->name);
    c->params.on_client_joined(c, id, name, c->params.user_data);
  }
  fedc_free(w);
  fedc__coord_worker_done(c);
}

static void handle_join(fedc_coord *c, fedc_http_exchange *x,
                        const fedc_http_request *req) {
  if (req->peer_fingerprint == NULL || req->peer_fingerprint[0] == '\0') {
    fedc__coord_reject(c, REJECT_forbidden);
    fedc_http_respond_error(x, 403, "forbidden", "a client certificate is required");
    return;
  }
  char name[128];
  int jrc = fedc_join_body_parse(req->body, req->body_len, name, sizeof name);
  if (jrc != 0) {
    int oom = jrc == FEDC_ENOMEM;
    fedc__coord_reject(c, oom ? REJECT_unavailable : REJECT_bad_request);
    fedc_http_respond_error(x, oom ? 503 : 400, oom ? "unavailable" : "bad_request",
                            "join body must be {\"name\": \"<at most 127 bytes>\"}: %s",
                            fedc_error_msg());
    return;
  }
  coord_client *cl = fedc__coord_client_by_fpr(c, req->peer_fingerprint);
  if (cl && cl->revoked) {
    authorize(c, x, req); /* answers 403 revoked */
    return;
  }
  if (cl == NULL && c->cfg.server_enroll != FEDC_ENROLL_OPEN) {
    authorize(c, x, req); /* answers 403 not enrolled */
    return;
  }
  join_work *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  w->c = c;
  w->x = x;
  w->enroll = cl == NULL;
  w->probe = fedc__coord_join_is_probe(req->query); /* job_site.c */
  snprintf(w->fingerprint, sizeof w->fingerprint, "%s", req->peer_fingerprint);
  snprintf(w->name, sizeof w->name, "%s", name[0] ? name : req->peer_cn ? req->peer_cn : "");
  /* a certificate's common name stands in for a name only if it is one */
  if (name[0] == '\0' && fedc_join_name_check(w->name, strlen(w->name)) != 0) w->name[0] = '\0';
  w->req.data = w;
  fedc_http_exchange_on_abort(x, join_abort, w);
  if (uv_queue_work(c->loop, &w->req, join_run, join_done) != 0) {
    fedc_http_exchange_on_abort(x, NULL, NULL);
    fedc_free(w);
    fedc_http_respond_error(x, 503, "unavailable", "cannot queue the request");
    return;
  }
  c->other_work++;
}

/* ---- task, model, update ------------------------------------------------- */

/* A pending poll's connection died. The poll refers to no client: the
 * client that holds it is looked up now (the clients array may have moved
 * since the poll came in). */
static void poll_abort(void *ud, fedc_http_exchange *x) {
  fedc_coord *c = ud;
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].poll == x) c->clients[i].poll = NULL;
}

/* The number value of key in a query string "a=1&b=2": 1 found, 0 absent,
 * -1 malformed (not a finite number). */
int fedc__coord_query_double(const char *q, const char *key, double *out) {
  size_t kl = strlen(key);
  for (const char *p = q; p && *p;) {
    if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
      char *end;
      double v = strtod(p + kl + 1, &end);
      if (end == p + kl + 1 || (*end != '\0' && *end != '&') || !isfinite(v)) return -1;
      *out = v;
      return 1;
    }
    p = strchr(p, '&');
    if (p) p++;
  }
  return 0;
}

static void handle_task(fedc_coord *c, fedc_http_exchange *x,
                        const fedc_http_request *req, coord_client *cl) {
  double wait = c->cfg.server_poll_s;
  if (fedc__coord_query_double(req->query, "wait", &wait) < 0 || wait < 0) {
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request", "wait must be a number of seconds >= 0");
    return;
  }
  if (wait > c->cfg.server_poll_s) wait = c->cfg.server_poll_s;
  cl->joined = 1;
  if (cl->poll) fedc__coord_answer_poll(c, cl); /* a newer poll replaces it */
  cl->poll = x;
  cl->poll_deadline = fedc__coord_now() + wait;
  fedc_http_exchange_on_abort(x, poll_abort, c);
  int task = !cl->declined &&
             (fedc__coord_has_task(c, cl->id) || fedc__coord_eval_has_task(c, cl->id));
  /* next=1 (a site service between jobs): a finished job holds the poll
   * for its wait, until the coordinator stops for the next job */
  double next = 0;
  int hold = fedc__coord_query_double(req->query, "next", &next) == 1 && next != 0;
  if ((c->state == ROUND_FINISHED && !hold) || task || wait == 0 || c->stopping)
    fedc__coord_answer_poll(c, cl);
  else
    fedc__coord_step(c); /* this poll may complete a quorum */
}

static void handle_model(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                         const char *arg) {
  int32_t round;
  if (strcmp(arg, "latest") == 0) {
    round = c->round; /* starts from the last committed model */
  } else {
    char *end;
    long r = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || r < 1 || r > INT32_MAX) {
      fedc_http_respond_error(x, 404, "not_found", "no such model: '%s'", arg);
      return;
    }
    round = (int32_t)r;
  }
  fedc__coord_model_respond(c, x, req, round); /* model_serve.c */
}

void fedc__coord_handle(void *ctx, fedc_http_exchange *x,
                        const fedc_http_request *req) {
  fedc_coord *c = ctx;
  if (is_read_only_path(req->path) && !read_only_allowed(c, x, req)) return;
  if (serve_read_only(c, x, req)) return;
  const char *p = req->path;
  int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
  if (strcmp(p, "/v1/join") == 0) {
    if (!post) fedc_http_respond_error(x, 405, "method_not_allowed", "/v1/join takes POST");
    else handle_join(c, x, req);
    return;
  }
  if (strcmp(p, "/v1/decline") == 0) { /* a site's policy refused the job: job_site.c */
    coord_client *cl = !post ? NULL : authorize(c, x, req);
    if (!post) fedc_http_respond_error(x, 405, "method_not_allowed", "/v1/decline takes POST");
    else if (cl) fedc__coord_decline(c, x, req, cl);
    return;
  }
  if (strcmp(p, "/v1/stats") == 0 || strcmp(p, "/v1/warn") == 0) { /* stats_phase.c */
    coord_client *cl = post ? authorize(c, x, req) : NULL;
    if (!post) fedc_http_respond_error(x, 405, "method_not_allowed", "%s takes POST", p);
    else if (cl) fedc__coord_stats_handle(c, x, req, cl);
    return;
  }
  if (strncmp(p, "/v1/secagg/", 11) == 0) { /* secure aggregation: secagg_rounds.c */
    coord_client *cl = authorize(c, x, req);
    if (cl) fedc__coord_secagg_handle(c, x, req, cl);
    return;
  }
  if (strcmp(p, "/v1/eval") == 0) { /* federated evaluation: eval_rounds.c */
    if (!post) {
      fedc_http_respond_error(x, 405, "method_not_allowed", "/v1/eval takes POST");
      return;
    }
    coord_client *cl = authorize(c, x, req);
    if (cl) fedc__coord_eval_handle(c, x, cl, req->body, req->body_len);
    return;
  }
  if (strcmp(p, "/v1/report") == 0) { /* a trainer failed: report.c */
    coord_client *cl = !post ? NULL : authorize(c, x, req);
    if (!post) fedc_http_respond_error(x, 405, "method_not_allowed", "/v1/report takes POST");
    else if (cl) fedc__coord_handle_report(c, x, cl, req->body, req->body_len);
    return;
  }
  if (strcmp(p, "/v1/upload") == 0 || strcmp(p, "/v1/upload/chunk") == 0) {
    coord_client *cl = authorize(c, x, req); /* chunked uploads: upload_api.c */
    if (cl) fedc__coord_upload_handle(c, x, req, cl);
    return;
  }
  int is_task = strcmp(p, "/v1/task") == 0, is_update = strcmp(p, "/v1/update") == 0;
  int is_model = strncmp(p, "/v1/model/", 10) == 0;
  if (!is_task && !is_update && !is_model) {
    fedc_http_respond_error(x, 404, "not_found", "no such path: %s", p);
    return;
  }
  if ((is_update && !post) || (!is_update && !get)) {
    fedc_http_respond_error(x, 405, "method_not_allowed", "%s takes %s", p,
                            is_update ? "POST" : "GET");
    return;
  }
  coord_client *cl = authorize(c, x, req);
  if (cl == NULL) return;
  if (c->stopping) {
    fedc_http_respond_error(x, 503, "unavailable", "the coordinator is stopping");
    return;
  }
  if (is_task) handle_task(c, x, req, cl);
  else if (is_model) handle_model(c, x, req, p + 10);
  else fedc__coord_submit_update(c, x, cl, req->body, req->body_len);
}

/* ---- header-time admission ------------------------------------------------ */

static int refusal(const char **code, char *msg, size_t cap, int status, const char *c,
                   const char *text, const char *arg) {
  *code = c;
  snprintf(msg, cap, text, arg);
  return status;
}

/* 0 when the certificate behind req is enrolled and not revoked, else 403
 * (counted as a forbidden rejection). join: an unknown certificate is
 * fine under enroll = open. */
static int admit_client(fedc_coord *c, const fedc_http_request *req, int join,
                        const char **code, char *msg, size_t cap) {
  const char *fpr = req->peer_fingerprint;
  const char *why = client_refusal(c, fpr, join, NULL);
  if (why == NULL) return 0;
  fedc__coord_reject(c, REJECT_forbidden);
  return refusal(code, msg, cap, 403, "forbidden", why, fpr ? fpr : "");
}

/*
 * The TLS listener's admission: the route and the method, then the
 * client, as fedc__coord_handle decides them; everything that needs the
 * body or the round's state (a bad join body, stopping, not selected) is
 * left to the handler.
 */
int fedc__coord_admit(void *ctx, const fedc_http_request *req, const char **code,
                      char *msg, size_t cap) {
  fedc_coord *c = ctx;
  const char *p = req->path, *m = req->method;
  if (is_read_only_path(p)) {
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
      return refusal(code, msg, cap, 405, "method_not_allowed", "%s takes GET", p);
    /* as read_only_allowed: enrolled and not revoked, or not yet enrolled
     * under enroll = open (it could join), which is admit_client's rule for
     * a join */
    return admit_client(c, req, 1, code, msg, cap);
  }
  if (strcmp(p, "/v1/join") == 0) {
    if (strcmp(m, "POST") != 0)
      return refusal(code, msg, cap, 405, "method_not_allowed", "%s takes POST", p);
    return admit_client(c, req, 1, code, msg, cap);
  }
  if (strncmp(p, "/v1/secagg/", 11) == 0 || strcmp(p, "/v1/decline") == 0 ||
      strcmp(p, "/v1/upload") == 0 || strcmp(p, "/v1/upload/chunk") == 0)
    return admit_client(c, req, 0, code, msg, cap);
  if (strcmp(p, "/v1/stats") == 0 || strcmp(p, "/v1/warn") == 0 || strcmp(p, "/v1/eval") == 0 ||
      strcmp(p, "/v1/report") == 0) {
    if (strcmp(m, "POST") != 0)
      return refusal(code, msg, cap, 405, "method_not_allowed", "%s takes POST", p);
    return admit_client(c, req, 0, code, msg, cap);
  }
  int is_update = strcmp(p, "/v1/update") == 0;
  if (!is_update && strcmp(p, "/v1/task") != 0 && strncmp(p, "/v1/model/", 10) != 0)
    return refusal(code, msg, cap, 404, "not_found", "no such path: %s", p);
  if (strcmp(m, is_update ? "POST" : "GET") != 0) {
    *code = "method_not_allowed";
    snprintf(msg, cap, "%s takes %s", p, is_update ? "POST" : "GET");
    return 405;
  }
  return admit_client(c, req, 0, code, msg, cap);
}

/* The plain-HTTP status listener's: GET (or HEAD) of the read-only pages,
 * nothing else, and never a body. */
int fedc__coord_admit_status_only(void *ctx, const fedc_http_request *req,
                                  const char **code, char *msg, size_t cap) {
  (void)ctx;
  if (!is_read_only_path(req->path))
    return refusal(code, msg, cap, 404, "not_found",
                   "this listener serves only /, /v1/status and /metrics%s", "");
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
    return refusal(code, msg, cap, 405, "method_not_allowed", "%s takes GET", req->path);
  return 0;
}
