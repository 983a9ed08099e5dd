/*
 * report.c - POST /v1/report (docs/protocol.md): a client says that its
 * trainer failed the open round ({"round": r, "status": "trainer_failed",
 * "reason": "..."}); nothing else is sent for that round. The coordinator
 * logs it, keeps the count and the last reason for /v1/status and
 * /metrics, gives that client no task for the rest of the round (this
 * opening of it: a round abandoned below quorum opens again and asks
 * every selected client anew), and
 * stops waiting for it: a round whose selected clients have all sent an
 * update or reported a failure closes at once and commits with the
 * updates it has (when they reach the quorum). The report carries no
 * model and changes no aggregate.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "base/log.h"
#include "coord_internal.h"
#include "round/engine.h"

#define REPORT_MAX 4096 /* a larger body is refused */

int fedc__coord_report_failed(const fedc_coord *c, int32_t client_id) {
  if (c->state != ROUND_OPEN) return 0;
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].id == client_id)
      return c->clients[i].failed_round == c->round &&
             c->clients[i].failed_opened_at == c->round_opened_at;
  return 0;
}

int fedc__coord_report_all_done(fedc_coord *c) {
  int32_t failed = 0, reported = 0, n = 0;
  pthread_mutex_lock(&c->mu);
  n = fedc_engine_n_selected(c->engine);
  const int32_t *sel = fedc_engine_selected(c->engine);
  for (int32_t i = 0; i < n; i++) {
    if (fedc_engine_has_reported(c->engine, c->round, sel[i])) reported++;
    else if (fedc__coord_report_failed(c, sel[i])) failed++;
  }
  pthread_mutex_unlock(&c->mu);
  return failed > 0 && reported + failed >= n;
}

uint64_t fedc__coord_report_total(const fedc_coord *c) {
  uint64_t t = 0;
  for (int32_t i = 0; i < c->n_clients; i++) t += (uint64_t)c->clients[i].trainer_failures;
  return t;
}

/* The reason kept and logged: printable ASCII, cut to fit. */
static void clean_reason(const char *s, char *out, size_t cap) {
  size_t k = 0;
  for (; s && *s && k + 1 < cap; s++) out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  out[k] = '\0';
}

void fedc__coord_handle_report(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                               const uint8_t *body, size_t len) {
  if (len > REPORT_MAX) {
    fedc_http_respond_error(x, 413, "too_large", "a report is at most %d bytes", REPORT_MAX);
    return;
  }
  cJSON *o = cJSON_ParseWithLength((const char *)body, len);
  const cJSON *r = o ? cJSON_GetObjectItemCaseSensitive(o, "round") : NULL;
  const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "status") : NULL;
  const cJSON *why = o ? cJSON_GetObjectItemCaseSensitive(o, "reason") : NULL;
  if (!cJSON_IsNumber(r) || !cJSON_IsString(st) || (why && !cJSON_IsString(why)) ||
      strcmp(st->valuestring, "trainer_failed") != 0) {
    cJSON_Delete(o);
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request",
                            "a report is {\"round\": r, \"status\": \"trainer_failed\", "
                            "\"reason\": \"...\"}");
    return;
  }
  int32_t round = (int32_t)r->valuedouble;
  char reason[sizeof cl->failure];
  clean_reason(why ? why->valuestring : "", reason, sizeof reason);
  cJSON_Delete(o);
  if (c->state != ROUND_OPEN || round != c->round) {
    fedc_http_respond_error(x, 409, "stale_round", "round %d is not the open round (%d)",
                            (int)round, (int)c->round);
    return;
  }
  if (!fedc__coord_is_selected(c, cl->id)) {
    fedc_http_respond_error(x, 403, "not_selected", "not selected for round %d", (int)round);
    return;
  }
  cl->failed_round = round;
  cl->failed_opened_at = c->round_opened_at;
  cl->trainer_failures++;
  memcpy(cl->failure, reason, sizeof cl->failure);
  fedc_log_warn("round=%d msg=\"a client's trainer failed; not waiting for it\" client=%d "
                "reason=\"%s\"",
                (int)round, (int)cl->id, reason);
  const char *ok = "{\"recorded\":true}";
  fedc_http_respond(x, 200, "application/json", ok, strlen(ok), NULL);
  fedc__coord_step(c);
}
