/*
 * client.c - the edge client's task loop (<fedc/client.h>, docs/client.md).
 *
 * A run joins the coordinator (POST /v1/join) and hands the job to the
 * trainer's prepare, then long-polls GET /v1/task. A "train" task makes it
 * download the round's global model, check its checksum against the
 * task's, let the trainer evaluate it (when it can) and train it, and post
 * the weights back (POST /v1/update), keeping a copy when keep_updates is
 * set. "wait" polls again; "finished" ends the run with success. The loop
 * is one switch on an explicit state (run_state), each step returning the
 * next state.
 *
 * Every exchange goes through call(), which rides out a coordinator that
 * is away (network errors, 5xx) with full-jitter exponential backoff until
 * give_up_s passes without any answer. What the coordinator says (4xx) is
 * handled by the step that asked: 403 forbidden ends the run (this client
 * is not allowed), a stale or refused update is logged and the client
 * polls again. Failures are told apart by their codes and sub-codes, never
 * by their text.
 */
#include "client.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include "http_curl.h"
#include "model_base.h"
#include "model_download.h"
#include "ml/layout.h"
#include "scaffold_client.h"
#include "codec_client.h"
#include "secagg_client.h"
#include "upload_client.h"
#include "wire/safetensors.h"
#include "wire/update_meta.h"

/* the stream tag of a round's seed: "client" */
#define CLIENT_TAG 0x636c69656e74ULL
#define BACKOFF_BASE_S 0.2
#define CONNECT_TIMEOUT_S 10.0
#define JOIN_TIMEOUT_S 60.0
#define POLL_MARGIN_S 30.0       /* a long-poll's timeout past its wait */
#define TRANSFER_TIMEOUT_S 600.0 /* model download, update upload */
#define JSON_MAX ((size_t)1 << 20)
/* The largest model body taken: a sanity bound, not a job's size (the
 * coordinator's tensor job fixes that, and the task's SHA-256 checks the
 * bytes); tensor jobs of a few GiB must pass (issue 17 asks for 2 GB). */
#define MODEL_MAX ((size_t)64 << 30)
#define WAIT_MAX_S 60.0 /* longest "retry_after" honoured */

/* Where a run is: fedc_client_run switches on it, every step returns the
 * next one. */
typedef enum {
  RUN_JOIN,     /* join, then hand the job to the trainer */
  RUN_POLL,     /* long-poll for a task */
  RUN_WAIT,     /* the task said "wait": sleep a little, poll again */
  RUN_ROUND,    /* the task said "train": model, training, update */
  RUN_EVAL,     /* the task said "evaluate": model, report, POST /v1/eval */
  RUN_FINISHED, /* the task said "finished" */
  RUN_STATS,    /* the task said "stats": send the local statistics */
  RUN_END       /* the run ended otherwise; c->outcome says how */
} run_state;

struct fedc_client {
  char *url, *ca, *cert, *key, *name, *keep_updates, *user_agent, *state_dir;
  fedc_client_scaffold *scaffold; /* a SCAFFOLD job's client variate, or NULL */
  fedc_client_codec *codec;       /* [strategy] compression: codec_client.c, or NULL */
  double poll_s, backoff_max_s, give_up_s;
  double test_stall_s;
  double test_train_delay_s;
  int test_secagg_lie;
  fedc_client_trainer trainer;
  int (*job_filter)(void *, const char *, char *, size_t); /* site policy: serve.c */
  void *job_filter_data;
  char seen_job[128]; /* the job of the last join, accepted or not */
  char fingerprint[FEDC_CLIENT_SHA_HEX + 1];
  uint64_t fp64; /* the fingerprint's first 64 bits: names the round's stream */
  fedc_http_client *http;
  fedc_client_backoff backoff; /* retries of one request */
  fedc_client_backoff pause;   /* re-asking after answers it cannot use */
  volatile sig_atomic_t stop;

  /* from the last join */
  fedc_client_job job;
  fedc_model_spec spec;
  fedc_client_tensor tensors[FEDC_CLIENT_MAX_TENSORS];
  char names[FEDC_CLIENT_MAX_TENSORS][FEDC_CLIENT_NAME_MAX];
  size_t n_tensors, n_params;
  float *w;
  float *g; /* a secure round's start model (the delta is w - g) */

  /* the last update made, resent as is when the same task comes again
   * (a coordinator that restarted asks for its round's updates again) */
  uint8_t *update;
  size_t update_len;
  int32_t update_round;
  char update_sha[FEDC_CLIENT_SHA_HEX + 1];
  int update_refused; /* refused for good (4xx other than 409): never resent */
  int64_t update_samples;
  double update_loss;
  /* the job object of the last join, as JSON text (FEDC_TASK's "job") */
  char *job_json;
  /* 1: rounds go through the trainer's train_st (a tensor job, or a
   * trainer without train); the round's model is then kept as sent */
  int st_mode;
  uint8_t *model_bytes;
  size_t model_len;
  /* the last model downloaded and checked: later downloads as deltas
   * from it (model_base.h) */
  fedc_model_base base;
  /* the last round whose training failed (reported, nothing sent) */
  int32_t failed_round;
  char failed_sha[FEDC_CLIENT_SHA_HEX + 1];

