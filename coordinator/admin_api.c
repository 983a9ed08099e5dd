/*
 * admin_api.c - the job queue daemon's admin endpoint ([server]
 * admin_listen), over mutual TLS with the daemon's CA, certificate and
 * key. Only admin certificates pass: those `pki sign --admin` issued
 * (OU=fedc-admin, recorded in the store: certs.h) and those whose SHA-256
 * fingerprint is in [server] admins; decided from the headers, before any
 * body is read; everyone else gets 403. The endpoint lives as long as the daemon, across jobs.
 *
 *   GET  /v1/admin/jobs                     the queue, with sites' declines
 *   POST /v1/admin/jobs?name=NAME           submit a job (body: its INI text)
 *   POST /v1/admin/jobs/ID/cancel           cancel a queued or running job
 *   GET  /v1/admin/jobs/ID/model/WHICH      a round's model (number, latest,
 *                                           best) as safetensors
 *
 * The queue's operations are small sqlite transactions, run on the loop
 * thread. docs/protocol.md describes the answers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "certs.h"
#include "http_server.h"
#include "job_runner.h"

#define ADMIN_MAX_BODY ((size_t)1 << 20)

/* 1 when fpr (64 lowercase hex) is in the comma-separated list (any case,
 * spaces and colons ignored). */
static int is_admin(const fedc_config *cfg, const char *fpr) {
  if (fpr == NULL || strlen(fpr) != 64) return 0;
  const char *p = cfg->server_admins;
  while (*p) {
    char one[65];
    size_t k = 0;
    for (; *p && *p != ','; p++)
      if (isxdigit((unsigned char)*p) && k < 64) one[k++] = (char)tolower((unsigned char)*p);
    one[k] = '\0';
    if (k == 64 && strcmp(one, fpr) == 0) return 1;
    if (*p == ',') p++;
  }
  return 0;
}

static int admit(void *ctx, const fedc_http_request *req, const char **code, char *msg,
                 size_t cap) {
  fedc_admin_ctx *a = ctx;
  if (strncmp(req->path, "/v1/admin/", 10) != 0) {
    *code = "not_found";
    snprintf(msg, cap, "this listener serves only /v1/admin/...");
    return 404;
  }
  int cert_admin = 0; /* an admin certificate (pki sign --admin) the store knows */
  if (req->peer_fingerprint && req->peer_fingerprint[0] &&
      fedc__certs_is_admin(a->store, req->peer_fingerprint, &cert_admin) != 0)
    cert_admin = 0;
  if (!cert_admin && !is_admin(a->base, req->peer_fingerprint)) {
    *code = "forbidden";
    snprintf(msg, cap, "certificate %.16s... is not an admin certificate (pki sign --admin, or [server] admins)",
             req->peer_fingerprint ? req->peer_fingerprint : "");
    fedc_log_warn("msg=\"admin endpoint refused\" fingerprint=%.16s remote=%s",
                  req->peer_fingerprint ? req->peer_fingerprint : "", req->remote);
    return 403;
  }
  return 0;
}

static void respond_text(fedc_http_exchange *x, char *json) {
  if (json == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "%s", fedc_error_msg());
    return;
  }
  fedc_http_respond(x, 200, "application/json", json, strlen(json), NULL);
  fedc_free(json);
}

static int status_of(int rc) {
  return rc == FEDC_ENOTFOUND ? 404 : rc == FEDC_ESTATE ? 409
         : rc == FEDC_ECONFIG || rc == FEDC_EINVAL ? 400 : 500;
}

/* POST /v1/admin/jobs: the body is written to a file beside the jobs so
 * that the same check as the command line's reads it, then queued. */
