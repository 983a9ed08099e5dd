/*
 * client_json.h - the client's side of protocol v1's bodies
 * (docs/protocol.md), as pure functions: the coordinator's answers to
 * join, task and update and its error bodies read and checked, and an
 * update (tensors plus metadata round, num_samples, train_loss) encoded.
 * The edge client (client/) calls them; tests/fuzz/fuzz_client_json.c
 * drives the parsers with hostile input.
 *
 *     fedc_client_job job;                   // from <fedc/client.h>
 *     if (fedc_client_job_parse(body, len, &job) != 0)
 *       ... FEDC_EFORMAT, fedc_error_msg() names the field ...
 */
#ifndef FEDC_WIRE_CLIENT_JSON_H
#define FEDC_WIRE_CLIENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <fedc/client.h>

#include "wire/safetensors.h"

typedef enum {
  FEDC_CLIENT_TASK_TRAIN = 0,
  FEDC_CLIENT_TASK_WAIT = 1,
  FEDC_CLIENT_TASK_FINISHED = 2,
  FEDC_CLIENT_TASK_STATS = 3,   /* send the local data's statistics (POST /v1/stats) */
  FEDC_CLIENT_TASK_EVALUATE = 4 /* federated evaluation of a committed round's model */
} fedc_client_action;

/* GET /v1/task's answer. */
typedef struct fedc_client_task {
  fedc_client_action action;
  int32_t round;
  char model_sha256[FEDC_CLIENT_SHA_HEX + 1]; /* train: lowercase hex */
  double deadline_s;    /* train: seconds left to post the update; -1 if absent */
  double retry_after_s; /* wait: poll again after this long; 0 if absent */
  int secagg;           /* train: a secure round ("secagg": true) */
} fedc_client_task;

/* POST /v1/update's 200 answer. */
typedef struct fedc_client_ack {
  int accepted, duplicate;
  int32_t round;
} fedc_client_ack;

/*
 * Parse the coordinator's answers (json need not be NUL-terminated).
 * Every field the protocol names is checked for presence, type and range
 * (the ranges of the config keys of the same names; a job's model type is
 * one of the four built-in names); anything wrong is FEDC_EFORMAT with a
 * message naming the field, and *out zeroed (a task's deadline_s is then
 * -1).
 */
int fedc_client_job_parse(const char *json, size_t len, fedc_client_job *out);
int fedc_client_task_parse(const char *json, size_t len, fedc_client_task *out);
int fedc_client_ack_parse(const char *json, size_t len, fedc_client_ack *out);
/* An error body {"error": code, "message": text}: copies both (cut to fit;
 * "" when absent or when the body is not JSON). Never fails. */
void fedc_client_error_parse(const char *json, size_t len, char *code, size_t code_size, char *msg,
                             size_t msg_size);

/*
 * Encode an update: the tensors with metadata round, num_samples and
 * train_loss as decimal strings (plus the sha256 that fedc_st_encode
 * adds). *out is freed with fedc_free. Errors as fedc_st_encode;
 * FEDC_EINVAL for round < 0, num_samples < 1 or a non-finite loss.
 */
int fedc_client_update_encode_tensors(const fedc_st_tensor *t, size_t n, int32_t round,
                                      int64_t num_samples, double train_loss, uint8_t **out,
                                      size_t *out_len);
/* The same update written atomically to path (the keep_updates copy). */
int fedc_client_update_write_tensors(const char *path, const fedc_st_tensor *t, size_t n,
                                     int32_t round, int64_t num_samples, double train_loss);

#endif
