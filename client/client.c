/*
 * client.c - the edge client's task loop (see client.h and docs/client.md).
 *
 * A run joins the coordinator (POST /v1/join), checks that the job's model
 * fits the local data, then long-polls GET /v1/task. A "train" task makes
 * it download the round's global model, check its checksum against the
 * task's, optionally evaluate it on the local test set, train it on every
 * local row with the job's hyper-parameters, and post the weights back
 * (POST /v1/update), keeping a copy when [client] keep_updates is set.
 * "wait" polls again; "finished" ends the run with success.
 *
 * Every exchange goes through call(), which rides out a coordinator that
 * is away (network errors, 5xx) with full-jitter exponential backoff until
 * [client] give_up_s passes without any answer. What the coordinator says
 * (4xx) is handled by the step that asked: 403 forbidden ends the run
 * (this client is not allowed), a stale or refused update is logged and
 * the client polls again. Training is seeded from the job's seed, the round
 * and the client's certificate fingerprint, so the same job gives the same
 * updates, bit for bit.
 */
#include "client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <mbedtls/pem.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "ml/backend.h"
#include "base/error.h"
#include "http_curl.h"
#include "base/log.h"
#include "wire/safetensors.h"
#include "secagg_client.h"
#include "base/version.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define client_sha256(buf, len, out) mbedtls_sha256((buf), (len), (out), 0)
#else
#define client_sha256(buf, len, out) mbedtls_sha256_ret((buf), (len), (out), 0)
#endif

/* the stream tag of local training: "client" */
#define CLIENT_TAG 0x636c69656e74ULL
#define BACKOFF_BASE_S 0.2
#define CONNECT_TIMEOUT_S 10.0
#define JOIN_TIMEOUT_S 60.0
#define POLL_MARGIN_S 30.0       /* a long-poll's timeout past its wait */
#define TRANSFER_TIMEOUT_S 600.0 /* model download, update upload */
#define JSON_MAX ((size_t)1 << 20)
#define MODEL_MAX ((size_t)2 << 30)
#define MAX_PARAMS ((size_t)1 << 28) /* 1 GiB of float32 */
#define EVAL_BATCH 512
#define WAIT_MAX_S 60.0 /* longest "retry_after" honoured */

/* ---- backoff ------------------------------------------------------------- */

/*
 * Full jitter, as in Marc Brooker's "Exponential Backoff And Jitter" (AWS
 * Architecture Blog, 2015): sleep = uniform(0, min(cap, base * 2^attempt)).
 * Of the schemes compared there it spreads a crowd of clients best, so that
 * a coordinator coming back after a restart is not hit by all of them at
 * the same instant, and does the least total work.
 */
void fedc_client_backoff_init(fedc_client_backoff *b, double base_s, double max_s, uint64_t seed) {
  b->base_s = base_s;
  b->max_s = max_s;
  b->attempt = 0;
  fedc_rng_seed(&b->rng, seed);
}

double fedc_client_backoff_cap(const fedc_client_backoff *b) {
  /* ldexp saturates to inf for huge attempts, which min() then caps */
  double cap = ldexp(b->base_s, b->attempt);
  return cap < b->max_s ? cap : b->max_s;
}

double fedc_client_backoff_next(fedc_client_backoff *b) {
  double d = fedc_rng_uniform(&b->rng) * fedc_client_backoff_cap(b);
  if (b->attempt < 1024) b->attempt++;
  return d;
}

void fedc_client_backoff_reset(fedc_client_backoff *b) {
  b->attempt = 0;
}

/* ---- reading the coordinator's JSON ------------------------------------- */

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
 * The join answer: {"client_id": 3, "job": {"id", "rounds", "round",
 * "model": {"type", "inputs", "classes", "hidden"}, "train": {"epochs",
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

  const cJSON *model = job ? cJSON_GetObjectItemCaseSensitive(job, "model") : NULL;
  if (rc == 0 && !cJSON_IsObject(model))
    rc = fedc_error_set(FEDC_EFORMAT, "join: job: \"model\" is %s",
                        model ? "not an object" : "missing");
  char type[32];
  if (rc == 0) rc = json_str(model, "join: model", "type", type, sizeof type);
  if (rc == 0) {
    int t = fedc_model_type_parse(type);
    if (t < 0)
      rc = fedc_error_set(
          FEDC_EFORMAT, "join: model: \"type\" = \"%s\": not softmax, logreg, linreg or mlp", type);
    else
      out->type = (fedc_model_type)t;
  }
  if (rc == 0 && (rc = json_int(model, "join: model", "inputs", 1, 1e8, &v)) == 0)
    out->inputs = (int32_t)v;
  if (rc == 0 && (rc = json_int(model, "join: model", "classes", 0, 1e6, &v)) == 0)
    out->classes = (int32_t)v;
  const cJSON *hidden = model ? cJSON_GetObjectItemCaseSensitive(model, "hidden") : NULL;
  if (rc == 0 && hidden != NULL && !cJSON_IsNull(hidden)) {
    if (!cJSON_IsArray(hidden)) {
      rc = fedc_error_set(FEDC_EFORMAT, "join: model: \"hidden\" is not an array");
    } else if (cJSON_GetArraySize(hidden) > FEDC_CONFIG_MAX_HIDDEN) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "join: model: \"hidden\" has %d layers, at most %d are supported",
                          cJSON_GetArraySize(hidden), FEDC_CONFIG_MAX_HIDDEN);
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
  if (rc == 0 && out->type == FEDC_MODEL_MLP && out->n_hidden == 0)
    rc = fedc_error_set(FEDC_EFORMAT, "join: model: an mlp needs \"hidden\" sizes");
  if (rc == 0 && out->type != FEDC_MODEL_MLP && out->n_hidden > 0)
    rc = fedc_error_set(FEDC_EFORMAT, "join: model: a %s model has no hidden layers", type);
  d = 0;
  if (rc == 0 && (rc = json_num(model, "join: model", "l1", 0, 0, 1e30, 0, 1, &d)) == 0)
    out->l1 = (float)d;
  d = 0;
  if (rc == 0 && (rc = json_num(model, "join: model", "l2", 0, 0, 1e30, 0, 1, &d)) == 0)
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
    else
      rc = fedc_error_set(FEDC_EFORMAT, "task: \"action\" = \"%s\": not train, wait or finished",
                          action);
  }
  int train = rc == 0 && out->action == FEDC_CLIENT_TASK_TRAIN;
  /* a round is the point of a train task; wait and finished name one too,
   * but the client only logs it */
  if (rc == 0 && (train || cJSON_GetObjectItemCaseSensitive(root, "round")))
    rc = json_int(root, "task", "round", train ? 1 : 0, INT32_MAX, &round);
  out->round = (int32_t)round;
  if (rc == 0 && train) {
    rc = json_str(root, "task", "model_sha256", out->model_sha256, sizeof out->model_sha256);
    if (rc == FEDC_EFORMAT && strstr(fedc_error_msg(), "longer"))
      rc = fedc_error_set(FEDC_EFORMAT, "task: \"model_sha256\" is not %d hex digits",
                          FEDC_CLIENT_SHA_HEX);
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
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "secagg");
    if (rc == 0 && sa && !cJSON_IsBool(sa))
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

/* ---- the job's model against the local data ------------------------------ */

static int check_labels(const fedc_client_job *job, const fedc_dataset *ds, const char *key) {
  const char *type = fedc_model_type_name(job->type);
  if (job->type == FEDC_MODEL_SOFTMAX || job->type == FEDC_MODEL_MLP) {
    if (ds->n_classes == 0)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s: the labels are not class indices "
                            "0..K-1, but the job's %s model classifies into %d classes",
                            key, type, (int)job->classes);
    if (ds->n_classes > job->classes)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s has label %d, but the job's %s model "
                            "has %d classes (labels 0..%d)",
                            key, (int)ds->n_classes - 1, type, (int)job->classes,
                            (int)job->classes - 1);
  } else if (job->type == FEDC_MODEL_LOGREG) {
    if (ds->n_classes == 0 || ds->n_classes > 2)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s: the job's logreg model needs labels 0 "
                            "and 1, but the data has %s%d",
                            key, ds->n_classes ? "label " : "labels that are not class indices",
                            ds->n_classes ? (int)ds->n_classes - 1 : 0);
  }
  return 0;
}

