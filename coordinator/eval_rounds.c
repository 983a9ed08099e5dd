/*
 * eval_rounds.c - federated evaluation ([eval] every, fraction, select,
 * per_site, deadline_s): after committing round r (every N rounds and after
 * the last) the coordinator asks a seeded fraction of the joined clients to
 * evaluate r's model on their validation data; each answers POST /v1/eval
 * with its evaluation report (ml/eval_report.h), which is merged exactly
 * (counts and histogram bins) into the round's aggregate.
 *
 * One evaluation is open at a time. It closes when every asked client has
 * reported, at its deadline, or when the next round commits, whichever
 * comes first; a report that arrives after it closed is dropped (answered
 * 409 stale_round), never merged into a later round. Closing writes the
 * aggregate (metrics, merged report, per-site metrics when the job shows
 * them) to the store and marks the best round by the selection metric.
 * Training is not held up: rounds go on while an evaluation is open, and
 * a client polling for work evaluates first (a forward pass), then trains.
 * An evaluation still open when the coordinator stops is lost; committed
 * ones are read back from the store on restart.
 *
 * Everything here runs on the loop thread; the store is used under mu.
 */
#include "coord_internal.h"
#include "eval_rounds.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "ml/eval_model.h"

/* the stream tag of the evaluation's client draw: "eval" */
#define EVAL_TAG 0x6576616cULL

typedef struct eval_round {
  int32_t round, asked, sites;
  int64_t samples;
  double value;
  fedc_eval_metrics m;
} eval_round;

struct coord_eval {
  fedc_eval_task task;
  int32_t classes;
  double threshold;
  int select, sign; /* the selection metric and +1 (higher is better) or -1 */
  /* the open evaluation (round 0: none) */
  int32_t round;
  char sha[65];
  double deadline;
  int32_t *asked, n_asked;
  uint8_t *reported;
  int32_t n_reported;
  fedc_eval_report *sum, *site; /* site: scratch for one report */
  cJSON *sites;                 /* per_site: each reporter's metrics */
  /* closed evaluations, for status and /metrics */
  eval_round *hist;
  int32_t n_hist, hist_cap;
  char *last_json; /* the last closed one's metrics, with its confusion matrix */
  char *last_sites; /* per_site: its sites' metrics (JSON array), else NULL */
  int32_t best_round;
  double best_value;
};

int fedc__coord_eval_enabled(const fedc_coord *c) { return c->eval != NULL; }

/* The selection metric: [eval] select, or auc / accuracy / -mse. */
static void pick_select(coord_eval *e, const char *text) {
  const char *def = e->task == FEDC_EVAL_BINARY       ? "auc"
                    : e->task == FEDC_EVAL_REGRESSION ? "-mse"
                                                      : "accuracy";
  if (text[0] == '\0' || fedc_eval_select_parse(text, &e->select, &e->sign) != 0)
    fedc_eval_select_parse(def, &e->select, &e->sign);
}

static void history_add(coord_eval *e, const eval_round *r) {
  if (e->n_hist == e->hist_cap) {
    int32_t cap = e->hist_cap ? 2 * e->hist_cap : 32;
    eval_round *h = fedc_realloc(e->hist, (size_t)cap * sizeof *h);
    if (h == NULL) return; /* status shows fewer rounds; the store has them */
    e->hist = h;
    e->hist_cap = cap;
  }
  e->hist[e->n_hist++] = *r;
  int better = !isnan(r->value) &&
               (e->best_round == 0 || e->sign * r->value > e->sign * e->best_value);
  if (better) {
    e->best_round = r->round;
    e->best_value = r->value;
  }
}

/* The stored evaluations, read back at start (resume). */
static int load_history(fedc_coord *c, coord_eval *e) {
  fedc_store_eval *rows;
  int32_t n;
  int rc = fedc_store_evals(c->store, &rows, &n);
  if (rc != 0) return rc;
  for (int32_t i = 0; i < n; i++) {
    fedc_eval_report *r = e->site;
    if (fedc_eval_report_from_json(rows[i].report, strlen(rows[i].report), r) != 0) continue;
    eval_round er = {.round = rows[i].round, .asked = rows[i].asked, .sites = rows[i].sites,
                     .samples = rows[i].samples};
    fedc_eval_metrics_compute(r, &er.m);
    er.value = fedc_eval_metric_value(&er.m, e->select);
    history_add(e, &er);
    if (i == n - 1) {
      fedc_free(e->last_json);
      e->last_json = fedc_strdup(rows[i].metrics);
      fedc_free(e->last_sites);
      e->last_sites = rows[i].per_site ? fedc_strdup(rows[i].per_site) : NULL;
    }
  }
  fedc_store_evals_free(rows, n);
  return 0;
}

