/*
 * relay_link.c - a relay's link to its parent (relay.h): one thread, one
 * curl handle, mutual TLS with [relay] cert and key against [tls] ca. It
 * is an ordinary client of protocol v1 to the parent (join, long-poll the
 * task, download the model - as a delta from the one it holds when the
 * parent has one - post an update) whose update is the subtree's
 * partial sum (wire/partial.h). It opens the parent's round here, waits
 * until every site reported or the parent's deadline is near, and posts
 * the sum, retrying on network errors and 5xx. A relay killed in a round
 * is a client that did not report: started again, it joins again (same
 * certificate, same client), is handed the same round's task while the
 * parent still waits for it, and its sites, whose resends of the updates
 * they made are the same bytes, report again. A secure round (the task
 * says "secagg") is run by relay_secagg.c instead of close_round and
 * post_partial.
 */
#include "relay.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "ml/model_io.h"
#include "wire/client_json.h"
#include "wire/model_delta.h"
#include "wire/partial.h"

/* The share of the parent's deadline a round waits for its sites. */
#define RELAY_DEADLINE_SHARE 0.8

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  relay_buf *b = ud;
  size_t n = size * nmemb;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    uint8_t *p = fedc_realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, ptr, n);
  b->len += n;
  b->p[b->len] = 0;
  return n;
}

int fedc__relay_stopping(fedc_relay *r) {
  pthread_mutex_lock(&r->mu);
  int s = r->stop;
  pthread_mutex_unlock(&r->mu);
  return s;
}

static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* One request to the parent: the HTTP status (0 on a network error). */
long fedc__relay_call(fedc_relay *r, void *h, const char *method, const char *path,
                      const uint8_t *body, size_t len, double timeout_s, relay_buf *out) {
  char url[2048];
  snprintf(url, sizeof url, "%s%s", r->cfg->relay_parent, path);
  out->len = 0;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CAINFO, r->cfg->tls_ca);
  curl_easy_setopt(h, CURLOPT_SSLCERT, r->cfg->relay_cert);
  curl_easy_setopt(h, CURLOPT_SSLKEY, r->cfg->relay_key);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
  struct curl_slist *hdr = NULL;
  if (strcmp(method, "POST") == 0) {
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? (const char *)body : "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  }
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdr);
  return status;
}

/*
 * What the parent's job asks that a relay cannot do (docs/relays.md): no
 * compressed updates; under secure aggregation (*secure = 1) no noise at
 * the sites and no parent that is itself a relay of a secure job; a relay
 * configured with [privacy] secure_aggregation = true takes only a secure
 * job.
 */
static int refusal(const fedc_config *cfg, const cJSON *job, int *secure) {
  const cJSON *pv = cJSON_GetObjectItemCaseSensitive(job, "privacy");
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(pv, "noise_at");
  *secure = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pv, "secure_aggregation"));
  if (cJSON_GetObjectItemCaseSensitive(job, "compression") != NULL)
    return fedc_error_set(FEDC_EUNSUPPORTED, "relay: the parent's job asks for compressed "
                                             "updates ([strategy] compression), which a relay "
                                             "cannot forward exactly");
  if (*secure && cJSON_IsString(at) && strcmp(at->valuestring, "sites") == 0)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "relay: the parent's job adds DP noise at the sites ([privacy] "
                          "noise_at = sites) under secure aggregation; relays do not support it "
                          "(docs/relays.md)");
  if (*secure && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "relayed_secagg")))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "relay: the parent is itself a relay of a job with [privacy] "
                          "secure_aggregation = true; nested relays under secure aggregation "
                          "are not supported (docs/relays.md)");
  if (cfg->secagg && !*secure)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "relay: [privacy] secure_aggregation = true here, but the parent's job "
                          "does not use it: this relay forwards no plain sums");
  return 0;
}

