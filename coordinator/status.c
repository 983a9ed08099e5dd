/*
 * status.c - what the coordinator tells people and monitoring about
 * itself: the /v1/status JSON document and the /metrics Prometheus text
 * (exposition format 0.0.4). Built on the loop thread from its own mirror
 * of the job's state; nothing here touches the store.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "eval_rounds.h"
#include "base/alloc.h"
#include "coord_internal.h"
#include "stats_phase.h"

static const char *state_name(round_state s) {
  switch (s) {
  case ROUND_WAITING: return "waiting";
  case ROUND_OPEN: return "open";
  case ROUND_CLOSING: return "closing";
  case ROUND_COMMITTING: return "closing"; /* documented: closing while a commit is written */
  case ROUND_FINISHED: return "finished";
  }
  return "unknown";
}

/* A number, or null for NAN (JSON has no NaN). */
static void add_num(cJSON *o, const char *key, double v) {
  if (isnan(v)) cJSON_AddNullToObject(o, key);
  else cJSON_AddNumberToObject(o, key, v);
}

static char *own(char *text) {
  char *copy = text ? fedc_strdup(text) : NULL;
  cJSON_free(text);
  return copy;
}

char *fedc__coord_status_json(fedc_coord *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON *job = cJSON_AddObjectToObject(o, "job");
  cJSON_AddStringToObject(job, "id", c->job_id);
  cJSON_AddNumberToObject(job, "rounds", c->cfg.rounds);
  cJSON_AddStringToObject(job, "model", fedc_model_type_name(c->spec.type));
  cJSON_AddNumberToObject(job, "params", (double)c->n_params);
  cJSON_AddNumberToObject(job, "clients_per_round", c->cfg.clients_per_round);
  cJSON_AddNumberToObject(job, "min_clients", c->cfg.min_clients);
  cJSON_AddNumberToObject(o, "round", c->round);
  cJSON_AddStringToObject(o, "state", state_name(c->state));
  /* the engine's answers; while a commit is on a worker the lock would
   * wait for it, so the round's selection is reported as it closed */
  int32_t reported = 0, selected = 0;
  int ask = c->state == ROUND_OPEN || c->state == ROUND_CLOSING;
  if (ask) {
    pthread_mutex_lock(&c->mu);
    reported = fedc_engine_reported(c->engine);
    selected = fedc_engine_n_selected(c->engine);
    pthread_mutex_unlock(&c->mu);
  } else if (c->state == ROUND_COMMITTING) {
    reported = c->commit_reported; /* as the commit began: a commit holds the engine */
    selected = c->commit_selected;
  }
  cJSON_AddNumberToObject(o, "reported", reported);
  cJSON_AddNumberToObject(o, "selected", selected);
  double now = fedc__coord_now();
  cJSON *clients = cJSON_AddArrayToObject(o, "clients");
  for (int32_t i = 0; i < c->n_clients; i++) {
    const coord_client *cl = &c->clients[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "id", cl->id);
    cJSON_AddStringToObject(e, "name", cl->name);
    cJSON_AddStringToObject(e, "fingerprint", cl->fingerprint);
    cJSON_AddStringToObject(e, "status", cl->revoked ? "revoked" : "allowed");
    add_num(e, "last_seen_s", cl->last_seen > 0 ? now - cl->last_seen : NAN);
    cJSON_AddBoolToObject(e, "selected", c->state == ROUND_OPEN && fedc__coord_is_selected(c, cl->id));
    cJSON_AddNumberToObject(e, "updates", (double)cl->updates);
    cJSON_AddNumberToObject(e, "trainer_failures", (double)cl->trainer_failures);
    if (cl->trainer_failures > 0) {
      cJSON_AddNumberToObject(e, "last_failure_round", cl->failed_round);
      cJSON_AddStringToObject(e, "last_failure", cl->failure);
    }
    cJSON_AddItemToArray(clients, e);
  }
  fedc__coord_declines_status(c, o); /* job_site.c: sites that declined the job */
  cJSON *rounds = cJSON_AddArrayToObject(o, "rounds");
  for (int32_t i = 0; i < c->n_history; i++) {
    const fedc_store_round *r = &c->history[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "round", r->round);
    cJSON_AddNumberToObject(e, "selected", r->selected);
    cJSON_AddNumberToObject(e, "clients", r->clients);
    cJSON_AddNumberToObject(e, "samples", (double)r->samples);
    add_num(e, "train_loss", r->train_loss);
    add_num(e, "test_acc", r->test_acc);
    add_num(e, "test_loss", r->test_loss);
    add_num(e, "secs", r->secs);
    cJSON_AddStringToObject(e, "sha256", r->sha256);
    if (r->epsilon > 0.0) {
      cJSON_AddNumberToObject(e, "epsilon", r->epsilon);
      cJSON_AddNumberToObject(e, "delta", r->delta);
    }
    cJSON_AddItemToArray(rounds, e);
  }
  if (c->cfg.dp_noise_multiplier > 0.0) {
    /* the privacy ledger: what the job has spent so far */
    cJSON *pv = cJSON_AddObjectToObject(o, "privacy");
    double eps = 0.0;
    for (int32_t i = 0; i < c->n_history; i++)
      if (c->history[i].epsilon > 0.0) eps = c->history[i].epsilon;
    cJSON_AddNumberToObject(pv, "epsilon", eps);
    cJSON_AddNumberToObject(pv, "delta", c->cfg.dp_delta);
    cJSON_AddNumberToObject(pv, "noise_multiplier", c->cfg.dp_noise_multiplier);
    cJSON_AddStringToObject(pv, "noise_at",
                            c->cfg.dp_noise_at == FEDC_NOISE_AT_SITES ? "sites" : "coordinator");
    add_num(pv, "epsilon_budget", c->cfg.dp_epsilon_budget > 0 ? c->cfg.dp_epsilon_budget : NAN);
    cJSON_AddBoolToObject(pv, "budget_reached", c->budget_stop);
  }
  if (c->secagg) fedc__coord_secagg_status(c, o, selected);
  fedc__coord_stats_status(c, o); /* a job with a schema: statistics, warnings */
  fedc__coord_eval_status(c, o);
  char *text = own(cJSON_PrintUnformatted(o));
  cJSON_Delete(o);
  return text;
}