  double last_contact; /* monotonic time of the last answer */
  fedc_client_exit outcome;
  int waiting;      /* the last poll said "wait" (log it once) */
  int32_t selected; /* the last round "selected" was logged for */
  int32_t eval_declined; /* the last round this client could not evaluate */
  char last_err[512];
  char *schema_json, *stats_json; /* the job's, from the last join (stats_client.c) */
  char *own_stats; /* this site's, sent masked (stats_secagg.c): its far check */
  double first_loss;              /* the first round's training loss (divergence) */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- making and freeing ----------------------------------------------------------- */

void fedc_client_params_init(fedc_client_params *p) {
  memset(p, 0, sizeof *p);
  p->poll_s = 20;
  p->backoff_max_s = 30;
  p->give_up_s = 600;
}

const char *fedc_client_fingerprint(const fedc_client *c) {
  return c->fingerprint;
}

void fedc_client_stop(fedc_client *c) {
  c->stop = 1;
}

void fedc_client_set_test_stall(fedc_client *c, double secs) {
  c->test_stall_s = secs;
}

void fedc_client_set_test_train_delay(fedc_client *c, double secs) {
  c->test_train_delay_s = secs;
}

void fedc_client_set_test_secagg_lie(fedc_client *c, int lie) {
  c->test_secagg_lie = lie;
}

void fedc_client_free(fedc_client *c) {
  if (c == NULL) return;
  fedc_http_client_free(c->http);
  fedc_free(c->w);
  fedc_free(c->g);
  fedc_free(c->update);
  fedc_free(c->schema_json);
  fedc_free(c->stats_json);
  fedc_free(c->own_stats);
  fedc_free(c->job_json);
  fedc_free(c->model_bytes);
  fedc__model_base_clear(&c->base);
  fedc_client_scaffold_free(c->scaffold);
  fedc__client_codec_free(c->codec);
  char *strs[] = {c->url,  c->ca,           c->cert,      c->key,
                  c->name, c->keep_updates, c->user_agent, c->state_dir};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    fedc_free(strs[i]);
  fedc_free(c);
}

/* A copy of s ("" for NULL) into *out. */
static int copy_str(const char *s, char **out) {
  *out = fedc_strdup(s ? s : "");
  return *out ? 0 : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
}

static int check_file(const char *what, const char *path) {
  if (path == NULL || path[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "client: the %s file is not given", what);
  if (access(path, R_OK) != 0)
    return fedc_error_set(FEDC_ECONFIG, "client: %s %s: cannot read: %s", what, path,
                          strerror(errno));
  return 0;
}

/* Creates keep_updates (one level) when it is missing. */
static int keep_dir(const char *d) {
  if (d[0] == '\0') return 0;
  struct stat st;
  if (stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(d, W_OK) == 0) return 0;
  if (mkdir(d, 0755) == 0) return 0;
  return fedc_error_set(FEDC_ECONFIG, "client: keep_updates %s: not a writable folder: %s", d,
                        strerror(errno));
}

int fedc_client_new(const fedc_client_params *p, fedc_client **out) {
  if (out == NULL || p == NULL) return fedc_error_set(FEDC_EINVAL, "client: NULL argument");
  *out = NULL;
  if (p->trainer.train == NULL && p->trainer.train_st == NULL)
    return fedc_error_set(FEDC_ECONFIG, "client: the trainer has no train callback");
  if (p->url == NULL || p->url[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "client: the coordinator's URL is not given");
  if (!(p->poll_s > 0) || !(p->backoff_max_s > 0) || !(p->give_up_s >= 0))
    return fedc_error_set(FEDC_ECONFIG,
                          "client: poll_s = %g, backoff_max_s = %g, give_up_s = %g: the first "
                          "two must be > 0, the last >= 0",
                          p->poll_s, p->backoff_max_s, p->give_up_s);
  int rc = check_file("CA", p->ca);
  if (rc == 0) rc = check_file("certificate", p->cert);
  if (rc == 0) rc = check_file("key", p->key);
  if (rc != 0) return rc;
  fedc_client *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  c->poll_s = p->poll_s;
  c->backoff_max_s = p->backoff_max_s;
  c->give_up_s = p->give_up_s;
  c->trainer = p->trainer;
  c->job_filter = p->job_filter;
  c->job_filter_data = p->job_filter_data;
  c->outcome = FEDC_CLIENT_EXIT_FAILED;
  rc = copy_str(p->url, &c->url);
  if (rc == 0) rc = copy_str(p->ca, &c->ca);
  if (rc == 0) rc = copy_str(p->cert, &c->cert);
  if (rc == 0) rc = copy_str(p->key, &c->key);
  if (rc == 0) rc = copy_str(p->name, &c->name);
  if (rc == 0) rc = copy_str(p->keep_updates, &c->keep_updates);
  if (rc == 0) rc = copy_str(p->state_dir, &c->state_dir);
  if (rc == 0) rc = copy_str(p->user_agent ? p->user_agent : "fedc-client/" FEDC_VERSION,
                             &c->user_agent);
  if (rc == 0) {
    rc = fedc_client_cert_fingerprint(c->cert, c->fingerprint);
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_ECONFIG, "client: certificate: %s", msg);
    }
    if (rc == 0) rc = fedc__client_cert_check_dates(c->cert);
  }
  for (int i = 0; rc == 0 && i < 16; i++) {
    char ch = c->fingerprint[i];
    c->fp64 = (c->fp64 << 4) | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
  }
  if (rc == 0) {
    fedc_http_client_opts ho = {.base_url = c->url,
                                .ca_path = c->ca,
                                .cert_path = c->cert,
                                .key_path = c->key,
                                .user_agent = c->user_agent,
                                .cancel = &c->stop};
    rc = fedc_http_client_new(&ho, &c->http);
    if (rc == FEDC_EINVAL)
      rc = fedc_error_set(FEDC_ECONFIG,
                          "client: url %s: must be an https:// URL (plain HTTP is not supported)",
                          c->url);
  }
  if (rc == 0) rc = keep_dir(c->keep_updates);
  if (rc != 0) {
    fedc_client_free(c);
    return rc;
  }
  /* jitter is meant to differ between clients and between runs; it never
   * touches the training, which stays reproducible */
  uint64_t jseed = c->fp64 ^ (uint64_t)getpid() ^ (uint64_t)(now_s() * 1e9);
  fedc_client_backoff_init(&c->backoff, BACKOFF_BASE_S, c->backoff_max_s, jseed);
  fedc_client_backoff_init(&c->pause, BACKOFF_BASE_S, c->backoff_max_s, ~jseed);
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
struct fedc_client;
static void post_warning(struct fedc_client *c, int32_t round, const char *detail);

/* Ends the run with an outcome; the message (and sub-code) is kept in
 * fedc_error_msg and fedc_error_sub. */
static int end_run_sub(fedc_client *c, fedc_client_exit e, int err, int sub, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
static int end_run_sub(fedc_client *c, fedc_client_exit e, int err, int sub, const char *fmt,
                       ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fedc_error_set_sub(err, sub, "%s", msg);
  c->outcome = e;
  return CALL_END;
}

#define end_run(c, e, err, ...) end_run_sub((c), (e), (err), FEDC_SUB_NONE, __VA_ARGS__)

static int interrupted(fedc_client *c) {
  return end_run(c, FEDC_CLIENT_EXIT_INTERRUPTED, FEDC_ECANCELED, "interrupted by a signal");
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
  fedc_model_dl *dl; /* GET into a resumable file (model_download.h), or NULL */
} request;

/*
 * Sends a request until the coordinator answers with a status below 500.
 * Network errors and 5xx answers are retried after a full-jitter backoff
 * delay (at least the answer's Retry-After, at most backoff_max_s), until
 * give_up_s has passed since the last answer of any kind; then the run
 * ends with FEDC_CLIENT_EXIT_GAVE_UP. Failures that no retry can mend end
 * it at once: the coordinator's certificate fails verification (its
 * sub-code says whether its chain or its name), or the TLS layer refuses
 * ours (exit 3), our own TLS files or URL are unusable (2).
 * Returns 0 with *resp holding the answer (the caller frees it), or
 * CALL_END with c->outcome set.
 */
static int call(fedc_client *c, const request *r, fedc_http_response *resp) {
  double give_up = c->give_up_s;
  for (;;) {
    if (c->stop) return interrupted(c);
    fedc_http_call hc = {.timeout_s = r->timeout_s,
                         .connect_timeout_s = CONNECT_TIMEOUT_S,
                         .max_response = r->max_response};
    if (r->dl) fedc__model_dl_attempt(r->dl, &hc, resp); /* Range from the bytes on disk */
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
      int sub = fedc_error_sub();
      snprintf(c->last_err, sizeof c->last_err, "%s", fedc_error_msg());
      switch (resp->fail) {
      case FEDC_HTTP_FAIL_CANCELLED:
        fedc_http_response_free(resp);
        if (c->stop) return interrupted(c);
        break;
      case FEDC_HTTP_FAIL_TLS_VERIFY:
        if (sub == FEDC_SUB_TLS_PEER_NAME)
          return end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_ENETWORK, sub,
                             "the coordinator's certificate does not name the "
                             "host in [server] url (%s): %s",
                             c->url, c->last_err);
        return end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_ENETWORK,
                           FEDC_SUB_TLS_PEER_UNTRUSTED,
                           "the coordinator's certificate is not signed by [tls] ca (%s): %s",
                           c->ca, c->last_err);
      case FEDC_HTTP_FAIL_TLS_REFUSED:
        if (sub == FEDC_SUB_TLS_OWN_CERT_EXPIRED)
          return end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EREFUSED, sub,
                             "the coordinator refused this client's certificate as "
                             "expired (%s, fingerprint %s); ask the job's CA for a new "
                             "one, or check the clocks: %s",
                             c->cert, c->fingerprint, c->last_err);
        return end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EREFUSED,
                           FEDC_SUB_TLS_REFUSED_BY_PEER,
                           "the coordinator refused this client's certificate "
                           "(%s, fingerprint %s) in the TLS handshake; is it "
                           "signed by the job's CA? %s",
                           c->cert, c->fingerprint, c->last_err);
      case FEDC_HTTP_FAIL_LOCAL:
        if (rc == FEDC_ENOMEM || (r->dl && rc != FEDC_ECONFIG)) /* the model's file */
          return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", c->last_err);
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
      return end_run(c, FEDC_CLIENT_EXIT_GAVE_UP, FEDC_ENETWORK,
                     "gave up: no answer from the coordinator at %s for "
                     "%.0f s ([client] give_up_s); last error: %s",
                     c->url, now - c->last_contact, c->last_err);
    int attempt = (int)c->backoff.attempt + 1;
    double delay = fedc_client_backoff_next(&c->backoff);
    if (resp->retry_after_s > delay)
      delay = resp->retry_after_s < c->backoff_max_s ? resp->retry_after_s : c->backoff_max_s;
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
  return end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EREFUSED, FEDC_SUB_NOT_ALLOWED,
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

/* (Re)builds the flat vector and the tensor layout for the job's spec, then
 * lets the trainer see the job. */
static int model_setup(fedc_client *c) {
  fedc_free(c->w);
  fedc_free(c->g);
  c->w = c->g = NULL;
  if (strcmp(c->job.type, "tensors") == 0) {
    /* a tensor job: no flat vector, no layout; train_st takes it whole */
    c->n_params = c->n_tensors = 0;
    fedc__client_codec_free(c->codec); /* none left from an earlier job */
    c->codec = NULL;
    return 0;
  }
  c->n_params = fedc_model_n_params(&c->spec);
  c->n_tensors = fedc_client_layout(&c->spec, c->tensors, c->names);
  if ((c->w = fedc_malloc_array(c->n_params, sizeof(float))) == NULL)
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "client: out of memory");
  /* SCAFFOLD: the site's control variate, kept in [client] state_dir */
  fedc_client_scaffold_free(c->scaffold);
  c->scaffold = NULL;
  const fedc_strategy_info *si = fedc_strategy_lookup(c->job.strategy);
  if (si && (si->caps & FEDC_STRATEGY_VARIATES)) {
    int src = fedc_client_scaffold_new(c->state_dir, c->job.id, &c->spec, &c->scaffold);
    if (src != 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, src, "%s", msg);
    }
  }
  /* compressed updates: the codec the job announces (codec_client.c) */
  fedc__client_codec_free(c->codec);
  c->codec = NULL;
  int crc = fedc__client_codec_new(c->job_json, c->state_dir, c->job.id, c->job.seed,
                                   (int32_t)c->job.client_id, c->n_params, &c->codec);
  if (crc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, crc, "%s", msg);
  }
  if (c->trainer.prepare == NULL) return 0;
  int rc = c->trainer.prepare(c->trainer.user_data, &c->job, c->tensors, c->n_tensors,
                              c->n_params);
  if (rc == 0) return 0;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", fedc_error_msg());
  if (rc == FEDC_ESHAPE || rc == FEDC_ERANGE || rc == FEDC_EUNSUPPORTED)
    return end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, rc, "the job does not fit this client's data: %s",
                   msg);
  return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", msg);
}

/* The "job" object of a join answer as JSON text, for trainers that want
 * every field of it (FEDC_TASK); "{}" when there is none. NULL: out of
 * memory. Freed with fedc_free. */
static char *job_object_text(const char *body, size_t len) {
  cJSON *o = cJSON_ParseWithLength(body, len);
  const cJSON *job = o ? cJSON_GetObjectItemCaseSensitive(o, "job") : NULL;
  char *text = job && cJSON_IsObject(job) ? cJSON_PrintUnformatted(job) : NULL;
  char *out = fedc_strdup(text ? text : "{}");
  cJSON_free(text);
  cJSON_Delete(o);
  return out;
}

/*
 * The job filter after a join (a site's policy): hands it the "job" object
 * of the answer. 0: take part. Otherwise the run ends with
 * FEDC_CLIENT_EXIT_DECLINED: after telling the coordinator (POST
 * /v1/decline {"reason"}) for a decline, silently for a skip.
 */
