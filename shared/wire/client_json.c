/*
 * client_json.c - the client's side of protocol v1's bodies (see
 * client_json.h and docs/protocol.md): the coordinator's answers read with
 * cJSON and checked field by field, so that a hostile or broken
 * coordinator gets a clear FEDC_EFORMAT and never reaches allocation or
 * training with a value out of range; and updates encoded as safetensors
 * with their metadata. Pure functions: no I/O but the keep_updates write.
 */
#include "wire/client_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The built-in model layouts a job may name (ml/model.h has the same names;
 * the wire layer lies below it and only checks the word). */
static const char *const model_types[] = {"logreg", "softmax", "linreg", "mlp", "tensors"};


/* A number member that must be an integer in [lo, hi]. */
static int json_int(const cJSON *obj, const char *where, const char *name, double lo, double hi,
                    int64_t *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsNumber(it))
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" is %s", where, name,
                          it ? "not a number" : "missing");
  double v = it->valuedouble;
  if (!isfinite(v) || v != floor(v) || v < lo || v > hi)
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" = %g: must be an integer in %.0f..%.0f", where,
                          name, v, lo, hi);
  *out = (int64_t)v;
  return 0;
}

/* A number member in [lo, hi] (lo excluded when lo_open); when optional
 * and absent, *out is left alone. */
static int json_num(const cJSON *obj, const char *where, const char *name, double lo, int lo_open,
                    double hi, int hi_open, int optional, double *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (it == NULL && optional) return 0;
  if (!cJSON_IsNumber(it))
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" is %s", where, name,
                          it ? "not a number" : "missing");
  double v = it->valuedouble;
  if (!isfinite(v) || (lo_open ? !(v > lo) : !(v >= lo)) || (hi_open ? !(v < hi) : !(v <= hi)))
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" = %g: must be in %s%g, %g%s", where, name, v,
                          lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
  *out = v;
  return 0;
}

static int json_str(const cJSON *obj, const char *where, const char *name, char *out, size_t size) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsString(it) || it->valuestring == NULL)
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" is %s", where, name,
                          it ? "not a string" : "missing");
  size_t n = strlen(it->valuestring);
  if (n >= size)
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" is longer than %zu bytes", where, name,
                          size - 1);
  memcpy(out, it->valuestring, n + 1);
  return 0;
}

/* A string member meant to hold size - 1 hex digits: one that does not
 * fit is "not N hex digits" (the caller checks the digits themselves). */
static int json_hex(const cJSON *obj, const char *where, const char *name, char *out,
                    size_t size) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (cJSON_IsString(it) && it->valuestring && strlen(it->valuestring) >= size)
    return fedc_error_set(FEDC_EFORMAT, "%s: \"%s\" is not %zu hex digits", where, name,
                          size - 1);
  return json_str(obj, where, name, out, size);
}

static cJSON *parse_object(const char *json, size_t len, const char *where) {
  cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
  if (root == NULL || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    fedc_error_set(FEDC_EFORMAT, "%s: not a JSON object", where);
    return NULL;
  }
  return root;
}

/* The job's seed: a JSON number that is a non-negative integer, or a
 * decimal string. A number above 2^53 arrives rounded to a double (a
 * coordinator that prints its uint64 seed as a number sends it so); the
 * rounded value is taken as it is, the same on every join, which is all
 * the client needs: the seed only names its training stream. */
static int job_seed(const cJSON *job, uint64_t *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(job, "seed");
  if (cJSON_IsString(it) && it->valuestring && it->valuestring[0] >= '0' &&
      it->valuestring[0] <= '9') {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(it->valuestring, &end, 10);
    if (*end == '\0' && errno == 0) {
      *out = (uint64_t)v;
      return 0;
    }
  }
  if (cJSON_IsString(it))
    return fedc_error_set(FEDC_EFORMAT, "join: \"seed\" = \"%.40s\": not an unsigned integer",
                          it->valuestring);
  if (!cJSON_IsNumber(it))
    return fedc_error_set(FEDC_EFORMAT, "join: \"seed\" is %s", it ? "not a number" : "missing");
  double v = it->valuedouble;
  /* 2^64 itself does not fit: the bound is exclusive */
  if (!(v >= 0 && v < 18446744073709551616.0) || v != floor(v))
    return fedc_error_set(FEDC_EFORMAT, "join: \"seed\" = %g: must be an integer in 0..2^64-1", v);
  *out = (uint64_t)v;
  return 0;
}

