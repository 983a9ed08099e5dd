/*
 * fuzz_client_json.c - fuzz target for the edge client's parsers of what
 * the coordinator says (shared/wire/client_json.c): the join answer (the job, its model and
 * training parameters), the task answer (train, wait, finished), the update
 * acknowledgement and error bodies. A client must survive a hostile or
 * broken coordinator, and a job it accepts goes straight into allocation
 * and training.
 *
 * The input, not NUL-terminated, goes to all four parsers. Checked: only
 * FEDC_EFORMAT on failure, with the output zeroed; every accepted field in
 * the range docs/protocol.md gives it; an accepted job written back as the
 * coordinator writes it parses to the same job; a job is checked against
 * a small data set of its own width with fedc_client_check_fit, whose
 * model then has at most the parameters a client takes; error bodies are
 * cut to the buffer given, however small. Every fedc block allocated is
 * freed before the input is done.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "fuzz_util.h"
#include "ml/model.h"
#include "wire/client_json.h"

static int all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

static void check_job_ranges(const fedc_client_job *j) {
  FUZZ_CHECK(j->client_id >= 0);
  FUZZ_CHECK(strnlen(j->id, sizeof j->id) < sizeof j->id);
  FUZZ_CHECK(j->rounds >= 1 && j->rounds <= 1000000);
  FUZZ_CHECK(j->round >= 0);
  int t = fedc_model_type_parse(j->type);
  FUZZ_CHECK(t >= FEDC_MODEL_LOGREG && t <= FEDC_MODEL_MLP);
  FUZZ_CHECK(j->inputs >= 1 && j->inputs <= 100000000);
  FUZZ_CHECK(j->classes >= 0 && j->classes <= 1000000);
  FUZZ_CHECK(j->n_hidden >= 0 && j->n_hidden <= FEDC_CLIENT_MAX_HIDDEN);
  FUZZ_CHECK((t == FEDC_MODEL_MLP) == (j->n_hidden > 0));
  for (int32_t i = 0; i < j->n_hidden; i++)
    FUZZ_CHECK(j->hidden[i] >= 1 && j->hidden[i] <= 65536);
  FUZZ_CHECK(isfinite(j->l1) && j->l1 >= 0 && isfinite(j->l2) && j->l2 >= 0);
  FUZZ_CHECK(j->train.epochs >= 1 && j->train.epochs <= 10000);
  FUZZ_CHECK(j->train.batch_size >= 1 && j->train.batch_size <= 1000000);
  FUZZ_CHECK(j->train.lr > 0 && j->train.lr <= 100);
  FUZZ_CHECK(j->train.momentum >= 0 && j->train.momentum < 1);
  FUZZ_CHECK(isfinite(j->train.prox_mu) && j->train.prox_mu >= 0);
}

/* The job as the coordinator writes it (coordinator.c's job_spec_json). */
static char *job_json(const fedc_client_job *j) {
  cJSON *root = cJSON_CreateObject(), *job = cJSON_CreateObject();
  cJSON *model = cJSON_CreateObject(), *train = cJSON_CreateObject();
  cJSON *hidden = cJSON_CreateArray();
  FUZZ_CHECK(root && job && model && train && hidden);
  char seed[24];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->seed);
  cJSON_AddNumberToObject(root, "client_id", (double)j->client_id);
  cJSON_AddItemToObject(root, "job", job);
  cJSON_AddStringToObject(job, "id", j->id);
  cJSON_AddNumberToObject(job, "rounds", j->rounds);
  cJSON_AddNumberToObject(job, "round", j->round);
  cJSON_AddStringToObject(job, "seed", seed);
  cJSON_AddItemToObject(job, "model", model);
  cJSON_AddStringToObject(model, "type", j->type);
  cJSON_AddNumberToObject(model, "inputs", j->inputs);
  cJSON_AddNumberToObject(model, "classes", j->classes);
  for (int32_t i = 0; i < j->n_hidden; i++)
    cJSON_AddItemToArray(hidden, cJSON_CreateNumber(j->hidden[i]));
  cJSON_AddItemToObject(model, "hidden", hidden);
  cJSON_AddNumberToObject(model, "l1", j->l1);
  cJSON_AddNumberToObject(model, "l2", j->l2);
  cJSON_AddItemToObject(job, "train", train);
  cJSON_AddNumberToObject(train, "epochs", j->train.epochs);
  cJSON_AddNumberToObject(train, "batch_size", j->train.batch_size);
  cJSON_AddNumberToObject(train, "lr", j->train.lr);
  cJSON_AddNumberToObject(train, "momentum", j->train.momentum);
  cJSON_AddNumberToObject(train, "prox_mu", j->train.prox_mu);
  char *text = cJSON_PrintUnformatted(root);
  FUZZ_CHECK(text != NULL);
  cJSON_Delete(root);
  return text;
}

