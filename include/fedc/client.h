/*
 * fedc/client.h - the edge client as a library: join a coordinator over
 * mutual TLS, wait to be selected, train the round's global model with the
 * program's own trainer, send the weights back (docs/client.md,
 * docs/protocol.md). fedc-client is this loop with the built-in trainer.
 *
 *     static int train(void *ud, const fedc_client_round *r, float *w,
 *                      fedc_client_metrics *out) {
 *       ... w holds the round's global model (r->n_params floats, laid out
 *           as r->tensors say); train it in place ...
 *       out->samples = 600;          // the update's weight, >= 1
 *       out->loss = 0.51;            // mean training loss, finite
 *       return 0;                    // or fedc_error_set(FEDC_E..., "why")
 *     }
 *
 *     fedc_client_params p;
 *     fedc_client_params_init(&p);
 *     p.url = "https://coordinator.example.org:8443";
 *     p.ca = "ca.pem"; p.cert = "site-a.pem"; p.key = "site-a.key";
 *     p.trainer.train = train;
 *     p.trainer.user_data = &my_data;
 *     fedc_client *c;
 *     if (fedc_client_new(&p, &c) != 0) ... fedc_error_msg() ...
 *     fedc_client_exit e = fedc_client_run(c);   // until the job finishes
 *     if (e != FEDC_CLIENT_EXIT_FINISHED) ... fedc_error_msg() says why ...
 *     fedc_client_free(c);
 *
 * Threads: a client is used by one thread at a time (the one that calls
 * fedc_client_run); only fedc_client_stop may be called from elsewhere,
 * from another thread or a signal handler. The trainer's callbacks run on
 * the thread of fedc_client_run, inside it, never before it is called nor
 * after it returns. The library installs no signal handler and reads no
 * environment (libcurl honours https_proxy and no_proxy); a program must
 * ignore SIGPIPE itself, since a peer closing a TLS connection would
 * otherwise kill it.
 */
#ifndef FEDC_PUBLIC_CLIENT_H
#define FEDC_PUBLIC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <fedc/error.h>
#include <fedc/settings.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How a run ended. The values are fedc-client's exit codes, documented in
 * docs/client.md, and are never renumbered. */
typedef enum {
  FEDC_CLIENT_EXIT_FINISHED = 0,   /* the job finished */
  FEDC_CLIENT_EXIT_FAILED = 1,     /* runtime failure (out of memory, the
                                      trainer failed, cannot write
                                      keep_updates, coordinator misbehaves) */
  FEDC_CLIENT_EXIT_BAD_INPUT = 2,  /* bad parameters or data, or the job's
                                      model does not fit the trainer */
  FEDC_CLIENT_EXIT_REFUSED = 3,    /* refused by the coordinator (certificate
                                      not allowed or revoked), or the
                                      coordinator's certificate failed
                                      verification */
  FEDC_CLIENT_EXIT_GAVE_UP = 4,    /* no answer from the coordinator for
                                      give_up_s */
  FEDC_CLIENT_EXIT_INTERRUPTED = 5, /* stopped by fedc_client_stop */
  FEDC_CLIENT_EXIT_DECLINED = 6     /* the job filter declined the job (the
                                       coordinator was told why) or skipped it */
} fedc_client_exit;

/* What a job filter (fedc_client_params.job_filter) answers. */
enum {
  FEDC_CLIENT_JOB_ACCEPT = 0,  /* take part */
  FEDC_CLIENT_JOB_DECLINE = 1, /* refuse it: POST /v1/decline with the reason */
  FEDC_CLIENT_JOB_SKIP = 2     /* end the run without telling the coordinator
                                  (a job already done, data to reload first) */
};

#define FEDC_CLIENT_MAX_HIDDEN 8
#define FEDC_CLIENT_MAX_TENSORS (2 * (FEDC_CLIENT_MAX_HIDDEN + 1))
#define FEDC_CLIENT_SHA_HEX 64