/*
 * The job's class weighting ("train": {"class_weight": "balanced",
 * "pos_weight": 1}) and evaluation ("eval": {"every": 5, "threshold": 0.5,
 * "select": "auc"}), all optional: a coordinator without them asks for
 * neither (threshold 0.5, weights "none" and 1).
 */
static int job_eval(const cJSON *job, const cJSON *train, fedc_client_job *out) {
  out->eval_threshold = 0.5;
  out->pos_weight = 1.0;
  snprintf(out->class_weight, sizeof out->class_weight, "none");
  int rc = 0;
  if (cJSON_GetObjectItemCaseSensitive(train, "class_weight"))
    rc = json_str(train, "join: train", "class_weight", out->class_weight,
                  sizeof out->class_weight);
  if (rc == 0)
    rc = json_num(train, "join: train", "pos_weight", 0, 1, 1e6, 0, 1, &out->pos_weight);
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(job, "eval");
  if (rc == 0 && ev && !cJSON_IsObject(ev))
    rc = fedc_error_set(FEDC_EFORMAT, "join: job: \"eval\" is not an object");
  if (rc == 0 && ev)
    rc = json_num(ev, "join: eval", "threshold", 0, 1, 1, 1, 1, &out->eval_threshold);
  return rc;
}

/*
 * The join answer: {"client_id": 3, "job": {"id", "rounds", "round",
 * "model": {"type", "inputs", "classes", "hidden"} (type "tensors": a tensor
 * job, whose tensor list the client reads from the job object itself),
 * "train": {"epochs",
 * "batch_size", "lr", "momentum", "prox_mu"}, "seed"}}. Ranges are those of
 * the config keys of the same names.
 */