int fedc__coord_eval_new(fedc_coord *c) {
  c->eval = NULL;
  if (c->cfg.eval_rounds == 0) return 0;
  coord_eval *e = fedc_calloc(1, sizeof *e);
  if (e == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  e->sum = fedc_malloc(sizeof *e->sum);
  e->site = fedc_malloc(sizeof *e->site);
  int rc = e->sum && e->site ? fedc_eval_report_init_for(e->sum, &c->spec, c->cfg.eval_threshold)
                             : fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  if (rc != 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(FEDC_ECONFIG, "[eval] every = %d: %s", (int)c->cfg.eval_rounds, msg);
  }
  if (rc == 0) {
    e->task = (fedc_eval_task)e->sum->task;
    e->classes = e->sum->n_classes;
    e->threshold = e->sum->threshold;
    pick_select(e, c->cfg.eval_select);
    c->eval = e;
    rc = load_history(c, e);
  }
  if (rc != 0) {
    c->eval = NULL;
    fedc_free(e->sum);
    fedc_free(e->site);
    fedc_free(e->hist);
    fedc_free(e->last_json);
    fedc_free(e->last_sites);
    fedc_free(e);
  }
  return rc;
}

static void open_free(coord_eval *e) {
  fedc_free(e->asked);
  fedc_free(e->reported);
  cJSON_Delete(e->sites);
  e->asked = NULL;
  e->reported = NULL;
  e->sites = NULL;
  e->n_asked = e->n_reported = 0;
  e->round = 0;
}

void fedc__coord_eval_free(fedc_coord *c) {
  coord_eval *e = c->eval;
  if (e == NULL) return;
  open_free(e);
  fedc_free(e->sum);
  fedc_free(e->site);
  fedc_free(e->hist);
  fedc_free(e->last_json);
  fedc_free(e->last_sites);
  fedc_free(e);
  c->eval = NULL;
}

/* Close the open evaluation: its aggregate to the store, status and the
 * best round. An evaluation nobody answered is logged and not stored. */
static void close_eval(fedc_coord *c, const char *why) {
  coord_eval *e = c->eval;
  if (e == NULL || e->round == 0) return;
  eval_round er = {.round = e->round, .asked = e->n_asked, .sites = e->n_reported,
                   .samples = e->sum->n};
  if (e->n_reported == 0) {
    fedc_log_warn("round=%d msg=\"evaluation closed with no report\" asked=%d reason=%s",
                  (int)e->round, (int)e->n_asked, why);
    open_free(e);
    return;
  }
  fedc_eval_metrics_compute(e->sum, &er.m);
  er.value = fedc_eval_metric_value(&er.m, e->select);
  char *metrics = NULL, *report = NULL, *sites = NULL;
  int rc = fedc_eval_metrics_to_json(&er.m, e->sum, 1, &metrics);
  if (rc == 0) rc = fedc_eval_report_to_json(e->sum, &report);
  if (rc == 0 && c->cfg.eval_per_site && e->sites) {
    char *t = cJSON_PrintUnformatted(e->sites);
    sites = t ? fedc_strdup(t) : NULL;
    cJSON_free(t);
  }
  if (rc == 0) {
    fedc_store_eval row = {.round = er.round, .asked = er.asked, .sites = er.sites,
                           .samples = er.samples, .value = er.value, .sign = e->sign,
                           .metrics = metrics,
                           .report = report, .per_site = sites};
    pthread_mutex_lock(&c->mu);
    rc = fedc_store_eval_put(c->store, &row);
    pthread_mutex_unlock(&c->mu);
  }
  if (rc != 0) {
    fedc_log_error("round=%d msg=\"evaluation not stored\" err=\"%s\"", (int)e->round,
                   fedc_error_msg());
  }
  history_add(e, &er);
  fedc_free(e->last_json);
  e->last_json = metrics;
  fedc_free(e->last_sites);
  e->last_sites = sites;
  fedc_free(report);
  fedc_log_info("round=%d msg=\"evaluated\" reason=%s sites=%d asked=%d samples=%lld %s=%.4f "
                "best_round=%d",
                (int)er.round, why, (int)er.sites, (int)er.asked, (long long)er.samples,
                fedc_eval_metric_name(e->select), er.value, (int)e->best_round);
  open_free(e);
}

/* A seeded fraction of the joined, non-revoked clients, at least one. */
static int draw_clients(fedc_coord *c, coord_eval *e, int32_t round) {
  int32_t *ids = fedc_malloc_array((size_t)(c->n_clients > 0 ? c->n_clients : 1), sizeof *ids);
  if (ids == NULL) return FEDC_ENOMEM;
  int32_t n = 0;
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].joined && !c->clients[i].revoked) ids[n++] = c->clients[i].id;
  /* by id, then a seeded shuffle: the draw depends on the seed and who is there */
  for (int32_t i = 1; i < n; i++)
    for (int32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
      int32_t t = ids[j];
      ids[j] = ids[j - 1];
      ids[j - 1] = t;
    }
  fedc_rng rng;
  fedc_rng_derive(&rng, c->cfg.seed, EVAL_TAG, (uint64_t)round, 0);
  for (int32_t i = n - 1; i > 0; i--) {
    int32_t j = (int32_t)fedc_rng_below(&rng, (uint64_t)i + 1);
    int32_t t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  }
  int32_t k = (int32_t)ceil(c->cfg.eval_fraction * n - 1e-9);
  if (k < 1 && n > 0) k = 1;
  e->asked = ids;
  e->n_asked = k;
  e->reported = fedc_calloc((size_t)(k > 0 ? k : 1), 1);
  return e->reported ? 0 : FEDC_ENOMEM;
}