int fedc_client_check_fit(const fedc_client_job *job, const fedc_dataset *train,
                          const fedc_dataset *test, fedc_model_spec *spec) {
  memset(spec, 0, sizeof *spec);
  const char *type = fedc_model_type_name(job->type);
  int multi = job->type == FEDC_MODEL_SOFTMAX || job->type == FEDC_MODEL_MLP;
  if (multi && job->classes < 2)
    return fedc_error_set(FEDC_ERANGE, "the job's %s model has %d classes; it needs at least 2",
                          type, (int)job->classes);
  if (!multi && job->classes > 2)
    return fedc_error_set(FEDC_ERANGE, "the job's %s model has one output but names %d classes",
                          type, (int)job->classes);
  if (train->d != job->inputs)
    return fedc_error_set(FEDC_ESHAPE,
                          "[data] train has %lld features per row, but the "
                          "job's %s model takes %d inputs",
                          (long long)train->d, type, (int)job->inputs);
  int rc = check_labels(job, train, "train");
  if (rc == 0 && test != NULL && test->n > 0) {
    if (test->d != job->inputs)
      return fedc_error_set(FEDC_ESHAPE,
                            "[data] test has %lld features per row, but the "
                            "job's %s model takes %d inputs",
                            (long long)test->d, type, (int)job->inputs);
    rc = check_labels(job, test, "test");
  }
  if (rc != 0) return rc;
  spec->type = job->type;
  spec->n_in = job->inputs;
  spec->n_out = multi ? job->classes : 1;
  spec->n_hidden = job->n_hidden;
  memcpy(spec->hidden, job->hidden, sizeof spec->hidden);
  spec->l1 = job->l1;
  spec->l2 = job->l2;
  /* bound the parameter count before anything is allocated for it: the
   * widths multiply, and a job is what a remote party says */
  double params = 0;
  int32_t in = spec->n_in;
  for (int32_t l = 0; l <= spec->n_hidden; l++) {
    int32_t o = l < spec->n_hidden ? spec->hidden[l] : spec->n_out;
    params += (double)in * o + o;
    in = o;
  }
  if (params > (double)MAX_PARAMS)
    return fedc_error_set(FEDC_ERANGE,
                          "the job's %s model has %.0f parameters, "
                          "more than this client takes (%zu)",
                          type, params, MAX_PARAMS);
  return 0;
}