int fedc_client_job_parse(const char *json, size_t len, fedc_client_job *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = parse_object(json, len, "join");
  if (root == NULL) return FEDC_EFORMAT;
  int64_t v;
  double d;
  int rc = json_int(root, "join", "client_id", 0, 9007199254740992.0, &v);
  if (rc == 0) out->client_id = v;
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
  if (rc == 0 && !cJSON_IsObject(job))
    rc = fedc_error_set(FEDC_EFORMAT, "join: \"job\" is %s", job ? "not an object" : "missing");
  if (rc == 0) rc = json_str(job, "join: job", "id", out->id, sizeof out->id);
  if (rc == 0 && (rc = json_int(job, "join: job", "rounds", 1, 1e6, &v)) == 0)
    out->rounds = (int32_t)v;
  if (rc == 0 && (rc = json_int(job, "join: job", "round", 0, INT32_MAX, &v)) == 0)
    out->round = (int32_t)v;
  if (rc == 0) rc = job_seed(job, &out->seed);
  /* optional: {"strategy": {"name": "scaffold"}}; absent means fedavg */
  snprintf(out->strategy, sizeof out->strategy, "fedavg");
  const cJSON *strategy = job ? cJSON_GetObjectItemCaseSensitive(job, "strategy") : NULL;
  if (rc == 0 && strategy != NULL) {
    if (!cJSON_IsObject(strategy))
      rc = fedc_error_set(FEDC_EFORMAT, "join: job: \"strategy\" is not an object");
    else
      rc = json_str(strategy, "join: strategy", "name", out->strategy, sizeof out->strategy);
  }

  const cJSON *model = job ? cJSON_GetObjectItemCaseSensitive(job, "model") : NULL;
  if (rc == 0 && !cJSON_IsObject(model))
    rc = fedc_error_set(FEDC_EFORMAT, "join: job: \"model\" is %s",
                        model ? "not an object" : "missing");
  char type[32];
  if (rc == 0) rc = json_str(model, "join: model", "type", type, sizeof type);
  /* a tensor job: its tensors are in the job object (the client keeps it) */
  int tensors = rc == 0 && strcmp(type, "tensors") == 0;
  if (tensors) memcpy(out->type, type, strlen(type) + 1);
  if (rc == 0 && !tensors) {
    size_t k = 0;
    while (k < sizeof model_types / sizeof model_types[0] && strcmp(type, model_types[k]) != 0)
      k++;
    if (k == sizeof model_types / sizeof model_types[0])
      rc = fedc_error_set(
          FEDC_EFORMAT, "join: model: \"type\" = \"%s\": not softmax, logreg, linreg, mlp or tensors", type);
    else
      memcpy(out->type, type, strlen(type) + 1);
  }
  if (rc == 0 && !tensors && (rc = json_int(model, "join: model", "inputs", 1, 1e8, &v)) == 0)
    out->inputs = (int32_t)v;
  if (rc == 0 && !tensors && (rc = json_int(model, "join: model", "classes", 0, 1e6, &v)) == 0)
    out->classes = (int32_t)v;
  const cJSON *hidden = model ? cJSON_GetObjectItemCaseSensitive(model, "hidden") : NULL;
  if (rc == 0 && !tensors && hidden != NULL && !cJSON_IsNull(hidden)) {
    if (!cJSON_IsArray(hidden)) {
      rc = fedc_error_set(FEDC_EFORMAT, "join: model: \"hidden\" is not an array");
    } else if (cJSON_GetArraySize(hidden) > FEDC_CLIENT_MAX_HIDDEN) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "join: model: \"hidden\" has %d layers, at most %d are supported",
                          cJSON_GetArraySize(hidden), FEDC_CLIENT_MAX_HIDDEN);
    } else {
      const cJSON *h;
      cJSON_ArrayForEach(h, hidden) {
        double x = cJSON_IsNumber(h) ? h->valuedouble : -1;
        if (!(x >= 1 && x <= 65536 && x == floor(x))) {
          rc = fedc_error_set(FEDC_EFORMAT, "join: model: \"hidden\" sizes must "
                                            "be integers in 1..65536");
          break;
        }
        out->hidden[out->n_hidden++] = (int32_t)x;
      }
    }
  }
  int is_mlp = strcmp(out->type, "mlp") == 0;
  if (rc == 0 && is_mlp && out->n_hidden == 0)
    rc = fedc_error_set(FEDC_EFORMAT, "join: model: an mlp needs \"hidden\" sizes");
  if (rc == 0 && !is_mlp && !tensors && out->n_hidden > 0)
    rc = fedc_error_set(FEDC_EFORMAT, "join: model: a %s model has no hidden layers", type);
  d = 0;
  if (rc == 0 && !tensors && (rc = json_num(model, "join: model", "l1", 0, 0, 1e30, 0, 1, &d)) == 0)
    out->l1 = (float)d;
  d = 0;
  if (rc == 0 && !tensors && (rc = json_num(model, "join: model", "l2", 0, 0, 1e30, 0, 1, &d)) == 0)
    out->l2 = (float)d;

  const cJSON *train = job ? cJSON_GetObjectItemCaseSensitive(job, "train") : NULL;
  if (rc == 0 && !cJSON_IsObject(train))
    rc = fedc_error_set(FEDC_EFORMAT, "join: job: \"train\" is %s",
                        train ? "not an object" : "missing");
  if (rc == 0 && (rc = json_int(train, "join: train", "epochs", 1, 10000, &v)) == 0)
    out->train.epochs = (int32_t)v;
  if (rc == 0 && (rc = json_int(train, "join: train", "batch_size", 1, 1e6, &v)) == 0)
    out->train.batch_size = (int32_t)v;
  /* training takes lr and momentum as floats: they must keep their ranges
   * once rounded (lr = 1e-50 would train with 0, momentum = 0.99999999999
   * with 1; found by tests/fuzz/fuzz_client_json.c) */
  if (rc == 0 && (rc = json_num(train, "join: train", "lr", 0, 1, 100, 0, 0, &d)) == 0) {
    out->train.lr = (float)d;
    if (!(out->train.lr > 0))
      rc = fedc_error_set(FEDC_EFORMAT, "join: train: \"lr\" = %g: must be > 0 as a float", d);
  }
  d = 0;
  if (rc == 0 && (rc = json_num(train, "join: train", "momentum", 0, 0, 1, 1, 1, &d)) == 0) {
    out->train.momentum = (float)d;
    if (!(out->train.momentum < 1))
      rc = fedc_error_set(FEDC_EFORMAT,
                          "join: train: \"momentum\" = %.17g: must be < 1 as a float", d);
  }
  d = 0;
  if (rc == 0 && (rc = json_num(train, "join: train", "prox_mu", 0, 0, 1e30, 0, 1, &d)) == 0)
    out->train.prox_mu = (float)d;
  if (rc == 0) rc = job_eval(job, train, out);
  cJSON_Delete(root);
  if (rc != 0) memset(out, 0, sizeof *out);
  return rc;
}