void fedc__coord_eval_committed(fedc_coord *c, int32_t round) {
  coord_eval *e = c->eval;
  if (e == NULL) return;
  close_eval(c, "next_commit");
  if (round % c->cfg.eval_rounds != 0 && round != c->cfg.rounds) return;
  if (fedc_eval_report_init(e->sum, e->task, e->classes, e->threshold) != 0 ||
      draw_clients(c, e, round) != 0) {
    fedc_log_error("round=%d msg=\"evaluation not started: out of memory\"", (int)round);
    open_free(e);
    return;
  }
  if (e->n_asked == 0) {
    open_free(e);
    return;
  }
  e->round = round;
  memcpy(e->sha, c->model_sha, sizeof e->sha);
  e->deadline = fedc__coord_now() + c->cfg.eval_deadline_s;
  e->sites = c->cfg.eval_per_site ? cJSON_CreateArray() : NULL;
  fedc_log_info("round=%d msg=\"evaluation opened\" asked=%d deadline_s=%g", (int)round,
                (int)e->n_asked, c->cfg.eval_deadline_s);
}

/* The index of client id among the asked, or -1. */
static int32_t asked_index(const coord_eval *e, int32_t id) {
  for (int32_t i = 0; i < e->n_asked; i++)
    if (e->asked[i] == id) return i;
  return -1;
}

int fedc__coord_eval_has_task(fedc_coord *c, int32_t client_id) {
  coord_eval *e = c->eval;
  if (e == NULL || e->round == 0) return 0;
  int32_t i = asked_index(e, client_id);
  return i >= 0 && !e->reported[i];
}

int fedc__coord_eval_task(fedc_coord *c, cJSON *o) {
  coord_eval *e = c->eval;
  double left = e->deadline - fedc__coord_now();
  int ok = cJSON_AddStringToObject(o, "action", "evaluate") != NULL;
  ok = ok && cJSON_AddNumberToObject(o, "round", e->round);
  ok = ok && cJSON_AddStringToObject(o, "model_sha256", e->sha);
  ok = ok && cJSON_AddNumberToObject(o, "deadline_s", left > 0 ? left : 0);
  return ok;
}

int fedc__coord_eval_open(const fedc_coord *c) { return c->eval && c->eval->round != 0; }

void fedc__coord_eval_tick(fedc_coord *c) {
  coord_eval *e = c->eval;
  if (e && e->round != 0 && fedc__coord_now() >= e->deadline) close_eval(c, "deadline");
}

static void answer(fedc_http_exchange *x, int32_t round) {
  char body[96];
  int n = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d}", (int)round);
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

/*
 * POST /v1/eval: {"round": r, "model_sha256": "...", "report": {...}}.
 * 409 stale_round when no evaluation of r is open (closed, or another
 * round's); 403 not_selected when this client was not asked; 409 again
 * for a second report; 400 for a report that does not parse or does not
 * fit the job (task, classes, threshold) or names another model.
 */