static int post_decline(fedc_client *c, const char *reason);
static int filter_job(fedc_client *c, const char *body, size_t len) {
  cJSON *o = cJSON_ParseWithLength(body, len);
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(o, "job");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
  snprintf(c->seen_job, sizeof c->seen_job, "%s", cJSON_IsString(id) ? id->valuestring : "");
  char *text = cJSON_IsObject(job) ? cJSON_PrintUnformatted(job) : NULL;
  cJSON_Delete(o);
  if (text == NULL) return 0; /* the parse that follows reports it */
  char reason[256] = "";
  int verdict = c->job_filter(c->job_filter_data, text, reason, sizeof reason);
  cJSON_free(text);
  if (verdict == FEDC_CLIENT_JOB_ACCEPT) return 0;
  char qr[300], qid[160];
  if (verdict == FEDC_CLIENT_JOB_SKIP) {
    fedc_log_debug("msg=\"job skipped\" job=%s", q(qid, sizeof qid, c->seen_job));
    return end_run(c, FEDC_CLIENT_EXIT_DECLINED, FEDC_ECANCELED, "job %s skipped", c->seen_job);
  }
  fedc_log_warn("msg=\"declined the job by this site's policy\" job=%s reason=%s",
                q(qid, sizeof qid, c->seen_job), q(qr, sizeof qr, reason));
  return post_decline(c, reason);
}

/* Tell the coordinator this site will not take part (POST /v1/decline),
 * and end the run with FEDC_CLIENT_EXIT_DECLINED. */
static int post_decline(fedc_client *c, const char *reason) {
  cJSON *d = cJSON_CreateObject();
  char *dbody = d && cJSON_AddStringToObject(d, "reason", reason[0] ? reason : "site policy")
                    ? cJSON_PrintUnformatted(d)
                    : NULL;
  cJSON_Delete(d);
  if (dbody) {
    request r = {.what = "decline", .path = "/v1/decline", .ctype = "application/json",
                 .body = dbody, .len = strlen(dbody), .timeout_s = JOIN_TIMEOUT_S,
                 .max_response = JSON_MAX};
    fedc_http_response resp;
    if (call(c, &r, &resp) == 0) {
      if (resp.status != 200) log_refusal("decline", &resp, FEDC_LOG_WARN, "decline refused", 0);
      fedc_http_response_free(&resp);
    }
    cJSON_free(dbody);
    if (c->outcome == FEDC_CLIENT_EXIT_INTERRUPTED) return CALL_END;
  }
  return end_run(c, FEDC_CLIENT_EXIT_DECLINED, FEDC_EREFUSED, "declined job %s: %s", c->seen_job,
                 reason);
}

const char *fedc_client_job_id(const fedc_client *c) { return c->seen_job; }

/*
 * Where [client] keep_updates puts a round's copy: DIR/round-<r>.<ext>
 * (safetensors, or coded for a compressed body as sent).
 * A site service serves job after job into the one folder, so its copies
 * name the job as well (DIR/job-<id>-round-<r>.safetensors, the id's
 * letters, digits, '-' and '_' only) and one job's never replace another's.
 */
static void kept_path(const fedc_client *c, int32_t round, const char *ext, char *out,
                      size_t cap) {
  char id[72];
  size_t k = 0;
  for (const char *p = c->job_filter ? c->seen_job : ""; *p && k + 1 < sizeof id; p++)
    if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') id[k++] = *p;
  id[k] = '\0';
  if (k > 0)
    snprintf(out, cap, "%s/job-%s-round-%d.%s", c->keep_updates, id, (int)round, ext);
  else
    snprintf(out, cap, "%s/round-%d.%s", c->keep_updates, (int)round, ext);
}

int fedc_client_wait_next(fedc_client *c) {
  char path[64];
  snprintf(path, sizeof path, "/v1/task?wait=%g&next=1", c->poll_s);
  for (;;) {
    if (c->stop) return FEDC_ECANCELED;
    fedc_http_call hc = {.timeout_s = c->poll_s + POLL_MARGIN_S,
                         .connect_timeout_s = CONNECT_TIMEOUT_S, .max_response = JSON_MAX};
    fedc_http_response resp;
    if (fedc_http_get(c->http, path, &hc, &resp) != 0) {
      fedc_http_response_free(&resp);
      return c->stop ? FEDC_ECANCELED : 0; /* the coordinator went away: a new job */
    }
    fedc_client_task t;
    int still = resp.status == 200 &&
                fedc_client_task_parse((const char *)resp.body, resp.len, &t) == 0 &&
                (t.action == FEDC_CLIENT_TASK_FINISHED || t.action == FEDC_CLIENT_TASK_WAIT);
    if (still) { /* still the job it joined: another one means join again */
      cJSON *o = cJSON_ParseWithLength((const char *)resp.body, resp.len);
      const cJSON *job = cJSON_GetObjectItemCaseSensitive(o, "job");
      if (cJSON_IsString(job) && strcmp(job->valuestring, c->seen_job) != 0) still = 0;
      cJSON_Delete(o);
    }
    long status = resp.status;
    fedc_http_response_free(&resp);
    if (!still) return 0;
    /* a held poll comes back after poll_s; an early answer (an old
     * coordinator that does not hold it) is spaced out */
    if (status == 200 && nap(c, 1.0) != 0) return FEDC_ECANCELED;
  }
}

/* A site service (a job filter is set) whose data the job does not fit
 * declines it, so that it is not selected for rounds it cannot train. */
static run_state decline_unfit(fedc_client *c) {
  if (c->job_filter == NULL || c->outcome != FEDC_CLIENT_EXIT_BAD_INPUT) return RUN_END;
  char reason[256], qr[300];
  snprintf(reason, sizeof reason, "%s", fedc_error_msg());
  fedc_log_warn("msg=\"declined the job: it does not fit this site's data\" reason=%s",
                q(qr, sizeof qr, reason));
  post_decline(c, reason);
  return RUN_END;
}

/*
 * A queue daemon between jobs answers a join with 409 no_job. A site
 * service ends the run as declined (nothing to decline: no log line but
 * this one) and long-polls for the next job (fedc_client_wait_next); a
 * one-job client waits a poll period and joins again.
 */
static run_state no_job(fedc_client *c) {
  c->seen_job[0] = '\0';
  if (c->job_filter) {
    fedc_log_info("msg=\"no job is running at the coordinator: waiting for one\"");
    end_run(c, FEDC_CLIENT_EXIT_DECLINED, FEDC_ENOTFOUND, "no job is running at the coordinator");
    return RUN_END;
  }
  if (!c->waiting) fedc_log_info("msg=\"no job is running at the coordinator: waiting for one\"");
  c->waiting = 1;
  if (nap(c, c->poll_s > 1 ? c->poll_s : 1.0) != 0) return interrupted(c), RUN_END;
  return RUN_JOIN;
}

static run_state join(fedc_client *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || (c->name[0] && cJSON_AddStringToObject(o, "name", c->name) == NULL)) {
    cJSON_Delete(o);
    end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
    return RUN_END;
  }
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (body == NULL) {
    end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
    return RUN_END;
  }
  request r = {.what = "join",
               /* a site service reads the job before its policy decides:
                * it becomes eligible when it asks for work (job_site.c) */
               .path = c->job_filter ? "/v1/join?probe=1" : "/v1/join",
               .ctype = "application/json",
               .body = body,
               .len = strlen(body),
               .timeout_s = JOIN_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  cJSON_free(body);
  if (rc != 0) return RUN_END;
  if (resp.status == 403) {
    rc = forbidden(c, "join", &resp, 0);
    if (rc == 0)
      end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EREFUSED, FEDC_SUB_NOT_ALLOWED,
                  "the coordinator refused to let this client join");
    fedc_http_response_free(&resp);
    return RUN_END;
  }
  if (resp.status != 200) {
    char code[64], msg[256];
    fedc_client_error_parse((const char *)resp.body, resp.len, code, sizeof code, msg, sizeof msg);
    long status = resp.status;
    fedc_http_response_free(&resp);
    if (status == 409 && strcmp(code, "no_job") == 0) return no_job(c);
    end_run_sub(c, FEDC_CLIENT_EXIT_FAILED, FEDC_EIO, FEDC_SUB_HTTP_STATUS,
                "join: the coordinator answered HTTP %ld %s: %s", status, code[0] ? code : "-",
                msg);
    return RUN_END;
  }
  if (c->job_filter && filter_job(c, (const char *)resp.body, resp.len) != 0) {
    fedc_http_response_free(&resp); /* declined or skipped: serve.c */
    return RUN_END;
  }
  fedc_client_job job;
  rc = fedc_client_job_parse((const char *)resp.body, resp.len, &job);
  if (rc == 0) rc = fedc__client_job_extras(&c->schema_json, &c->stats_json, resp.body, resp.len);
  char *job_json = rc == 0 ? job_object_text((const char *)resp.body, resp.len) : NULL;
  fedc_http_response_free(&resp);
  if (rc == 0 && job_json == NULL) {
    end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
    return RUN_END;
  }
  fedc_free(c->job_json);
  c->job_json = job_json;
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    end_run(c, FEDC_CLIENT_EXIT_FAILED, rc,
            "the coordinator's answer to join is not what protocol v1 says: %s", msg);
    return RUN_END;
  }
  fedc_model_spec spec;
  int tensor_job = strcmp(job.type, "tensors") == 0;
  if (tensor_job && c->trainer.train_st == NULL) {
    end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, FEDC_EUNSUPPORTED,
            "the job is a tensor job ([model] type = tensors) and this client's trainer takes "
            "only the built-in layouts (fedc-client: set [trainer] command; docs/trainers.md)");
    return RUN_END;
  }
  c->st_mode = tensor_job || c->trainer.train == NULL;
  rc = tensor_job ? (memset(&spec, 0, sizeof spec), 0) : fedc_client_job_spec(&job, &spec);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, rc, "%s%s",
            rc == FEDC_EUNSUPPORTED ? "" : "the job does not fit this client's data: ", msg);
    return decline_unfit(c);
  }
  if (strcmp(job.id, c->job.id) != 0) {
    /* a new job: an update kept from another one must never be resent */
    fedc_free(c->update);
    c->update = NULL;
    c->update_len = 0;
    c->first_loss = 0; /* the divergence check compares within one job */
  }
  c->job = job;
  c->job.schema_json = c->schema_json;
  c->job.stats_json = c->stats_json;
  c->spec = spec;
  if (model_setup(c) != 0) return decline_unfit(c);
  fedc_client_backoff_reset(&c->backoff);
  fedc_client_backoff_reset(&c->pause);
  char qid[160];
  fedc_log_info("msg=\"joined\" client_id=%lld job=%s round=%d rounds=%d "
                "model=%s inputs=%d classes=%d params=%zu samples=%lld fingerprint=%s",
                (long long)job.client_id, q(qid, sizeof qid, job.id), (int)job.round,
                (int)job.rounds, job.type, (int)job.inputs, (int)job.classes, c->n_params,
                (long long)c->trainer.samples, c->fingerprint);
  return RUN_POLL;
}

