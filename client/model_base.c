/*
 * model_base.c - the model a client holds and the deltas rebuilt from it
 * (see model_base.h). The base is a copy of the checked body, so that the
 * trainer's model and the base never share an owner; the decoder checks
 * the base's SHA-256 and the rebuilt body's against the delta's, so a
 * delta yields the coordinator's exact body or nothing.
 */
#include "model_base.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "wire/model_delta.h"

static int holds(const fedc_model_base *b, const char *job, int32_t round) {
  return (b->bytes != NULL || b->file[0] != '\0') && b->round >= 1 && b->round < round &&
         strcmp(b->job, job) == 0;
}

void fedc__model_base_query(const fedc_model_base *b, const char *job, int32_t round, char *q,
                            size_t n) {
  if (n == 0) return;
  q[0] = '\0';
  if (holds(b, job, round)) snprintf(q, n, "?base=%d", (int)b->round);
}

int fedc__model_base_apply(fedc_model_base *b, const char *job, int32_t round, uint8_t **body,
                           size_t *len, size_t max) {
  if (!fedc_model_delta_is(*body, *len)) {
    b->fulls++;
    return 0;
  }
  int32_t br = 0, r = 0;
  int rc = fedc_model_delta_rounds(*body, *len, &br, &r);
  if (rc == 0 && (!holds(b, job, round) || br != b->round || r != round))
    rc = fedc_error_set(FEDC_EFORMAT, "a delta from round %d to %d, not from %d to %d", (int)br,
                        (int)r, (int)b->round, (int)round);
  if (rc == 0 && b->bytes == NULL)
    rc = fedc_error_set(FEDC_EFORMAT, "a delta in memory for a base kept as a file");
  uint8_t *out = NULL;
  size_t out_len = 0;
  if (rc == 0)
    rc = fedc_model_delta_decode(*body, *len, b->bytes, b->len, NULL, max, &out, &out_len);
  if (rc == FEDC_ENOMEM) return rc;
  if (rc != 0) {
    fedc_log_warn("msg=\"model delta refused, fetching the whole model\" round=%d error=\"%s\"",
                  (int)round, fedc_error_msg());
    return 1;
  }
  fedc_log_debug("msg=\"model rebuilt from a delta\" round=%d base=%d delta_bytes=%zu "
                 "model_bytes=%zu",
                 (int)round, (int)br, *len, out_len);
  fedc_free(*body);
  *body = out;
  *len = out_len;
  b->deltas++;
  return 0;
}

void fedc__model_base_downloaded(fedc_model_base *b, const char *path, uint64_t len, int rebuilt) {
  b->pending[0] = '\0';
  b->pending_len = 0;
  if (rebuilt) b->deltas++;
  if (path == NULL || strlen(path) >= sizeof b->pending) return;
  snprintf(b->pending, sizeof b->pending, "%s", path);
  b->pending_len = len;
}

void fedc__model_base_keep(fedc_model_base *b, const char *job, int32_t round, const uint8_t *body,
                           size_t len) {
  /* a large model stays where its download left it */
  int in_file = len >= FEDC_MODEL_BASE_MAX && b->pending[0] != '\0' && b->pending_len == len &&
                strlen(job) < sizeof b->job;
  if (in_file) {
    fedc_free(b->bytes);
    b->bytes = NULL;
    b->len = 0;
    snprintf(b->file, sizeof b->file, "%s", b->pending);
    b->file_len = len;
    b->round = round;
    snprintf(b->job, sizeof b->job, "%s", job);
    return;
  }
  b->file[0] = '\0';
  if (b->bytes != NULL && b->len == len && b->round == round && strcmp(b->job, job) == 0 &&
      memcmp(b->bytes, body, len) == 0)
    return; /* the same model again (an evaluation of the round trained) */
  fedc_free(b->bytes);
  b->bytes = NULL;
  b->len = 0;
  if (len == 0 || len >= FEDC_MODEL_BASE_MAX || strlen(job) >= sizeof b->job) return;
  b->bytes = fedc_malloc(len);
  if (b->bytes == NULL) return; /* no base: the next download is whole */
  memcpy(b->bytes, body, len);
  b->len = len;
  b->round = round;
  snprintf(b->job, sizeof b->job, "%s", job);
}

void fedc__model_base_clear(fedc_model_base *b) {
  b->file[0] = '\0';
  b->pending[0] = '\0';
  fedc_free(b->bytes);
  b->bytes = NULL;
  b->len = 0;
  b->round = 0;
}
