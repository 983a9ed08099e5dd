/*
 * audit.c - the audit trail (audit.h): a record per committed round,
 * chained to the previous record's digest and written inside the round's
 * commit transaction; and `fedc-coordinator audit`, which checks the whole
 * chain offline from the store alone and, given the sites' kept updates,
 * recomputes every committed model.
 *
 * What the check proves: every round's record hashes to its digest and
 * names the previous digest, so changing, removing or reordering a record
 * breaks the chain at that round; each record names the SHA-256 of the
 * model the round started from and of the model it committed, so one byte
 * changed in a checkpoint names its round; the rounds' and updates' rows
 * must agree with the records. The chain's head (printed by `audit`, logged
 * at each commit) is what a regulator keeps to notice the last records
 * being rewritten together.
 *
 * Recomputation runs the library's own round engine, with the job's
 * recorded [strategy] and [privacy] keys, over the start checkpoint and
 * the kept updates in the order they were folded, then encodes the result
 * as the coordinator does; the bytes must equal the stored checkpoint.
 * Every synchronous strategy is recomputed this way (FedAvg and its server
 * optimizers, whose state is read from the store, and the robust ones);
 * rounds under differential privacy (the noise comes from a secret seed
 * and a clip state that the store does not record per round), under secure
 * aggregation (the sites' updates are masked, only the sum was folded) and
 * of asynchronous strategies are listed as not recomputed.
 */
#include "audit.h"

#include <dirent.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "config/config_params.h"
#include "ml/layout.h"
#include "round/engine.h"
#include "wire/safetensors.h"
#include <fedc/coordinator.h>
#include <fedc/strategy.h>

#define ZERO_DIGEST "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- the record, at commit --------------------------------------------- */

/* Is this [section] one whose keys the records carry? */
static int audited_section(const char *s) {
  return strcmp(s, "strategy") == 0 || strcmp(s, "privacy") == 0;
}

/*
 * The params object from the effective config, as fedc_config_dump writes
 * it ("[section]" lines, then "key = value"): every key of the audited
 * sections, so that keys added later are recorded without a change here.
 */
char *fedc__audit_params_json(const fedc_config *cfg) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) {
    fedc_error_set(FEDC_ENOMEM, "audit: out of memory");
    return NULL;
  }
  int rc = fedc_config_dump(cfg, f);
  fclose(f);
  cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
  cJSON *sec = NULL;
  char *save = NULL;
  for (char *line = rc == 0 ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '[') {
      char name[64];
      if (sscanf(line, "[%63[^]]]", name) != 1) continue;
      sec = audited_section(name) ? cJSON_AddObjectToObject(o, name) : NULL;
      continue;
    }
    char *eq = strstr(line, " = ");
    if (sec == NULL || line[0] == ';' || eq == NULL) continue;
    *eq = '\0';
    cJSON_AddStringToObject(sec, line, eq + 3);
  }
  free(text); /* open_memstream's buffer is libc's */
  char *out = NULL;
  if (o != NULL) {
    char *p = cJSON_PrintUnformatted(o);
    out = p ? fedc_strdup(p) : NULL;
    cJSON_free(p);
    cJSON_Delete(o);
  }
  if (out == NULL && rc == 0) fedc_error_set(FEDC_ENOMEM, "audit: out of memory");
  return out;
}

/* One text value of a one-row query with an integer parameter; "" if no row. */
static int query_text(fedc_store *st, const char *sql, int64_t arg, char *dst, size_t cap) {
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "audit");
  sqlite3_bind_int64(s, 1, arg);
  rc = sqlite3_step(s);
  int err = 0;
  dst[0] = '\0';
  if (rc == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(s, 0);
    snprintf(dst, cap, "%s", t ? t : "");
  } else if (rc != SQLITE_DONE) {
    err = fedc__store_db_error(st, rc, "audit");
  }
  sqlite3_finalize(s);
  return err;
}

/* A double written with 17 significant digits, so that it reads back to
 * the same bits (cJSON's own printing may round to 15 digits); null for
 * NAN (not measured). */
static void add_real_or_null(cJSON *o, const char *k, double v) {
  char buf[40];
  if (!isfinite(v)) {
    cJSON_AddNullToObject(o, k);
    return;
  }
  snprintf(buf, sizeof buf, "%.17g", v);
  cJSON_AddRawToObject(o, k, buf);
}