/* The job object: kept printed; its model's spec and size for decoding. */
static int take_job(fedc_relay *r, const relay_buf *b) {
  fedc_client_job job;
  int rc = fedc_client_job_parse((const char *)b->p, b->len, &job);
  if (rc != 0) return rc;
  int t = fedc_model_type_parse(job.type);
  if (t < 0) return fedc_error_set(FEDC_EUNSUPPORTED, "relay: model type %s", job.type);
  cJSON *o = cJSON_ParseWithLength((const char *)b->p, b->len);
  cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "job");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "client_id");
  int secure = 0;
  rc = refusal(r->cfg, j, &secure);
  if (rc != 0) {
    cJSON_Delete(o);
    return rc;
  }
  /* a relay's sites under a secure job are told so: a relay among them
   * refuses the job (nested secure relays are not supported) */
  if (secure && !cJSON_AddTrueToObject(j, "relayed_secagg")) {
    cJSON_Delete(o);
    return fedc_error_set(FEDC_ENOMEM, "relay: out of memory");
  }
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  double idv = cJSON_IsNumber(id) ? id->valuedouble : -1;
  cJSON_Delete(o);
  if (secure && !(idv >= 0 && idv <= 4294967295.0)) {
    cJSON_free(s);
    return fedc_error_set(FEDC_EFORMAT, "relay: the join answer has no client_id");
  }
  if (s == NULL) return fedc_error_set(FEDC_EFORMAT, "relay: no job object");
  fedc_model_spec spec;
  memset(&spec, 0, sizeof spec);
  int multi = t == FEDC_MODEL_SOFTMAX || t == FEDC_MODEL_MLP;
  spec.type = (fedc_model_type)t;
  spec.n_in = job.inputs;
  spec.n_out = multi ? job.classes : 1;
  spec.n_hidden = job.n_hidden;
  memcpy(spec.hidden, job.hidden, sizeof spec.hidden);
  spec.l1 = job.l1;
  spec.l2 = job.l2;
  size_t n = fedc_model_n_params(&spec);
  fedc_strategy *sum = NULL;
  if (fedc_fedavg_new(n, &sum) != 0) {
    cJSON_free(s);
    return FEDC_ENOMEM;
  }
  pthread_mutex_lock(&r->mu);
  r->job_json = fedc_strdup(s);
  r->parent_id = secure ? (uint32_t)idv : 0;
  r->spec = spec;
  r->n_params = n;
  r->sum = sum;
  pthread_mutex_unlock(&r->mu);
  cJSON_free(s);
  fedc_log_info("msg=\"joined the parent\" model=%s params=%zu secure_aggregation=%s", job.type,
                n, secure ? "true" : "false");
  return r->job_json ? 0 : FEDC_ENOMEM;
}

/* b's body, when it is a delta from base (round base_round) to round,
 * rebuilt into the whole model (wire/model_delta.h). 0: b holds a whole
 * model; else the delta could not be used. */
static int undelta(relay_buf *b, const fedc_http_body *base, int32_t base_round, int32_t round) {
  if (!fedc_model_delta_is(b->p, b->len)) return 0;
  int32_t br = 0, rr = 0;
  int rc = base ? fedc_model_delta_rounds(b->p, b->len, &br, &rr)
                : fedc_error_set(FEDC_EFORMAT, "a delta sent for no base");
  if (rc == 0 && (br != base_round || rr != round))
    rc = fedc_error_set(FEDC_EFORMAT, "a delta from round %d to %d", (int)br, (int)rr);
  uint8_t *out = NULL;
  size_t len = 0;
  if (rc == 0)
    rc = fedc_model_delta_decode(b->p, b->len, fedc_http_body_data(base),
                                 fedc_http_body_len(base), fedc_http_body_sha256(base),
                                 SIZE_MAX / 2, &out, &len);
  if (rc != 0) return rc;
  fedc_free(b->p);
  b->p = out;
  b->len = len;
  b->cap = len + 1;
  return 0;
}

/* Download round's model and check it against the task's checksum. The
 * relay asks for it as a delta from the model it holds (the parent's
 * previous round, docs/protocol.md "Model deltas"), and for the whole
 * model when the delta cannot be used. */