static void check_job(const char *json, size_t len) {
  fedc_client_job j;
  memset(&j, 0x5a, sizeof j);
  int rc = fedc_client_job_parse(json, len, &j);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EFORMAT);
  if (rc != 0) {
    FUZZ_CHECK(all_zero(&j, sizeof j));
    return;
  }
  check_job_ranges(&j);

  char *text = job_json(&j);
  fedc_client_job k;
  FUZZ_CHECK(fedc_client_job_parse(text, strlen(text), &k) == 0);
  cJSON_free(text);
  FUZZ_CHECK(k.client_id == j.client_id && strcmp(k.id, j.id) == 0);
  FUZZ_CHECK(k.rounds == j.rounds && k.round == j.round && k.seed == j.seed);
  FUZZ_CHECK(strcmp(k.type, j.type) == 0 && k.inputs == j.inputs && k.classes == j.classes &&
             k.n_hidden == j.n_hidden);
  FUZZ_CHECK(memcmp(k.hidden, j.hidden, sizeof k.hidden) == 0);
  FUZZ_CHECK(k.l1 == j.l1 && k.l2 == j.l2);
  FUZZ_CHECK(k.train.epochs == j.train.epochs && k.train.batch_size == j.train.batch_size &&
             k.train.lr == j.train.lr && k.train.momentum == j.train.momentum &&
             k.train.prox_mu == j.train.prox_mu);

  /* The job against local data of its width: labels 0 and 1, then not
   * class indices at all. The rows themselves are never read. */
  for (int32_t classes = 2; classes >= 0; classes -= 2) {
    fedc_dataset ds = {.n = 1, .d = j.inputs, .n_classes = classes};
    fedc_model_spec spec;
    int frc = fedc_client_check_fit(&j, &ds, NULL, &spec);
    FUZZ_CHECK(frc == 0 || frc == FEDC_ERANGE || frc == FEDC_ESHAPE);
    if (frc == 0) {
      FUZZ_CHECK(spec.n_in == j.inputs && spec.n_out >= 1);
      FUZZ_CHECK(fedc_model_n_params(&spec) <= ((size_t)1 << 28));
      fedc_train_params p;
      fedc_client_train_params(&j, &p);
      FUZZ_CHECK(p.epochs == j.train.epochs && p.lr == j.train.lr);
    }
  }
}

static void check_task(const char *json, size_t len) {
  fedc_client_task t;
  memset(&t, 0x5a, sizeof t);
  int rc = fedc_client_task_parse(json, len, &t);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EFORMAT);
  if (rc != 0) {
    FUZZ_CHECK(t.action == 0 && t.round == 0 && t.deadline_s == -1 && t.model_sha256[0] == '\0' &&
               t.secagg == 0);
    return;
  }
  FUZZ_CHECK(t.round >= 0);
  switch (t.action) {
  case FEDC_CLIENT_TASK_TRAIN:
    FUZZ_CHECK(t.round >= 1);
    FUZZ_CHECK(strlen(t.model_sha256) == FEDC_CLIENT_SHA_HEX);
    for (int i = 0; i < FEDC_CLIENT_SHA_HEX; i++) {
      char c = t.model_sha256[i];
      FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    FUZZ_CHECK(t.deadline_s >= -1e9 && t.deadline_s <= 1e9);
    FUZZ_CHECK(t.secagg == 0 || t.secagg == 1);
    break;
  case FEDC_CLIENT_TASK_WAIT:
    FUZZ_CHECK(t.retry_after_s >= 0 && t.retry_after_s <= 1e6);
    break;
  case FEDC_CLIENT_TASK_FINISHED:
    break;
  default:
    FUZZ_CHECK(!"unknown action");
  }
}

static void check_ack(const char *json, size_t len) {
  fedc_client_ack a;
  memset(&a, 0x5a, sizeof a);
  int rc = fedc_client_ack_parse(json, len, &a);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EFORMAT);
  if (rc != 0) {
    FUZZ_CHECK(all_zero(&a, sizeof a));
    return;
  }
  FUZZ_CHECK((a.accepted == 0 || a.accepted == 1) && (a.duplicate == 0 || a.duplicate == 1) &&
             a.round >= 0);
}

static void check_error(const char *json, size_t len) {
  char code[32], msg[256], tiny_code[1], tiny_msg[2];
  memset(code, 'x', sizeof code);
  memset(msg, 'x', sizeof msg);
  fedc_client_error_parse(json, len, code, sizeof code, msg, sizeof msg);
  FUZZ_CHECK(strnlen(code, sizeof code) < sizeof code);
  FUZZ_CHECK(strnlen(msg, sizeof msg) < sizeof msg);
  memset(tiny_code, 'x', sizeof tiny_code);
  memset(tiny_msg, 'x', sizeof tiny_msg);
  fedc_client_error_parse(json, len, tiny_code, sizeof tiny_code, tiny_msg, sizeof tiny_msg);
  FUZZ_CHECK(tiny_code[0] == '\0' && strnlen(tiny_msg, 2) < 2);
  char untouched = 'x';
  fedc_client_error_parse(json, len, &untouched, 0, &untouched, 0);
  FUZZ_CHECK(untouched == 'x');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  /* an exact-size copy: a parser that reads past len reads past the block */
  char *json = fedc_malloc(size ? size : 1);
  FUZZ_CHECK(json != NULL);
  if (size) memcpy(json, data, size);
  check_job(json, size);
  check_task(json, size);
  check_ack(json, size);
  check_error(json, size);
  fedc_free(json);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