/* Build round r's record (see audit.h) with the previous digest prev. */
static char *build_record(fedc_store *st, const fedc_store_round *r, const char *prev,
                          const char *start, const char *result,
                          const fedc_store_update *updates, int32_t n_updates, int *err) {
  char job[80];
  *err = query_text(st, "SELECT id FROM job LIMIT ?1", 1, job, sizeof job);
  if (*err) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "v", 1);
  cJSON_AddStringToObject(o, "job", job);
  cJSON_AddNumberToObject(o, "round", r->round);
  cJSON_AddStringToObject(o, "prev", prev);
  cJSON_AddStringToObject(o, "start", start);
  cJSON_AddStringToObject(o, "result", result);
  cJSON_AddNumberToObject(o, "selected", r->selected);
  cJSON_AddNumberToObject(o, "clients", r->clients);
  cJSON_AddNumberToObject(o, "samples", (double)r->samples);
  add_real_or_null(o, "train_loss", r->train_loss);
  add_real_or_null(o, "test_loss", r->test_loss);
  add_real_or_null(o, "test_acc", r->test_acc);
  add_real_or_null(o, "secs", r->secs);
  cJSON *ups = cJSON_AddArrayToObject(o, "updates");
  for (int32_t i = 0; *err == 0 && i < n_updates; i++) {
    char fpr[80];
    *err = query_text(st, "SELECT fingerprint FROM clients WHERE id = ?1", updates[i].client_id,
                      fpr, sizeof fpr);
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "client", updates[i].client_id);
    cJSON_AddStringToObject(u, "fingerprint", fpr);
    cJSON_AddStringToObject(u, "sha256", updates[i].sha256);
    cJSON_AddNumberToObject(u, "samples", (double)updates[i].num_samples);
    add_real_or_null(u, "train_loss", updates[i].train_loss);
    cJSON_AddItemToArray(ups, u);
  }
  cJSON *params = r->audit_params ? cJSON_Parse(r->audit_params) : NULL;
  if (params) cJSON_AddItemToObject(o, "params", params);
  else cJSON_AddNullToObject(o, "params");
  if (r->epsilon > 0.0) {
    cJSON *p = cJSON_AddObjectToObject(o, "privacy_spent");
    add_real_or_null(p, "epsilon", r->epsilon);
    add_real_or_null(p, "delta", r->delta);
    add_real_or_null(p, "clip_norm", r->clip_norm);
  } else {
    cJSON_AddNullToObject(o, "privacy_spent");
  }
  char *text = *err == 0 ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (*err == 0 && text == NULL) *err = fedc_error_set(FEDC_ENOMEM, "audit: out of memory");
  return text;
}

/*
 * Inside the commit's transaction (store_sqlite.c calls it before COMMIT):
 * the previous record's digest and the start checkpoint's hash are read
 * from the same snapshot the round is written into, so the chain can only
 * grow by whole rounds.
 */
