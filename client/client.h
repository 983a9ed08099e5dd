/*
 * client.h - the edge client's internals. The public API (parameters, the
 * trainer interface, new/run/stop/free) is <fedc/client.h>, included here;
 * this header adds what fedc-client, the tests and the fuzz target use
 * besides:
 *
 *   backoff.c          the full-jitter backoff schedule
 *   fingerprint.c      the certificate's SHA-256 fingerprint
 *   job_model.c        the job's model: its spec and tensor layout, whether
 *                      it fits local data, updates encoded from a spec
 *   trainer_builtin.c  the built-in trainer: [data] trained with
 *                      shared/ml/train.c (fedc-client's trainer)
 *   trainer_external.c the site's own program ([trainer] command) run for
 *                      each round, its output checked
 *   client.c           the task loop (an explicit state machine)
 *   http_curl.c        the HTTPS transport on libcurl
 *   secagg_client.c    a secure round's exchanges
 *
 * The coordinator's JSON bodies are parsed in the wire layer
 * (shared/wire/client_json.h), also included here.
 */
#ifndef FEDC_CLIENT_H
#define FEDC_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <fedc/client.h>

#include "base/rng.h"
#include "config/config.h"
#include "data/data.h"
#include "ml/model.h"
#include "ml/train.h"
#include "wire/client_json.h"
#include "wire/safetensors.h"

/* ---- backoff (backoff.c) -------------------------------------------------
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

/* ---- the job's model (job_model.c) --------------------------------------- */

/* The most parameters a client takes (1 GiB of float32). */
#define FEDC_CLIENT_MAX_PARAMS ((size_t)1 << 28)

/*
 * The model spec of a job, checked without any data: a classifier needs at
 * least 2 classes, a single-output model at most 2; the parameter count is
 * bounded by FEDC_CLIENT_MAX_PARAMS before anything is allocated for it.
 * FEDC_ERANGE with a message naming the numbers.
 */
int fedc_client_job_spec(const fedc_client_job *job, fedc_model_spec *spec);

/* The job's tensors (names, shapes, offsets) for a spec: up to
 * FEDC_CLIENT_MAX_TENSORS entries, whose names point into names. */
#define FEDC_CLIENT_NAME_MAX 32
size_t fedc_client_layout(const fedc_model_spec *spec, fedc_client_tensor *out,
                          char names[][FEDC_CLIENT_NAME_MAX]);

/*
 * Check that the job's model fits the local data and build its spec:
 * fedc_client_job_spec, and inputs == the data's features; for softmax and
 * mlp every label is a class index below classes; for logreg the labels
 * are 0 and 1; linreg takes any finite target. test may be NULL or empty.
 * FEDC_ESHAPE (feature count, naming both numbers), FEDC_ERANGE (labels,
 * classes, size), with a message naming the [data] key.
 */
int fedc_client_check_fit(const fedc_client_job *job, const fedc_dataset *train,
                          const fedc_dataset *test, fedc_model_spec *spec);

/* The train parameters a job asks for, as fedc_train_local takes them. */
void fedc_client_train_params(const fedc_client_job *job, fedc_train_params *p);

/*
 * Encode an update: the model's tensors (fedc_model_tensors) with metadata
 * round, num_samples and train_loss (fedc_client_update_encode_tensors).
 * *out is freed with fedc_free. FEDC_EINVAL for num_samples < 1 or a
 * non-finite loss.
 */
int fedc_client_update_encode(const fedc_model_spec *spec, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len);
/* The same update written atomically to path (the keep_updates copy). */
int fedc_client_update_write(const char *path, const fedc_model_spec *spec, const float *w,
                             int32_t round, int64_t num_samples, double train_loss);

/* Test hook of secure rounds: wait secs after sharing keys (fedc-client
 * sets it from FEDC_TEST_SECAGG_STALL_S; the library reads no environment). */
void fedc_client_set_test_stall(fedc_client *c, double secs);
/* Test hook of asynchronous jobs: a slow site, which waits secs before
 * each training (fedc-client sets it from FEDC_TEST_TRAIN_DELAY_S). */
void fedc_client_set_test_train_delay(fedc_client *c, double secs);
/* Test hook: lie = 1 makes the client reveal one wrong share word in each
 * secure round (fedc-client sets it from FEDC_TEST_SECAGG_LIE=1). */
void fedc_client_set_test_secagg_lie(fedc_client *c, int lie);

/* ---- the built-in trainer (trainer_builtin.c) ------------------------------ */

/*
 * The built-in trainer (public: fedc_client_builtin_new in <fedc/client.h>)
 * for a config that passed fedc_config_check_role(...,
 * FEDC_ROLE_CLIENT): loads [data] train (and test when set; standardized
 * when [data] standardize), opens [train] device's backend, and fills
 * *trainer with its callbacks (evaluate only when there is a test set).
 * Each round trains every local row with the job's hyper-parameters,
 * shuffled by a stream derived from the job's seed, the round and the
 * fingerprint. Errors: FEDC_EIO, FEDC_EFORMAT, FEDC_ENOTFOUND,
 * FEDC_EUNSUPPORTED, FEDC_ECONFIG (bad data or config), FEDC_ENOMEM.
 * Free with fedc_client_builtin_free after the client that uses it.
 */
int fedc__client_builtin_new_config(const fedc_config *cfg, fedc_client_builtin **out,
                                    fedc_client_trainer *trainer);

/* eval_site.c: the body of POST /v1/eval for a trainer's report (JSON,
 * checked with the library's strict reader): {"round", "model_sha256",
 * "report"} into *body, and the site's own metrics (JSON) into *metrics
 * for its log; both fedc memory. FEDC_EFORMAT for a report that does not
 * read, FEDC_ENOMEM. */