void fedc_client_train_params(const fedc_client_job *job, fedc_train_params *p) {
  *p = job->train;
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

int fedc_client_update_encode(const fedc_model_spec *spec, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len) {
  char r[16], n[24], l[40];
  fedc_st_meta meta[3];
  *out = NULL;
  *out_len = 0;
  int rc = update_meta(round, num_samples, train_loss, r, n, l, meta);
  if (rc != 0) return rc;
  fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
  size_t nt = fedc_model_tensors(spec, w, t, 2 * FEDC_MODEL_MAX_LAYERS);
  return fedc_st_encode(t, nt, meta, 3, out, out_len);
}

int fedc_client_update_write(const char *path, const fedc_model_spec *spec, const float *w,
                             int32_t round, int64_t num_samples, double train_loss) {
  char r[16], n[24], l[40];
  fedc_st_meta meta[3];
  int rc = update_meta(round, num_samples, train_loss, r, n, l, meta);
  if (rc != 0) return rc;
  fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
  size_t nt = fedc_model_tensors(spec, w, t, 2 * FEDC_MODEL_MAX_LAYERS);
  return fedc_st_write_file(path, t, nt, meta, 3);
}

/* ---- the certificate's fingerprint ------------------------------------------- */

/* Reads a whole small text file into a NUL-terminated fedc_malloc buffer. */
static int read_text(const char *path, size_t max, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = fedc_malloc(max + 1);
  if (buf == NULL) {
    fclose(f);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  size_t n = fread(buf, 1, max + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fedc_free(buf);
    return fedc_error_set(FEDC_EIO, "%s: cannot read", path);
  }
  if (n > max) {
    fedc_free(buf);
    return fedc_error_set(FEDC_EFORMAT, "%s: larger than %zu bytes", path, max);
  }
  buf[n] = '\0';
  *out = buf;
  return 0;
}

int fedc_client_cert_fingerprint(const char *pem_path, char hex[FEDC_CLIENT_SHA_HEX + 1]) {
  hex[0] = '\0';
  char *text;
  int rc = read_text(pem_path, 1u << 20, &text);
  if (rc != 0) return rc;
  mbedtls_pem_context pem;
  mbedtls_pem_init(&pem);
  size_t used = 0;
  int mrc =
      mbedtls_pem_read_buffer(&pem, "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----",
                              (const unsigned char *)text, NULL, 0, &used);
  fedc_free(text);
  if (mrc != 0 || pem.buflen == 0) {
    mbedtls_pem_free(&pem);
    return fedc_error_set(FEDC_EFORMAT, "%s: no PEM certificate in it (mbedTLS error -0x%04x)",
                          pem_path, (unsigned)-mrc);
  }
  unsigned char digest[32];
  client_sha256(pem.buf, pem.buflen, digest);
  mbedtls_pem_free(&pem);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  hex[FEDC_CLIENT_SHA_HEX] = '\0';
  return 0;
}

/* ---- the client ----------------------------------------------------------------- */

struct fedc_client {
  fedc_config cfg;
  fedc_dataset train, test;
  char fingerprint[FEDC_CLIENT_SHA_HEX + 1];
  uint64_t fp64; /* the fingerprint's first 64 bits: names the rng stream */
  fedc_backend *be;
  fedc_data_view train_view, test_view;
  int views_open; /* 1: the train view is open, 2: the test view too */
  int64_t *rows;  /* 0..train.n-1: every local row trains */
  fedc_http_client *http;
  fedc_client_backoff backoff; /* retries of one request */
  fedc_client_backoff pause;   /* re-asking after answers it cannot use */
  volatile sig_atomic_t stop;

  /* from the last join */
  int joined;
  fedc_client_job job;
  fedc_model_spec spec;
  size_t n_params;
  fedc_trainer *trainer, *evaluator;
  float *w;
  float *g; /* a secure round's start model (the delta is w - g) */

  /* the last update made, resent as is when the same task comes again
   * (a coordinator that restarted asks for its round's updates again) */
  uint8_t *update;
  size_t update_len;
  int32_t update_round;
  char update_sha[FEDC_CLIENT_SHA_HEX + 1];
  int update_refused; /* refused for good (4xx other than 409): never resent */
  double update_loss;

  double last_contact; /* monotonic time of the last answer */
  fedc_client_exit outcome;
  int waiting;      /* the last poll said "wait" (log it once) */
  int32_t selected; /* the last round "selected" was logged for */
  char last_err[512];
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *fedc_client_fingerprint(const fedc_client *c) {
  return c->fingerprint;
}

void fedc_client_stop(fedc_client *c) {
  c->stop = 1;
}

static void model_free(fedc_client *c) {
  fedc_trainer_free(c->trainer);
  fedc_trainer_free(c->evaluator);
  fedc_free(c->w);
  fedc_free(c->g);
  c->trainer = c->evaluator = NULL;
  c->w = NULL;
  c->g = NULL;
}

void fedc_client_free(fedc_client *c) {
  if (c == NULL) return;
  model_free(c);
  if (c->views_open > 0) fedc_data_view_close(c->be, &c->train_view);
  if (c->views_open > 1) fedc_data_view_close(c->be, &c->test_view);
  fedc_backend_close(c->be);
  fedc_http_client_free(c->http);
  fedc_dataset_free(&c->train);
  fedc_dataset_free(&c->test);
  fedc_free(c->rows);
  fedc_free(c->update);
  fedc_free(c);
}

/* "file:line: [section] key = value: " for messages about a config value. */
static const char *where(const fedc_client *c, const char *section, const char *key,
                         const char *value, char *buf, size_t n) {
  const char *o = fedc_config_origin(&c->cfg, section, key);
  snprintf(buf, n, "%s: [%s] %s = %s", o ? o : "?", section, key, value);
  return buf;
}

static int check_readable(const fedc_client *c, const char *key, const char *path) {
  if (access(path, R_OK) == 0) return 0;
  char w[FEDC_CONFIG_PATH_MAX + 128];
  return fedc_error_set(FEDC_ECONFIG, "%s: cannot read: %s",
                        where(c, "tls", key, path, w, sizeof w), strerror(errno));
}

static int load_set(const fedc_config *cfg, const char *x, const char *y, const char *key,
                    fedc_dataset *out) {
  int rc =
      cfg->format == FEDC_FORMAT_IDX ? fedc_load_idx(x, y, out) : fedc_load_csv(x, cfg->label, out);
  if (rc != 0) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[data] %s: %s", key, msg);
  }
  return 0;
}

/* [data] train, and test when set; standardized on train's statistics when
 * [data] standardize is on. */
static int load_data(fedc_client *c) {
  const fedc_config *cfg = &c->cfg;
  int rc = load_set(cfg, cfg->train, cfg->train_labels, "train", &c->train);
  if (rc == 0 && cfg->test[0] != '\0')
    rc = load_set(cfg, cfg->test, cfg->test_labels, "test", &c->test);
  if (rc == 0 && c->test.n > 0 && c->test.d != c->train.d)
    rc = fedc_error_set(FEDC_EFORMAT, "[data] train has %lld features but test has %lld",
                        (long long)c->train.d, (long long)c->test.d);
  if (rc == 0 && cfg->standardize)
    rc = fedc_dataset_standardize(&c->train, c->test.n > 0 ? &c->test : NULL);
  return rc;
}

/* Creates keep_updates (one level) when it is missing. */
static int keep_dir(const fedc_client *c) {
  const char *d = c->cfg.client_keep_updates;
  if (d[0] == '\0') return 0;
  struct stat st;
  if (stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(d, W_OK) == 0) return 0;
  if (mkdir(d, 0755) == 0) return 0;
  char w[FEDC_CONFIG_PATH_MAX + 128];
  return fedc_error_set(FEDC_ECONFIG, "%s: not a writable folder: %s",
                        where(c, "client", "keep_updates", d, w, sizeof w), strerror(errno));
}

int fedc_client_new(const fedc_config *cfg, fedc_client **out) {
  *out = NULL;
  int rc = fedc_config_check_role(cfg, FEDC_ROLE_CLIENT);
  if (rc != 0) return rc;
  fedc_client *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  c->cfg = *cfg;
  c->outcome = FEDC_CLIENT_EXIT_FAILED;
  char w[FEDC_CONFIG_PATH_MAX + 128];
  rc = check_readable(c, "ca", cfg->tls_ca);
  if (rc == 0) rc = check_readable(c, "cert", cfg->tls_cert);
  if (rc == 0) rc = check_readable(c, "key", cfg->tls_key);
  if (rc == 0) {
    rc = fedc_client_cert_fingerprint(cfg->tls_cert, c->fingerprint);
    if (rc != 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_ECONFIG, "%s: %s",
                          where(c, "tls", "cert", cfg->tls_cert, w, sizeof w), msg);
    }
  }
  if (rc == 0) {
    for (int i = 0; i < 16; i++) {
      char ch = c->fingerprint[i];
      c->fp64 = (c->fp64 << 4) | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
  }
  if (rc == 0) {
    fedc_http_client_opts ho = {.base_url = cfg->server_url,
                                .ca_path = cfg->tls_ca,
                                .cert_path = cfg->tls_cert,
                                .key_path = cfg->tls_key,
                                .user_agent = "fedc-client/" FEDC_VERSION,
                                .cancel = &c->stop};
    rc = fedc_http_client_new(&ho, &c->http);
    if (rc == FEDC_EINVAL)
      rc = fedc_error_set(FEDC_ECONFIG,
                          "%s: must be an https:// URL (plain "
                          "HTTP is not supported)",
                          where(c, "server", "url", cfg->server_url, w, sizeof w));
  }
  if (rc == 0) rc = keep_dir(c);
  if (rc == 0) rc = load_data(c);
  if (rc == 0 && (c->rows = fedc_malloc_array((size_t)c->train.n, sizeof *c->rows)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  for (int64_t i = 0; rc == 0 && i < c->train.n; i++)
    c->rows[i] = i;
  if (rc == 0) rc = fedc_backend_open(cfg->device, &c->be);
  /* [train] threads bounds the BLAS threads of local training: an edge
   * machine usually has other work to do than this client */
  if (rc == 0 && cfg->device == FEDC_DEVICE_CPU) fedc_backend_cpu_set_blas_threads(cfg->threads);
  if (rc == 0) {
    rc = fedc_data_view_open(c->be, c->train.x, c->train.y, c->train.n, c->train.d, &c->train_view);
    c->views_open = rc == 0;
    if (rc == 0 && c->test.n > 0) {
      rc = fedc_data_view_open(c->be, c->test.x, c->test.y, c->test.n, c->test.d, &c->test_view);
      c->views_open += rc == 0;
    }
  }
  if (rc != 0) {
    fedc_client_free(c);
    return rc;
  }
  /* jitter is meant to differ between clients and between runs; it never
   * touches the training, which stays reproducible */
  uint64_t jseed = c->fp64 ^ (uint64_t)getpid() ^ (uint64_t)(now_s() * 1e9);
  fedc_client_backoff_init(&c->backoff, BACKOFF_BASE_S, cfg->client_backoff_max_s, jseed);
  fedc_client_backoff_init(&c->pause, BACKOFF_BASE_S, cfg->client_backoff_max_s, ~jseed);
  *out = c;
  return 0;
}

/* ---- logging helpers ------------------------------------------------------------- */

/* s as a log value: double-quoted, with quotes, backslashes and control
 * characters escaped, cut to fit n. */
static const char *q(char *buf, size_t n, const char *s) {
  size_t k = 0;
  buf[k++] = '"';
  for (; *s && k + 6 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      buf[k++] = '\\';
      buf[k++] = (char)ch;
    } else if (ch < 0x20) {
      k += (size_t)snprintf(buf + k, n - k, "\\x%02x", ch);
    } else {
      buf[k++] = (char)ch;
    }
  }
  buf[k++] = '"';
  buf[k] = '\0';
  return buf;
}

/* Sleeps s seconds in short slices so that a stop request is seen at once.
 * Returns -1 when stopped. */
static int nap(fedc_client *c, double s) {
  double end = now_s() + s;
  while (!c->stop) {
    double left = end - now_s();
    if (left <= 0) return 0;
    if (left > 0.1) left = 0.1;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(left * 1e9)};
    nanosleep(&ts, NULL);
  }
  return -1;
}

enum { CALL_END = -1 };

/* Ends the run with an outcome; the message is kept in fedc_error_msg. */
static int end_run(fedc_client *c, fedc_client_exit e, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int end_run(fedc_client *c, fedc_client_exit e, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fedc_error_setv(err, fmt, ap);
  va_end(ap);
  c->outcome = e;
  return CALL_END;
}

static int interrupted(fedc_client *c) {
  return end_run(c, FEDC_CLIENT_EXIT_INTERRUPTED, FEDC_ESTATE, "interrupted by a signal");
}

/* ---- one exchange, retried ------------------------------------------------------- */

typedef struct request {
  const char *what; /* for logs: join, task, model, update */
  const char *path;
  const char *ctype; /* POST only */
  const void *body;  /* NULL: GET */
  size_t len;
  double timeout_s;
  size_t max_response;
} request;

/*
 * Sends a request until the coordinator answers with a status below 500.
 * Network errors and 5xx answers are retried after a full-jitter backoff
 * delay (at least the answer's Retry-After, at most backoff_max_s), until
 * give_up_s has passed since the last answer of any kind; then the run
 * ends with FEDC_CLIENT_EXIT_GAVE_UP. Failures that no retry can mend end
 * it at once: the coordinator's certificate fails verification, or the TLS
 * layer refuses ours (exit 3), our own TLS files or URL are unusable (2).
 * Returns 0 with *resp holding the answer (the caller frees it), or
 * CALL_END with c->outcome set.
 */
static int call(fedc_client *c, const request *r, fedc_http_response *resp) {
  const fedc_config *cfg = &c->cfg;
  double give_up = cfg->client_give_up_s;
  for (;;) {
    if (c->stop) return interrupted(c);
    fedc_http_call hc = {.timeout_s = r->timeout_s,
                         .connect_timeout_s = CONNECT_TIMEOUT_S,
                         .max_response = r->max_response};
    if (give_up > 0) {
      /* an attempt should not run far past the give-up point */
      double left = c->last_contact + give_up - now_s();
      if (left < 1) left = 1;
      if (left < hc.connect_timeout_s) hc.connect_timeout_s = left;
    }
    int rc = r->body ? fedc_http_post(c->http, r->path, r->ctype, r->body, r->len, &hc, resp)
                     : fedc_http_get(c->http, r->path, &hc, resp);
    if (rc == 0 && resp->status < 500) {
      c->last_contact = now_s();
      return 0;
    }
    char v[600];
    if (rc != 0) {
      snprintf(c->last_err, sizeof c->last_err, "%s", fedc_error_msg());
      switch (resp->fail) {
      case FEDC_HTTP_FAIL_CANCELLED:
        fedc_http_response_free(resp);
        if (c->stop) return interrupted(c);
        break;
      case FEDC_HTTP_FAIL_TLS_VERIFY:
        if (strstr(c->last_err, "subject name") || strstr(c->last_err, "does not match"))
          return end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                         "the coordinator's certificate does not name the "
                         "host in [server] url (%s): %s",
                         cfg->server_url, c->last_err);
        return end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                       "the coordinator's certificate is not signed by [tls] ca (%s): %s",
                       cfg->tls_ca, c->last_err);
      case FEDC_HTTP_FAIL_TLS_REFUSED:
        return end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                       "the coordinator refused this client's certificate "
                       "(%s, fingerprint %s) in the TLS handshake; is it "
                       "signed by the job's CA? %s",
                       cfg->tls_cert, c->fingerprint, c->last_err);
      case FEDC_HTTP_FAIL_LOCAL:
        if (rc == FEDC_ENOMEM) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", c->last_err);
        return end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, rc,
                       "%s (check [tls] ca, cert and key, and [server] url)", c->last_err);
      case FEDC_HTTP_FAIL_TOOBIG:
        return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", c->last_err);
      default:
        break;
      }
    } else {
      char code[64], msg[256];
      fedc_client_error_parse((const char *)resp->body, resp->len, code, sizeof code, msg,
                              sizeof msg);
      snprintf(c->last_err, sizeof c->last_err, "%s %s: HTTP %ld %s: %s", r->body ? "POST" : "GET",
               r->path, resp->status, code[0] ? code : "-", msg);
      double ra = resp->retry_after_s;
      fedc_http_response_free(resp);
      resp->retry_after_s = ra;
    }
    double now = now_s();
    if (give_up > 0 && now - c->last_contact >= give_up)
      return end_run(c, FEDC_CLIENT_EXIT_GAVE_UP, FEDC_EIO,
                     "gave up: no answer from the coordinator at %s for "
                     "%.0f s ([client] give_up_s); last error: %s",
                     cfg->server_url, now - c->last_contact, c->last_err);
    int attempt = (int)c->backoff.attempt + 1;
    double delay = fedc_client_backoff_next(&c->backoff);
    if (resp->retry_after_s > delay)
      delay = resp->retry_after_s < cfg->client_backoff_max_s ? resp->retry_after_s
                                                              : cfg->client_backoff_max_s;
    if (give_up > 0 && delay > c->last_contact + give_up - now)
      delay = c->last_contact + give_up - now;
    if (delay < 0) delay = 0;
    fedc_log_warn("msg=\"coordinator unavailable, retrying\" request=%s "
                  "attempt=%d delay_s=%.2f error=%s",
                  r->what, attempt, delay, q(v, sizeof v, c->last_err));
    if (nap(c, delay) != 0) return interrupted(c);
  }
}