int fedc__audit_append(fedc_store *st, const fedc_store_round *r, const char *result_sha,
                       const fedc_store_update *updates, int32_t n_updates) {
  char prev[80], start[80];
  int err = query_text(st, "SELECT digest FROM audit WHERE round = ?1", r->round - 1, prev,
                       sizeof prev);
  if (err == 0 && prev[0] == '\0') snprintf(prev, sizeof prev, "%s", ZERO_DIGEST);
  if (err == 0)
    err = query_text(st, "SELECT sha256 FROM checkpoints WHERE round = ?1", r->round - 1, start,
                     sizeof start);
  if (err) return err;
  char *rec = build_record(st, r, prev, start, result_sha, updates, n_updates, &err);
  if (rec == NULL) return err;
  char digest[65];
  err = fedc__sha256_hex(rec, strlen(rec), digest);
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s = NULL;
  int rc = err ? SQLITE_OK
               : sqlite3_prepare_v2(db, "INSERT INTO audit(round, record, digest) VALUES(?1, ?2, ?3)",
                                    -1, &s, NULL);
  if (err == 0 && rc == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, r->round);
    sqlite3_bind_text(s, 2, rec, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, digest, 64, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (err == 0 && rc != SQLITE_OK) err = fedc__store_db_error(st, rc, "write the audit record");
  sqlite3_finalize(s);
  cJSON_free(rec);
  if (err == 0) fedc_log_debug("round=%d audit=%s", (int)r->round, digest);
  return err;
}

/* ---- the check ------------------------------------------------------------ */

typedef struct kept_update {
  char sha[65];
  char *path;
} kept_update;

typedef struct audit_ctx {
  fedc_store *st;
  FILE *out;
  int failures, recomputed, unchecked;
  kept_update *kept;
  int32_t n_kept, cap_kept;
} audit_ctx;

static void finding(audit_ctx *a, int32_t round, const char *fmt, const char *detail) {
  fprintf(a->out, "round %d: ", (int)round);
  fprintf(a->out, fmt, detail);
  fputc('\n', a->out);
  a->failures++;
}

/* Index every *.safetensors under the folders by its "sha256" metadata
 * (the decoder checks it against the data). Unreadable files are noted. */
static int index_updates(audit_ctx *a, char **dirs, int n_dirs) {
  for (int d = 0; d < n_dirs; d++) {
    DIR *dir = opendir(dirs[d]);
    if (dir == NULL) return fedc_error_set(FEDC_EIO, "audit: --updates %s: cannot open", dirs[d]);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      size_t n = strlen(e->d_name);
      if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
      size_t plen = strlen(dirs[d]) + n + 2;
      char *path = fedc_malloc(plen);
      if (path == NULL) break;
      snprintf(path, plen, "%s/%s", dirs[d], e->d_name);
      fedc_st_file *f = NULL;
      const char *sha = NULL;
      if (fedc_st_read_file(path, &f) != 0 || (sha = fedc_st_meta_get(f, "sha256")) == NULL) {
        fprintf(a->out, "note: %s: not a readable update (%s)\n", path, fedc_error_msg());
        fedc_st_free(f);
        fedc_free(path);
        continue;
      }
      if (a->n_kept == a->cap_kept) {
        int32_t cap = a->cap_kept ? 2 * a->cap_kept : 64;
        kept_update *k = fedc_realloc(a->kept, (size_t)cap * sizeof *k);
        if (k == NULL) {
          fedc_st_free(f);
          fedc_free(path);
          closedir(dir);
          return fedc_error_set(FEDC_ENOMEM, "audit: out of memory");
        }
        a->kept = k;
        a->cap_kept = cap;
      }
      snprintf(a->kept[a->n_kept].sha, 65, "%s", sha);
      a->kept[a->n_kept++].path = path;
      fedc_st_free(f);
    }
    closedir(dir);
  }
  return 0;
}

static const char *kept_path(const audit_ctx *a, const char *sha) {
  for (int32_t i = 0; i < a->n_kept; i++)
    if (strcmp(a->kept[i].sha, sha) == 0) return a->kept[i].path;
  return NULL;
}

/* A checkpoint's bytes straight from its row (no check: that is ours). */
static int read_blob(fedc_store *st, int32_t round, uint8_t **out, size_t *len) {
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  *out = NULL;
  *len = 0;
  int rc = sqlite3_prepare_v2(db, "SELECT model FROM checkpoints WHERE round = ?1", -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "audit");
  sqlite3_bind_int64(s, 1, round);
  rc = sqlite3_step(s);
  int err = 0;
  if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 0) {
    err = fedc__store_chunks_read(st, round, out, len); /* a chunked one */
  } else if (rc == SQLITE_ROW) {
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    *out = fedc_malloc(n ? n : 1);
    if (*out == NULL) err = fedc_error_set(FEDC_ENOMEM, "audit: out of memory");
    else if (n) memcpy(*out, sqlite3_column_blob(s, 0), n);
    *len = n;
  } else if (rc == SQLITE_DONE) {
    err = FEDC_ENOTFOUND;
  } else {
    err = fedc__store_db_error(st, rc, "audit");
  }
  sqlite3_finalize(s);
  return err;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Equal, or both absent (NAN, stored as NULL). */
static int same(double x, double y) { return (isnan(x) && isnan(y)) || x == y; }

