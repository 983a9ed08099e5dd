/*
 * job_site.c - what a site's policy sees of the job, and how a site
 * declines it (docs/protocol.md, docs/operations.md "Site policy").
 *
 * The job object of POST /v1/join carries, beside the model and the
 * training settings, the fields a site's [policy] decides on: "dataset"
 * (the named data set the job asks for, "" for the site's default) and
 * "privacy" (the DP noise multiplier and whether secure aggregation is on).
 * A site service joins with ?probe=1 (fedc__coord_join_is_probe): it is
 * not eligible until it asks for work, so a round never waits for a site
 * that reads the job only to decline it.
 * A site whose policy refuses the job answers POST /v1/decline with its
 * reason: the client is marked declined (never selected in this job), the
 * reason is logged, shown in /v1/status ("declined") and handed to the
 * program (on_declined: fedc-coordinator's job queue records it).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "coord_internal.h"

void fedc__coord_job_fields(const fedc_coord *c, cJSON *job) {
  cJSON_AddStringToObject(job, "dataset", c->cfg.data_set);
  cJSON *p = cJSON_AddObjectToObject(job, "privacy");
  if (p == NULL) return;
  cJSON_AddNumberToObject(p, "noise_multiplier", c->cfg.dp_noise_multiplier);
  cJSON_AddBoolToObject(p, "secure_aggregation", c->cfg.secagg != 0);
  fedc__coord_dp_site_fields(c, p);
}

/* The reason, made printable: at most 255 bytes, control characters and
 * quotes replaced (it goes into logs and JSON). */
static void clean_reason(const char *in, char out[256]) {
  size_t k = 0;
  for (; in && *in && k < 255; in++) {
    unsigned char ch = (unsigned char)*in;
    out[k++] = ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f ? '?' : (char)ch;
  }
  out[k] = '\0';
}

/*
 * POST /v1/decline {"reason": "..."}: the client (authorized by the caller)
 * will not take part in this job. Idempotent: a site that joins again after
 * a restart declines again, and the latest reason is kept.
 */
void fedc__coord_decline(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                         coord_client *cl) {
  cJSON *o = req->body_len > 0 && req->body_len < 4096
                 ? cJSON_ParseWithLength((const char *)req->body, req->body_len)
                 : NULL;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reason");
  if (!cJSON_IsString(r) || r->valuestring[0] == '\0') {
    cJSON_Delete(o);
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request",
                            "decline body must be {\"reason\": \"<why, at most 255 bytes>\"}");
    return;
  }
  clean_reason(r->valuestring, cl->decline_reason);
  cJSON_Delete(o);
  cl->declined = 1;
  fedc_log_warn("client=%d name=\"%s\" msg=\"declined the job\" job=%s reason=\"%s\"", (int)cl->id,
                cl->name, c->job_id, cl->decline_reason);
  if (c->params.on_declined)
    c->params.on_declined(c, cl->fingerprint, cl->name, cl->decline_reason,
                          c->params.user_data);
  static const char ok[] = "{\"declined\":true}";
  fedc_http_respond(x, 200, "application/json", ok, sizeof ok - 1, NULL);
}

int fedc__coord_join_is_probe(const char *query) {
  double v = 0;
  return query && fedc__coord_query_double(query, "probe", &v) == 1 && v != 0;
}

void fedc__coord_declines_status(const fedc_coord *c, cJSON *o) {
  cJSON *list = cJSON_AddArrayToObject(o, "declined");
  for (int32_t i = 0; list && i < c->n_clients; i++) {
    const coord_client *cl = &c->clients[i];
    if (!cl->declined) continue;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "id", cl->id);
    cJSON_AddStringToObject(e, "name", cl->name);
    cJSON_AddStringToObject(e, "reason", cl->decline_reason);
    cJSON_AddItemToArray(list, e);
  }
}