/* ---- a round ------------------------------------------------------------------- */

/* What the trainer is told about round r. */
static void round_info(const fedc_client *c, int32_t round, fedc_client_round *r) {
  fedc_rng rng;
  fedc_rng_derive(&rng, c->job.seed, CLIENT_TAG, (uint64_t)round, c->fp64);
  *r = (fedc_client_round){.job = &c->job,
                           .round = round,
                           .tensors = c->tensors,
                           .n_tensors = c->n_tensors,
                           .n_params = c->n_params,
                           .fingerprint = c->fingerprint,
                           .seed = fedc_rng_u64(&rng),
                           .job_json = c->job_json ? c->job_json : "{}"};
}

enum { MODEL_OK = 0, MODEL_SKIP = 1, MODEL_REJOIN = 2, MODEL_DELTA_BAD = 3 };

/* Downloads the round's model into c->w. MODEL_OK: loaded; MODEL_SKIP: not
 * usable (logged, poll again); MODEL_REJOIN: it does not match the job;
 * CALL_END. */
static int download_model(fedc_client *c, const fedc_client_task *t, fedc_http_response *resp);

static int fetch_model(fedc_client *c, const fedc_client_task *t) {
  fedc_http_response resp;
  int rc = download_model(c, t, &resp);
  if (rc != MODEL_OK) return rc;
  fedc_st_file *f = NULL;
  rc = fedc_st_decode(resp.body, resp.len, &f);
  const char *sha0 = rc == 0 ? fedc_st_meta_get(f, "sha256") : NULL;
  if (sha0 != NULL && strcasecmp(sha0, t->model_sha256) == 0) /* the next delta's base */
    fedc__model_base_keep(&c->base, c->job.id, t->round, resp.body, resp.len);
  fedc_http_response_free(&resp);
  char m[600];
  if (rc == FEDC_ENOMEM) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  if (rc != 0) {
    fedc_log_warn("msg=\"model refused: not a valid container\" round=%d error=%s", (int)t->round,
                  q(m, sizeof m, fedc_error_msg()));
    return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
  }
  const char *sha = fedc_st_meta_get(f, "sha256");
  if (sha == NULL || strcasecmp(sha, t->model_sha256) != 0) {
    fedc_log_warn("msg=\"model refused: checksum mismatch\" round=%d "
                  "model_sha256=%s task_sha256=%s",
                  (int)t->round, sha ? sha : "(none)", t->model_sha256);
    fedc_st_free(f);
    fedc_error_set(FEDC_ECHECKSUM, "round %d: model checksum mismatch", (int)t->round);
    return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
  }
  rc = c->scaffold ? fedc_client_scaffold_model(c->scaffold, f, c->w)
                   : fedc_model_from_tensors(&c->spec, f, c->w);
  fedc_st_free(f);
  if (rc != 0) {
    /* the coordinator serves a model of another shape than the job it
     * described: it may have been restarted with a new job; join again */
    fedc_log_warn("msg=\"model does not match the job, joining again\" round=%d error=%s",
                  (int)t->round, q(m, sizeof m, fedc_error_msg()));
    return MODEL_REJOIN;
  }
  return MODEL_OK;
}

/* GET /v1/model/<round><query> into *resp (MODEL_OK; the caller frees it),
 * or MODEL_SKIP (refused, logged, paused), MODEL_DELTA_BAD (a delta
 * downloaded into state_dir could not be used: ask for the whole model),
 * or CALL_END. */
static int download_body(fedc_client *c, const fedc_client_task *t, fedc_http_response *resp0,
                         const char *query) {
  char path[96];
  snprintf(path, sizeof path, "/v1/model/%d%s", (int)t->round, query);
  request r = {
      .what = "model", .path = path, .timeout_s = TRANSFER_TIMEOUT_S, .max_response = MODEL_MAX};
  fedc_http_response resp;
  /* with a state_dir, into a file that a cut or a restart resumes */
  fedc_model_dl dl;
  int has_dir = c->state_dir != NULL && c->state_dir[0] != '\0';
  /* a delta from a base kept as a file: into its own file (model_base.h) */
  int from_file = query[0] != '\0' && c->base.file[0] != '\0';
  fedc__model_base_downloaded(&c->base, NULL, 0, 0);
  if (has_dir && (from_file ? fedc__model_dl_open_delta(&dl, c->state_dir, c->job.id, t->round,
                                                        MODEL_MAX, c->base.file, c->base.round)
                            : fedc__model_dl_open(&dl, c->state_dir, c->job.id, t->round,
                                                  MODEL_MAX)) == 0)
    r.dl = &dl;
  else if (has_dir)
    fedc_log_warn("msg=\"model downloaded in memory\" error=\"%s\"", fedc_error_msg());
  int rc;
  for (int tries = 0;; tries++) {
    rc = call(c, &r, &resp);
    if (rc != 0 || r.dl == NULL) break;
    if (resp.status == 416 && tries < 2) { /* bytes on disk the model no longer has */
      fedc__model_dl_restart(r.dl);
      fedc_http_response_free(&resp);
      continue;
    }
    if (resp.status != 200 && resp.status != 206) break;
    uint8_t *b;
    size_t n;
    rc = fedc__model_dl_finish(r.dl, &resp, &b, &n);
    if (rc == FEDC_MODEL_DL_DELTA_BAD) { /* logged: the whole model next */
      fedc_http_response_free(&resp);
      fedc__model_dl_close(r.dl);
      return MODEL_DELTA_BAD;
    }
    if (rc == 0) {
      fedc__model_base_downloaded(&c->base, r.dl->in_file ? r.dl->final : NULL, n,
                                  r.dl->rebuilt);
      fedc_free(resp.body);
      resp.body = b;
      resp.len = n;
      resp.status = 200;
      break;
    }
    fedc_http_response_free(&resp);
    if (rc == FEDC_ENOMEM) break;
    fedc_log_warn("msg=\"model download failed its check, starting over\" round=%d error=\"%s\"",
                  (int)t->round, fedc_error_msg());
    if (tries >= 2) {
      fedc__model_dl_close(r.dl);
      return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
    }
  }
  if (r.dl) fedc__model_dl_close(r.dl);
  if (rc == FEDC_ENOMEM) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  if (rc != 0) return rc;
  if (resp.status != 200) {
    if (resp.status == 403)
      rc = forbidden(c, "model", &resp, t->round);
    else
      log_refusal("model", &resp, FEDC_LOG_WARN, "model not available", t->round);
    fedc_http_response_free(&resp);
    if (rc != 0) return rc;
    return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
  }
  *resp0 = resp;
  return MODEL_OK;
}

/* The round's whole model into *resp, asked for as a delta from the model
 * this client holds when it holds one (model_base.h); a delta that cannot
 * be used is followed by a download of the whole model. */
static int download_model(fedc_client *c, const fedc_client_task *t, fedc_http_response *resp) {
  char q[32];
  fedc__model_base_query(&c->base, c->job.id, t->round, q, sizeof q);
  for (int whole = q[0] == '\0';; whole = 1) {
    int rc = download_body(c, t, resp, whole ? "" : q);
    if (rc == MODEL_DELTA_BAD && !whole) continue; /* a delta rebuilt from a file failed */
    if (rc == MODEL_DELTA_BAD) return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
    if (rc != MODEL_OK) return rc;
    rc = fedc__model_base_apply(&c->base, c->job.id, t->round, &resp->body, &resp->len,
                                MODEL_MAX);
    if (rc == 0) return MODEL_OK;
    fedc_http_response_free(resp);
    if (rc == FEDC_ENOMEM) return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
    if (whole) return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
  }
}

/* A round's model for train_st: kept in c->model_bytes as sent, once its
 * header checks out and its sha256 is the task's. */