/* The job's training hyper-parameters, as the coordinator sends them. */
typedef struct fedc_client_hparams {
  int32_t epochs;     /* 1..10000 */
  int32_t batch_size; /* 1..1e6 */
  float lr;           /* (0, 100] */
  float momentum;     /* [0, 1) */
  float prox_mu;      /* FedProx mu, >= 0 */
} fedc_client_hparams;

/*
 * The job, from the coordinator's answer to POST /v1/join: its id, rounds,
 * seed, model description and hyper-parameters. The model is one of the
 * built-in layouts (type "logreg", "softmax", "linreg" or "mlp"); its
 * tensors are what the coordinator averages and what every update must
 * hold, with these names and shapes. Type "tensors" is a tensor job: any
 * tensor set, described in the job object (fedc_client_round.job_json);
 * inputs, classes and hidden are then 0, and the trainer's train_st
 * trains it. A program's trainer may compute them
 * as it likes (an mlp job trained with tanh instead of ReLU, say).
 */
typedef struct fedc_client_job {
  int64_t client_id; /* this client's id at the coordinator */
  char id[128];      /* the job's id */
  int32_t rounds;    /* rounds of the job */
  int32_t round;     /* the round open when joining (0 before the first) */
  char type[16];     /* "logreg", "softmax", "linreg" or "mlp" */
  int32_t inputs;    /* features per row */
  int32_t classes;   /* softmax and mlp: classes; logreg, linreg: 0..2 */
  int32_t n_hidden;  /* mlp: hidden layers (> 0), else 0 */
  int32_t hidden[FEDC_CLIENT_MAX_HIDDEN];
  float l1, l2;      /* regularization of the weights; 0 when absent */
  fedc_client_hparams train;
  uint64_t seed;     /* the job's seed */
  /* A job with a schema: its "schema" and (once the statistics phase is
   * over) "stats" objects as JSON text, owned by the client and valid until
   * the next join; NULL when absent (docs/protocol.md, "Statistics"). */
  const char *schema_json, *stats_json;
  /* class weighting of the loss: "none", "balanced" or "w0,w1,..." (the
   * [train] class_weight key) and logreg's positive-class weight */
  char class_weight[1024];
  double pos_weight;
  double eval_threshold; /* binary models: score >= threshold predicts 1 */
  char strategy[32]; /* the job's [strategy] name; "fedavg" when not sent */
} fedc_client_job;

/* One tensor of the job's flat parameter vector (float32, row-major: a
 * layer's weight is [out, in], PyTorch nn.Linear's layout, then its bias
 * [out]). */
typedef struct fedc_client_tensor {
  const char *name; /* "layers.0.weight", "layers.0.bias", ... */
  int32_t ndim;     /* 1 or 2 */
  int64_t shape[2];
  size_t offset;    /* first float of the tensor in the flat vector */
  size_t count;     /* floats in it */
} fedc_client_tensor;

/* What a trainer is given for a round. Every pointer in it is valid during
 * the callback only. */
typedef struct fedc_client_round {
  const fedc_client_job *job;
  int32_t round;
  const fedc_client_tensor *tensors; /* the job's tensors, in order */
  size_t n_tensors;
  size_t n_params;         /* floats in the flat vector */
  const char *fingerprint; /* this client's certificate, 64 hex digits */
  /* A seed for the round's randomness (shuffling), derived from the job's
   * seed, the round and the fingerprint: the same job gives the same
   * stream, every client and round a different one. */
  uint64_t seed;
  /* The job object of the coordinator's answer to POST /v1/join, as JSON
   * text (every field, also those this struct does not hold: what an
   * external trainer gets in FEDC_TASK); "{}" when not known. */
  const char *job_json;
  /* SCAFFOLD jobs (job->strategy "scaffold"): the drift correction c - c_i
   * (n_params floats) that every local SGD step adds to its minibatch
   * gradient, y <- y - lr (g(y) + correction); NULL for other jobs. The
   * client keeps the variates and computes the delta it sends from the
   * trainer's result (docs/strategies.md). */
  const float *correction;
} fedc_client_round;