/* The updates rows of the round against the record's list. */
static void check_update_rows(audit_ctx *a, int32_t round, const cJSON *ups) {
  fedc_store_update *rows = NULL;
  int32_t n = 0;
  if (fedc_store_round_updates(a->st, round, &rows, &n) != 0) {
    finding(a, round, "its updates cannot be read: %s", fedc_error_msg());
    return;
  }
  if (n != cJSON_GetArraySize(ups)) {
    char d[64];
    snprintf(d, sizeof d, "%d rows, %d in the record", (int)n, cJSON_GetArraySize(ups));
    finding(a, round, "the updates table does not match the audit record (%s)", d);
  }
  for (int32_t i = 0; i < n; i++) {
    int found = 0;
    const cJSON *u;
    cJSON_ArrayForEach(u, ups) {
      if ((int32_t)jnum(u, "client") == rows[i].client_id &&
          strcmp(jstr(u, "sha256"), rows[i].sha256) == 0 &&
          (int64_t)jnum(u, "samples") == rows[i].num_samples &&
          same(jnum(u, "train_loss"), rows[i].train_loss))
        found = 1;
    }
    if (!found) {
      char d[32];
      snprintf(d, sizeof d, "%d", (int)rows[i].client_id);
      finding(a, round, "the update row of client %s does not match the audit record", d);
    }
  }
  fedc_free(rows);
}