/*
 * The task answer: {"action": "train", "round": 4, "model_sha256": "...",
 * "deadline_s": 57.2}, {"action": "wait", "round": 4, "retry_after_ms":
 * 1000} or {"action": "finished", "round": 20}. The checksum is kept in
 * lowercase.
 */
int fedc_client_task_parse(const char *json, size_t len, fedc_client_task *out) {
  memset(out, 0, sizeof *out);
  out->deadline_s = -1;
  cJSON *root = parse_object(json, len, "task");
  if (root == NULL) return FEDC_EFORMAT;
  char action[16];
  int64_t round = 0;
  int rc = json_str(root, "task", "action", action, sizeof action);
  if (rc == 0) {
    if (strcmp(action, "train") == 0)
      out->action = FEDC_CLIENT_TASK_TRAIN;
    else if (strcmp(action, "wait") == 0)
      out->action = FEDC_CLIENT_TASK_WAIT;
    else if (strcmp(action, "finished") == 0)
      out->action = FEDC_CLIENT_TASK_FINISHED;
    else if (strcmp(action, "stats") == 0) /* a job with a schema, before round 1 */
      out->action = FEDC_CLIENT_TASK_STATS;
    else if (strcmp(action, "evaluate") == 0)
      out->action = FEDC_CLIENT_TASK_EVALUATE;
    else
      rc = fedc_error_set(FEDC_EFORMAT,
                          "task: \"action\" = \"%s\": not train, evaluate, wait or finished",
                          action);
  }
  /* an evaluate task names its round and model as a train task does */
  int train = rc == 0 && (out->action == FEDC_CLIENT_TASK_TRAIN ||
                          out->action == FEDC_CLIENT_TASK_EVALUATE);
  /* a round is the point of a train task; wait and finished name one too,
   * but the client only logs it */
  if (rc == 0 && (train || cJSON_GetObjectItemCaseSensitive(root, "round")))
    rc = json_int(root, "task", "round", train ? 1 : 0, INT32_MAX, &round);
  out->round = (int32_t)round;
  if (rc == 0 && train) {
    rc = json_hex(root, "task", "model_sha256", out->model_sha256, sizeof out->model_sha256);
    size_t n = rc == 0 ? strlen(out->model_sha256) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      char ch = out->model_sha256[i];
      if (ch >= 'A' && ch <= 'F')
        out->model_sha256[i] = (char)(ch - 'A' + 'a');
      else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
        n = 0;
    }
    if (rc == 0 && n != FEDC_CLIENT_SHA_HEX)
      rc = fedc_error_set(FEDC_EFORMAT, "task: \"model_sha256\" is not %d hex digits",
                          FEDC_CLIENT_SHA_HEX);
    if (rc == 0) rc = json_num(root, "task", "deadline_s", -1e9, 0, 1e9, 0, 1, &out->deadline_s);
  }
  /* a train task's round, or a stats task's statistics session, under
   * secure aggregation */
  if (rc == 0 && (train || out->action == FEDC_CLIENT_TASK_STATS)) {
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "secagg");
    if (sa && !cJSON_IsBool(sa))
      rc = fedc_error_set(FEDC_EFORMAT, "task: \"secagg\" is not true or false");
    out->secagg = rc == 0 && cJSON_IsTrue(sa);
  }
  if (rc == 0 && out->action == FEDC_CLIENT_TASK_WAIT) {
    double ms = 0;
    rc = json_num(root, "task", "retry_after_ms", 0, 0, 1e9, 0, 1, &ms);
    out->retry_after_s = ms / 1000.0;
  }
  cJSON_Delete(root);
  if (rc != 0) {
    memset(out, 0, sizeof *out);
    out->deadline_s = -1;
  }
  return rc;
}

