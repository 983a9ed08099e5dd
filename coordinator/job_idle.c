/*
 * job_idle.c - the queue daemon's site listener while no job runs
 * (job_runner.h): between a cancelled or failed job and the next, and
 * from the daemon's start until the first job is queued, nothing else
 * listens on [server] listen, so the site services would retry their joins
 * with backoff. This listener, on the same address, TLS files and
 * connection limits as a job's coordinator, lets them wait cheaply
 * instead:
 *
 *   POST /v1/join   409 no_job ("no job is running"): a site service then
 *                   long-polls for the next job (fedc_client_wait_next); a
 *                   one-job client waits and joins again
 *   GET  /v1/task   held for ?wait= seconds (at most [server] poll_s), then
 *                   {"action": "wait", "retry_after_ms": 1000}
 *   anything else   503 no_job, from its headers (a body is not read)
 *
 * When a job is queued the runner closes this listener, which drops the
 * held polls; the sites then join the job, whose coordinator listens on
 * the address within a tick. Only certificates the store allows pass
 * (any certificate from the CA under enroll = open); others get 403, as a
 * job's coordinator would answer them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "conn_guard.h"
#include "http_server.h"
#include "job_runner.h"
#include "store.h"

#define IDLE_MAX_BODY ((size_t)64 << 10) /* a join's body */

static const char WAIT_BODY[] = "{\"action\":\"wait\",\"retry_after_ms\":1000}";

/* A held GET /v1/task: answered when its timer fires, unless the
 * connection went first (the listener closing, or the site leaving). */
typedef struct idle_poll {
  uv_timer_t timer;
  fedc_http_exchange *x; /* NULL once answered or aborted */
} idle_poll;

static void poll_closed(uv_handle_t *h) {
  fedc_free(h->data);
}

static void poll_fire(uv_timer_t *t) {
  idle_poll *p = t->data;
  if (p->x) {
    fedc_http_exchange *x = p->x;
    p->x = NULL;
    fedc_http_respond(x, 200, "application/json", WAIT_BODY, sizeof WAIT_BODY - 1, NULL);
  }
  uv_close((uv_handle_t *)&p->timer, poll_closed);
}

static void poll_abort(void *ud, fedc_http_exchange *x) {
  idle_poll *p = ud;
  (void)x;
  p->x = NULL;
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, poll_closed);
}

/* The seconds of ?wait=S, at most poll_s; 0 without one or when unreadable. */
static double wait_of(const char *query, double poll_s) {
  const char *w = strstr(query, "wait=");
  if (w == NULL || (w != query && w[-1] != '&')) return 0;
  char *end;
  double s = strtod(w + 5, &end);
  if (end == w + 5 || !(s > 0)) return 0;
  return s < poll_s ? s : poll_s;
}

/*
 * Header-time admission (fedc_http_admit_cb): the store's allow list, as a
 * job's coordinator would apply it (one indexed sqlite read on the loop
 * thread, as the admin endpoint's check is); then only a task poll or a
 * join reach the handler, and the rest is refused before its body.
 */
static int admit(void *ctx, const fedc_http_request *req, const char **code, char *msg,
                 size_t cap) {
  fedc_admin_ctx *a = ctx;
  const char *fpr = req->peer_fingerprint ? req->peer_fingerprint : "";
  fedc_store_client cl;
  int allowed =
      fpr[0] != '\0' &&
      (a->base->server_enroll == FEDC_ENROLL_OPEN ||
       (fedc_store_client_find(a->store, fpr, &cl) == 0 && cl.status == FEDC_CLIENT_ALLOWED));
  if (!allowed) {
    *code = "forbidden";
    snprintf(msg, cap, "client certificate %.16s... is not allowed (fedc-coordinator allow)", fpr);
    return 403;
  }
  if ((strcmp(req->path, "/v1/task") == 0 && strcmp(req->method, "GET") == 0) ||
      (strcmp(req->path, "/v1/join") == 0 && strcmp(req->method, "POST") == 0))
    return 0;
  *code = "no_job"; /* an update or a model of a job that ended: its body is not read */
  snprintf(msg, cap, "no job is running at this coordinator");
  return 503;
}

/*
 * A task poll is held for its wait (an idle_poll, freed when its timer
 * closes, whether it fired or the connection went first) and answered
 * "wait"; without a wait, or out of memory, it is answered at once. A join
 * is told that no job runs.
 */
static void handle(void *ctx, fedc_http_exchange *x, const fedc_http_request *req) {
  fedc_admin_ctx *a = ctx;
  if (strcmp(req->path, "/v1/task") == 0) {
    double wait = wait_of(req->query, a->base->server_poll_s);
    idle_poll *p = wait > 0 ? fedc_calloc(1, sizeof *p) : NULL;
    if (p == NULL) {
      fedc_http_respond(x, 200, "application/json", WAIT_BODY, sizeof WAIT_BODY - 1, NULL);
      return;
    }
    p->x = x;
    uv_timer_init(a->loop, &p->timer);
    p->timer.data = p;
    fedc_http_exchange_on_abort(x, poll_abort, p);
    uv_timer_start(&p->timer, poll_fire, (uint64_t)(wait * 1000.0), 0);
    return;
  }
  /* POST /v1/join (admit lets nothing else through) */
  fedc_http_respond_error(x, 409, "no_job", "%s",
                          "no job is running at this coordinator: its queue is empty; "
                          "site services wait for the next job");
}

/*
 * Listen on [server] listen with the daemon's TLS files and connection
 * limits, as a job's coordinator does. Errors as fedc_http_server_start
 * (FEDC_EIO while the last job's listener still holds the address: the
 * runner retries); *out is the server, closed with fedc_http_server_close.
 */
int fedc__idle_start(fedc_admin_ctx *ctx, struct fedc_http_server **out) {
  const fedc_config *cfg = ctx->base;
  fedc_conn_limits lim = {.handshake_timeout_s = cfg->server_handshake_timeout_s,
                          .max_conns_per_source = cfg->server_max_conns_per_source,
                          .handshake_rate = cfg->server_handshake_rate,
                          .handshake_burst = cfg->server_handshake_burst,
                          .slots = cfg->server_max_connections,
                          .reserved_share = cfg->server_reserved_share};
  fedc_http_server_opts o = {.listen = cfg->server_listen,
                             .tls = 1,
                             .ca_path = cfg->tls_ca,
                             .limits = &lim,
                             .cert_path = cfg->tls_cert,
                             .key_path = cfg->tls_key,
                             .require_client_cert = cfg->tls_require_client_cert,
                             .max_body = IDLE_MAX_BODY,
                             .idle_timeout_s = cfg->server_idle_timeout_s,
                             .max_connections = 100000,
                             .handler = handle,
                             .ctx = ctx,
                             .header_timeout_s = cfg->server_header_timeout_s,
                             .request_timeout_s = cfg->server_request_timeout_s,
                             .min_rate_bytes_s = cfg->server_min_rate_bytes_s,
                             .rate_window_s = cfg->server_rate_window_s,
                             .admit = admit};
  int rc = fedc_http_server_start(ctx->loop, &o, out);
  if (rc == 0)
    fedc_log_info("msg=\"no job running: sites wait on the listener until one is queued\" "
                  "address=%s",
                  cfg->server_listen);
  return rc;
}
