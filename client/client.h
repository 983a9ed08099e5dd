/*
 * client.h - the fedc edge client as a library: join a coordinator, poll
 * for tasks, train on local data, send the weights back (docs/protocol.md,
 * docs/client.md).
 *
 *     fedc_config cfg;                 // [server] url, [tls], [data], [client]
 *     ...load and check with fedc_config_check_role(&cfg, FEDC_ROLE_CLIENT)...
 *     fedc_client *c;
 *     if (fedc_client_new(&cfg, &c) != 0) ... fedc_error_msg() ...
 *     fedc_client_exit e = fedc_client_run(c);   // until the job finishes
 *     if (e != FEDC_CLIENT_EXIT_FINISHED) ... fedc_error_msg() says why ...
 *     fedc_client_free(c);
 *     return (int)e;                   // the documented exit code
 *
 * fedc_client_stop(c) may be called from a signal handler: the run then
 * abandons its request (or finishes the local training it is in) and
 * returns FEDC_CLIENT_EXIT_INTERRUPTED.
 *
 * The pure pieces (backoff schedule, parsing the coordinator's JSON,
 * checking that the job's model fits the local data, encoding an update,
 * the certificate fingerprint) are public too, so that tests and other
 * drivers can use them.
 */
#ifndef FEDC_CLIENT_H
#define FEDC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "data/data.h"
#include "ml/model.h"
#include "base/rng.h"
#include "ml/train.h"

/* How a run ended; the values are fedc-client's exit codes and are never
 * renumbered. */
typedef enum {
  FEDC_CLIENT_EXIT_FINISHED = 0,   /* the job finished */
  FEDC_CLIENT_EXIT_FAILED = 1,     /* runtime failure (out of memory,
                                      training diverged, cannot write
                                      keep_updates, coordinator misbehaves) */
  FEDC_CLIENT_EXIT_BAD_INPUT = 2,  /* usage, config or data error, or the
                                      job's model does not fit the data */
  FEDC_CLIENT_EXIT_REFUSED = 3,    /* refused by the coordinator (certificate
                                      not allowed or revoked), or the
                                      coordinator's certificate failed
                                      verification */
  FEDC_CLIENT_EXIT_GAVE_UP = 4,    /* no answer from the coordinator for
                                      [client] give_up_s */
  FEDC_CLIENT_EXIT_INTERRUPTED = 5 /* stopped by fedc_client_stop (a signal) */
} fedc_client_exit;

/* ---- backoff -------------------------------------------------------------
 * "Full jitter" exponential backoff: the k-th retry in a row waits
 * uniform(0, min(max_s, base_s * 2^k)) seconds; a success resets k to 0. */
typedef struct fedc_client_backoff {
  double base_s; /* first ceiling, 0.2 s in fedc-client */
  double max_s;  /* [client] backoff_max_s */
  int32_t attempt;
  fedc_rng rng;
} fedc_client_backoff;

void fedc_client_backoff_init(fedc_client_backoff *b, double base_s, double max_s, uint64_t seed);
/* The ceiling of the next delay: min(max_s, base_s * 2^attempt). */
double fedc_client_backoff_cap(const fedc_client_backoff *b);
/* Draw the next delay in [0, cap) and count the attempt. */
double fedc_client_backoff_next(fedc_client_backoff *b);
void fedc_client_backoff_reset(fedc_client_backoff *b);

/* ---- the coordinator's JSON ---------------------------------------------- */

#define FEDC_CLIENT_SHA_HEX 64

/* POST /v1/join's answer. */
typedef struct fedc_client_job {
  int64_t client_id;
  char id[128]; /* the job's id */
  int32_t rounds, round;
  fedc_model_type type;
  int32_t inputs, classes;
  int32_t n_hidden;
  int32_t hidden[FEDC_CONFIG_MAX_HIDDEN];
  float l1, l2; /* optional "l1", "l2" in "model"; 0 if absent */
  fedc_train_params train;
  uint64_t seed;
} fedc_client_job;

typedef enum {
  FEDC_CLIENT_TASK_TRAIN = 0,
  FEDC_CLIENT_TASK_WAIT = 1,
  FEDC_CLIENT_TASK_FINISHED = 2
} fedc_client_action;