/* A trainer's report. */
typedef struct fedc_client_metrics {
  int64_t samples; /* train: the update's sample count (>= 1), the weight
                      the coordinator gives it; evaluate: rows evaluated */
  double loss;     /* train: mean training loss (finite), sent with the
                      update; evaluate: mean loss */
  double accuracy; /* in [0, 1], or NAN when it does not apply (logged) */
  int64_t steps;   /* train: local SGD steps taken; 0 = not said (then
                      epochs x ceil(samples / batch_size)) */
} fedc_client_metrics;

/*
 * The trainer: the program's code that the client calls. Callbacks run on
 * the thread of fedc_client_run, inside it. Each returns 0, or a negative
 * FEDC_E* code with a message set by fedc_error_set; the run then ends with
 * that message in fedc_error_msg().
 *
 * prepare (optional): called after each join, before any round, with the
 * job and its tensor layout. A trainer checks there that the job fits its
 * data (inputs, classes) and makes its buffers. FEDC_ENOMEM ends the run
 * with FEDC_CLIENT_EXIT_FAILED; any other error means the job does not fit
 * (FEDC_CLIENT_EXIT_BAD_INPUT).
 *
 * train (required): w holds r->n_params floats, the round's global model,
 * owned by the client; the trainer overwrites it with its new weights
 * (same layout; it may keep no pointer to w after returning) and fills
 * *out (samples >= 1, finite loss). An error ends the run with
 * FEDC_CLIENT_EXIT_FAILED. Weights that are not finite are refused the
 * same way. An error set with the sub-code FEDC_SUB_TRAINER_FAILED
 *     return fedc_error_set_sub(FEDC_EIO, FEDC_SUB_TRAINER_FAILED, "why");
 * fails this round only: the client logs it, sends no update, tells the
 * coordinator (POST /v1/report, docs/protocol.md) and serves the next
 * round (the external trainer of [trainer] command fails rounds so).
 *
 * evaluate (optional): measures the round's global model w (read only,
 * r->n_params floats) on the program's own held-out data before training;
 * *out is logged ("global model evaluated"). An error ends the run with
 * FEDC_CLIENT_EXIT_FAILED, except one with FEDC_SUB_TRAINER_FAILED,
 * which is logged as a warning and the round goes on to training.
 *
 * report (optional): federated evaluation. When the coordinator asks
 * ("evaluate" task) the client fetches the committed round's model and
 * calls report with it (w, read only); the trainer evaluates it on its
 * validation data and returns the evaluation report as a JSON object (the
 * "report" of POST /v1/eval, docs/protocol.md: counts and sums that the
 * coordinator merges across sites) in *json, allocated with fedc_malloc
 * (the client frees it). Without it the client declines evaluations.
 *
 * The client never frees user_data: the program owns it and frees it
 * after fedc_client_free.
 */