void fedc__coord_eval_handle(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                             const uint8_t *body, size_t len) {
  coord_eval *e = c->eval;
  if (e == NULL) {
    fedc_http_respond_error(x, 404, "not_found", "this job has no federated evaluation");
    return;
  }
  cJSON *root = cJSON_ParseWithLength((const char *)body, len);
  const cJSON *jr = cJSON_GetObjectItemCaseSensitive(root, "round");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(root, "model_sha256");
  const cJSON *rep = cJSON_GetObjectItemCaseSensitive(root, "report");
  if (!cJSON_IsNumber(jr) || !cJSON_IsString(js) || !cJSON_IsObject(rep)) {
    cJSON_Delete(root);
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request",
                            "an evaluation is {\"round\", \"model_sha256\", \"report\"}");
    return;
  }
  int32_t round = (int32_t)jr->valuedouble;
  if (e->round == 0 || round != e->round) {
    cJSON_Delete(root);
    fedc__coord_reject(c, REJECT_stale_round);
    fedc_http_respond_error(x, 409, "stale_round",
                            "no evaluation of round %d is open (late reports are dropped)",
                            (int)round);
    return;
  }
  int32_t i = asked_index(e, cl->id);
  if (i < 0 || e->reported[i]) {
    cJSON_Delete(root);
    if (i < 0) fedc__coord_reject(c, REJECT_not_selected);
    fedc_http_respond_error(x, i < 0 ? 403 : 409, i < 0 ? "not_selected" : "duplicate",
                            i < 0 ? "this client was not asked to evaluate round %d"
                                  : "this client already reported round %d",
                            (int)round);
    return;
  }
  if (strcasecmp(js->valuestring, e->sha) != 0) {
    cJSON_Delete(root);
    fedc__coord_reject(c, REJECT_bad_checksum);
    fedc_http_respond_error(x, 400, "bad_checksum",
                            "the report is of another model than round %d's", (int)round);
    return;
  }
  char *text = cJSON_PrintUnformatted(rep);
  cJSON_Delete(root);
  int rc = text ? fedc_eval_report_from_json(text, strlen(text), e->site) : FEDC_ENOMEM;
  cJSON_free(text);
  if (rc == 0) rc = fedc_eval_report_merge(e->sum, e->site);
  if (rc != 0) {
    fedc__coord_reject(c, REJECT_bad_metadata);
    fedc_http_respond_error(x, 400, "bad_report", "%s", fedc_error_msg());
    return;
  }
  e->reported[i] = 1;
  e->n_reported++;
  if (e->sites) {
    fedc_eval_metrics m;
    char *mj = NULL;
    fedc_eval_metrics_compute(e->site, &m);
    if (fedc_eval_metrics_to_json(&m, e->site, 0, &mj) == 0) {
      cJSON *site = cJSON_Parse(mj);
      if (site) {
        cJSON_AddStringToObject(site, "name", cl->name);
        cJSON_AddNumberToObject(site, "client_id", cl->id);
        cJSON_AddItemToArray(e->sites, site);
      }
    }
    fedc_free(mj);
  }
  fedc_log_info("round=%d msg=\"evaluation report\" client=%d samples=%lld reported=%d asked=%d",
                (int)round, (int)cl->id, (long long)e->site->n, (int)e->n_reported,
                (int)e->n_asked);
  answer(x, round);
  if (e->n_reported == e->n_asked) close_eval(c, "all_reported");
  fedc__coord_step(c); /* a finished job may now end */
}

/* ---- what the operator sees ------------------------------------------------ */