static int fetch_model(fedc_relay *r, CURL *h, const fedc_client_task *t, relay_buf *b) {
  pthread_mutex_lock(&r->mu);
  fedc_http_body *base = r->model && r->round >= 1 && r->round < t->round
                             ? fedc_http_body_ref(r->model)
                             : NULL;
  int32_t base_round = r->round;
  pthread_mutex_unlock(&r->mu);
  char path[64];
  int rc = 0;
  for (int whole = base == NULL;; whole = 1) {
    if (whole)
      snprintf(path, sizeof path, "/v1/model/%d", (int)t->round);
    else
      snprintf(path, sizeof path, "/v1/model/%d?base=%d", (int)t->round, (int)base_round);
    if (fedc__relay_call(r, h, "GET", path, NULL, 0, 120, b) != 200) {
      rc = fedc_error_set(FEDC_EIO, "relay: model of round %d not served", (int)t->round);
      break;
    }
    rc = undelta(b, whole ? NULL : base, base_round, t->round);
    if (rc == 0 || whole || rc == FEDC_ENOMEM) break;
    fedc_log_warn("round=%d msg=\"relay: model delta refused, fetching the whole model\" "
                  "error=\"%s\"",
                  (int)t->round, fedc_error_msg());
  }
  fedc_http_body_unref(base);
  if (rc != 0) return rc;
  fedc_st_file *f = NULL;
  rc = fedc_st_decode(b->p, b->len, &f);
  if (rc != 0) return rc;
  const char *sha = fedc_st_meta_get(f, "sha256");
  rc = sha && strcmp(sha, t->model_sha256) == 0
           ? 0
           : fedc_error_set(FEDC_ECHECKSUM, "relay: model of round %d: checksum", (int)t->round);
  fedc_st_free(f);
  return rc;
}

/* Open the round here with the parent's model bytes (taken from b). */
static void open_round(fedc_relay *r, const fedc_client_task *t, relay_buf *b) {
  float *g = fedc_malloc_array(r->n_params, sizeof *g);
  if (g != NULL && fedc_model_decode(&r->spec, b->p, b->len, g, NULL) != 0) {
    fedc_free(g);
    g = NULL;
  }
  /* hashed here, on the link's thread, not on the loop that serves it */
  fedc_http_body *body = NULL;
  size_t len = b->len;
  if (fedc_http_body_new(b->p, b->len, &body) != 0)
    fedc_log_warn("msg=\"relay: cannot keep the model\" err=\"%s\"", fedc_error_msg());
  b->p = NULL;
  b->len = b->cap = 0;
  pthread_mutex_lock(&r->mu);
  fedc_free(r->global);
  r->global = g;
  fedc_http_body_unref(r->model);
  r->model = body;
  r->model_len = body ? len : 0;
  snprintf(r->model_sha, sizeof r->model_sha, "%s", t->model_sha256);
  r->round = t->round;
  r->secure = t->secagg;
  /* a secure round's sites advertise by the time the relay freezes its
   * parties (relay_secagg.c); a plain one's post by 80% of the parent's */
  r->deadline = fedc__relay_now() +
                (t->secagg ? FEDC_RELAY_SA_FREEZE : RELAY_DEADLINE_SHARE) * t->deadline_s;
  memset(r->reported, 0, (size_t)r->n_sites);
  r->n_reported = 0;
  r->updates = 0;
  r->loss_sum = 0;
  r->sum->ops->begin(r->sum, NULL, r->n_params);
  fedc__relay_sa_close(r);
  if (t->secagg && fedc__relay_sa_open(r) != 0)
    fedc_log_error("round=%d msg=\"relay: cannot start the sites' secure session\" err=\"%s\"",
                   (int)t->round, fedc_error_msg());
  r->open = 1;
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
  fedc_log_info("round=%d msg=\"round opened\" deadline_s=%.1f", (int)t->round,
                (t->secagg ? FEDC_RELAY_SA_FREEZE : RELAY_DEADLINE_SHARE) * t->deadline_s);
}

static int all_reported(const fedc_relay *r) {
  return r->n_reported >= r->cfg->relay_sites;
}

/* Wait for every site (or the deadline), close, and encode the sum; 1 with
 * *body set when there is something to post. */