/* A 4xx answer's error code and message, for logs. */
static void log_refusal(const char *what, const fedc_http_response *resp, fedc_log_level level,
                        const char *event, int32_t round) {
  char code[64], msg[256], qc[80], qm[300];
  fedc_client_error_parse((const char *)resp->body, resp->len, code, sizeof code, msg, sizeof msg);
  fedc_log(level, "msg=\"%s\" request=%s round=%d status=%ld error=%s message=%s", event, what,
           (int)round, resp->status, q(qc, sizeof qc, code), q(qm, sizeof qm, msg));
}

/* 403: not_selected lets the run go on (returns 0); anything else means
 * this client is not allowed, which ends the run with exit code 3. */
static int forbidden(fedc_client *c, const char *what, const fedc_http_response *resp,
                     int32_t round) {
  char code[64], msg[256];
  fedc_client_error_parse((const char *)resp->body, resp->len, code, sizeof code, msg, sizeof msg);
  if (strcmp(code, "not_selected") == 0) {
    log_refusal(what, resp, FEDC_LOG_WARN, "not selected for this round", round);
    return 0;
  }
  return end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                 "the coordinator refused this client on %s (HTTP 403 %s: %s); "
                 "its certificate fingerprint is %s: is it on the allow list "
                 "(fedc-coordinator allow), and not revoked?",
                 what, code[0] ? code : "forbidden", msg, c->fingerprint);
}

