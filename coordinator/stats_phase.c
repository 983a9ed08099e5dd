/*
 * stats_phase.c - the coordinator's side of a job with a schema ([data]
 * features or schema_from): the statistics phase before round 1 and the
 * warnings sites report.
 *
 * Before the first round every joined site is asked for its statistics
 * (task "stats"); it answers POST /v1/stats with per-input counts, fixed-point
 * sums and sums of squares, minima, maxima, missing counts and label counts,
 * never a row. The phase closes when clients_per_round sites have answered,
 * or at round_timeout_s after the first answer with at least min_clients.
 * The sum of the sites' statistics (exact integers, so in any order) is
 * committed to the store with the job, put into the job object ("stats",
 * beside "schema") that /v1/join returns and external trainers receive, and
 * used to standardize the coordinator's test set. After a restart it is read
 * back, and no site is asked again.
 *
 * Under secure aggregation the sites' statistics are never seen one by
 * one: a secure-aggregation session of their own (secagg_pending below,
 * secagg_rounds.c) sums them as 16-bit limb words, and the unmasked sum is
 * committed as above, with minima and maxima unknown.
 *
 * Warnings: a site far from the federation (an input's site mean more than
 * FAR_Z federation standard deviations away) is counted when the phase
 * closes (under secure aggregation the site finds it and reports it with
 * POST /v1/warn {"kind": "far"}); a site whose local training diverged withholds its update and
 * says so with POST /v1/warn {"kind": "diverged", "round": r}. Both are
 * counted for /metrics and listed in /v1/status.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "coord_internal.h"
#include "data/schema.h"
#include "round/engine.h"
#include "stats_phase.h"

#define FAR_Z 3.0
#define MAX_WARNINGS 32

struct coord_stats {
  fedc_schema schema;
  char *schema_json, *stats_json;
  int done;
  fedc_stats acc;
  int32_t n_sites;
  int32_t *ids;
  fedc_stats *sites; /* each site's, for the distance check */
  double first_at;
  double *mean, *std;
  /* secure aggregation (secagg_pending): a session open, the
   * gathering start, the survivors and dropouts of the summed session, and
   * 1 once acc holds the unmasked sum (finish may be retried) */
  int sa_open, sa_summed;
  double sa_gather_since, sa_reopen_at;
  int32_t sa_survivors, sa_dropped;
  uint64_t far_sites, diverged;
  struct {
    int32_t client, round;
    char kind[16], detail[320];
  } warn[MAX_WARNINGS];
  int32_t n_warn;
};

static int32_t job_classes(const fedc_coord *c) {
  return c->cfg.model_type == FEDC_MODEL_LOGREG   ? 2
         : c->cfg.model_type == FEDC_MODEL_LINREG ? 0
                                                  : c->cfg.classes;
}