int fedc__client_eval_body(const char *report, int32_t round, const char *sha, char **body,
                           char **metrics);

/* stats_site.c: this site's statistics for a job with a schema (the
 * statistics phase) from the CSV at path read by the job's schema, as
 * fedc_stats_to_json text in *json (fedc memory). FEDC_ECONFIG when path
 * is empty, FEDC_ESTATE for a job without a schema or with its statistics,
 * the loader's errors naming [data] train, FEDC_ENOMEM. */
int fedc__client_csv_stats(const char *path, const fedc_client_job *job, char **json);

/* ---- the external trainer (trainer_external.c) ----------------------------- */

/*
 * The external trainer of [trainer] command (and evaluate, timeout_s):
 * for each round the global model is written to a private folder and the
 * command run there with the FEDC_* environment (docs/trainers.md); its
 * update is checked (names, shapes, dtype, finite values, num_samples,
 * train_loss) before the client sends anything. A failure is returned with
 * the sub-code FEDC_SUB_TRAINER_FAILED: the client reports the round as
 * failed and goes on. FEDC_ECONFIG (no command), FEDC_ENOMEM. Free with
 * fedc__client_external_free after the client that uses it.
 */
typedef struct fedc_client_external fedc_client_external;
int fedc__client_external_new_config(const fedc_config *cfg, fedc_client_external **out,
                                     fedc_client_trainer *trainer);
/* A flag that, once set (fedc-client's signal handler), makes a running
 * command's process group be killed and the callback return
 * FEDC_ECANCELED. */
void fedc__client_external_set_stop(fedc_client_external *x, const volatile sig_atomic_t *stop);
void fedc__client_external_free(fedc_client_external *x);

/* ---- containers of any dtype (tensor_update.c) ------------------------------ */

/* One tensor of a view: name and dtype ("F16", ...) point into the view;
 * data is its elements in host byte order (the wire layer's reader). */
typedef struct fedc_client_st_entry {
  const char *name, *dtype;
  int code;     /* fedc_st_dtype_code */
  int32_t elem; /* bytes per element */
  int32_t ndim;
  int64_t shape[FEDC_ST_MAX_DIMS];
  uint64_t count; /* elements */
  const uint8_t *data;
} fedc_client_st_entry;

/* A safetensors container of any dtype read by the wire layer
 * (fedc_st_decode_ex with FEDC_ST_ALLOW_ANY: the header, offsets, coverage
 * and the sha256 metadata checked there), its tensors listed in header
 * order. */
typedef struct fedc_client_st_view {
  fedc_st_file *f;
  fedc_client_st_entry *t; /* in header order */
  size_t n;
} fedc_client_st_view;

/* FEDC_EFORMAT, FEDC_ECHECKSUM, FEDC_ENOMEM; free with _view_free, before
 * buf: the tensors' data point into buf where aligned (FEDC_ST_BORROW). */
int fedc__client_st_view(const uint8_t *buf, size_t len, fedc_client_st_view *v);
void fedc__client_st_view_free(fedc_client_st_view *v);
/* A metadata value, or NULL. */
const char *fedc__client_st_meta(const fedc_client_st_view *v, const char *key);
/* The update holds exactly the model's tensors with their dtypes and
 * shapes; a failed-round error (FEDC_SUB_TRAINER_FAILED) naming the tensor
 * otherwise. */
int fedc__client_st_same_layout(const fedc_client_st_view *model, const fedc_client_st_view *u,
                                int32_t round);
/* Every F64/F32/F16/BF16 value finite; a failed-round error otherwise. */
int fedc__client_st_finite(const fedc_client_st_view *u, int32_t round);
/* The view's tensors (each one's bytes as they are, header order kept)
 * encoded by the wire layer with the given metadata plus its sha256 of the
 * data; *out freed with fedc_free. */
int fedc__client_st_reencode(const fedc_client_st_view *u, const fedc_st_meta *meta, size_t n_meta,
                             uint8_t **out, size_t *out_len);
/* The same, the data left where it lies in *buf (which u borrows): the new
 * header written in front of it, *buf grown only by the header's growth.
 * Frees u; *buf, *len become the new container (the tensors in data order). */
int fedc__client_st_reencode_in_place(fedc_client_st_view *u, const fedc_st_meta *meta,
                                      size_t n_meta, uint8_t **buf, size_t *len);

/* FEDC_ECONFIG "[tls] cert: expired on <date> ..." when the certificate in
 * pem_path is past its notAfter (or before its notBefore); 0 otherwise,
 * also when it cannot be parsed (the fingerprint reports that). */
int fedc__client_cert_check_dates(const char *pem_path);
/* stats_secagg.c: the statistics under secure aggregation. _words: a
 * site's statistics (fedc_stats_to_json text) as the session's words
 * (fedc memory); _far: 1 when the site's statistics are far from the
 * federation's, with the detail for POST /v1/warn written into detail. */
int fedc__client_stats_words(const char *json, uint32_t **words, size_t *n);
int fedc__client_stats_far(const char *own_json, const char *fed_json, const char *schema_json,
                           char *detail, size_t cap);

/* job_model.c: the join answer's "job"."schema" and "stats" objects as text. */
int fedc__client_job_extras(char **schema, char **stats, const void *body, size_t len);

/* dp_site.c: with the job's "noise_at": "sites", clip delta (n floats) to
 * the job's clip_norm and add the site's share of the DP noise; *on = 1
 * then (the delta goes into the sum with weight 1). 0 (and *on = 0) for any
 * other job; FEDC_EFORMAT for a job whose fields do not allow it. */
int fedc__client_dp_site(const char *job_json, int32_t round, float *delta, size_t n, int *on,
                         uint32_t *min_survivors);

#endif