/* The job's config as recorded in params (defaults for the rest). */
static int config_of(const cJSON *params, fedc_config *cfg) {
  fedc_config_defaults(cfg);
  const cJSON *sec;
  cJSON_ArrayForEach(sec, params) {
    const cJSON *kv;
    cJSON_ArrayForEach(kv, sec) {
      if (!cJSON_IsString(kv)) continue;
      char set[512];
      snprintf(set, sizeof set, "%s.%s=%s", sec->string, kv->string, kv->valuestring);
      int rc = fedc_config_set(cfg, set);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

/* Why round's model cannot be recomputed from kept updates, or NULL. */
static const char *not_recomputable(const fedc_config *cfg) {
  const fedc_strategy_info *info = fedc_strategy_lookup(cfg->strategy);
  if (info == NULL) return "the strategy is not registered in this program";
  if (info->caps & FEDC_STRATEGY_ASYNC) return "an asynchronous strategy";
  if (cfg->secagg) return "secure aggregation (only the masked sum was folded)";
  if (cfg->dp_noise_multiplier > 0) return "differential privacy (noise from a secret seed)";
  return NULL;
}

/* Flatten the F32 tensors of f in the order of ref's tensors. */
static int flatten(const fedc_st_file *ref, const fedc_st_file *f, float *w, size_t n) {
  size_t off = 0;
  for (size_t i = 0; i < fedc_st_count(ref); i++) {
    fedc_st_tensor t, u;
    fedc_st_get(ref, i, &t);
    int rc = fedc_st_find(f, t.name, &u);
    if (rc != 0) return rc;
    size_t cnt = 1, cu = 1;
    for (int32_t d = 0; d < t.ndim; d++) cnt *= (size_t)t.shape[d];
    for (int32_t d = 0; d < u.ndim; d++) cu *= (size_t)u.shape[d];
    if (cnt != cu || off + cnt > n)
      return fedc_error_set(FEDC_ESHAPE, "tensor '%s' has another shape", t.name);
    memcpy(w + off, u.data, cnt * sizeof(float));
    off += cnt;
  }
  return off == n ? 0 : fedc_error_set(FEDC_ESHAPE, "tensor sizes do not add up");
}

/*
 * Recompute round r from the start checkpoint's bytes, the kept updates
 * the record lists and the recorded params; 1 when the bytes are equal, 0
 * when they differ (a finding), -1 when it could not be done (unchecked,
 * with the reason printed).
 */
static int recompute(audit_ctx *a, int32_t round, const cJSON *rec, const uint8_t *start,
                     size_t start_len, const uint8_t *result, size_t result_len) {
  fedc_config cfg;
  const char *why = NULL;
  if (config_of(cJSON_GetObjectItemCaseSensitive(rec, "params"), &cfg) != 0)
    why = "its params are not a config this program reads";
  if (why == NULL) why = not_recomputable(&cfg);
  const cJSON *ups = cJSON_GetObjectItemCaseSensitive(rec, "updates");
  int32_t k = cJSON_GetArraySize(ups);
  const cJSON *u;
  char miss[96] = "";
  cJSON_ArrayForEach(u, ups) {
    if (why == NULL && kept_path(a, jstr(u, "sha256")) == NULL) {
      snprintf(miss, sizeof miss, "the update %.16s... of client %d is in no folder given",
               jstr(u, "sha256"), (int)jnum(u, "client"));
      why = miss;
    }
  }
  if (why != NULL) {
    fprintf(a->out, "round %d: not recomputed: %s\n", (int)round, why);
    a->unchecked++;
    return -1;
  }
  fedc_st_file *f0 = NULL, *f1 = NULL, *fu = NULL;
  float *w0 = NULL, *wu = NULL;
  fedc_engine *e = NULL;
  int32_t *ids = fedc_malloc_array((size_t)(k > 0 ? k : 1), sizeof *ids);
  uint8_t *bytes = NULL;
  size_t len = 0, n = 0;
  int rc = ids ? 0 : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0) rc = fedc_st_decode(start, start_len, &f0);
  if (rc == 0) rc = fedc_st_decode(result, result_len, &f1);
  for (size_t i = 0; rc == 0 && i < fedc_st_count(f1); i++) {
    fedc_st_tensor t;
    fedc_st_get(f1, i, &t);
    size_t cnt = 1;
    for (int32_t d = 0; d < t.ndim; d++) cnt *= (size_t)t.shape[d];
    n += cnt;
  }
  if (rc == 0) {
    w0 = fedc_malloc_array(n, sizeof(float));
    wu = fedc_malloc_array(n, sizeof(float));
    if (w0 == NULL || wu == NULL) rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  if (rc == 0) rc = flatten(f1, f0, w0, n);
  fedc_pipeline_params pp;
  if (rc == 0) {
    fedc_pipeline_params_from_config(&cfg, k, &pp);
    fedc_engine_params ep = {.rounds = round, .clients_per_round = k, .min_clients = 1,
                             .seed = 0, .strategy = cfg.strategy};
    rc = fedc__engine_new_pipeline(&ep, &pp, n, w0, &e);
  }
  if (rc == 0 && round > 1) rc = fedc_engine_restore(e, round - 1, w0);
  if (rc == 0 && round > 1 && fedc_engine_opt_state_len(e) > 0) {
    float *opt = NULL;
    size_t opt_len = 0;
    rc = fedc_store_opt_state(a->st, round - 1, &opt, &opt_len);
    if (rc == 0 && opt_len > 0) rc = fedc_engine_opt_state_set(e, opt, opt_len);
    fedc_free(opt);
  }
  int32_t i = 0;
  cJSON_ArrayForEach(u, ups) ids[i++] = (int32_t)jnum(u, "client");
  int32_t got = 0;
  if (rc == 0) rc = fedc_engine_open(e, ids, k, k, ids, &got);
  /* open wrote its selection over ids: the record's order again */
  i = 0;
  cJSON_ArrayForEach(u, ups) ids[i++] = (int32_t)jnum(u, "client");
  cJSON_ArrayForEach(u, ups) {
    if (rc != 0) break;
    rc = fedc_st_read_file(kept_path(a, jstr(u, "sha256")), &fu);
    if (rc == 0) rc = flatten(f1, fu, wu, n);
    const char *ts = fu ? fedc_st_meta_get(fu, "train_loss") : NULL;
    if (rc == 0)
      rc = fedc_engine_submit(e, round, (int32_t)jnum(u, "client"), wu, n,
                              (uint64_t)jnum(u, "samples"), ts ? strtod(ts, NULL) : 0.0);
    fedc_st_free(fu);
    fu = NULL;
  }
  const float *next = NULL;
  fedc_round_metrics m;
  if (rc == 0) rc = fedc_engine_close_prepare(e, &m, &next);
  if (rc == 0) {
    /* encode as the coordinator does: its layout (dtypes included) and
     * every metadata key of the checkpoint but the checksum the writer adds */
    fedc_layout l = {0};
    rc = fedc_layout_from_file(f1, &l);
    if (rc == 0 && l.n_int > 0)
      rc = fedc_error_set(FEDC_EUNSUPPORTED, "integer tensors are not recomputed");
    size_t nk = fedc_st_meta_count(f1), nm = 0;
    fedc_st_meta *meta = fedc_malloc_array(nk ? nk : 1, sizeof *meta);
    if (rc == 0 && meta == NULL) rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
    for (size_t j = 0; rc == 0 && j < nk; j++) {
      const char *key = fedc_st_meta_key(f1, j);
      if (strcmp(key, "sha256") != 0) meta[nm++] = (fedc_st_meta){key, fedc_st_meta_get(f1, key)};
    }
    if (rc == 0) rc = fedc_layout_encode(&l, next, NULL, meta, nm, &bytes, &len);
    fedc_free(meta);
    fedc_layout_free(&l);
  }
  int verdict;
  if (rc != 0) {
    fprintf(a->out, "round %d: not recomputed: %s\n", (int)round, fedc_error_msg());
    a->unchecked++;
    verdict = -1;
  } else if (len == result_len && memcmp(bytes, result, len) == 0) {
    a->recomputed++;
    verdict = 1;
  } else {
    finding(a, round, "the model recomputed from the kept updates differs from checkpoint %s",
            "(bytes)");
    verdict = 0;
  }
  fedc_free(bytes);
  fedc_engine_free(e);
  fedc_st_free(f0);
  fedc_st_free(f1);
  fedc_free(w0);
  fedc_free(wu);
  fedc_free(ids);
  return verdict;
}

/* One round: the record, its digest, the chain, the checkpoints, the rows. */
static void check_round(audit_ctx *a, const fedc_store_round *row, char prev[65], int recomp) {
  int32_t r = row->round;
  char rec_text_digest[65] = "", stored_digest[80] = "";
  sqlite3 *db = fedc__store_db(a->st);
  sqlite3_stmt *s;
  char *text = NULL;
  if (sqlite3_prepare_v2(db, "SELECT record, digest FROM audit WHERE round = ?1", -1, &s, NULL) ==
      SQLITE_OK) {
    sqlite3_bind_int64(s, 1, r);
    if (sqlite3_step(s) == SQLITE_ROW) {
      const char *t = (const char *)sqlite3_column_text(s, 0);
      const char *d = (const char *)sqlite3_column_text(s, 1);
      text = fedc_strdup(t ? t : "");
      snprintf(stored_digest, sizeof stored_digest, "%s", d ? d : "");
    }
    sqlite3_finalize(s);
  }
  if (text == NULL) {
    finding(a, r, "no audit record%s", "");
    prev[0] = '\0'; /* the next round cannot be chained to anything */
    return;
  }
  fedc__sha256_hex(text, strlen(text), rec_text_digest);
  if (strcmp(rec_text_digest, stored_digest) != 0)
    finding(a, r, "the audit record does not hash to its stored digest (%s)",
            "changed after its commit");
  cJSON *rec = cJSON_Parse(text);
  if (rec == NULL) {
    finding(a, r, "the audit record is not JSON%s", "");
  } else {
    if ((int32_t)jnum(rec, "round") != r) finding(a, r, "the audit record names another round%s", "");
    if (prev[0] != '\0' && strcmp(jstr(rec, "prev"), prev) != 0)
      finding(a, r, "the chain is broken: the record's prev is not the digest of round %s's record",
              "the previous");
    if (strcmp(jstr(rec, "result"), row->sha256) != 0)
      finding(a, r, "the rounds table's checkpoint hash differs from the audit record%s", "");
    if ((int32_t)jnum(rec, "clients") != row->clients ||
        (int64_t)jnum(rec, "samples") != row->samples ||
        (int32_t)jnum(rec, "selected") != row->selected || !same(jnum(rec, "train_loss"), row->train_loss) ||
        !same(jnum(rec, "test_loss"), row->test_loss) || !same(jnum(rec, "test_acc"), row->test_acc) ||
        !same(jnum(rec, "secs"), row->secs))
      finding(a, r, "the rounds table's row differs from the audit record%s", "");
    uint8_t *b0 = NULL, *b1 = NULL;
    size_t l0 = 0, l1 = 0;
    char h[65];
    int e0 = read_blob(a->st, r - 1, &b0, &l0), e1 = read_blob(a->st, r, &b1, &l1);
    if (e0 != 0) finding(a, r, "its start model (checkpoint %s) is missing", "r-1");
    else if (fedc__sha256_hex(b0, l0, h) == 0 && strcmp(h, jstr(rec, "start")) != 0)
      finding(a, r, "the checkpoint it started from (round r-1) is not the one recorded%s", "");
    if (e1 != 0) finding(a, r, "its checkpoint is missing%s", "");
    else if (fedc__sha256_hex(b1, l1, h) == 0 && strcmp(h, jstr(rec, "result")) != 0)
      finding(a, r, "its checkpoint's bytes are not the model recorded (changed after %s)",
              "the commit");
    check_update_rows(a, r, cJSON_GetObjectItemCaseSensitive(rec, "updates"));
    if (recomp && e0 == 0 && e1 == 0) recompute(a, r, rec, b0, l0, b1, l1);
    fedc_free(b0);
    fedc_free(b1);
    cJSON_Delete(rec);
  }
  /* the next record must name the digest of this one's bytes */
  snprintf(prev, 65, "%s", rec_text_digest);
  fedc_free(text);
}

int fedc__audit_verify(fedc_store *st, char **dirs, int n_dirs, FILE *out, int *failures) {
  audit_ctx a = {.st = st, .out = out};
  *failures = 0;
  int rc = n_dirs > 0 ? index_updates(&a, dirs, n_dirs) : 0;
  fedc_store_round *rows = NULL;
  int32_t n = 0;
  if (rc == 0) rc = fedc_store_rounds(st, &rows, &n);
  char prev[65] = ZERO_DIGEST;
  for (int32_t i = 0; rc == 0 && i < n; i++) {
    if (rows[i].round != i + 1) {
      finding(&a, rows[i].round, "rounds are missing before this one%s", "");
      prev[0] = '\0';
    }
    check_round(&a, &rows[i], prev, n_dirs > 0);
  }
  if (rc == 0) {
    fprintf(out, "audit: %d committed rounds, %d finding%s; chain head %s\n", (int)n, a.failures,
            a.failures == 1 ? "" : "s", prev[0] ? prev : "(broken)");
    if (n_dirs > 0)
      fprintf(out, "audit: %d rounds recomputed exactly from the kept updates, %d not recomputed\n",
              a.recomputed, a.unchecked);
  }
  for (int32_t i = 0; i < a.n_kept; i++) fedc_free(a.kept[i].path);
  fedc_free(a.kept);
  fedc_free(rows);
  *failures = a.failures;
  return rc;
}

/*
 * One store's audit: the header line, then fedc__audit_verify. job, when
 * given, must be a prefix of the store's own job id. 'label' names the job
 * in the header (a queued job's number). Returns the exit code.
 */
static int audit_store(const char *store, const char *job, const char *label, char **dirs,
                       int n_dirs) {
  fedc_store *st = NULL;
  if (fedc_store_open(store, &st) != 0) {
    fprintf(stderr, "fedc-coordinator: audit: %s\n", fedc_error_msg());
    return FEDC_COORD_EXIT_STORE;
  }
  int code = FEDC_COORD_EXIT_OK, failures = 0;
  char held[80] = "";
  query_text(st, "SELECT id FROM job LIMIT ?1", 1, held, sizeof held);
  if (job != NULL && strncmp(held, job, strlen(job)) != 0) {
    fprintf(stderr, "fedc-coordinator: audit: store %s holds job %s, not %s\n", store,
            held[0] ? held : "(none)", job);
    code = FEDC_COORD_EXIT_USAGE;
  } else {
    printf("audit: store %s, %s%sjob %s\n", store, label ? label : "", label ? ", " : "",
           held[0] ? held : "(none)");
    int rc = fedc__audit_verify(st, dirs, n_dirs, stdout, &failures);
    if (rc != 0) {
      fprintf(stderr, "fedc-coordinator: audit: %s\n", fedc_error_msg());
      code = rc == FEDC_EIO ? FEDC_COORD_EXIT_STORE : FEDC_COORD_EXIT_RUNTIME;
    } else if (failures > 0) {
      code = FEDC_COORD_EXIT_RUNTIME;
    }
  }
  fedc_store_close(st);
  return code;
}

static int cmp_id(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/*
 * A queue daemon's store (docs/operations.md): each job's rounds are in
 * its own store, <store>.jobs/job-<N>.db. `audit N` checks that one;
 * without a job, every job that has started is checked in turn (jobs
 * cancelled before they started have no store). Nothing is created: a job
 * without a store is reported. Returns the exit code (the worst job's).
 */
static int audit_queue(const char *store, const char *jobs_dir, const char *job, char **dirs,
                       int n_dirs) {
  char path[4240], label[32];
  if (job != NULL) {
    char *end;
    long id = strtol(job, &end, 10);
    if (*job == '\0' || *end != '\0' || id < 1 || id > INT32_MAX) {
      fprintf(stderr,
              "fedc-coordinator: audit: %s is a job queue's store: name a job by its number "
              "(fedc-coordinator jobs lists them), not '%s'\n",
              store, job);
      return FEDC_COORD_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "%s/job-%ld.db", jobs_dir, id);
    if (access(path, F_OK) != 0) {
      fprintf(stderr,
              "fedc-coordinator: audit: job %ld of %s has no store (%s): it never started, "
              "or is not a job of this queue\n",
              id, store, path);
      return FEDC_COORD_EXIT_USAGE;
    }
    snprintf(label, sizeof label, "queued job %ld", id);
    return audit_store(path, NULL, label, dirs, n_dirs);
  }
  DIR *d = opendir(jobs_dir);
  if (d == NULL) {
    fprintf(stderr, "fedc-coordinator: audit: %s: cannot open\n", jobs_dir);
    return FEDC_COORD_EXIT_STORE;
  }
  int32_t *ids = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int code = FEDC_COORD_EXIT_OK;
  while ((e = readdir(d)) != NULL) {
    int id = 0, used = 0;
    if (sscanf(e->d_name, "job-%d.db%n", &id, &used) != 1 || e->d_name[used] != '\0' || id < 1)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      int32_t *grown = fedc_realloc(ids, cap * sizeof *ids);
      if (grown == NULL) {
        code = FEDC_COORD_EXIT_RUNTIME;
        break;
      }
      ids = grown;
    }
    ids[n++] = id;
  }
  closedir(d);
  if (code != FEDC_COORD_EXIT_OK) {
    fedc_free(ids);
    fprintf(stderr, "fedc-coordinator: audit: out of memory\n");
    return code;
  }
  if (n > 0) qsort(ids, n, sizeof *ids, cmp_id);
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/job-%d.db", jobs_dir, (int)ids[i]);
    snprintf(label, sizeof label, "queued job %d", (int)ids[i]);
    int c = audit_store(path, NULL, label, dirs, n_dirs);
    if (c != FEDC_COORD_EXIT_OK) failed++;
    if (c != FEDC_COORD_EXIT_OK && (code == FEDC_COORD_EXIT_OK || c != FEDC_COORD_EXIT_RUNTIME))
      code = c;
  }
  printf("audit: %zu job%s of the queue in %s, %d with findings or errors\n", n,
         n == 1 ? "" : "s", store, failed);
  fedc_free(ids);
  return code;
}

int fedc__audit_main(const fedc_config *cfg, int argc, char **argv) {
  const char *store = cfg->store_path, *job = NULL;
  char **dirs = fedc_calloc((size_t)argc + 1, sizeof *dirs);
  int n_dirs = 0, in_dirs = 0;
  if (dirs == NULL) return FEDC_COORD_EXIT_RUNTIME;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
      store = argv[++i];
      in_dirs = 0;
    } else if (strcmp(argv[i], "--updates") == 0) {
      in_dirs = 1;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: fedc-coordinator audit [--store FILE] [JOB] [--updates DIR...]\n");
      fedc_free(dirs);
      return FEDC_COORD_EXIT_USAGE;
    } else if (in_dirs) {
      dirs[n_dirs++] = argv[i];
    } else {
      job = argv[i];
    }
  }
  /* a queue daemon's store: its jobs' stores are in <store>.jobs/ */
  char jobs_dir[4100];
  struct stat sb;
  snprintf(jobs_dir, sizeof jobs_dir, "%s.jobs", store);
  int code = stat(jobs_dir, &sb) == 0 && S_ISDIR(sb.st_mode)
                 ? audit_queue(store, jobs_dir, job, dirs, n_dirs)
                 : audit_store(store, job, NULL, dirs, n_dirs);
  fedc_free(dirs);
  return code;
}