static void submit(fedc_admin_ctx *a, fedc_http_exchange *x, const fedc_http_request *req) {
  char path[4200], name[128] = "";
  int rc = fedc__jobq_path(a->base->store_path, 0, "submit.ini", path, sizeof path);
  if (rc == 0) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(req->body, 1, req->body_len, f) != req->body_len || fclose(f) != 0)
      rc = fedc_error_set(FEDC_EIO, "cannot write %s", path);
  }
  const char *q = strstr(req->query, "name=");
  if (q) {
    size_t k = 0;
    for (q += 5; *q && *q != '&' && k + 1 < sizeof name; q++)
      if (isalnum((unsigned char)*q) || *q == '-' || *q == '_' || *q == '.') name[k++] = *q;
    name[k] = '\0';
  }
  int32_t id = 0;
  if (rc == 0) rc = fedc__runner_submit(a->q, a->base, path, name[0] ? name : "submitted", &id);
  unlink(path);
  if (rc != 0) {
    fedc_http_respond_error(x, status_of(rc), rc == FEDC_ECONFIG ? "bad_job" : "error", "%s",
                            fedc_error_msg());
    return;
  }
  fedc_log_info("msg=\"job submitted\" job=%d name=\"%s\" by=%.16s", (int)id, name,
                req->peer_fingerprint);
  char body[64];
  int n = snprintf(body, sizeof body, "{\"id\":%d}", (int)id);
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

static void handle(void *ctx, fedc_http_exchange *x, const fedc_http_request *req) {
  fedc_admin_ctx *a = ctx;
  const char *p = req->path + 10; /* after /v1/admin/ */
  int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
  if (strcmp(p, "jobs") == 0) {
    if (get) respond_text(x, fedc__runner_jobs_json(a->q));
    else if (post) submit(a, x, req);
    else fedc_http_respond_error(x, 405, "method_not_allowed", "/v1/admin/jobs takes GET or POST");
    return;
  }
  char *end;
  long id = strncmp(p, "jobs/", 5) == 0 ? strtol(p + 5, &end, 10) : -1;
  if (id > 0 && post && strcmp(end, "/cancel") == 0) {
    int rc = fedc__jobq_cancel(a->q, (int32_t)id);
    if (rc != 0) {
      fedc_http_respond_error(x, status_of(rc), "error", "%s", fedc_error_msg());
      return;
    }
    fedc_log_info("msg=\"job cancelled\" job=%ld by=%.16s", id, req->peer_fingerprint);
    static const char ok[] = "{\"cancelled\":true}";
    fedc_http_respond(x, 200, "application/json", ok, sizeof ok - 1, NULL);
    return;
  }
  if (id > 0 && get && strncmp(end, "/model/", 7) == 0) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    int32_t round = 0;
    char note[256], hdr[400];
    int rc = fedc__runner_export(a->base->store_path, (int32_t)id, end + 7, &bytes, &len, &round,
                                 note, sizeof note);
    if (rc != 0) {
      fedc_http_respond_error(x, status_of(rc), "error", "%s", fedc_error_msg());
      return;
    }
    snprintf(hdr, sizeof hdr, "X-Fedc-Round: %d\r\n%s%s%s", (int)round, note[0] ? "X-Fedc-Note: " : "",
             note, note[0] ? "\r\n" : "");
    fedc_http_respond(x, 200, "application/octet-stream", bytes, len, hdr);
    fedc_free(bytes);
    return;
  }
  fedc_http_respond_error(x, 404, "not_found", "no such admin path: %s", req->path);
}

int fedc__admin_start(uv_loop_t *loop, fedc_admin_ctx *ctx, fedc_http_server **out) {
  *out = NULL;
  const fedc_config *cfg = ctx->base;
  if (cfg->server_admin_listen[0] == '\0') return 0;
  fedc_http_server_opts o = {
      .listen = cfg->server_admin_listen, .tls = 1, .ca_path = cfg->tls_ca,
      .cert_path = cfg->tls_cert, .key_path = cfg->tls_key, .require_client_cert = 1,
      .max_body = ADMIN_MAX_BODY, .idle_timeout_s = cfg->server_idle_timeout_s,
      .max_connections = 64, .handler = handle, .ctx = ctx,
      .header_timeout_s = cfg->server_header_timeout_s,
      .request_timeout_s = cfg->server_request_timeout_s, .admit = admit};
  int rc = fedc_http_server_start(loop, &o, out);
  if (rc == 0)
    fedc_log_info("msg=\"admin endpoint listening\" address=%s port=%d", cfg->server_admin_listen,
                  fedc_http_server_port(*out));
  return rc;
}