/* After an answer that the client cannot use (a 4xx, a malformed body, a
 * task for an update already refused): wait before asking again, longer
 * each time until something works, so that a confused coordinator is not
 * asked in a tight loop. This schedule is its own: a successful poll resets
 * the request backoff, but not this one. */
static int pause_after_refusal(fedc_client *c) {
  if (nap(c, fedc_client_backoff_next(&c->pause)) != 0) return interrupted(c);
  return 0;
}

/* ---- join ---------------------------------------------------------------------- */

/* (Re)builds the model buffers for the job's spec. */
static int model_setup(fedc_client *c) {
  model_free(c);
  c->n_params = fedc_model_n_params(&c->spec);
  int32_t batch = c->job.train.batch_size;
  /* a batch larger than the local data is all of it: same steps, and no
   * buffers sized for rows that do not exist */
  if (batch > c->train.n) batch = (int32_t)c->train.n;
  int rc = fedc_trainer_new(c->be, &c->spec, batch, &c->trainer);
  if (rc == 0 && c->test.n > 0) rc = fedc_trainer_new(c->be, &c->spec, EVAL_BATCH, &c->evaluator);
  if (rc == 0 && (c->w = fedc_malloc_array(c->n_params, sizeof(float))) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  return rc;
}

static int join(fedc_client *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL ||
      (c->cfg.client_name[0] && cJSON_AddStringToObject(o, "name", c->cfg.client_name) == NULL)) {
    cJSON_Delete(o);
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
  }
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (body == NULL) return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
  request r = {.what = "join",
               .path = "/v1/join",
               .ctype = "application/json",
               .body = body,
               .len = strlen(body),
               .timeout_s = JOIN_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  cJSON_free(body);
  if (rc != 0) return rc;
  if (resp.status == 403) {
    rc = forbidden(c, "join", &resp, 0);
    if (rc == 0)
      rc = end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                   "the coordinator refused to let this client join");
    fedc_http_response_free(&resp);
    return rc;
  }
  if (resp.status != 200) {
    char code[64], msg[256];
    fedc_client_error_parse((const char *)resp.body, resp.len, code, sizeof code, msg, sizeof msg);
    long status = resp.status;
    fedc_http_response_free(&resp);
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_EIO,
                   "join: the coordinator answered HTTP %ld %s: %s", status, code[0] ? code : "-",
                   msg);
  }
  fedc_client_job job;
  rc = fedc_client_job_parse((const char *)resp.body, resp.len, &job);
  fedc_http_response_free(&resp);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc,
                   "the coordinator's answer to join is not what protocol v1 says: %s", msg);
  }
  fedc_model_spec spec;
  rc = fedc_client_check_fit(&job, &c->train, &c->test, &spec);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, rc, "the job does not fit this client's data: %s",
                   msg);
  }
  if (strcmp(job.id, c->job.id) != 0) {
    /* a new job: an update kept from another one must never be resent */
    fedc_free(c->update);
    c->update = NULL;
    c->update_len = 0;
  }
  c->job = job;
  c->spec = spec;
  rc = model_setup(c);
  if (rc != 0) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  c->joined = 1;
  fedc_client_backoff_reset(&c->backoff);
  fedc_client_backoff_reset(&c->pause);
  char qid[160];
  fedc_log_info("msg=\"joined\" client_id=%lld job=%s round=%d rounds=%d "
                "model=%s inputs=%d classes=%d params=%zu samples=%lld fingerprint=%s",
                (long long)job.client_id, q(qid, sizeof qid, job.id), (int)job.round,
                (int)job.rounds, fedc_model_type_name(job.type), (int)job.inputs, (int)job.classes,
                c->n_params, (long long)c->train.n, c->fingerprint);
  return 0;
}