typedef struct fedc_client_trainer {
  int (*prepare)(void *user_data, const fedc_client_job *job, const fedc_client_tensor *tensors,
                 size_t n_tensors, size_t n_params);
  int (*train)(void *user_data, const fedc_client_round *r, float *w, fedc_client_metrics *out);
  int (*evaluate)(void *user_data, const fedc_client_round *r, const float *w,
                  fedc_client_metrics *out);
  void *user_data;
  /* For the client's log lines only ("starting", "joined"); 0 when not
   * known: local training rows, features per row, held-out rows. */
  int64_t samples, features, test_samples;
  /* stats (optional): a job with a schema asks each site for its data's
   * statistics before round 1: *json is set to a fedc_malloc'd JSON object
   * (the built-in trainer's fedc_stats_to_json form: counts, sums, minima,
   * maxima, missing and label counts, never a row). Without it the client
   * cannot take part in such a job. */
  int (*stats)(void *user_data, const fedc_client_job *job, char **json);
  int (*report)(void *user_data, const fedc_client_round *r, const float *w, char **json);
  /*
   * Tensor sets of any dtype (a job whose model type is "tensors": its
   * tensors' names, shapes and dtypes are the job's, listed in
   * r->job_json; docs/trainers.md). train_st gets the round's global model
   * as the safetensors container the coordinator sent (model_len bytes,
   * valid during the call) and returns its update as a safetensors
   * container in *update (allocated with fedc_malloc; the client frees
   * it): the same tensors with the same dtypes and shapes. The client
   * checks it (those tensors and no other, finite F64/F32/F16/BF16
   * values, out->samples >= 1, a finite out->loss) and encodes it with its
   * own metadata; a failed check fails the round as
   * FEDC_SUB_TRAINER_FAILED does (reported, nothing sent). evaluate_st
   * (optional) measures the global model likewise. A tensor job needs
   * train_st; a job of a built-in type uses train when it is set, else
   * train_st. In a secure round the client masks the change of the
   * update's F32/F16/BF16 tensors (in the job's layout order, as float32)
   * and never sends the update itself.
   */
  int (*train_st)(void *user_data, const fedc_client_round *r, const uint8_t *model,
                  size_t model_len, uint8_t **update, size_t *update_len,
                  fedc_client_metrics *out);
  int (*evaluate_st)(void *user_data, const fedc_client_round *r, const uint8_t *model,
                     size_t model_len, fedc_client_metrics *out);
} fedc_client_trainer;

/*
 * What a client needs. Set up with fedc_client_params_init, then fill in
 * the fields; fields added later get defaults there, so a program that
 * uses fedc_client_params_init keeps building and working. Strings are
 * copied by fedc_client_new.
 */
typedef struct fedc_client_params {
  const char *url;          /* "https://host:port" of the coordinator; required */
  const char *ca;           /* PEM CA the coordinator's certificate must chain to */
  const char *cert;         /* PEM certificate of this client: its identity */
  const char *key;          /* PEM private key of cert */
  const char *name;         /* display name sent when joining; NULL or "" for none */
  const char *keep_updates; /* folder for a copy of every update sent; NULL or "" */
  double poll_s;            /* longest long-poll for a task (default 20) */
  double backoff_max_s;     /* longest wait between retries (default 30) */
  double give_up_s;         /* end with EXIT_GAVE_UP after this long without
                               an answer (default 600); 0 = never */
  const char *user_agent;   /* HTTP User-Agent; NULL for "fedc-client/<version>" */
  fedc_client_trainer trainer; /* train is required */
  const char *state_dir;    /* folder for state kept between runs (SCAFFOLD's
                               client variate); NULL or "": none, and a
                               scaffold job then ends the run */
  /* Optional: called after each join, before the trainer's prepare, with
   * the job object of the coordinator's answer (JSON text, valid during
   * the call). Answers FEDC_CLIENT_JOB_ACCEPT, _DECLINE (with a reason in
   * reason, cap bytes: the run then tells the coordinator, logs it and
   * ends with FEDC_CLIENT_EXIT_DECLINED; nothing is trained) or _SKIP. A
   * site's policy (fedc-client's [policy]) is such a filter. */
  int (*job_filter)(void *user_data, const char *job_json, char *reason, size_t cap);
  void *job_filter_data;
} fedc_client_params;

/* Fill p with the defaults (no URL, files or trainer). Any thread. */
void fedc_client_params_init(fedc_client_params *p);

typedef struct fedc_client fedc_client;

/*
 * Make a client: checks the parameters, reads the certificate's
 * fingerprint, creates keep_updates (one level) when missing, prepares the
 * HTTPS client. Nothing is sent yet and no callback runs. Errors:
 * FEDC_ECONFIG (a parameter is missing or unusable; the message names it),
 * FEDC_ENOMEM. On error *out is NULL. Any thread.
 */
int fedc_client_new(const fedc_client_params *p, fedc_client **out);