/* A growing text buffer for the metrics page. */
typedef struct text {
  char *buf;
  size_t len, cap;
  int oom;
} text;

static void put(text *t, const char *fmt, ...) {
  if (t->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = 2 * t->cap + (size_t)n;
    char *nb = fedc_realloc(t->buf, cap);
    if (nb == NULL) {
      t->oom = 1;
      return;
    }
    t->buf = nb;
    t->cap = cap;
  }
}

static void metric(text *t, const char *name, const char *type, const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *fedc__coord_metrics_text(fedc_coord *c) {
  text t = {fedc_malloc(4096), 0, 4096, 0};
  if (t.buf == NULL) return NULL;
  fedc_http_server_stats s = {0}, s2 = {0};
  if (c->server) fedc_http_server_stats_get(c->server, &s);
  if (c->status_server) fedc_http_server_stats_get(c->status_server, &s2);
  metric(&t, "fedc_current_round", "gauge", "The open round, or the next to open.");
  put(&t, "fedc_current_round %d\n", (int)c->round);
  metric(&t, "fedc_rounds_committed_total", "counter", "Rounds committed by this process.");
  put(&t, "fedc_rounds_committed_total %llu\n", (unsigned long long)c->rounds_committed);
  metric(&t, "fedc_rounds_abandoned_total", "counter", "Rounds abandoned below quorum.");
  put(&t, "fedc_rounds_abandoned_total %llu\n", (unsigned long long)c->rounds_abandoned);
  metric(&t, "fedc_updates_accepted_total", "counter", "Updates counted into a round.");
  put(&t, "fedc_updates_accepted_total %llu\n", (unsigned long long)c->updates_accepted);
  metric(&t, "fedc_updates_duplicate_total", "counter",
         "Resent updates acknowledged and not counted again.");
  put(&t, "fedc_updates_duplicate_total %llu\n", (unsigned long long)c->updates_duplicate);
  metric(&t, "fedc_updates_capped_total", "counter",
         "Updates whose FedAvg weight [strategy] max_client_share cut.");
  put(&t, "fedc_updates_capped_total %llu\n", (unsigned long long)c->updates_capped);
  metric(&t, "fedc_updates_rejected_total", "counter", "Requests refused, by reason.");
  static const char *const reasons[] = {
#define X(name) #name,
      COORD_REJECT_REASONS(X)
#undef X
  };
  for (int i = 0; i < REJECT_COUNT; i++)
    put(&t, "fedc_updates_rejected_total{reason=\"%s\"} %llu\n", reasons[i],
        (unsigned long long)c->rejected[i]);
  metric(&t, "fedc_trainer_failures_total", "counter",
         "Rounds a client's trainer failed (POST /v1/report).");
  put(&t, "fedc_trainer_failures_total %llu\n", (unsigned long long)fedc__coord_report_total(c));
  metric(&t, "fedc_secagg_clients_excluded_total", "counter",
         "Clients excluded for revealing secure-aggregation shares that disagree.");
  put(&t, "fedc_secagg_clients_excluded_total %llu\n",
      (unsigned long long)fedc__coord_secagg_excluded_total(c));
  uint64_t far = 0, diverged = 0;
  fedc__coord_stats_metrics(c, &far, &diverged);
  metric(&t, "fedc_warnings_total", "counter",
         "Site warnings: far from the federation's statistics, or training diverged.");
  put(&t, "fedc_warnings_total{kind=\"far\"} %llu\n", (unsigned long long)far);
  put(&t, "fedc_warnings_total{kind=\"diverged\"} %llu\n", (unsigned long long)diverged);
  metric(&t, "fedc_bytes_received_total", "counter", "HTTP bytes received.");
  put(&t, "fedc_bytes_received_total %llu\n", (unsigned long long)(s.bytes_in + s2.bytes_in));
  metric(&t, "fedc_bytes_sent_total", "counter", "HTTP bytes sent.");
  put(&t, "fedc_bytes_sent_total %llu\n", (unsigned long long)(s.bytes_out + s2.bytes_out));
  metric(&t, "fedc_api_bytes_received_total", "counter",
         "HTTP bytes received on the clients' (TLS) listener only.");
  put(&t, "fedc_api_bytes_received_total %llu\n", (unsigned long long)s.bytes_in);
  metric(&t, "fedc_api_bytes_sent_total", "counter",
         "HTTP bytes sent on the clients' (TLS) listener only.");
  put(&t, "fedc_api_bytes_sent_total %llu\n", (unsigned long long)s.bytes_out);
  metric(&t, "fedc_model_downloads_total", "counter",
         "Downloads of the current round's model: whole, or as a delta from the previous "
         "round's ([server] model_deltas).");
  put(&t, "fedc_model_downloads_total{kind=\"full\"} %llu\n",
      (unsigned long long)c->model_sent[0]);
  put(&t, "fedc_model_downloads_total{kind=\"delta\"} %llu\n",
      (unsigned long long)c->model_sent[1]);
  metric(&t, "fedc_model_download_bytes_total", "counter",
         "Body bytes of those downloads answered whole (no Range).");
  put(&t, "fedc_model_download_bytes_total{kind=\"full\"} %llu\n",
      (unsigned long long)c->model_sent_bytes[0]);
  put(&t, "fedc_model_download_bytes_total{kind=\"delta\"} %llu\n",
      (unsigned long long)c->model_sent_bytes[1]);
  metric(&t, "fedc_round_duration_seconds", "gauge", "Duration of the last committed round.");
  put(&t, "fedc_round_duration_seconds %.6f\n", c->last_round_secs);
  metric(&t, "fedc_tls_handshakes_failed_total", "counter", "TLS handshakes refused or failed.");
  put(&t, "fedc_tls_handshakes_failed_total %llu\n", (unsigned long long)s.handshakes_failed);
  fedc_conn_guard_stats g = {0};
  if (c->server) fedc_http_server_guard_stats(c->server, &g);
  metric(&t, "fedc_conn_refused_total", "counter",
         "TLS-port connections closed at once, before any crypto, by reason: "
         "per_source ([server] max_conns_per_source), handshake_rate "
         "([server] handshake_rate), overload (no connection slot left for a "
         "source that is not preferred).");
  put(&t,
      "fedc_conn_refused_total{reason=\"per_source\"} %llu\n"
      "fedc_conn_refused_total{reason=\"handshake_rate\"} %llu\n"
      "fedc_conn_refused_total{reason=\"overload\"} %llu\n",
      (unsigned long long)g.refused_per_source, (unsigned long long)g.refused_rate,
      (unsigned long long)g.refused_overload);
  metric(&t, "fedc_tls_handshake_failures_total", "counter",
         "TLS handshakes that did not complete, by reason: failed (an error "
         "or refused certificate), timeout ([server] handshake_timeout_s), "
         "aborted (the peer left first).");
  put(&t,
      "fedc_tls_handshake_failures_total{reason=\"failed\"} %llu\n"
      "fedc_tls_handshake_failures_total{reason=\"timeout\"} %llu\n"
      "fedc_tls_handshake_failures_total{reason=\"aborted\"} %llu\n",
      (unsigned long long)s.handshakes_failed, (unsigned long long)g.handshake_timeouts,
      (unsigned long long)g.handshakes_aborted);
  metric(&t, "fedc_tls_handshakes_total", "counter", "TLS handshakes completed.");
  put(&t, "fedc_tls_handshakes_total %llu\n", (unsigned long long)g.handshakes_done);
  metric(&t, "fedc_tls_handshakes_resumed_total", "counter",
         "TLS handshakes completed by resuming a session ticket.");
  put(&t, "fedc_tls_handshakes_resumed_total %llu\n", (unsigned long long)g.handshakes_resumed);
  metric(&t, "fedc_tls_handshakes_pending", "gauge", "TLS handshakes under way.");
  put(&t, "fedc_tls_handshakes_pending %d\n", (int)g.pending);
  metric(&t, "fedc_conn_slots", "gauge",
         "TLS connections allowed at once ([server] max_connections, or the "
         "descriptor limit less 64).");
  put(&t, "fedc_conn_slots %d\n", (int)g.slots);
  metric(&t, "fedc_conn_sources", "gauge", "Source addresses tracked by the connection guard.");
  put(&t, "fedc_conn_sources %d\n", (int)g.sources);
  metric(&t, "fedc_http_closed_total", "counter",
         "Requests or connections ended by an HTTP limit, by reason and listener (tls: "
         "the clients' port; status: the plain read-only port): header_timeout ([server] "
         "header_timeout_s), request_timeout (request_timeout_s), slow (under "
         "min_rate_bytes_s), refused_early (refused at its headers, before its body).");
  static const char *const listeners[2] = {"tls", "status"};
  const fedc_http_server_stats *ls[2] = {&s, &s2};
  for (int i = 0; i < 2; i++)
    put(&t,
        "fedc_http_closed_total{reason=\"header_timeout\",listener=\"%s\"} %llu\n"
        "fedc_http_closed_total{reason=\"request_timeout\",listener=\"%s\"} %llu\n"
        "fedc_http_closed_total{reason=\"slow\",listener=\"%s\"} %llu\n"
        "fedc_http_closed_total{reason=\"refused_early\",listener=\"%s\"} %llu\n",
        listeners[i], (unsigned long long)ls[i]->header_timeouts, listeners[i],
        (unsigned long long)ls[i]->request_timeouts, listeners[i],
        (unsigned long long)ls[i]->slow_closed, listeners[i],
        (unsigned long long)ls[i]->refused_early);
  metric(&t, "fedc_http_output_pauses_total", "counter",
         "Times a connection's reading was paused because too many answers waited unread.");
  put(&t, "fedc_http_output_pauses_total %llu\n",
      (unsigned long long)(s.output_pauses + s2.output_pauses));
  metric(&t, "fedc_tls_errors_total", "counter",
         "Connections dropped for a TLS failure after the handshake (e.g. a record "
         "failing its MAC).");
  put(&t, "fedc_tls_errors_total %llu\n", (unsigned long long)s.tls_errors);
  metric(&t, "fedc_connections_idle_closed_total", "counter",
         "Connections closed after making no progress for [server] idle_timeout_s.");
  put(&t, "fedc_connections_idle_closed_total %llu\n",
      (unsigned long long)(s.idle_closed + s2.idle_closed));
  metric(&t, "fedc_connections", "gauge", "Open connections.");
  put(&t, "fedc_connections %d\n", (int)(s.connections + s2.connections));
  int32_t allowed = 0, revoked = 0;
  for (int32_t i = 0; i < c->n_clients; i++) c->clients[i].revoked ? revoked++ : allowed++;
  metric(&t, "fedc_clients", "gauge", "Enrolled clients by status.");
  put(&t, "fedc_clients{status=\"allowed\"} %d\nfedc_clients{status=\"revoked\"} %d\n",
      (int)allowed, (int)revoked);
  /* certificate expiry (cert_watch.c): the server's, and each allowed
   * client's whose certificate the store holds */
  double now_wall = (double)time(NULL);
  metric(&t, "fedc_cert_expiry_seconds", "gauge",
         "Seconds until a certificate expires (negative: expired): role=\"server\" is the "
         "coordinator's, role=\"client\" each allowed client's that the store holds.");
  if (c->server_not_after > 0)
    put(&t, "fedc_cert_expiry_seconds{role=\"server\"} %.0f\n", c->server_not_after - now_wall);
  for (int32_t i = 0; i < c->n_certs; i++) {
    /* the certificate's client through the fingerprint index (client_index.c) */
    const coord_client *cl = fedc__coord_client_by_fpr(c, c->certs[i].fingerprint);
    if (cl == NULL || cl->revoked) continue;
    put(&t, "fedc_cert_expiry_seconds{role=\"client\",client=\"%d\",fingerprint=\"%s\"} %.0f\n",
        (int)cl->id, c->certs[i].fingerprint, c->certs[i].not_after - now_wall);
  }
  if (fedc__coord_eval_enabled(c)) {
    char ev[4096] = "";
    fedc__coord_eval_metrics(c, ev, sizeof ev);
    put(&t, "%s", ev);
  }
  if (t.oom) {
    fedc_free(t.buf);
    return NULL;
  }
  return t.buf;
}