/* ---- a round ------------------------------------------------------------------- */

/* Downloads the round's model into c->w. 0: loaded; 1: not usable (logged,
 * poll again); CALL_END. */
static int fetch_model(fedc_client *c, const fedc_client_task *t) {
  char path[64];
  snprintf(path, sizeof path, "/v1/model/%d", (int)t->round);
  request r = {
      .what = "model", .path = path, .timeout_s = TRANSFER_TIMEOUT_S, .max_response = MODEL_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  if (rc != 0) return rc;
  if (resp.status != 200) {
    if (resp.status == 403)
      rc = forbidden(c, "model", &resp, t->round);
    else
      log_refusal("model", &resp, FEDC_LOG_WARN, "model not available", t->round);
    fedc_http_response_free(&resp);
    if (rc != 0) return rc;
    return pause_after_refusal(c) ? CALL_END : 1;
  }
  fedc_st_file *f = NULL;
  rc = fedc_st_decode(resp.body, resp.len, &f);
  fedc_http_response_free(&resp);
  char m[600];
  if (rc == FEDC_ENOMEM) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  if (rc != 0) {
    fedc_log_warn("msg=\"model refused: not a valid container\" round=%d error=%s", (int)t->round,
                  q(m, sizeof m, fedc_error_msg()));
    return pause_after_refusal(c) ? CALL_END : 1;
  }
  const char *sha = fedc_st_meta_get(f, "sha256");
  if (sha == NULL || strcasecmp(sha, t->model_sha256) != 0) {
    fedc_log_warn("msg=\"model refused: checksum mismatch\" round=%d "
                  "model_sha256=%s task_sha256=%s",
                  (int)t->round, sha ? sha : "(none)", t->model_sha256);
    fedc_st_free(f);
    fedc_error_set(FEDC_ECHECKSUM, "round %d: model checksum mismatch", (int)t->round);
    return pause_after_refusal(c) ? CALL_END : 1;
  }
  rc = fedc_model_from_tensors(&c->spec, f, c->w);
  fedc_st_free(f);
  if (rc != 0) {
    /* the coordinator serves a model of another shape than the job it
     * described: it may have been restarted with a new job; join again */
    fedc_log_warn("msg=\"model does not match the job, joining again\" round=%d error=%s",
                  (int)t->round, q(m, sizeof m, fedc_error_msg()));
    c->joined = 0;
    return 1;
  }
  return 0;
}

/* Evaluates the global model in c->w on the local test set (logged). */
static int evaluate(fedc_client *c, int32_t round) {
  fedc_eval_sums s = {0};
  int rc = fedc_evaluate(c->evaluator, c->w, &c->test_view, 0, c->test.n, &s, NULL);
  if (rc != 0) return rc;
  double loss = s.n ? s.loss_sum / (double)s.n : NAN;
  if (c->spec.type == FEDC_MODEL_LINREG)
    fedc_log_info("msg=\"global model evaluated\" round=%d test_loss=%.4f test_samples=%lld",
                  (int)round, loss, (long long)s.n);
  else
    fedc_log_info("msg=\"global model evaluated\" round=%d test_acc=%.4f "
                  "test_loss=%.4f test_samples=%lld",
                  (int)round, s.n ? (double)s.correct / (double)s.n : NAN, loss, (long long)s.n);
  return 0;
}

/* Trains c->w on every local row and encodes the update into c->update. */
static int train_round(fedc_client *c, const fedc_client_task *t) {
  fedc_train_params p;
  fedc_client_train_params(&c->job, &p);
  if (p.batch_size > c->train.n) p.batch_size = (int32_t)c->train.n;
  fedc_rng rng;
  fedc_rng_derive(&rng, c->job.seed, CLIENT_TAG, (uint64_t)t->round, c->fp64);
  fedc_train_stats st = {0};
  double t0 = now_s();
  int rc = fedc_train_local(c->trainer, &p, &c->train_view, c->rows, c->train.n, &rng, c->w, &st);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: training failed: %s", (int)t->round,
                   msg);
  }
  double secs = now_s() - t0;
  double loss = st.seen ? st.loss_sum / (double)st.seen : 0.0;
  fedc_log_info("msg=\"trained\" round=%d samples=%lld epochs=%d loss=%.4f secs=%.3f",
                (int)t->round, (long long)c->train.n, (int)p.epochs, loss, secs);
  uint8_t *buf;
  size_t len;
  rc = fedc_client_update_encode(&c->spec, c->w, t->round, c->train.n, loss, &buf, &len);
  if (rc != 0)
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: %s", (int)t->round, fedc_error_msg());
  if (c->cfg.client_keep_updates[0]) {
    char path[FEDC_CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/round-%d.safetensors", c->cfg.client_keep_updates,
             (int)t->round);
    rc = fedc_client_update_write(path, &c->spec, c->w, t->round, c->train.n, loss);
    if (rc != 0) {
      fedc_free(buf);
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "[client] keep_updates: cannot write %s: %s",
                     path, msg);
    }
  }
  fedc_free(c->update);
  c->update = buf;
  c->update_len = len;
  c->update_round = t->round;
  c->update_refused = 0;
  c->update_loss = loss;
  memcpy(c->update_sha, t->model_sha256, sizeof c->update_sha);
  return 0;
}