/*
 * Run the task loop until the job finishes or the run ends otherwise; the
 * message of a result other than FEDC_CLIENT_EXIT_FINISHED is in
 * fedc_error_msg() (on this thread), with a sub-code where one applies
 * (FEDC_SUB_TLS_PEER_UNTRUSTED, FEDC_SUB_TLS_PEER_NAME,
 * FEDC_SUB_TLS_REFUSED_BY_PEER, FEDC_SUB_NOT_ALLOWED). The trainer's
 * callbacks run inside this call. A client may be run again after a run
 * ends (it joins again).
 */
fedc_client_exit fedc_client_run(fedc_client *c);

/*
 * Ask a run to stop: a request in flight is abandoned within about a
 * second, a wait is cut short; a trainer callback already running finishes
 * first (its update is not sent). fedc_client_run then returns
 * FEDC_CLIENT_EXIT_INTERRUPTED. Async-signal-safe: call it from a signal
 * handler or any thread, while c exists.
 */
void fedc_client_stop(fedc_client *c);

/*
 * A site service between jobs: long-poll the coordinator (GET
 * /v1/task?next=1, which a finished job holds for up to poll_s) until the
 * job it serves changes, i.e. the coordinator goes away to start the next
 * job, or answers with something other than "finished"/"wait". Returns 0
 * then (run the client again: it joins the next job), or
 * FEDC_ECANCELED when stopped. Never gives up. Same thread as
 * fedc_client_run, not while it runs.
 */
int fedc_client_wait_next(fedc_client *c);

/* The id of the job of the last join ("" before one). Points into c. */
const char *fedc_client_job_id(const fedc_client *c);

/* Free a client that is not running. NULL is a no-op. */
void fedc_client_free(fedc_client *c);

/* The client's certificate fingerprint: SHA-256 of its DER encoding, 64
 * lowercase hex digits (its identity at the coordinator). Points into c. */
const char *fedc_client_fingerprint(const fedc_client *c);

/* ---- the built-in trainer ----------------------------------------------------------------
 *
 * fedc-client's own trainer, for a program that embeds the client but keeps
 * fedc's training: the job's built-in model trained with minibatch SGD on
 * the local data that the settings' [data] section names (train, and test
 * for evaluate; format, label, standardize), on [train] device, with
 * [train] threads BLAS threads on the CPU. The job's hyper-parameters come
 * from the coordinator with each task. prepare checks that the job's model
 * fits the data (feature count, labels) and fails with FEDC_ESHAPE or
 * FEDC_ERANGE naming the [data] key otherwise.
 *
 *     fedc_client_builtin *b;
 *     if (fedc_client_builtin_new(settings, &b, &params.trainer) != 0) ...;
 *     ... fedc_client_new(&params, &c), fedc_client_run(c), fedc_client_free(c) ...
 *     fedc_client_builtin_free(b);            // after the client that used it
 *
 * fedc_client_builtin_new loads the data and opens the compute backend, and
 * fills *trainer (evaluate only when there is a test set); the settings are
 * copied. Errors: FEDC_ECONFIG ([data] train not set), FEDC_EIO,
 * FEDC_EFORMAT, FEDC_ENOTFOUND (the data), FEDC_EUNSUPPORTED (no such
 * device), FEDC_ENOMEM. Any thread; the trainer's callbacks then run where
 * fedc_client_run calls them.
 */
typedef struct fedc_client_builtin fedc_client_builtin;
int fedc_client_builtin_new(const fedc_settings *s, fedc_client_builtin **out,
                            fedc_client_trainer *trainer);
void fedc_client_builtin_free(fedc_client_builtin *b);

/*
 * The fingerprint of the first certificate in a PEM file, as
 * fedc_client_fingerprint gives it (the same as `openssl x509 -in c.pem
 * -outform DER | sha256sum`). FEDC_EIO (unreadable), FEDC_EFORMAT (no PEM
 * certificate in it). Any thread.
 */
int fedc_client_cert_fingerprint(const char *pem_path, char hex[FEDC_CLIENT_SHA_HEX + 1]);

#ifdef __cplusplus
}
#endif

#endif