static int close_round(fedc_relay *r, uint8_t **body, size_t *len) {
  pthread_mutex_lock(&r->mu);
  fedc__relay_wait_until(r, r->deadline, all_reported);
  r->open = 0;
  int have = r->n_reported > 0 && !r->stop;
  if (have) {
    __int128 *acc;
    uint64_t *total;
    fedc_fedavg_state(r->sum, &acc, &total);
    fedc_partial p = {.round = r->round,
                      .updates = r->updates,
                      .total = *total,
                      .train_loss = r->loss_sum / (double)*total,
                      .n = r->n_params};
    have = fedc_partial_encode(&p, acc, body, len) == 0;
  }
  int32_t round = r->round, rep = r->n_reported;
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
  fedc_log_info("round=%d msg=\"round closed\" reported=%d/%d", (int)round, (int)rep,
                (int)r->cfg->relay_sites);
  return have;
}

/* Post the partial until the parent answers other than 5xx or a network error. */
static void post_partial(fedc_relay *r, CURL *h, const uint8_t *body, size_t len, relay_buf *b) {
  for (int tries = 0; tries < 60 && !fedc__relay_stopping(r); tries++) {
    long st = fedc__relay_call(r, h, "POST", "/v1/update", body, len, 120, b);
    if (st == 200) {
      pthread_mutex_lock(&r->mu);
      r->bytes_up += len;
      pthread_mutex_unlock(&r->mu);
      fedc_log_info("msg=\"partial sum posted\" bytes=%zu", len);
      return;
    }
    if (st >= 400 && st < 500) {
      fedc_log_warn("msg=\"partial sum refused\" status=%ld body=%.*s", st, (int)b->len,
                    b->p ? (const char *)b->p : "");
      return;
    }
    nap(0.5);
  }
}

void *fedc__relay_link_main(void *arg) {
  fedc_relay *r = arg;
  CURL *h = curl_easy_init();
  relay_buf b = {0};
  void *res = NULL;
  if (h == NULL) return r;
  char jbody[256];
  snprintf(jbody, sizeof jbody, "{\"name\":\"relay\"}");
  while (!fedc__relay_stopping(r)) { /* join */
    long st = fedc__relay_call(r, h, "POST", "/v1/join", (const uint8_t *)jbody, strlen(jbody), 30, &b);
    if (st == 200) {
      if (take_job(r, &b) == 0) break;
      fedc_log_error("msg=\"cannot relay this job\" reason=\"%s\"", fedc_error_msg());
      res = r;
      goto out;
    }
    if (st == 403) {
      fedc_log_error("msg=\"the parent refuses this relay's certificate\"");
      res = r;
      goto out;
    }
    nap(0.5);
  }
  while (!fedc__relay_stopping(r)) {
    long st = fedc__relay_call(r, h, "GET", "/v1/task?wait=5", NULL, 0, 30, &b);
    fedc_client_task t;
    if (st != 200 || fedc_client_task_parse((const char *)b.p, b.len, &t) != 0) {
      nap(0.5);
      continue;
    }
    if (t.action == FEDC_CLIENT_TASK_FINISHED) {
      pthread_mutex_lock(&r->mu);
      r->finished = 1;
      r->round = t.round;
      pthread_mutex_unlock(&r->mu);
      fedc__relay_wake(r);
      fedc_log_info("msg=\"the parent finished\" round=%d", (int)t.round);
      /* the sites hear it at their next poll */
      for (int i = 0; i < 30 && !fedc__relay_stopping(r); i++)
        nap(0.1);
      break;
    }
    if (t.action == FEDC_CLIENT_TASK_WAIT) {
      nap(t.retry_after_s > 0 && t.retry_after_s < 1 ? t.retry_after_s : 0.2);
      continue;
    }
    if (fetch_model(r, h, &t, &b) != 0) {
      fedc_log_warn("msg=\"model download failed\" reason=\"%s\"", fedc_error_msg());
      nap(0.5);
      continue;
    }
    open_round(r, &t, &b);
    if (t.secagg) { /* relay_secagg.c */
      fedc__relay_secure_round(r, h, t.round, t.deadline_s, &b);
      continue;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (close_round(r, &body, &len)) post_partial(r, h, body, len, &b);
    fedc_free(body);
  }
out:
  pthread_mutex_lock(&r->mu);
  fedc__relay_sa_close(r);
  r->stop = 1;
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
  fedc_free(b.p);
  curl_easy_cleanup(h);
  return res;
}