static int post_update(fedc_client *c, int32_t round) {
  request r = {.what = "update",
               .path = "/v1/update",
               .ctype = "application/octet-stream",
               .body = c->update,
               .len = c->update_len,
               .timeout_s = TRANSFER_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  if (rc != 0) return rc;
  if (resp.status == 200) {
    fedc_client_ack ack;
    if (fedc_client_ack_parse((const char *)resp.body, resp.len, &ack) == 0) {
      fedc_log_info("msg=\"%s\" round=%d bytes=%zu",
                    !ack.accepted   ? "update not accepted"
                    : ack.duplicate ? "update accepted (duplicate)"
                                    : "update accepted",
                    (int)round, c->update_len);
      fedc_client_backoff_reset(&c->backoff);
      fedc_client_backoff_reset(&c->pause);
    } else {
      char m[600];
      fedc_log_warn("msg=\"update answer malformed\" round=%d error=%s", (int)round,
                    q(m, sizeof m, fedc_error_msg()));
    }
  } else if (resp.status == 409) {
    log_refusal("update", &resp, FEDC_LOG_INFO, "update refused: stale round", round);
  } else if (resp.status == 403) {
    rc = forbidden(c, "update", &resp, round);
    c->update_refused = 1;
  } else {
    /* the protocol: other 4xx are not retried for the same update */
    log_refusal("update", &resp, FEDC_LOG_ERROR, "update refused", round);
    c->update_refused = 1;
  }
  fedc_http_response_free(&resp);
  return rc;
}

/* ---- a secure round (secagg_client.c) ------------------------------------------- */

static int sa_call(void *ctx, const char *what, const char *path, const char *ctype,
                   const void *body, size_t len, double timeout_s, fedc_http_response *resp) {
  request r = {.what = what, .path = path, .ctype = ctype, .body = body, .len = len,
               .timeout_s = timeout_s, .max_response = MODEL_MAX};
  return call(ctx, &r, resp);
}

static int sa_forbidden(void *ctx, const char *what, const fedc_http_response *resp,
                        int32_t round) {
  return forbidden(ctx, what, resp, round);
}

static int sa_stopped(void *ctx) { return ((fedc_client *)ctx)->stop != 0; }

/* A train task with "secagg": train from the round's model, then send the
 * delta masked; the plain update is never sent (its keep_updates copy is
 * still written). 0: poll again; CALL_END. */
static int secure_round(fedc_client *c, const fedc_client_task *t) {
  int rc = fetch_model(c, t);
  if (rc != 0) return rc < 0 ? rc : 0;
  if (c->stop) return interrupted(c);
  if (c->g == NULL && (c->g = fedc_malloc_array(c->n_params, sizeof(float))) == NULL)
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
  memcpy(c->g, c->w, c->n_params * sizeof(float));
  if (c->evaluator && (rc = evaluate(c, t->round)) != 0)
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  if ((rc = train_round(c, t)) != 0) return rc;
  fedc_free(c->update); /* never sent in the clear */
  c->update = NULL;
  c->update_len = 0;
  for (size_t i = 0; i < c->n_params; i++) c->g[i] = c->w[i] - c->g[i];
  fedc_client_secagg_io io = {.ctx = c, .call = sa_call, .forbidden = sa_forbidden,
                              .stopped = sa_stopped, .poll_s = c->cfg.server_poll_s};
  rc = fedc__client_secagg_round(&io, t->round, c->job.client_id, c->g, c->n_params,
                                 c->train.n, c->update_loss);
  if (rc != 0) return c->stop ? interrupted(c) : CALL_END;
  return 0;
}

/* A train task, from download to upload. 0: poll again; CALL_END. */
static int do_round(fedc_client *c, const fedc_client_task *t) {
  /* the same task may come many times (a model that failed its check, a
   * refused update): log it at info once */
  fedc_log(c->selected == t->round ? FEDC_LOG_DEBUG : FEDC_LOG_INFO,
           "msg=\"selected\" round=%d deadline_s=%.1f", (int)t->round, t->deadline_s);
  c->selected = t->round;
  if (t->secagg) return secure_round(c, t);
  double t0 = now_s();
  int cached = c->update != NULL && c->update_round == t->round &&
               strcmp(c->update_sha, t->model_sha256) == 0;
  if (cached && c->update_refused) {
    /* the same task again, for an update the coordinator refused: training
     * again would make the same bytes; wait for the round to move on */
    fedc_log_debug("msg=\"update for this round was refused; waiting for the next round\" round=%d",
                   (int)t->round);
    return pause_after_refusal(c);
  }
  if (cached) {
    fedc_log_info("msg=\"resending the update already made\" round=%d", (int)t->round);
  } else {
    int rc = fetch_model(c, t);
    if (rc != 0) return rc < 0 ? rc : 0;
    if (c->stop) return interrupted(c);
    if (c->evaluator && (rc = evaluate(c, t->round)) != 0)
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
    if ((rc = train_round(c, t)) != 0) return rc;
  }
  if (c->stop) return interrupted(c);
  if (t->deadline_s >= 0 && now_s() - t0 > t->deadline_s)
    fedc_log_warn("msg=\"past the round's deadline; sending anyway\" round=%d late_s=%.1f",
                  (int)t->round, now_s() - t0 - t->deadline_s);
  return post_update(c, t->round);
}

/* ---- the loop --------------------------------------------------------------------- */

/* Long-polls for a task. 0: *t holds one; 1: poll again; CALL_END. */
static int poll_task(fedc_client *c, fedc_client_task *t) {
  char path[64];
  snprintf(path, sizeof path, "/v1/task?wait=%g", c->cfg.server_poll_s);
  request r = {.what = "task",
               .path = path,
               .timeout_s = c->cfg.server_poll_s + POLL_MARGIN_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  if (rc != 0) return rc;
  if (resp.status == 200) {
    rc = fedc_client_task_parse((const char *)resp.body, resp.len, t);
    fedc_http_response_free(&resp);
    if (rc == 0) {
      fedc_client_backoff_reset(&c->backoff);
      return 0;
    }
    char m[600];
    fedc_log_warn("msg=\"task answer malformed\" error=%s", q(m, sizeof m, fedc_error_msg()));
    return pause_after_refusal(c) ? CALL_END : 1;
  }
  if (resp.status == 403) {
    /* on /v1/task every 403 means this client may not take part */
    char code[64], msg[256];
    fedc_client_error_parse((const char *)resp.body, resp.len, code, sizeof code, msg, sizeof msg);
    fedc_http_response_free(&resp);
    return end_run(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EIO,
                   "the coordinator refused this client on task (HTTP 403 %s: "
                   "%s); its certificate fingerprint is %s: is it on the allow "
                   "list (fedc-coordinator allow), and not revoked?",
                   code[0] ? code : "forbidden", msg, c->fingerprint);
  }
  log_refusal("task", &resp, FEDC_LOG_ERROR, "task request refused", 0);
  fedc_http_response_free(&resp);
  return pause_after_refusal(c) ? CALL_END : 1;
}

fedc_client_exit fedc_client_run(fedc_client *c) {
  c->last_contact = now_s();
  c->outcome = FEDC_CLIENT_EXIT_FAILED;
  fedc_log_info("msg=\"starting\" url=%s fingerprint=%s samples=%lld "
                "features=%lld test_samples=%lld",
                c->cfg.server_url, c->fingerprint, (long long)c->train.n, (long long)c->train.d,
                (long long)c->test.n);
  for (;;) {
    if (c->stop) {
      interrupted(c);
      break;
    }
    if (!c->joined) {
      if (join(c) != 0) break;
      continue;
    }
    fedc_client_task t;
    double asked = now_s();
    int rc = poll_task(c, &t);
    if (rc < 0) break;
    if (rc > 0) continue;
    if (t.action == FEDC_CLIENT_TASK_FINISHED) {
      fedc_log_info("msg=\"finished\" round=%d", (int)t.round);
      fedc_error_clear();
      return FEDC_CLIENT_EXIT_FINISHED;
    }
    if (t.action == FEDC_CLIENT_TASK_WAIT) {
      if (!c->waiting)
        fedc_log_info("msg=\"waiting\" round=%d", (int)t.round);
      else
        fedc_log_debug("msg=\"waiting\" round=%d", (int)t.round);
      c->waiting = 1;
      double d = t.retry_after_s < WAIT_MAX_S ? t.retry_after_s : WAIT_MAX_S;
      /* a "wait" that came back at once with no delay would make a tight
       * loop: space such polls a little */
      if (d < 0.05 && now_s() - asked < 0.05) d = 0.05;
      if (nap(c, d) != 0) {
        interrupted(c);
        break;
      }
      continue;
    }
    c->waiting = 0;
    if (do_round(c, &t) != 0) break;
  }
  return c->outcome;
}