int fedc__coord_stats_init(fedc_coord *c) {
  const fedc_config *cfg = &c->cfg;
  if (cfg->features[0] == '\0' && cfg->schema_from[0] == '\0') return 0;
  struct coord_stats *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  int rc = fedc_schema_make(cfg->features, cfg->schema_from, cfg->label, cfg->exclude,
                            cfg->categorical, (fedc_missing)cfg->missing, &s->schema);
  if (rc == 0 && cfg->inputs != 0 && cfg->inputs != s->schema.d)
    rc = fedc_error_set(FEDC_ECONFIG,
                        "%s: [model] inputs = %d, but the schema (%s) has %d inputs; leave "
                        "inputs unset",
                        fedc_config_origin(cfg, "model", "inputs"), (int)cfg->inputs,
                        fedc_config_origin(cfg, "data", cfg->features[0] ? "features" : "schema_from"),
                        (int)s->schema.d);
  if (rc == 0 && cfg->data_clip[0]) rc = fedc_schema_set_clip(&s->schema, cfg->data_clip);
  if (rc == 0 && cfg->class_labels[0]) {
    rc = fedc_schema_set_class_labels(&s->schema, cfg->class_labels);
    if (rc == 0 && s->schema.n_label_vocab != job_classes(c))
      rc = fedc_error_set(FEDC_ECONFIG, "%s: [data] class_labels names %d classes; [model] type "
                          "= %s has %d (set at %s)", fedc_config_origin(cfg, "data", "class_labels"),
                          (int)s->schema.n_label_vocab, fedc_model_type_name(cfg->model_type),
                          (int)job_classes(c), fedc_config_origin(cfg, "model", "classes"));
  }
  if (rc == 0 && cfg->dp_noise_multiplier > 0) {
    /* the statistics under DP (stats_dp.c): every input bounded */
    s->schema.noise_multiplier = cfg->dp_noise_multiplier;
    if (fedc_schema_require_clip(&s->schema) != 0) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_ECONFIG, "%s: %s ([privacy] noise_multiplier > 0 at %s)",
                          fedc_config_origin(cfg, "data", "clip"), msg,
                          fedc_config_origin(cfg, "privacy", "noise_multiplier"));
    }
  }
  if (rc == 0 && (s->schema_json = fedc_schema_to_json(&s->schema)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  if (rc == 0 && (s->mean = fedc_malloc_array((size_t)s->schema.d * 2, sizeof(double))) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  if (rc == 0) rc = fedc_stats_init(&s->acc, s->schema.d, job_classes(c));
  if (rc != 0) {
    fedc_free(s->schema_json);
    fedc_free(s->mean);
    fedc_free(s);
    return rc;
  }
  s->std = s->mean + s->schema.d;
  c->cfg.inputs = s->schema.d;
  c->stats = s;
  return 0;
}

void fedc__coord_stats_free(fedc_coord *c) {
  struct coord_stats *s = c->stats;
  if (s == NULL) return;
  for (int32_t i = 0; i < s->n_sites; i++) fedc_stats_free(&s->sites[i]);
  fedc_free(s->sites);
  fedc_free(s->ids);
  fedc_stats_free(&s->acc);
  fedc_free(s->schema_json);
  fedc_free(s->stats_json);
  fedc_free(s->mean);
  fedc_free(s);
  c->stats = NULL;
}

int fedc__coord_stats_load_test(fedc_coord *c, fedc_dataset *out) {
  return fedc_load_csv_schema(c->cfg.test, &c->stats->schema, 1, out);
}

/* The job object with "schema" and, once known, "stats" set. */
static int rebuild_job_json(fedc_coord *c) {
  struct coord_stats *s = c->stats;
  cJSON *job = cJSON_Parse(c->job_json);
  cJSON *sch = cJSON_Parse(s->schema_json);
  cJSON *st = s->stats_json ? cJSON_Parse(s->stats_json) : NULL;
  int ok = job && sch && (st || !s->stats_json);
  if (ok) {
    cJSON_DeleteItemFromObjectCaseSensitive(job, "schema");
    cJSON_DeleteItemFromObjectCaseSensitive(job, "stats");
    cJSON_AddItemToObject(job, "schema", sch);
    sch = NULL;
    if (st) cJSON_AddItemToObject(job, "stats", st);
    st = NULL;
  }
  char *t = ok ? cJSON_PrintUnformatted(job) : NULL;
  cJSON_Delete(job);
  cJSON_Delete(sch);
  cJSON_Delete(st);
  char *copy = t ? fedc_strdup(t) : NULL;
  cJSON_free(t);
  if (copy == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  fedc_free(c->job_json);
  c->job_json = copy;
  return 0;
}

/* The federation's statistics are known: moments, the test set, the job. */
static int adopt(fedc_coord *c) {
  struct coord_stats *s = c->stats;
  fedc_stats_moments(&s->acc, s->mean, s->std);
  if (c->has_test) {
    int rc = fedc_dataset_standardize_with(&c->test, s->mean, s->std, s->schema.d);
    if (rc != 0) return rc;
  }
  s->done = 1;
  return rebuild_job_json(c);
}

int fedc__coord_stats_start(fedc_coord *c) {
  struct coord_stats *s = c->stats;
  if (s == NULL) return 0;
  char *text = NULL;
  int rc = fedc_store_get_text(c->store, "stats", &text);
  if (rc == 0 && text != NULL) {
    fedc_stats st;
    rc = fedc_stats_from_json(text, &st);
    if (rc == 0 && (st.d != s->acc.d || st.n_classes != s->acc.n_classes))
      rc = fedc_error_set(FEDC_ECONFIG, "store %s: its statistics have %d inputs and %d classes, "
                          "the job %d and %d", c->cfg.store_path, (int)st.d, (int)st.n_classes,
                          (int)s->acc.d, (int)s->acc.n_classes);
    if (rc == 0) {
      fedc_stats_free(&s->acc);
      s->acc = st;
      s->stats_json = text;
      text = NULL;
      rc = adopt(c);
      /* the statistics' share of the privacy budget was spent before the
       * restart too */
      if (rc == 0 && s->schema.noise_multiplier > 0)
        rc = fedc__engine_account_release(c->engine, s->schema.noise_multiplier);
      if (rc == 0)
        fedc_log_info("msg=\"federation statistics restored\" rows=%lld inputs=%d",
                      (long long)s->acc.rows, (int)s->acc.d);
    } else if (st.d) {
      fedc_stats_free(&st);
    }
  } else if (rc == 0) {
    rc = rebuild_job_json(c);
  }
  fedc_free(text);
  return rc;
}

int fedc__coord_stats_wants(const fedc_coord *c, int32_t client_id) {
  const struct coord_stats *s = c->stats;
  if (s == NULL || s->done) return 0;
  if (c->secagg) return !s->sa_summed && fedc__coord_secagg_stats_wants(c, client_id);
  for (int32_t i = 0; i < s->n_sites; i++)
    if (s->ids[i] == client_id) return 0;
  return 1;
}

/* Close the phase: commit, adopt, count the far sites. */
static void finish(fedc_coord *c) {
  struct coord_stats *s = c->stats;
  s->acc.noise_multiplier = s->schema.noise_multiplier;
  char *text = fedc_stats_to_json(&s->acc);
  int rc = text ? fedc_store_put_text(c->store, "stats", text)
                : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc != 0) {
    fedc_log_warn("msg=\"cannot commit the federation's statistics; trying again\" err=\"%s\"",
                  fedc_error_msg());
    fedc_free(text);
    return;
  }
  s->stats_json = text;
  /* the statistics' share of the privacy budget, in the ledger before any
   * round (the Gaussian mechanism at z, stats_dp.c) */
  if (s->schema.noise_multiplier > 0 &&
      fedc__engine_account_release(c->engine, s->schema.noise_multiplier) != 0)
    fedc_log_warn("msg=\"cannot record the statistics in the privacy ledger\" err=\"%s\"",
                  fedc_error_msg());
  if (adopt(c) != 0) {
    fedc_log_warn("msg=\"cannot adopt the federation's statistics\" err=\"%s\"", fedc_error_msg());
    return;
  }
  fedc_log_info("msg=\"federation statistics committed\" sites=%d rows=%lld inputs=%d%s",
                (int)(s->sa_summed ? s->sa_survivors : s->n_sites), (long long)s->acc.rows,
                (int)s->acc.d, s->sa_summed ? " secure_aggregation=true" : "");
  /* under secure aggregation no site's statistics are here: each site
   * compares itself with the federation (docs/data.md) */
  for (int32_t i = 0; i < s->n_sites; i++) {
    double z;
    int32_t j;
    fedc_stats_distance(&s->sites[i], &s->acc, &z, &j);
    if (z > FAR_Z) {
      char name[FEDC_SCHEMA_NAME * 2], detail[320];
      fedc_schema_input_name(&s->schema, j, name, sizeof name);
      snprintf(detail, sizeof detail, "input '%s': site mean %.1f federation std from the "
               "federation's", name, z);
      fedc__coord_stats_warn(c, s->ids[i], 0, "far", detail);
    }
  }
}

/*
 * Secure aggregation: the sites' statistics are summed in a session of
 * their own (secagg_rounds.c), never seen one by one. The session opens
 * with the sites that are there, as a round's selection gathers: when
 * clients_per_round have joined and poll, or min_clients for a short
 * gathering time; its parties get the "stats" task. When it is done the
 * sum of the words is unmasked and read back as statistics (stats_words.c);
 * minima and maxima are not summed: they stay unknown, or are the declared
 * clip bounds under DP (the public bounds a DP site reports too). A session
 * that fails (too few parties left) is dropped and a new one opens after a
 * pause. Returns 1 when acc holds the federation's sum.
 */
static int secagg_pending(fedc_coord *c, double now) {
  struct coord_stats *s = c->stats;
  if (s->sa_summed) return 1;
  size_t words = fedc_stats_n_words(s->acc.d, s->acc.n_classes);
  if (!s->sa_open) {
    if (now < s->sa_reopen_at) return 0;
    int32_t *ids = fedc_malloc_array((size_t)c->n_clients + 1, sizeof *ids);
    if (ids == NULL) return 0;
    int32_t n = 0;
    double span = c->cfg.server_poll_s + 5.0;
    for (int32_t i = 0; i < c->n_clients && n < c->cfg.clients_per_round; i++) {
      const coord_client *cl = &c->clients[i];
      if (cl->revoked || !cl->joined || cl->declined) continue;
      if (cl->poll || now - cl->last_seen <= span) ids[n++] = cl->id;
    }
    if (n < c->cfg.min_clients || n < 2) s->sa_gather_since = 0;
    else if (s->sa_gather_since == 0) s->sa_gather_since = now;
    int go = n >= 2 && (n >= c->cfg.clients_per_round ||
                        (s->sa_gather_since > 0 &&
                         now - s->sa_gather_since >= fmin(2.0, c->cfg.round_timeout_s / 4.0)));
    if (go && fedc__coord_secagg_stats_open(c, ids, n, words) != 0) {
      fedc_log_warn("msg=\"cannot open the statistics session\" err=\"%s\"", fedc_error_msg());
      go = 0;
      s->sa_reopen_at = now + 1.0;
    }
    fedc_free(ids);
    if (!go) return 0;
    s->sa_open = 1;
    s->sa_gather_since = 0;
    fedc_log_info("msg=\"statistics session opened (secure aggregation)\" sites=%d words=%zu",
                  (int)n, words);
    for (int32_t i = 0; i < c->n_clients; i++)
      if (c->clients[i].poll && fedc__coord_stats_wants(c, c->clients[i].id))
        fedc__coord_answer_poll(c, &c->clients[i]);
    return 0;
  }
  int st = fedc__coord_secagg_stats_step(c, now);
  if (st == 0) return 0;
  uint32_t *sum = st > 0 ? fedc_malloc_array(words, sizeof *sum) : NULL;
  fedc_stats got = {0};
  int rc = st < 0 ? FEDC_EQUORUM
           : sum == NULL
               ? fedc_error_set(FEDC_ENOMEM, "out of memory")
               : fedc__coord_secagg_stats_sum(c, sum, words, &s->sa_survivors, &s->sa_dropped);
  if (rc == 0)
    rc = s->schema.noise_multiplier > 0
             ? fedc_stats_from_words_noised(sum, s->acc.d, s->acc.n_classes, &got)
             : fedc_stats_from_words(sum, s->acc.d, s->acc.n_classes, &got);
  fedc_free(sum);
  if (rc == 0 && got.rows < 1 && s->schema.noise_multiplier == 0)
    rc = fedc_error_set(FEDC_EFORMAT, "the summed statistics have no rows");
  if (rc != 0 && got.d) fedc_stats_free(&got);
  if (rc != 0) {
    fedc_log_warn("msg=\"statistics session failed; opening another\" err=\"%s\"",
                  st < 0 ? "too few sites left in the secure aggregation session" : fedc_error_msg());
    fedc__coord_secagg_stats_end(c);
    s->sa_open = 0;
    s->sa_reopen_at = now + fmin(2.0, c->cfg.round_timeout_s / 4.0);
    return 0;
  }
  for (int32_t j = 0; j < got.d; j++) {
    double lo, hi;
    fedc_schema_input_bounds(&s->schema, j, &lo, &hi);
    if (s->schema.noise_multiplier > 0 && got.count[j] > 0) {
      got.min[j] = lo;
      got.max[j] = hi;
    }
  }
  fedc_stats_free(&s->acc);
  s->acc = got;
  s->sa_summed = 1;
  fedc_log_info("msg=\"statistics summed under secure aggregation\" sites=%d dropped=%d "
                "rows=%lld", (int)s->sa_survivors, (int)s->sa_dropped, (long long)got.rows);
  fedc__coord_secagg_stats_end(c);
  s->sa_open = 0;
  return 1;
}

int fedc__coord_stats_pending(fedc_coord *c, double now) {
  struct coord_stats *s = c->stats;
  if (s == NULL || s->done) return 0;
  if (c->secagg) {
    if (secagg_pending(c, now)) finish(c);
    return !s->done;
  }
  if (s->n_sites >= c->cfg.clients_per_round ||
      (s->n_sites >= c->cfg.min_clients && s->first_at > 0 &&
       now - s->first_at >= c->cfg.round_timeout_s))
    finish(c);
  return !s->done;
}

void fedc__coord_stats_warn(fedc_coord *c, int32_t client, int32_t round, const char *kind,
                            const char *detail) {
  struct coord_stats *s = c->stats;
  if (s == NULL) return;
  if (strcmp(kind, "far") == 0) s->far_sites++;
  else s->diverged++;
  fedc_log_warn("client=%d round=%d warning=%s msg=\"%s\"", (int)client, (int)round, kind, detail);
  int32_t k = s->n_warn < MAX_WARNINGS ? s->n_warn++ : (MAX_WARNINGS - 1);
  s->warn[k].client = client;
  s->warn[k].round = round;
  snprintf(s->warn[k].kind, sizeof s->warn[k].kind, "%s", kind);
  snprintf(s->warn[k].detail, sizeof s->warn[k].detail, "%s", detail);
}

static int add_site(struct coord_stats *s, int32_t id, fedc_stats *st) {
  fedc_stats *sites = fedc_realloc(s->sites, (size_t)(s->n_sites + 1) * sizeof *sites);
  if (sites == NULL) return FEDC_ENOMEM;
  s->sites = sites;
  int32_t *ids = fedc_realloc(s->ids, (size_t)(s->n_sites + 1) * sizeof *ids);
  if (ids == NULL) return FEDC_ENOMEM;
  s->ids = ids;
  int rc = fedc_stats_add(&s->acc, st);
  if (rc != 0) return rc;
  s->sites[s->n_sites] = *st;
  s->ids[s->n_sites++] = id;
  return 0;
}

static void reply_ok(fedc_http_exchange *x, int duplicate) {
  char body[64];
  int n = snprintf(body, sizeof body, "{\"accepted\":true,\"duplicate\":%s}",
                   duplicate ? "true" : "false");
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

static char *body_text(const fedc_http_request *req) {
  char *t = fedc_malloc(req->body_len + 1);
  if (t) {
    memcpy(t, req->body, req->body_len);
    t[req->body_len] = '\0';
  }
  return t;
}

void fedc__coord_stats_handle(fedc_coord *c, fedc_http_exchange *x,
                              const fedc_http_request *req, coord_client *cl) {
  struct coord_stats *s = c->stats;
  int is_warn = strcmp(req->path, "/v1/warn") == 0;
  if (s == NULL) {
    fedc_http_respond_error(x, 404, "not_found", "this job has no schema: no %s", req->path);
    return;
  }
  if (!is_warn && c->secagg) { /* the masked words of the statistics session */
    fedc__coord_secagg_stats_masked(c, x, cl, req->body, req->body_len);
    return;
  }
  char *text = body_text(req);
  if (text == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  if (is_warn) {
    cJSON *o = cJSON_Parse(text);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "round");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "detail");
    /* "far": a site's own comparison with the federation's statistics,
     * under secure aggregation (the coordinator has no site's to compare) */
    int far = cJSON_IsString(k) && strcmp(k->valuestring, "far") == 0;
    if (!cJSON_IsString(k) || (strcmp(k->valuestring, "diverged") != 0 && !far) ||
        !cJSON_IsNumber(r)) {
      fedc__coord_reject(c, REJECT_bad_request);
      fedc_http_respond_error(x, 400, "bad_request", "a warning is {\"kind\": \"diverged\" or "
                              "\"far\", \"round\": r, \"detail\": text}");
    } else {
      char detail[128];
      snprintf(detail, sizeof detail, "%s",
               cJSON_IsString(d) ? d->valuestring
               : far             ? "this site's data is far from the federation's"
                                 : "training loss diverged; update withheld");
      for (char *p = detail; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = ' ';
      fedc__coord_stats_warn(c, cl->id, (int32_t)r->valuedouble, far ? "far" : "diverged",
                             detail);
      reply_ok(x, 0);
    }
    cJSON_Delete(o);
    fedc_free(text);
    return;
  }
  if (!fedc__coord_stats_wants(c, cl->id)) {
    fedc_free(text);
    if (s->done)
      fedc_http_respond_error(x, 409, "stale_round", "the statistics phase is over");
    else
      reply_ok(x, 1);
    return;
  }
  fedc_stats st;
  int rc = fedc_stats_from_json(text, &st);
  fedc_free(text);
  if (rc == 0 && (st.d != s->acc.d || st.n_classes != s->acc.n_classes)) {
    rc = fedc_error_set(FEDC_EFORMAT, "statistics of %d inputs and %d classes; the job has %d "
                        "and %d", (int)st.d, (int)st.n_classes, (int)s->acc.d,
                        (int)s->acc.n_classes);
    fedc_stats_free(&st);
  }
  if (rc == 0 && st.noise_multiplier < s->schema.noise_multiplier) {
    rc = fedc_error_set(FEDC_EFORMAT, "statistics with noise multiplier %g; the job's are "
                        "released under differential privacy with %g", st.noise_multiplier,
                        s->schema.noise_multiplier);
    fedc_stats_free(&st);
  }
  if (rc == 0 && st.rows < 1 && s->schema.noise_multiplier == 0) {
    rc = fedc_error_set(FEDC_EFORMAT, "statistics of no rows");
    fedc_stats_free(&st);
  }
  if (rc != 0) {
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request", "%s", fedc_error_msg());
    return;
  }
  rc = add_site(s, cl->id, &st);
  if (rc != 0) {
    fedc_stats_free(&st);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  if (s->first_at == 0) s->first_at = fedc__coord_now();
  fedc_log_info("client=%d msg=\"statistics in\" rows=%lld sites=%d", (int)cl->id,
                (long long)st.rows, (int)s->n_sites);
  reply_ok(x, 0);
  fedc__coord_step(c);
}

int fedc_coordinator_label_counts(const fedc_coordinator *c, int64_t *counts, int32_t cap) {
  if (c == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_coordinator_label_counts: NULL");
  const struct coord_stats *s = c->stats;
  if (s == NULL || !s->done) return 0;
  for (int32_t k = 0; counts && k < s->acc.n_classes && k < cap; k++)
    counts[k] = s->acc.label_count[k];
  return s->acc.n_classes;
}

const double *fedc__coord_stats_moments(const fedc_coord *c, const double **std) {
  const struct coord_stats *s = c->stats;
  if (s == NULL || !s->done) return NULL;
  *std = s->std;
  return s->mean;
}

const fedc_schema *fedc__coord_stats_schema(const fedc_coord *c) {
  return c->stats ? &c->stats->schema : NULL;
}

void fedc__coord_stats_metrics(const fedc_coord *c, uint64_t *far, uint64_t *diverged) {
  *far = c->stats ? c->stats->far_sites : 0;
  *diverged = c->stats ? c->stats->diverged : 0;
}

void fedc__coord_stats_status(const fedc_coord *c, struct cJSON *root) {
  const struct coord_stats *s = c->stats;
  if (s == NULL) return;
  cJSON *o = cJSON_AddObjectToObject(root, "statistics");
  if (o == NULL) return;
  cJSON_AddStringToObject(o, "phase", s->done ? "done" : "collecting");
  cJSON_AddNumberToObject(o, "sites", s->sa_summed ? s->sa_survivors : s->n_sites);
  if (c->secagg) {
    cJSON_AddBoolToObject(o, "secure_aggregation", 1);
    if (s->sa_summed) cJSON_AddNumberToObject(o, "dropped", s->sa_dropped);
  }
  cJSON_AddNumberToObject(o, "rows", (double)s->acc.rows);
  cJSON *lc = cJSON_AddArrayToObject(o, "label_counts");
  for (int32_t k = 0; lc && s->done && k < s->acc.n_classes; k++)
    cJSON_AddItemToArray(lc, cJSON_CreateNumber((double)s->acc.label_count[k]));
  cJSON *w = cJSON_AddObjectToObject(root, "warnings");
  if (w == NULL) return;
  cJSON_AddNumberToObject(w, "far_sites", (double)s->far_sites);
  cJSON_AddNumberToObject(w, "diverged", (double)s->diverged);
  cJSON *list = cJSON_AddArrayToObject(w, "recent");
  for (int32_t i = 0; list && i < s->n_warn; i++) {
    cJSON *e = cJSON_CreateObject();
    if (e == NULL) break;
    cJSON_AddNumberToObject(e, "client", s->warn[i].client);
    cJSON_AddNumberToObject(e, "round", s->warn[i].round);
    cJSON_AddStringToObject(e, "kind", s->warn[i].kind);
    cJSON_AddStringToObject(e, "detail", s->warn[i].detail);
    cJSON_AddItemToArray(list, e);
  }
}