static int fetch_model_st(fedc_client *c, const fedc_client_task *t) {
  fedc_http_response resp;
  int rc = download_model(c, t, &resp);
  if (rc != MODEL_OK) return rc;
  fedc_client_st_view v;
  rc = fedc__client_st_view(resp.body, resp.len, &v);
  if (rc == FEDC_ENOMEM) {
    fedc_http_response_free(&resp);
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "%s", fedc_error_msg());
  }
  const char *sha = rc == 0 ? fedc__client_st_meta(&v, "sha256") : NULL;
  if (rc != 0 || sha == NULL || strcasecmp(sha, t->model_sha256) != 0) {
    fedc_log_warn("msg=\"model refused\" round=%d error=\"%s\"", (int)t->round,
                  rc != 0 ? fedc_error_msg() : "checksum mismatch");
    if (rc == 0) fedc__client_st_view_free(&v);
    fedc_http_response_free(&resp);
    return pause_after_refusal(c) ? CALL_END : MODEL_SKIP;
  }
  fedc__client_st_view_free(&v);
  fedc__model_base_keep(&c->base, c->job.id, t->round, resp.body, resp.len);
  fedc_free(c->model_bytes);
  /* the response's body becomes the model (no second copy of it) */
  c->model_len = resp.len;
  c->model_bytes = resp.body;
  resp.body = NULL;
  resp.len = 0;
  return MODEL_OK;
}

/* The trainer evaluates the global model (logged): evaluate on c->w, or
 * evaluate_st on the model's bytes as sent in a tensor-set round. */
static int evaluate(fedc_client *c, int32_t round) {
  fedc_client_round r;
  round_info(c, round, &r);
  fedc_client_metrics m = {.accuracy = NAN};
  int rc = c->st_mode ? c->trainer.evaluate_st(c->trainer.user_data, &r, c->model_bytes,
                                               c->model_len, &m)
                      : c->trainer.evaluate(c->trainer.user_data, &r, c->w, &m);
  if (rc != 0 && fedc_error_sub() == FEDC_SUB_TRAINER_FAILED) {
    fedc_log_warn("msg=\"evaluation failed\" round=%d error=\"%s\"", (int)round,
                  fedc_error_msg());
    return 0;
  }
  if (rc == FEDC_ECANCELED && c->stop) return interrupted(c);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: evaluation failed: %s", (int)round,
                   msg);
  }
  if (isnan(m.accuracy))
    fedc_log_info("msg=\"global model evaluated\" round=%d test_loss=%.4f test_samples=%lld",
                  (int)round, m.loss, (long long)m.samples);
  else
    fedc_log_info("msg=\"global model evaluated\" round=%d test_acc=%.4f "
                  "test_loss=%.4f test_samples=%lld",
                  (int)round, m.accuracy, m.loss, (long long)m.samples);
  return 0;
}

enum { TRAIN_OK = 0, TRAIN_FAILED = 1 };

/*
 * A round the trainer failed (its error has FEDC_SUB_TRAINER_FAILED): one
 * log line, nothing sent, and POST /v1/report so that the coordinator
 * stops waiting for this client in this round. A coordinator without the
 * endpoint (404) is fine: the round then waits for its deadline.
 * TRAIN_FAILED, or CALL_END when the report met a fatal answer.
 */
static int report_failure(fedc_client *c, const fedc_client_task *t, const char *reason) {
  /* fedc_log escapes %s arguments itself */
  fedc_log_error("msg=\"trainer failed; nothing sent for this round\" round=%d error=\"%s\"",
                 (int)t->round, reason);
  /* until the coordinator says it knows, this round's task is not trained
   * again (a coordinator without /v1/report keeps asking) */
  c->failed_round = t->round;
  memcpy(c->failed_sha, t->model_sha256, sizeof c->failed_sha);
  cJSON *o = cJSON_CreateObject();
  char *body = NULL;
  if (o && cJSON_AddNumberToObject(o, "round", t->round) &&
      cJSON_AddStringToObject(o, "status", "trainer_failed") &&
      cJSON_AddStringToObject(o, "reason", reason))
    body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (body == NULL) return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
  request r = {.what = "report", .path = "/v1/report", .ctype = "application/json",
               .body = body, .len = strlen(body), .timeout_s = JOIN_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int rc = call(c, &r, &resp);
  cJSON_free(body);
  if (rc != 0) return rc;
  if (resp.status == 200) {
    /* the coordinator knows: a task for this round again is a new opening
     * of it (abandoned below quorum), to be trained again */
    fedc_log_info("msg=\"failure reported\" round=%d", (int)t->round);
    c->failed_round = 0;
  }
  else if (resp.status == 403)
    rc = forbidden(c, "report", &resp, t->round);
  else
    log_refusal("report", &resp, FEDC_LOG_WARN, "failure report refused", t->round);
  fedc_http_response_free(&resp);
  return rc != 0 ? rc : TRAIN_FAILED;
}

/* The trainer trains c->w; its result is checked and the update encoded
 * into c->update (and kept on disk when asked). TRAIN_OK, TRAIN_FAILED
 * (the trainer failed this round only: reported, nothing to send), or
 * CALL_END. */
/* The round's encoded update becomes the one to send (and to resend). */
static void hold_update(fedc_client *c, const fedc_client_task *t, uint8_t *buf, size_t len,
                        const fedc_client_metrics *m) {
  fedc_free(c->update);
  c->update = buf;
  c->update_len = len;
  c->update_round = t->round;
  c->update_refused = 0;
  c->update_samples = m->samples;
  c->update_loss = m->loss;
  memcpy(c->update_sha, t->model_sha256, sizeof c->update_sha);
}

static int write_atomic(const char *path, const uint8_t *buf, size_t len);
static int train_round(fedc_client *c, const fedc_client_task *t) {
  fedc_client_round r;
  round_info(c, t->round, &r);
  fedc_client_metrics m = {.accuracy = NAN};
  if (c->scaffold) r.correction = fedc_client_scaffold_begin(c->scaffold, t->round, c->w);
  if (c->codec) fedc__client_codec_begin(c->codec, t->round, c->w);
  if (c->test_train_delay_s > 0 && nap(c, c->test_train_delay_s) != 0)
    return interrupted(c);
  double t0 = now_s();
  int rc = c->trainer.train(c->trainer.user_data, &r, c->w, &m);
  if (rc != 0 && fedc_error_sub() == FEDC_SUB_TRAINER_FAILED) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return report_failure(c, t, msg);
  }
  if (rc == FEDC_ENONFINITE) { /* the loss blew up: diverged */
    char msg[400];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    fedc_log_warn("round=%d warning=diverged msg=\"%s; update withheld\"", (int)t->round, msg);
    post_warning(c, t->round, "training loss not finite: update withheld");
    /* and the round stops waiting for this site (POST /v1/report) */
    return report_failure(c, t, "training diverged (loss not finite): update withheld");
  }
  if (rc == FEDC_ECANCELED && c->stop) return interrupted(c);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: training failed: %s", (int)t->round,
                   msg);
  }
  double secs = now_s() - t0;
  /* a loss that is not finite, or ten times the first round's: the site
   * withholds its update and says so; the round goes on without it */
  if (!isfinite(m.loss) || (c->first_loss > 0 && m.loss > 10.0 * c->first_loss && m.loss > 1.0)) {
    char detail[160];
    snprintf(detail, sizeof detail, "training loss %g (first round %g): update withheld",
             m.loss, c->first_loss);
    fedc_log_warn("round=%d warning=diverged msg=\"%s\"", (int)t->round, detail);
    post_warning(c, t->round, detail);
    return report_failure(c, t, detail);
  }
  if (c->first_loss == 0 && m.loss > 0) c->first_loss = m.loss;
  for (size_t i = 0; i < c->n_tensors; i++) {
    const float *p = c->w + c->tensors[i].offset;
    for (size_t k = 0; k < c->tensors[i].count; k++)
      if (!isfinite(p[k]))
        return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENONFINITE,
                       "round %d: training failed: %s[%zu] is not finite (training diverged?)",
                       (int)t->round, c->tensors[i].name, k);
  }
  if (m.samples < 1 || m.samples > FEDC_UPDATE_MAX_SAMPLES || !isfinite(m.loss))
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_EINVAL,
                   "round %d: the trainer reported %lld samples and loss %g: an update needs "
                   "1..2^40 samples and a finite loss",
                   (int)t->round, (long long)m.samples, m.loss);
  if (isfinite(m.accuracy))
    fedc_log_info("msg=\"trained\" round=%d samples=%lld epochs=%d loss=%.4f acc=%.4f secs=%.3f",
                  (int)t->round, (long long)m.samples, (int)c->job.train.epochs, m.loss,
                  m.accuracy, secs);
  else
    fedc_log_info("msg=\"trained\" round=%d samples=%lld epochs=%d loss=%.4f secs=%.3f",
                  (int)t->round, (long long)m.samples, (int)c->job.train.epochs, m.loss, secs);
  uint8_t *buf;
  size_t len;
  if (c->scaffold) {
    /* the variate's update needs the local step count: the trainer's, or
     * what the job's epochs and batch size make of its samples */
    int64_t bs = c->job.train.batch_size < 1 ? 1 : c->job.train.batch_size;
    int64_t steps = m.steps > 0 ? m.steps
                                : (int64_t)c->job.train.epochs * ((m.samples + bs - 1) / bs);
    rc = fedc_client_scaffold_finish(c->scaffold, t->round, c->w, steps, c->job.train.lr);
    if (rc != 0)
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: %s", (int)t->round,
                     fedc_error_msg());
    rc = fedc_client_scaffold_encode(c->scaffold, c->w, t->round, m.samples, m.loss, &buf, &len);
  } else if (c->codec) {
    rc = fedc__client_codec_encode(c->codec, c->w, t->round, m.samples, m.loss, &buf, &len);
  } else {
    rc = fedc_client_update_encode(&c->spec, c->w, t->round, m.samples, m.loss, &buf, &len);
  }
  if (rc != 0)
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: %s", (int)t->round, fedc_error_msg());
  if (c->keep_updates[0]) {
    size_t plen = strlen(c->keep_updates) + 160;
    char *path = fedc_malloc(plen);
    if (path == NULL) {
      fedc_free(buf);
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory");
    }
    kept_path(c, t->round, "safetensors", path, plen);
    rc = fedc_client_update_write(path, &c->spec, c->w, t->round, m.samples, m.loss);
    if (rc == 0 && c->codec) { /* and the compressed body as sent */
      kept_path(c, t->round, "coded", path, plen);
      rc = write_atomic(path, buf, len);
    }
    if (rc != 0) {
      fedc_free(buf);
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "[client] keep_updates: cannot write %s: %s", path,
              msg);
      fedc_free(path);
      return CALL_END;
    }
    fedc_free(path);
  }
  hold_update(c, t, buf, len, &m);
  return 0;
}