/* {"accepted": true, "round": 4, "duplicate": false}; round and duplicate
 * may be absent. */
int fedc_client_ack_parse(const char *json, size_t len, fedc_client_ack *out) {
  memset(out, 0, sizeof *out);
  cJSON *root = parse_object(json, len, "update");
  if (root == NULL) return FEDC_EFORMAT;
  int rc = 0;
  const cJSON *acc = cJSON_GetObjectItemCaseSensitive(root, "accepted");
  const cJSON *dup = cJSON_GetObjectItemCaseSensitive(root, "duplicate");
  if (!cJSON_IsBool(acc))
    rc = fedc_error_set(FEDC_EFORMAT, "update: \"accepted\" is %s",
                        acc ? "not a boolean" : "missing");
  else if (dup != NULL && !cJSON_IsBool(dup))
    rc = fedc_error_set(FEDC_EFORMAT, "update: \"duplicate\" is not a boolean");
  int64_t round = 0;
  if (rc == 0 && cJSON_GetObjectItemCaseSensitive(root, "round"))
    rc = json_int(root, "update", "round", 0, INT32_MAX, &round);
  if (rc == 0) {
    out->accepted = cJSON_IsTrue(acc);
    out->duplicate = dup != NULL && cJSON_IsTrue(dup);
    out->round = (int32_t)round;
  }
  cJSON_Delete(root);
  return rc;
}

void fedc_client_error_parse(const char *json, size_t len, char *code, size_t code_size, char *msg,
                             size_t msg_size) {
  if (code_size) code[0] = '\0';
  if (msg_size) msg[0] = '\0';
  cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
  if (cJSON_IsObject(root)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (cJSON_IsString(e) && e->valuestring && code_size)
      snprintf(code, code_size, "%s", e->valuestring);
    if (cJSON_IsString(m) && m->valuestring && msg_size)
      snprintf(msg, msg_size, "%s", m->valuestring);
  }
  cJSON_Delete(root);
}


/* ---- updates ----------------------------------------------------------------- */

/* The metadata of an update, written into the caller's buffers. */
static int update_meta(int32_t round, int64_t num_samples, double train_loss, char r[16],
                       char n[24], char l[40], fedc_st_meta meta[3]) {
  if (num_samples < 1 || round < 0 || !isfinite(train_loss))
    return fedc_error_set(FEDC_EINVAL, "update: round %d, num_samples %lld, train_loss %g: invalid",
                          (int)round, (long long)num_samples, train_loss);
  snprintf(r, 16, "%d", (int)round);
  snprintf(n, 24, "%lld", (long long)num_samples);
  snprintf(l, 40, "%.9g", train_loss);
  meta[0] = (fedc_st_meta){"round", r};
  meta[1] = (fedc_st_meta){"num_samples", n};
  meta[2] = (fedc_st_meta){"train_loss", l};
  return 0;
}

int fedc_client_update_encode_tensors(const fedc_st_tensor *t, size_t n, int32_t round,
                                      int64_t num_samples, double train_loss, uint8_t **out,
                                      size_t *out_len) {
  char r[16], ns[24], l[40];
  fedc_st_meta meta[3];
  *out = NULL;
  *out_len = 0;
  int rc = update_meta(round, num_samples, train_loss, r, ns, l, meta);
  if (rc != 0) return rc;
  return fedc_st_encode(t, n, meta, 3, out, out_len);
}

int fedc_client_update_write_tensors(const char *path, const fedc_st_tensor *t, size_t n,
                                     int32_t round, int64_t num_samples, double train_loss) {
  char r[16], ns[24], l[40];
  fedc_st_meta meta[3];
  int rc = update_meta(round, num_samples, train_loss, r, ns, l, meta);
  if (rc != 0) return rc;
  return fedc_st_write_file(path, t, n, meta, 3);
}