/* GET /v1/task's answer. */
typedef struct fedc_client_task {
  fedc_client_action action;
  int32_t round;
  char model_sha256[FEDC_CLIENT_SHA_HEX + 1]; /* train: lowercase hex */
  double deadline_s;    /* train: seconds left to post the update; -1 if absent */
  double retry_after_s; /* wait: poll again after this long; 0 if absent */
  int secagg;           /* train: a secure round ("secagg": true; secagg_client.c) */
} fedc_client_task;

/* POST /v1/update's 200 answer. */
typedef struct fedc_client_ack {
  int accepted, duplicate;
  int32_t round;
} fedc_client_ack;

/*
 * Parse the coordinator's answers (json need not be NUL-terminated).
 * Every field the protocol names is checked for presence, type and range;
 * anything wrong is FEDC_EFORMAT with a message naming the field.
 */
int fedc_client_job_parse(const char *json, size_t len, fedc_client_job *out);
int fedc_client_task_parse(const char *json, size_t len, fedc_client_task *out);
int fedc_client_ack_parse(const char *json, size_t len, fedc_client_ack *out);
/* An error body {"error": code, "message": text}: copies both (cut to fit;
 * "" when absent or when the body is not JSON). Never fails. */
void fedc_client_error_parse(const char *json, size_t len, char *code, size_t code_size, char *msg,
                             size_t msg_size);

/*
 * Check that the job's model fits the local data and build its spec:
 * inputs == the data's features; for softmax and mlp every label is a class
 * index below classes; for logreg the labels are 0 and 1; linreg takes any
 * finite target. test may be NULL or empty. FEDC_ESHAPE (feature count,
 * naming both numbers), FEDC_ERANGE (labels), with a message naming the
 * [data] key.
 */
int fedc_client_check_fit(const fedc_client_job *job, const fedc_dataset *train,
                          const fedc_dataset *test, fedc_model_spec *spec);

/* The train parameters a job asks for, as fedc_train_local takes them. */
void fedc_client_train_params(const fedc_client_job *job, fedc_train_params *p);

/*
 * Encode an update: the model's tensors (fedc_model_tensors) with metadata
 * round, num_samples and train_loss as decimal strings (plus the sha256 that
 * fedc_st_encode adds). *out is freed with fedc_free. Errors as
 * fedc_st_encode; FEDC_EINVAL for num_samples < 1 or a non-finite loss.
 */
int fedc_client_update_encode(const fedc_model_spec *spec, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len);
/* The same update written atomically to path (the keep_updates copy). */
int fedc_client_update_write(const char *path, const fedc_model_spec *spec, const float *w,
                             int32_t round, int64_t num_samples, double train_loss);

/*
 * SHA-256 of the DER encoding of the first certificate in a PEM file, as 64
 * lowercase hex digits: the client's identity on the wire (the same as
 * `openssl x509 -in c.pem -outform DER | sha256sum`). FEDC_EIO (unreadable),
 * FEDC_EFORMAT (no PEM certificate in it).
 */
int fedc_client_cert_fingerprint(const char *pem_path, char hex[FEDC_CLIENT_SHA_HEX + 1]);

/* ---- the client ------------------------------------------------------------ */

typedef struct fedc_client fedc_client;

/*
 * Make a client from a config that passed fedc_config_check_role(...,
 * FEDC_ROLE_CLIENT): reads the certificate's fingerprint, loads [data]
 * train (and test when set), opens the compute backend, prepares the HTTPS
 * client and the keep_updates folder. Nothing is sent yet. Errors:
 * FEDC_ECONFIG, FEDC_EIO, FEDC_EFORMAT, FEDC_ENOTFOUND, FEDC_EUNSUPPORTED
 * (all: bad config or data, exit 2), FEDC_ENOMEM.
 */
int fedc_client_new(const fedc_config *cfg, fedc_client **out);
/* Run the task loop until the job finishes or the run ends otherwise; the
 * message of a non-zero result is in fedc_error_msg(). */
fedc_client_exit fedc_client_run(fedc_client *c);
/* Ask a run to stop; async-signal-safe. */
void fedc_client_stop(fedc_client *c);
void fedc_client_free(fedc_client *c);
/* The client's certificate fingerprint (64 hex digits). */
const char *fedc_client_fingerprint(const fedc_client *c);

#endif