/* A small JSON POST whose answer only matters by its status: 0 sent (2xx),
 * 1 refused (logged), CALL_END when the run ends. */
static int post_json(fedc_client *c, const char *what, const char *path, const char *body) {
  request r = {.what = what,
               .path = path,
               .ctype = "application/json",
               .body = body,
               .len = strlen(body),
               .timeout_s = TRANSFER_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  if (call(c, &r, &resp) != 0) return CALL_END;
  int rc = 0;
  if (resp.status == 403) {
    rc = forbidden(c, what, &resp, 0) != 0 ? CALL_END : 1;
  } else if (resp.status / 100 != 2) {
    log_refusal(what, &resp, FEDC_LOG_WARN, "refused", 0);
    rc = 1;
  }
  fedc_http_response_free(&resp);
  return rc;
}

/* Diverged training (or, under secure aggregation, a site far from the
 * federation): the coordinator counts it (POST /v1/warn); best effort. */
static void post_warning_kind(fedc_client *c, const char *kind, int32_t round,
                              const char *detail) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "kind", kind);
  cJSON_AddNumberToObject(o, "round", round);
  cJSON_AddStringToObject(o, "detail", detail);
  char *body = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (body) post_json(c, "warning", "/v1/warn", body);
  cJSON_free(body);
}

static void post_warning(fedc_client *c, int32_t round, const char *detail) {
  post_warning_kind(c, "diverged", round, detail);
}

static int sa_call(void *ctx, const char *what, const char *path, const char *ctype,
                   const void *body, size_t len, double timeout_s, fedc_http_response *resp);
static int sa_forbidden(void *ctx, const char *what, const fedc_http_response *resp,
                        int32_t round);
static int sa_stopped(void *ctx);

/* Under secure aggregation: the statistics as words through the session
 * (secagg_client.c); json is kept for the far check once the federation's
 * come (or freed). */
static run_state send_stats_masked(fedc_client *c, char *json) {
  uint32_t *w = NULL;
  size_t n = 0;
  int rc = fedc__client_stats_words(json, &w, &n);
  if (rc != 0) {
    fedc_free(json);
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "statistics as words: %s", fedc_error_msg()),
           RUN_END;
  }
  fedc_client_secagg_io io = {.ctx = c, .call = sa_call, .forbidden = sa_forbidden,
                              .stopped = sa_stopped, .poll_s = c->poll_s,
                              .test_stall_s = c->test_stall_s};
  rc = fedc__client_secagg_stats(&io, c->job.client_id, w, n);
  fedc_free(w);
  if (rc == 0) {
    fedc_free(c->own_stats);
    c->own_stats = json;
  } else {
    fedc_free(json);
  }
  if (rc < 0) {
    if (c->stop) interrupted(c);
    return RUN_END;
  }
  return RUN_POLL;
}

/* The federation's statistics came after this site sent its own masked:
 * the site compares itself and reports a far warning (stats_secagg.c). */
static void far_check(fedc_client *c) {
  char detail[256];
  if (fedc__client_stats_far(c->own_stats, c->stats_json, c->schema_json, detail,
                             sizeof detail)) {
    fedc_log_warn("warning=far msg=\"%s\" reported=true", detail);
    post_warning_kind(c, "far", 0, detail);
  }
  fedc_free(c->own_stats);
  c->own_stats = NULL;
}

/* The task said "stats": the trainer's statistics of its data, sent (in
 * the clear, or masked when the task says "secagg"). */
static run_state send_stats(fedc_client *c, const fedc_client_task *t) {
  if (c->trainer.stats == NULL) {
    end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, FEDC_ECONFIG,
            "the job has a schema and asks for this site's statistics, but its trainer gives "
            "none");
    return RUN_END;
  }
  char *json = NULL;
  int rc = c->trainer.stats(c->trainer.user_data, &c->job, &json);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    end_run(c, FEDC_CLIENT_EXIT_BAD_INPUT, rc, "the job does not fit this client's data: %s", msg);
    return RUN_END;
  }
  if (t->secagg) return send_stats_masked(c, json);
  rc = post_json(c, "stats", "/v1/stats", json);
  fedc_free(json);
  if (rc == CALL_END) return RUN_END;
  if (rc == 0) fedc_log_info("msg=\"statistics sent\"");
  else if (pause_after_refusal(c)) return RUN_END;
  return RUN_POLL;
}

/* Writes len bytes to path atomically (a temporary file beside it,
 * fsync, rename). */
static int write_atomic(const char *path, const uint8_t *buf, size_t len) {
  size_t n = strlen(path) + 8;
  char *tmp = fedc_malloc(n);
  if (tmp == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int ok = f != NULL && fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (f != NULL && fclose(f) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) remove(tmp);
  fedc_free(tmp);
  return ok ? 0 : fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
}

/*
 * A tensor job's codec, made at its first round here, when the model's
 * size is known (a dense job's is made at join); none when the job does
 * not compress. A compressed tensor job carries F32 tensors only (its
 * coordinator refuses others at start).
 */
static int tensor_codec(fedc_client *c, const fedc_client_st_view *model) {
  size_t n = fedc__client_codec_st_count(model);
  int rc = fedc__client_codec_new(c->job_json, c->state_dir, c->job.id, c->job.seed,
                                  (int32_t)c->job.client_id, n, &c->codec);
  if (rc == 0 && c->codec != NULL && n == 0) {
    fedc__client_codec_free(c->codec);
    c->codec = NULL;
    rc = fedc_error_set(FEDC_EFORMAT, "the job compresses its updates, but its model has a "
                                      "tensor that is not F32");
  }
  return rc;
}

/*
 * train_st on the round's model as sent; the update it returns is checked
 * against that model (the same tensors, dtypes and shapes, finite values,
 * 1..2^40 samples, a finite loss), encoded again with this client's
 * metadata into c->update and kept when asked. A failed check fails the
 * round as the trainer's own failure does. TRAIN_OK, TRAIN_FAILED or
 * CALL_END.
 */
static int train_round_st(fedc_client *c, const fedc_client_task *t) {
  fedc_client_round r;
  round_info(c, t->round, &r);
  fedc_client_metrics m = {.accuracy = NAN};
  uint8_t *out = NULL;
  size_t out_len = 0;
  double t0 = now_s();
  int rc = c->trainer.train_st(c->trainer.user_data, &r, c->model_bytes, c->model_len, &out,
                               &out_len, &m);
  fedc_client_st_view mv = {0}, uv = {0};
  int have_m = 0, have_u = 0;
  if (rc == 0 && out == NULL)
    rc = fedc_error_set_sub(FEDC_EINVAL, FEDC_SUB_TRAINER_FAILED,
                            "round %d: the trainer returned no update", (int)t->round);
  if (rc == 0) {
    rc = fedc__client_st_view(c->model_bytes, c->model_len, &mv);
    have_m = rc == 0;
  }
  if (rc == 0) {
    rc = fedc__client_st_view(out, out_len, &uv);
    have_u = rc == 0;
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set_sub(rc, FEDC_SUB_TRAINER_FAILED, "round %d: trainer: the update: %s",
                              (int)t->round, msg);
    }
  }
  if (rc == 0) rc = fedc__client_st_same_layout(&mv, &uv, t->round);
  if (rc == 0) rc = fedc__client_st_finite(&uv, t->round);
  if (rc == 0 && (m.samples < 1 || m.samples > FEDC_UPDATE_MAX_SAMPLES || !isfinite(m.loss)))
    rc = fedc_error_set_sub(FEDC_EINVAL, FEDC_SUB_TRAINER_FAILED,
                            "round %d: the trainer reported %lld samples and loss %g: an update "
                            "needs 1..2^40 samples and a finite loss",
                            (int)t->round, (long long)m.samples, m.loss);
  /* a compressed job: the body is the coded delta (codec_client.c) */
  uint8_t *coded = NULL;
  size_t coded_len = 0;
  int tensor_job = strcmp(c->job.type, "tensors") == 0;
  if (rc == 0 && tensor_job && c->codec == NULL) rc = tensor_codec(c, &mv);
  if (rc == 0 && c->codec)
    rc = fedc__client_codec_encode_st(c->codec, &mv, &uv, tensor_job ? NULL : c->tensors,
                                      tensor_job ? 0 : c->n_tensors, t->round, m.samples, m.loss,
                                      &coded, &coded_len);
  if (have_m) fedc__client_st_view_free(&mv);
  /* the update with this client's metadata, its data left where the
   * trainer's bytes lie (no second copy of the model's size) */
  uint8_t *buf = NULL;
  size_t len = 0;
  if (rc == 0) {
    char rs[16], ns[24], ls[40];
    snprintf(rs, sizeof rs, "%d", (int)t->round);
    snprintf(ns, sizeof ns, "%lld", (long long)m.samples);
    snprintf(ls, sizeof ls, "%.17g", m.loss);
    fedc_st_meta meta[] = {{"round", rs}, {"num_samples", ns}, {"train_loss", ls}};
    rc = fedc__client_st_reencode_in_place(&uv, meta, 3, &out, &out_len);
    have_u = 0;
    if (rc == 0) {
      buf = out;
      len = out_len;
      out = NULL;
    }
  }
  if (have_u) fedc__client_st_view_free(&uv);
  fedc_free(out);
  if (rc != 0) {
    fedc_free(buf);
    buf = NULL;
  }
  if (rc != 0 && fedc_error_sub() == FEDC_SUB_TRAINER_FAILED) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return report_failure(c, t, msg);
  }
  if (rc == FEDC_ECANCELED && c->stop) return interrupted(c);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: training failed: %s", (int)t->round,
                   msg);
  }
  fedc_log_info("msg=\"trained\" round=%d samples=%lld epochs=%d loss=%.4f secs=%.3f",
                (int)t->round, (long long)m.samples, (int)c->job.train.epochs, m.loss,
                now_s() - t0);
  if (c->keep_updates[0]) {
    char path[4400];
    kept_path(c, t->round, "safetensors", path, sizeof path);
    int wrc = write_atomic(path, buf, len);
    if (wrc == 0 && coded) { /* and the compressed body as sent */
      kept_path(c, t->round, "coded", path, sizeof path);
      wrc = write_atomic(path, coded, coded_len);
    }
    if (wrc != 0) {
      fedc_free(buf);
      fedc_free(coded);
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_EIO,
                     "[client] keep_updates: cannot write: %s", msg);
    }
  }
  if (coded) {
    fedc_free(buf);
    buf = coded;
    len = coded_len;
  }
  hold_update(c, t, buf, len, &m);
  return TRAIN_OK;
}