void fedc__coord_eval_status(const fedc_coord *c, cJSON *root) {
  const coord_eval *e = c->eval;
  if (e == NULL) return;
  cJSON *o = cJSON_AddObjectToObject(root, "eval");
  if (o == NULL) return;
  cJSON_AddStringToObject(o, "task", fedc_eval_task_name(e->task));
  char sel[40];
  snprintf(sel, sizeof sel, "%s%s", e->sign < 0 ? "-" : "", fedc_eval_metric_name(e->select));
  cJSON_AddStringToObject(o, "select", sel);
  cJSON_AddNumberToObject(o, "every", c->cfg.eval_rounds);
  if (e->best_round) {
    cJSON_AddNumberToObject(o, "best_round", e->best_round);
    cJSON_AddNumberToObject(o, "best_value", e->best_value);
  } else {
    cJSON_AddNullToObject(o, "best_round");
  }
  cJSON_AddNumberToObject(o, "open_round", e->round);
  if (e->round) {
    cJSON_AddNumberToObject(o, "open_asked", e->n_asked);
    cJSON_AddNumberToObject(o, "open_reported", e->n_reported);
  }
  /* one row per evaluated round: the selection metric and the main ones */
  cJSON *rounds = cJSON_AddArrayToObject(o, "rounds");
  for (int32_t i = 0; rounds && i < e->n_hist; i++) {
    const eval_round *r = &e->hist[i];
    cJSON *row = cJSON_CreateObject();
    if (row == NULL) break;
    cJSON_AddNumberToObject(row, "round", r->round);
    cJSON_AddNumberToObject(row, "sites", r->sites);
    cJSON_AddNumberToObject(row, "asked", r->asked);
    cJSON_AddNumberToObject(row, "samples", (double)r->samples);
    if (isfinite(r->value)) cJSON_AddNumberToObject(row, "value", r->value);
    else cJSON_AddNullToObject(row, "value");
    for (int k = 0; k < fedc_eval_metric_count(); k++)
      if (fedc_eval_metric_applies(k, e->task)) {
        double v = fedc_eval_metric_value(&r->m, k);
        if (isfinite(v)) cJSON_AddNumberToObject(row, fedc_eval_metric_name(k), v);
        else cJSON_AddNullToObject(row, fedc_eval_metric_name(k));
      }
    cJSON_AddItemToArray(rounds, row);
  }
  if (e->last_json) {
    cJSON *last = cJSON_Parse(e->last_json);
    if (last) {
      cJSON_AddNumberToObject(last, "round", e->n_hist ? e->hist[e->n_hist - 1].round : 0);
      cJSON_AddItemToObject(o, "last", last);
    }
  }
  /* each site's figures only when the job allows it */
  if (c->cfg.eval_per_site && e->last_sites) {
    cJSON *s = cJSON_Parse(e->last_sites);
    if (s) cJSON_AddItemToObject(o, "sites", s);
  }
}

/* Prometheus gauges of the last closed evaluation, appended to buf (size
 * cap, NUL-terminated); what does not fit is left out. */
void fedc__coord_eval_metrics(const fedc_coord *c, char *buf, size_t cap) {
  const coord_eval *e = c->eval;
  size_t len = strlen(buf);
#define ADD(...)                                                                 \
  do {                                                                           \
    int n_ = snprintf(buf + len, cap - len, __VA_ARGS__);                        \
    if (n_ > 0 && (size_t)n_ < cap - len) len += (size_t)n_; else buf[len] = 0; \
  } while (0)
  if (e == NULL) return;
  const eval_round *r = e->n_hist ? &e->hist[e->n_hist - 1] : NULL;
  ADD("# HELP fedc_eval_round Last round evaluated by the clients.\n"
      "# TYPE fedc_eval_round gauge\nfedc_eval_round %d\n", r ? (int)r->round : 0);
  ADD("# HELP fedc_eval_best_round Best round by [eval] select.\n"
      "# TYPE fedc_eval_best_round gauge\nfedc_eval_best_round %d\n", (int)e->best_round);
  if (r == NULL) return;
  ADD("# HELP fedc_eval_sites Sites in the last evaluation.\n"
      "# TYPE fedc_eval_sites gauge\nfedc_eval_sites %d\n", (int)r->sites);
  if (isfinite(r->value))
    ADD("# HELP fedc_eval_selected The selection metric ([eval] select) of the last "
        "evaluation.\n# TYPE fedc_eval_selected gauge\nfedc_eval_selected{metric=\"%s\"} %.17g\n",
        fedc_eval_metric_name(e->select), r->value);
  for (int k = 0; k < fedc_eval_metric_count(); k++) {
    double v = fedc_eval_metric_value(&r->m, k);
    if (!fedc_eval_metric_applies(k, e->task) || !isfinite(v)) continue;
    ADD("# HELP fedc_eval_%s Federated evaluation: %s of the last evaluated round.\n"
        "# TYPE fedc_eval_%s gauge\nfedc_eval_%s %.17g\n",
        fedc_eval_metric_name(k), fedc_eval_metric_name(k), fedc_eval_metric_name(k),
        fedc_eval_metric_name(k), v);
  }
#undef ADD
}

int32_t fedc__coord_eval_best_round(const fedc_coord *c) {
  return c->eval ? c->eval->best_round : 0;
}