static int sa_call(void *ctx, const char *what, const char *path, const char *ctype,
                   const void *body, size_t len, double timeout_s, fedc_http_response *resp);

/* A large update goes in chunks (upload_client.c), kept in [client]
 * state_dir until answered so that a restarted client resumes it; a small
 * one in one POST /v1/update. Either way the answer is read here. */
static int post_update(fedc_client *c, int32_t round) {
  request r = {.what = "update",
               .path = "/v1/update",
               .ctype = "application/octet-stream",
               .body = c->update,
               .len = c->update_len,
               .timeout_s = TRANSFER_TIMEOUT_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  int chunked = c->update_len >= fedc__client_upload_threshold();
  int rc;
  if (chunked) {
    if (fedc__client_pending_keep(c->state_dir, c->job.id, round, c->update_sha, c->update,
                                  c->update_len) != 0)
      fedc_log_warn("msg=\"cannot keep the update for a resume\" error=\"%s\"",
                    fedc_error_msg());
    fedc_upload_io io = {.ctx = c, .call = sa_call};
    rc = fedc__client_upload_chunked(&io, round, c->update, c->update_len, &resp, NULL);
    if (rc == 0 && resp.status == 404 && strstr((const char *)resp.body, "no_upload") == NULL) {
      /* a coordinator without chunked uploads: the one request */
      fedc_http_response_free(&resp);
      rc = call(c, &r, &resp);
    }
  } else {
    rc = call(c, &r, &resp);
  }
  if (rc != 0) return rc;
  if (chunked) fedc__client_pending_drop(c->state_dir, c->job.id); /* answered */
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

/*
 * A tensor-set round's delta for secure aggregation: the round's model
 * (c->model_bytes) and the checked update (c->update) decoded with the
 * model's own layout (ml/layout.h, the coordinator's layout too), their
 * F32/F16/BF16 tensors in layout order as float32, and *delta = update -
 * model over those (*n = the layout's n_float, the coordinator's n_params).
 * Integer tensors are not sent: the coordinator keeps them. A new vector
 * freed with fedc_free; FEDC_ENOMEM, or the decoder's error.
 */
static int st_delta(const fedc_client *c, float **delta, size_t *n) {
  fedc_st_file *f = NULL;
  fedc_layout l = {0};
  float *g = NULL, *u = NULL;
  int64_t *wi = NULL;
  int rc = fedc_st_decode_ex(c->model_bytes, c->model_len, FEDC_ST_ALLOW_ANY, &f);
  int have_l = rc == 0 && (rc = fedc_layout_from_file(f, &l)) == 0;
  if (have_l) {
    g = fedc_malloc_array(l.n_float, sizeof *g);
    u = fedc_malloc_array(l.n_float, sizeof *u);
    wi = l.n_int ? fedc_malloc_array(l.n_int, sizeof *wi) : NULL;
    if (g == NULL || u == NULL || (l.n_int && wi == NULL))
      rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  if (rc == 0) rc = fedc_layout_read(&l, f, g, wi);
  if (rc == 0) rc = fedc_layout_decode(&l, c->update, c->update_len, u, wi, NULL);
  if (rc == 0) {
    for (size_t i = 0; i < l.n_float; i++) u[i] -= g[i];
    *delta = u;
    *n = l.n_float;
    u = NULL;
  }
  fedc_free(g);
  fedc_free(u);
  fedc_free(wi);
  if (have_l) fedc_layout_free(&l);
  fedc_st_free(f);
  return rc;
}

/* A train task with "secagg": train from the round's model, then send the
 * delta masked; the plain update is never sent (its keep_updates copy is
 * still written). A tensor-set round (st_mode) masks the delta of its float
 * tensors (st_delta). */
static run_state secure_round(fedc_client *c, const fedc_client_task *t) {
  int rc = c->st_mode ? fetch_model_st(c, t) : fetch_model(c, t);
  if (rc == CALL_END) return RUN_END;
  if (rc == MODEL_REJOIN) return RUN_JOIN;
  if (rc != MODEL_OK) return RUN_POLL;
  if (c->stop) return interrupted(c), RUN_END;
  if (!c->st_mode) {
    if (c->g == NULL && (c->g = fedc_malloc_array(c->n_params, sizeof(float))) == NULL)
      return end_run(c, FEDC_CLIENT_EXIT_FAILED, FEDC_ENOMEM, "out of memory"), RUN_END;
    memcpy(c->g, c->w, c->n_params * sizeof(float));
  }
  if ((c->st_mode ? c->trainer.evaluate_st != NULL : c->trainer.evaluate != NULL) &&
      evaluate(c, t->round) != 0)
    return RUN_END;
  int tr = c->st_mode ? train_round_st(c, t) : train_round(c, t);
  if (tr == TRAIN_FAILED) return RUN_POLL;
  if (tr != TRAIN_OK) return RUN_END;
  float *delta = c->g;
  size_t n = c->n_params;
  if (c->st_mode) {
    rc = st_delta(c, &delta, &n);
  } else {
    for (size_t i = 0; i < n; i++) c->g[i] = c->w[i] - c->g[i];
  }
  fedc_free(c->update); /* never sent in the clear */
  c->update = NULL;
  c->update_len = 0;
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: the update's float tensors: %s",
                   (int)t->round, msg), RUN_END;
  }
  int dp_sites = 0; /* noise at the sites: clipped, noised, weight 1 (dp_site.c) */
  uint32_t floor = 0; /* ... and sized for at least this many survivors */
  if ((rc = fedc__client_dp_site(c->job_json, t->round, delta, n, &dp_sites, &floor)) != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    if (delta != c->g) fedc_free(delta);
    return end_run(c, FEDC_CLIENT_EXIT_FAILED, rc, "round %d: %s", (int)t->round, msg), RUN_END;
  }
  fedc_client_secagg_io io = {.ctx = c, .call = sa_call, .forbidden = sa_forbidden,
                              .stopped = sa_stopped, .poll_s = c->poll_s,
                              .test_stall_s = c->test_stall_s,
                              .test_lie = c->test_secagg_lie};
  rc = fedc__client_secagg_round(&io, t->round, c->job.client_id, delta, n,
                                 dp_sites ? 1 : c->update_samples, c->update_loss, floor);
  if (delta != c->g) fedc_free(delta);
  if (rc != 0) {
    if (c->stop) interrupted(c);
    return RUN_END;
  }
  return RUN_POLL;
}

/* A train task, from download to upload. */
static run_state do_round(fedc_client *c, const fedc_client_task *t) {
  /* the same task may come many times (a model that failed its check, a
   * refused update): log it at info once */
  fedc_log(c->selected == t->round ? FEDC_LOG_DEBUG : FEDC_LOG_INFO,
           "msg=\"selected\" round=%d deadline_s=%.1f", (int)t->round, t->deadline_s);
  c->selected = t->round;
  if (c->schema_json && !c->stats_json) {
    /* the statistics phase is over: the job object now has them */
    fedc_log_info("msg=\"joining again for the federation's statistics\" round=%d", (int)t->round);
    return RUN_JOIN;
  }
  if (c->own_stats && c->stats_json) far_check(c);
  if (t->secagg) return secure_round(c, t);
  double t0 = now_s();
  if (c->update == NULL) { /* a restarted client: an upload it had begun */
    uint8_t *kept;
    size_t kept_len;
    if (fedc__client_pending_load(c->state_dir, c->job.id, t->round, t->model_sha256, &kept,
                                  &kept_len)) {
      fedc_client_metrics km = {.samples = 0, .loss = NAN};
      hold_update(c, t, kept, kept_len, &km);
    }
  }
  int cached = c->update != NULL && c->update_round == t->round &&
               strcmp(c->update_sha, t->model_sha256) == 0;
  if (cached && c->update_refused) {
    /* the same task again, for an update the coordinator refused: training
     * again would make the same bytes; wait for the round to move on */
    fedc_log_debug("msg=\"update for this round was refused; waiting for the next round\" round=%d",
                   (int)t->round);
    return pause_after_refusal(c) ? RUN_END : RUN_POLL;
  }
  if (!cached && c->failed_round == t->round && strcmp(c->failed_sha, t->model_sha256) == 0) {
    /* the trainer failed this round, and the coordinator (one without
     * /v1/report) asks again: wait for the next round */
    fedc_log_debug("msg=\"the trainer failed this round; waiting for the next\" round=%d",
                   (int)t->round);
    return pause_after_refusal(c) ? RUN_END : RUN_POLL;
  }
  if (cached) {
    fedc_log_info("msg=\"resending the update already made\" round=%d", (int)t->round);
  } else {
    int rc = c->st_mode ? fetch_model_st(c, t) : fetch_model(c, t);
    if (rc == CALL_END) return RUN_END;
    if (rc == MODEL_REJOIN) return RUN_JOIN;
    if (rc != MODEL_OK) return RUN_POLL;
    if (c->stop) return interrupted(c), RUN_END;
    if ((c->st_mode ? c->trainer.evaluate_st != NULL : c->trainer.evaluate != NULL) &&
        evaluate(c, t->round) != 0)
      return RUN_END;
    int tr = c->st_mode ? train_round_st(c, t) : train_round(c, t);
    if (tr == TRAIN_FAILED) return RUN_POLL;
    if (tr != TRAIN_OK) return RUN_END;
  }
  if (c->stop) return interrupted(c), RUN_END;
  if (t->deadline_s >= 0 && now_s() - t0 > t->deadline_s)
    fedc_log_warn("msg=\"past the round's deadline; sending anyway\" round=%d late_s=%.1f",
                  (int)t->round, now_s() - t0 - t->deadline_s);
  return post_update(c, t->round) != 0 ? RUN_END : RUN_POLL;
}

/* ---- federated evaluation (eval_site.c builds the body) --------------------------- */

/*
 * An evaluate task: the committed round's model (served as the start model
 * of the next round), the trainer's report, POST /v1/eval. A client that
 * cannot evaluate (no report callback, or it failed) says so in its log
 * once and lets the evaluation's deadline pass without it.
 */
static run_state do_eval(fedc_client *c, const fedc_client_task *t) {
  if (c->trainer.report == NULL || c->eval_declined == t->round) {
    if (c->eval_declined != t->round)
      fedc_log_warn("msg=\"asked to evaluate, but the trainer has no validation data "
                    "([data] validation or validation_split)\" round=%d",
                    (int)t->round);
    c->eval_declined = t->round;
    return nap(c, 1.0) != 0 ? (interrupted(c), RUN_END) : RUN_POLL;
  }
  fedc_client_task mt = *t;
  mt.round = t->round + 1; /* round r's model starts round r + 1 */
  int rc = fetch_model(c, &mt);
  if (rc == CALL_END) return RUN_END;
  if (rc == MODEL_REJOIN) return RUN_JOIN;
  if (rc != MODEL_OK) return RUN_POLL;
  fedc_client_round r;
  round_info(c, t->round, &r);
  char *report = NULL, *body = NULL, *mine = NULL;
  rc = c->trainer.report(c->trainer.user_data, &r, c->w, &report);
  if (rc == 0) rc = fedc__client_eval_body(report, t->round, t->model_sha256, &body, &mine);
  fedc_free(report);
  if (rc != 0) {
    char m[600];
    fedc_log_warn("msg=\"evaluation failed; declining it\" round=%d error=%s", (int)t->round,
                  q(m, sizeof m, fedc_error_msg()));
    c->eval_declined = t->round;
    return RUN_POLL;
  }
  /* the site's own figures, in its own log */
  fedc_log_info("msg=\"site evaluation\" round=%d metrics=%s", (int)t->round, mine);
  fedc_free(mine);
  request rq = {.what = "eval", .path = "/v1/eval", .ctype = "application/json",
                .body = body, .len = strlen(body), .timeout_s = TRANSFER_TIMEOUT_S,
                .max_response = JSON_MAX};
  fedc_http_response resp;
  rc = call(c, &rq, &resp);
  fedc_free(body);
  if (rc != 0) return RUN_END;
  if (resp.status == 200)
    fedc_log_info("msg=\"evaluation accepted\" round=%d", (int)t->round);
  else if (resp.status == 403)
    rc = forbidden(c, "eval", &resp, t->round);
  else
    log_refusal("eval", &resp, resp.status == 409 ? FEDC_LOG_INFO : FEDC_LOG_WARN,
                "evaluation not taken", t->round);
  if (resp.status != 200) c->eval_declined = t->round;
  fedc_http_response_free(&resp);
  return rc != 0 ? RUN_END : RUN_POLL;
}

/* ---- the loop --------------------------------------------------------------------- */

/* Long-polls for a task into *t; the next state follows its action. */
static run_state poll_task(fedc_client *c, fedc_client_task *t) {
  char path[64];
  snprintf(path, sizeof path, "/v1/task?wait=%g", c->poll_s);
  request r = {.what = "task",
               .path = path,
               .timeout_s = c->poll_s + POLL_MARGIN_S,
               .max_response = JSON_MAX};
  fedc_http_response resp;
  if (call(c, &r, &resp) != 0) return RUN_END;
  if (resp.status == 200) {
    int rc = fedc_client_task_parse((const char *)resp.body, resp.len, t);
    fedc_http_response_free(&resp);
    if (rc == 0) {
      fedc_client_backoff_reset(&c->backoff);
      switch (t->action) {
      case FEDC_CLIENT_TASK_FINISHED: return RUN_FINISHED;
      case FEDC_CLIENT_TASK_WAIT: return RUN_WAIT;
      case FEDC_CLIENT_TASK_TRAIN: return RUN_ROUND;
      case FEDC_CLIENT_TASK_STATS: return RUN_STATS;
      case FEDC_CLIENT_TASK_EVALUATE: return RUN_EVAL;
      }
    }
    char m[600];
    fedc_log_warn("msg=\"task answer malformed\" error=%s", q(m, sizeof m, fedc_error_msg()));
    return pause_after_refusal(c) ? RUN_END : RUN_POLL;
  }
  if (resp.status == 403) {
    /* on /v1/task every 403 means this client may not take part */
    char code[64], msg[256];
    fedc_client_error_parse((const char *)resp.body, resp.len, code, sizeof code, msg, sizeof msg);
    fedc_http_response_free(&resp);
    end_run_sub(c, FEDC_CLIENT_EXIT_REFUSED, FEDC_EREFUSED, FEDC_SUB_NOT_ALLOWED,
                "the coordinator refused this client on task (HTTP 403 %s: "
                "%s); its certificate fingerprint is %s: is it on the allow "
                "list (fedc-coordinator allow), and not revoked?",
                code[0] ? code : "forbidden", msg, c->fingerprint);
    return RUN_END;
  }
  log_refusal("task", &resp, FEDC_LOG_ERROR, "task request refused", 0);
  fedc_http_response_free(&resp);
  return pause_after_refusal(c) ? RUN_END : RUN_POLL;
}

/* A "wait" answer: log it once a stretch, sleep what it asks (within
 * bounds), poll again. asked: when the poll that got it was sent. */
static run_state wait_task(fedc_client *c, const fedc_client_task *t, double asked) {
  if (!c->waiting)
    fedc_log_info("msg=\"waiting\" round=%d", (int)t->round);
  else
    fedc_log_debug("msg=\"waiting\" round=%d", (int)t->round);
  c->waiting = 1;
  double d = t->retry_after_s < WAIT_MAX_S ? t->retry_after_s : WAIT_MAX_S;
  /* a "wait" that came back at once with no delay would make a tight
   * loop: space such polls a little */
  if (d < 0.05 && now_s() - asked < 0.05) d = 0.05;
  if (nap(c, d) != 0) return interrupted(c), RUN_END;
  return RUN_POLL;
}

fedc_client_exit fedc_client_run(fedc_client *c) {
  c->last_contact = now_s();
  c->outcome = FEDC_CLIENT_EXIT_FAILED;
  fedc_log_info("msg=\"starting\" url=%s fingerprint=%s samples=%lld "
                "features=%lld test_samples=%lld",
                c->url, c->fingerprint, (long long)c->trainer.samples,
                (long long)c->trainer.features, (long long)c->trainer.test_samples);
  run_state st = RUN_JOIN;
  fedc_client_task t;
  memset(&t, 0, sizeof t);
  double asked = 0;
  for (;;) {
    if (c->stop && st != RUN_END && st != RUN_FINISHED) {
      interrupted(c);
      st = RUN_END;
    }
    switch (st) {
    case RUN_JOIN:
      st = join(c);
      break;
    case RUN_POLL:
      asked = now_s();
      st = poll_task(c, &t);
      if (st != RUN_WAIT && st != RUN_POLL) c->waiting = 0;
      break;
    case RUN_WAIT:
      st = wait_task(c, &t, asked);
      break;
    case RUN_ROUND:
      st = do_round(c, &t);
      break;
    case RUN_STATS:
      st = send_stats(c, &t);
      break;
    case RUN_EVAL:
      st = do_eval(c, &t);
      break;
    case RUN_FINISHED:
      fedc_log_info("msg=\"finished\" round=%d", (int)t.round);
      fedc_error_clear();
      return FEDC_CLIENT_EXIT_FINISHED;
    case RUN_END:
      return c->outcome;
    }
  }
}
