/*
 * trainer_external.c - the external trainer (client.h, docs/trainers.md):
 * the site's own program, named by [trainer] command, behind the same
 * trainer interface of <fedc/client.h> as the built-in one.
 *
 * For each round it makes a private folder (mkdtemp, mode 0700), writes
 * the global model there as safetensors, and runs the command through
 * /bin/sh -c in its own process group with the FEDC_* environment
 * (FEDC_MODEL_IN, FEDC_UPDATE_OUT, FEDC_METRICS_OUT, FEDC_ROUND,
 * FEDC_SEED, FEDC_TASK: the action, round, seed and the job object from
 * the join, verbatim). The command has [trainer] timeout_s; past it the
 * whole group is killed. What it leaves is checked before anything leaves
 * the site: the update holds exactly the global model's tensors, same
 * names, shapes and dtypes, every value finite; num_samples is an integer
 * >= 1 (from the metrics JSON or the update's metadata); train_loss is
 * finite. In a SCAFFOLD round the drift correction c - c_i is written
 * beside the model (FEDC_CORRECTION_IN, scaffold_external.c) and the
 * trainer must report its local step count ("steps"), from which the
 * client computes its control variate.
 * Any failure (exit status, signal, deadline, a missing or bad
 * file) is returned with the sub-code FEDC_SUB_TRAINER_FAILED and one
 * message that says what and where, so that the client reports the round
 * as failed and goes on serving. [trainer] evaluate runs the same way with
 * action "evaluate" and FEDC_PREDICTIONS_OUT: before training (its
 * metrics logged) and, when the job evaluates federated, on the committed
 * model, its predictions made into the evaluation report (POST /v1/eval).
 * The committed model of round r is round r + 1's start model: one run of
 * the evaluate command serves both (eval_run).
 */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "client.h"
#include "scaffold_external.h"
#include "ml/eval_model.h"
#include "ml/eval_report.h"
#include "wire/safetensors.h"
#include "wire/update_meta.h"

extern char **environ;

#define METRICS_MAX ((size_t)1 << 20) /* a metrics JSON larger than this is refused */
#define KILL_GRACE_S 2.0              /* SIGTERM, then SIGKILL this long after */
#define N_OWN_ENV 11
#define TASK_ENV_MAX ((size_t)64 << 10) /* a larger FEDC_TASK is in the file only */

/* The folder of one run of a command (make_dir). */
typedef struct run_dir {
  char dir[512];
  char model[600], update[600], metrics[600], predictions[600], task[600], correction[600];
} run_dir;

struct fedc_client_external {
  char *command, *evaluate;
  char *train_csv; /* [data] train: the statistics phase reads it, or "" */
  double timeout_s;
  const volatile sig_atomic_t *stop; /* fedc-client's stop flag, or NULL */
  /* the last successful run of the evaluate command, kept with what it
   * wrote, and the SHA-256 of the model it evaluated (eval_run): round r's
   * committed model is evaluated for the federated report and again as
   * round r + 1's start model before training, by one run */
  run_dir eval_last;
  uint8_t eval_key[FEDC__SHA256_LEN];
  int eval_have;
};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A failed round: the code and the sub-code that let the client go on. */
#define failed(err, ...) fedc_error_set_sub((err), FEDC_SUB_TRAINER_FAILED, __VA_ARGS__)

static void remove_dir(const run_dir *d);

void fedc__client_external_free(fedc_client_external *x) {
  if (x == NULL) return;
  if (x->eval_have) remove_dir(&x->eval_last);
  fedc_free(x->command);
  fedc_free(x->evaluate);
  fedc_free(x->train_csv);
  fedc_free(x);
}

void fedc__client_external_set_stop(fedc_client_external *x, const volatile sig_atomic_t *stop) {
  x->stop = stop;
}

/* ---- the folder of one run -------------------------------------------------------- */

static int make_dir(run_dir *d) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
  snprintf(d->dir, sizeof d->dir, "%s/fedc-trainer-XXXXXX", tmp);
  if (mkdtemp(d->dir) == NULL)
    return failed(FEDC_EIO, "cannot make a private folder in %s: %s", tmp, strerror(errno));
  snprintf(d->model, sizeof d->model, "%s/model.safetensors", d->dir);
  snprintf(d->update, sizeof d->update, "%s/update.safetensors", d->dir);
  snprintf(d->metrics, sizeof d->metrics, "%s/metrics.json", d->dir);
  snprintf(d->predictions, sizeof d->predictions, "%s/predictions.safetensors", d->dir);
  snprintf(d->task, sizeof d->task, "%s/task.json", d->dir);
  snprintf(d->correction, sizeof d->correction, "%s/correction.safetensors", d->dir);
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* The folder and whatever the trainer left in it. */
static void remove_dir(const run_dir *d) {
  if (d->dir[0]) nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- running the command ------------------------------------------------------------ */

/* env: the environment less our own FEDC_* names, plus own[0..n_own-1]
 * ("NAME=value"). The array and its strings are freed by env_free. */
static char **env_build(char *const *own, size_t n_own) {
  size_t n = 0;
  for (char **e = environ; e && *e; e++) n++;
  char **env = fedc_calloc(n + n_own + 1, sizeof *env);
  if (env == NULL) return NULL;
  size_t k = 0;
  for (char **e = environ; e && *e; e++) {
    int ours = 0;
    for (size_t i = 0; i < n_own && !ours; i++) {
      size_t len = (size_t)(strchr(own[i], '=') - own[i]) + 1;
      ours = strncmp(*e, own[i], len) == 0;
    }
    if (!ours) env[k++] = *e;
  }
  for (size_t i = 0; i < n_own; i++) env[k++] = own[i];
  env[k] = NULL;
  return env;
}

static const char *sig_name(int sig) {
  const char *s = sigabbrev_np(sig);
  return s ? s : "?";
}

/* Stop the group: SIGTERM, then SIGKILL to the whole group once the
 * command has exited or after a grace period, and reap it. */
static void kill_group(pid_t pid, int *status) {
  kill(-pid, SIGTERM);
  double end = mono_s() + KILL_GRACE_S;
  while (mono_s() < end) {
    siginfo_t info = {0};
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
      break; /* exited, still a zombie: its group id is still its own */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(-pid, SIGKILL);
  while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

/*
 * Runs cmd through /bin/sh -c in a process group of its own, stdin from
 * /dev/null, stdout and stderr the client's, with env; waits up to
 * timeout_s. 0 when it exited with status 0; otherwise a failed-round
 * error naming what (label), the round and the exit status, the signal,
 * or the deadline.
 */
static int run_command(const fedc_client_external *x, const char *label, const char *cmd,
                       char **env, int32_t round) {
  fflush(stdout);
  fflush(stderr);
  double t0 = mono_s();
  pid_t pid = fork();
  if (pid < 0) return failed(FEDC_EIO, "round %d: %s: cannot fork: %s", (int)round, label,
                             strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 0);
      if (fd > 0) close(fd);
    }
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    execve("/bin/sh", argv, env);
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no window where a kill misses the group */
  int status = 0;
  for (;;) {
    /* WNOWAIT: an exited command stays a zombie, its pid and group id
     * reserved, until what it left in its group is killed below */
    siginfo_t info = {0};
    int w = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
    if (w == 0 && info.si_pid == pid) break;
    if (w < 0 && errno != EINTR) return failed(FEDC_EIO, "round %d: %s: wait: %s", (int)round,
                                               label, strerror(errno));
    if (x->stop && *x->stop) {
      kill_group(pid, &status);
      return fedc_error_set(FEDC_ECANCELED, "round %d: %s stopped: the client is stopping",
                            (int)round, label);
    }
    if (mono_s() - t0 > x->timeout_s) {
      kill_group(pid, &status);
      return failed(FEDC_EIO,
                    "round %d: %s timed out after %g s ([trainer] timeout_s); its process "
                    "group was killed",
                    (int)round, label, x->timeout_s);
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(-pid, SIGKILL); /* children it left running in its group */
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    return failed(FEDC_EIO, "round %d: %s was killed by signal %d (SIG%s)", (int)round, label,
                  WTERMSIG(status), sig_name(WTERMSIG(status)));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return failed(FEDC_EIO, "round %d: %s exited with status %d%s", (int)round, label,
                  WEXITSTATUS(status),
                  WEXITSTATUS(status) == 127 ? " (command not found?)" : "");
  return 0;
}

/* ---- the task's environment ----------------------------------------------------------- */

/* FEDC_TASK: {"action", "round", "seed" (decimal string), "job": verbatim,
 * and "correction": its file in a SCAFFOLD round (NULL otherwise)}. */
static char *task_json(const char *action, const fedc_client_round *r, const char *correction) {
  cJSON *o = cJSON_CreateObject();
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
  cJSON *job = cJSON_Parse(r->job_json ? r->job_json : "{}");
  if (job == NULL) job = cJSON_CreateObject();
  char *text = NULL;
  if (o && job && cJSON_AddStringToObject(o, "action", action) &&
      cJSON_AddNumberToObject(o, "round", r->round) && cJSON_AddStringToObject(o, "seed", seed) &&
      cJSON_AddItemToObject(o, "job", job)) {
    job = NULL;
    if (correction == NULL || cJSON_AddStringToObject(o, "correction", correction))
      text = cJSON_PrintUnformatted(o);
  }
  cJSON_Delete(job);
  cJSON_Delete(o);
  return text;
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  int ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_bytes(const char *path, const uint8_t *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
  int ok = fwrite(buf, 1, len, f) == len;
  if (fclose(f) != 0) ok = 0;
  return ok ? 0 : fedc_error_set(FEDC_EIO, "%s: cannot write", path);
}

/* Write the model (the flat vector w in the round's layout, or the
 * container as sent when model is not NULL), set up the environment and
 * run cmd. */
static int run_task(const fedc_client_external *x, const char *action, const char *cmd,
                    const run_dir *d, const fedc_client_round *r, const float *w,
                    const uint8_t *model, size_t model_len) {
  const char *label = strcmp(action, "train") == 0 ? "trainer" : "evaluate command";
  int rc;
  if (model != NULL) {
    rc = write_bytes(d->model, model, model_len);
  } else {
    fedc_st_tensor ts[FEDC_CLIENT_MAX_TENSORS];
    for (size_t i = 0; i < r->n_tensors; i++) {
      const fedc_client_tensor *t = &r->tensors[i];
      ts[i] = (fedc_st_tensor){.name = t->name, .ndim = t->ndim, .data = w + t->offset};
      for (int k = 0; k < t->ndim; k++) ts[i].shape[k] = t->shape[k];
    }
    char round_s[16];
    snprintf(round_s, sizeof round_s, "%d", (int)r->round);
    fedc_st_meta meta[] = {{"round", round_s}, {"format", "pt"}};
    rc = fedc_st_write_file(d->model, ts, r->n_tensors, meta, 2);
  }
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return failed(rc == FEDC_ENOMEM ? FEDC_ENOMEM : FEDC_EIO,
                  "round %d: cannot write the global model for the %s: %s", (int)r->round,
                  label, msg);
  }
  /* SCAFFOLD: the correction beside the model, for the training run only */
  int corr = r->correction != NULL && strcmp(action, "train") == 0;
  if (corr && (rc = fedc__client_correction_write(d->correction, r)) != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return failed(rc == FEDC_ENOMEM ? FEDC_ENOMEM : FEDC_EIO,
                  "round %d: cannot write the SCAFFOLD correction for the %s: %s", (int)r->round,
                  label, msg);
  }
  char *task = task_json(action, r, corr ? d->correction : NULL);
  if (task == NULL || write_text(d->task, task) != 0) {
    cJSON_free(task);
    return failed(FEDC_EIO, "round %d: cannot write the task for the %s", (int)r->round, label);
  }
  char *own[N_OWN_ENV];
  size_t n = 0;
  int ok = 1;
#define PUT(fmt, ...)                                                                              \
  do {                                                                                             \
    int len_ = snprintf(NULL, 0, fmt, __VA_ARGS__) + 1;                                            \
    own[n] = fedc_malloc((size_t)len_);                                                            \
    if (own[n] == NULL) ok = 0;                                                                    \
    else snprintf(own[n++], (size_t)len_, fmt, __VA_ARGS__);                                       \
  } while (0)
  PUT("FEDC_MODEL_IN=%s", d->model);
  PUT("FEDC_UPDATE_OUT=%s", d->update);
  PUT("FEDC_METRICS_OUT=%s", d->metrics);
  PUT("FEDC_PREDICTIONS_OUT=%s", d->predictions);
  PUT("FEDC_ROUND=%d", (int)r->round);
  PUT("FEDC_SEED=%llu", (unsigned long long)r->seed);
  PUT("FEDC_ACTION=%s", action);
  PUT("FEDC_TASK_FILE=%s", d->task);
  if (corr) PUT("FEDC_CORRECTION_IN=%s", d->correction);
  /* the environment holds at most 128 KiB a string: a larger job object
   * is in FEDC_TASK_FILE only */
  if (strlen(task) <= TASK_ENV_MAX) PUT("FEDC_TASK=%s", task);
#undef PUT
  cJSON_free(task);
  char **env = ok ? env_build(own, n) : NULL;
  if (env == NULL) rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  else rc = run_command(x, label, cmd, env, r->round);
  fedc_free(env);
  for (size_t i = 0; i < n; i++) fedc_free(own[i]);
  return rc;
}

/* ---- reading back ---------------------------------------------------------------------- */

/* The metrics JSON into *out: NULL when there is no file (0 returned);
 * a failed-round error when it is unreadable or not an object. */
static int read_metrics(const char *path, const char *label, int32_t round, cJSON **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    if (errno == ENOENT) return 0;
    return failed(FEDC_EIO, "round %d: %s: metrics %s: %s", (int)round, label, path,
                  strerror(errno));
  }
  char *buf = fedc_malloc(METRICS_MAX + 1);
  size_t len = buf ? fread(buf, 1, METRICS_MAX + 1, f) : 0;
  fclose(f);
  if (buf == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  int rc = 0;
  if (len > METRICS_MAX) {
    rc = failed(FEDC_ETOOBIG, "round %d: %s: FEDC_METRICS_OUT is larger than 1 MiB", (int)round,
                label);
  } else {
    cJSON *o = cJSON_ParseWithLength(buf, len);
    if (o == NULL || !cJSON_IsObject(o)) {
      cJSON_Delete(o);
      rc = failed(FEDC_EFORMAT, "round %d: %s: FEDC_METRICS_OUT is not a JSON object",
                  (int)round, label);
    } else {
      *out = o;
    }
  }
  fedc_free(buf);
  return rc;
}

/* A number from the metrics object or, failing that, the update's
 * metadata (a decimal string); NAN when neither has it. *bad = 1 when
 * present but not a number. */
static double metric_value(const cJSON *m, const char *meta, const char *key, int *bad) {
  *bad = 0;
  const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
  if (v != NULL) {
    if (cJSON_IsNumber(v)) return v->valuedouble;
    *bad = 1;
    return NAN;
  }
  const char *s = meta;
  if (s == NULL) return NAN;
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (end == s || *end != '\0' || errno != 0) {
    *bad = 1;
    return NAN;
  }
  return d;
}

/*
 * num_samples and train_loss of a trainer's update, from FEDC_METRICS_OUT or
 * else the update's metadata (meta_n, meta_l: those values, or NULL),
 * checked: an integer 1..2^40 and a finite number. The failure names which.
 */
static int samples_and_loss(const cJSON *m, const char *meta_n, const char *meta_l,
                            int32_t round, double *n, double *loss) {
  int bad_n, bad_l;
  *n = metric_value(m, meta_n, "num_samples", &bad_n);
  *loss = metric_value(m, meta_l, "train_loss", &bad_l);
  if (bad_n || !(*n >= 1) || *n > (double)FEDC_UPDATE_MAX_SAMPLES || *n != floor(*n))
    return failed(FEDC_EINVAL,
                  "round %d: trainer: num_samples %s: an update needs an integer 1..2^40 in "
                  "FEDC_METRICS_OUT or the update's metadata",
                  (int)round, isnan(*n) && !bad_n ? "is missing" : "is not valid");
  if (bad_l || !isfinite(*loss))
    return failed(FEDC_ENONFINITE,
                  "round %d: trainer: train_loss %s: a finite number in FEDC_METRICS_OUT or the "
                  "update's metadata",
                  (int)round, isnan(*loss) && !bad_l ? "is missing" : "is not finite");
  return 0;
}

static void shape_text(int32_t ndim, const int64_t *shape, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int32_t i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/*
 * The update file against the global model's layout: exactly the same
 * tensors (names, shapes, F32), every value finite; copied into w.
 */
static int check_update(const fedc_st_file *f, const fedc_client_round *r, float *w) {
  int32_t round = r->round;
  char a[96], b[96];
  for (size_t i = 0; i < r->n_tensors; i++) {
    const fedc_client_tensor *t = &r->tensors[i];
    fedc_st_tensor u;
    if (fedc_st_find(f, t->name, &u) != 0)
      return failed(FEDC_ESHAPE, "round %d: trainer: the update has no tensor '%s'", (int)round,
                    t->name);
    int same = u.ndim == t->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = u.shape[k] == t->shape[k];
    if (!same) {
      shape_text(u.ndim, u.shape, a, sizeof a);
      shape_text(t->ndim, t->shape, b, sizeof b);
      return failed(FEDC_ESHAPE,
                    "round %d: trainer: tensor '%s' has shape %s in the update, %s in the "
                    "global model",
                    (int)round, t->name, a, b);
    }
    for (size_t k = 0; k < t->count; k++)
      if (!isfinite(u.data[k]))
        return failed(FEDC_ENONFINITE, "round %d: trainer: tensor '%s'[%zu] is %s", (int)round,
                      t->name, k, isnan(u.data[k]) ? "NaN" : "infinite");
  }
  if (fedc_st_count(f) != r->n_tensors) {
    for (size_t i = 0; i < fedc_st_count(f); i++) {
      fedc_st_tensor u;
      fedc_st_get(f, i, &u);
      int known = 0;
      for (size_t k = 0; k < r->n_tensors && !known; k++)
        known = strcmp(r->tensors[k].name, u.name) == 0;
      if (!known)
        return failed(FEDC_ESHAPE, "round %d: trainer: tensor '%s' of the update is not in "
                      "the global model", (int)round, u.name);
    }
  }
  for (size_t i = 0; i < r->n_tensors; i++) {
    fedc_st_tensor u;
    fedc_st_find(f, r->tensors[i].name, &u);
    memcpy(w + r->tensors[i].offset, u.data, r->tensors[i].count * sizeof(float));
  }
  return 0;
}

/* The update file decoded, with a failed-round message naming it. */
static int read_update(const char *path, const char *what, int32_t round, fedc_st_file **f) {
  int rc = fedc_st_read_file(path, f);
  if (rc == 0) return 0;
  if (rc == FEDC_ENOMEM) return rc;
  if (access(path, F_OK) != 0)
    return failed(FEDC_ENOTFOUND, "round %d: trainer exited with status 0 but wrote no %s", (int)round,
                  what);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", fedc_error_msg());
  return failed(rc, "round %d: trainer: %s is not a valid update: %s", (int)round, what, msg);
}

/* ---- the callbacks ---------------------------------------------------------------------- */

static int external_train(void *ud, const fedc_client_round *r, float *w,
                          fedc_client_metrics *out) {
  fedc_client_external *x = ud;
  run_dir d = {0};
  int rc = make_dir(&d);
  if (rc == 0) rc = run_task(x, "train", x->command, &d, r, w, NULL, 0);
  fedc_st_file *f = NULL;
  cJSON *m = NULL;
  if (rc == 0) rc = read_update(d.update, "FEDC_UPDATE_OUT", r->round, &f);
  if (rc == 0) rc = read_metrics(d.metrics, "trainer", r->round, &m);
  double n = 0, loss = 0, acc = NAN;
  if (rc == 0)
    rc = samples_and_loss(m, fedc_st_meta_get(f, "num_samples"), fedc_st_meta_get(f, "train_loss"),
                          r->round, &n, &loss);
  if (rc == 0) {
    int bad_a;
    acc = metric_value(m, NULL, "train_accuracy", &bad_a);
  }
  int64_t steps = 0;
  if (rc == 0) rc = fedc__client_correction_steps(m, f, r, &steps);
  if (rc == 0) rc = check_update(f, r, w);
  if (rc == 0) {
    out->steps = steps;
    out->samples = (int64_t)n;
    out->loss = loss;
    out->accuracy = isfinite(acc) && acc >= 0 && acc <= 1 ? acc : NAN;
  }
  cJSON_Delete(m);
  fedc_st_free(f);
  remove_dir(&d);
  return rc;
}

/* The whole file at path into a new buffer (the update of a tensor job). */
static int read_all(const char *path, int32_t round, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return errno == ENOENT ? failed(FEDC_ENOTFOUND, "round %d: trainer exited with status 0 but "
                                    "wrote no FEDC_UPDATE_OUT", (int)round)
                           : failed(FEDC_EIO, "round %d: trainer: %s: %s", (int)round, path,
                                    strerror(errno));
  int rc = 0;
  if (fseek(f, 0, SEEK_END) != 0) rc = failed(FEDC_EIO, "round %d: trainer: cannot read %s",
                                              (int)round, path);
  long n = rc == 0 ? ftell(f) : -1;
  /* a sanity bound, as for the model the client downloads: the update is
   * checked against the job's model before it is sent (tensor jobs of a few
   * GiB must pass) */
  if (rc == 0 && (n < 0 || (uint64_t)n > ((uint64_t)64 << 30)))
    rc = failed(FEDC_ETOOBIG, "round %d: trainer: FEDC_UPDATE_OUT is larger than 64 GiB",
                (int)round);
  if (rc == 0 && (*buf = fedc_malloc((size_t)n + 1)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  if (rc == 0 && (fseek(f, 0, SEEK_SET) != 0 || fread(*buf, 1, (size_t)n, f) != (size_t)n))
    rc = failed(FEDC_EIO, "round %d: trainer: cannot read %s", (int)round, path);
  fclose(f);
  if (rc != 0) {
    fedc_free(*buf);
    *buf = NULL;
    return rc;
  }
  *len = (size_t)n;
  return 0;
}

/* Little-endian words of the predictions file. */
static float f32_at(const uint8_t *p) {
  uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

static int64_t i64_at(const uint8_t *p) {
  uint64_t w = 0;
  for (int i = 7; i >= 0; i--) w = (w << 8) | p[i];
  return (int64_t)w;
}

/* Accuracy from FEDC_PREDICTIONS_OUT: "scores" F32 [N] (a probability,
 * threshold 0.5) or [N, C] (argmax), "labels" [N] I64 or F32; NAN when
 * there is no such file. */
static int predictions_accuracy(const char *path, int32_t round, double *acc, int64_t *rows) {
  *acc = NAN;
  if (access(path, F_OK) != 0) return 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = read_all(path, round, &buf, &len);
  fedc_client_st_view v = {0};
  if (rc == 0) rc = fedc__client_st_view(buf, len, &v);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    fedc_free(buf);
    return rc == FEDC_ENOMEM ? rc
                             : failed(rc, "round %d: evaluate command: FEDC_PREDICTIONS_OUT: %s",
                                      (int)round, msg);
  }
  const fedc_client_st_entry *s = NULL, *l = NULL;
  for (size_t i = 0; i < v.n; i++) {
    if (strcmp(v.t[i].name, "scores") == 0) s = &v.t[i];
    if (strcmp(v.t[i].name, "labels") == 0) l = &v.t[i];
  }
  int l64 = l && strcmp(l->dtype, "I64") == 0;
  if (s == NULL || l == NULL || strcmp(s->dtype, "F32") != 0 ||
      (!l64 && strcmp(l->dtype, "F32") != 0) || l->ndim != 1 || s->ndim < 1 || s->ndim > 2 ||
      s->shape[0] != l->shape[0]) {
    fedc__client_st_view_free(&v);
    fedc_free(buf);
    return failed(FEDC_ESHAPE, "round %d: evaluate command: FEDC_PREDICTIONS_OUT needs "
                  "\"scores\" F32 [N] or [N, C] and \"labels\" I64 or F32 [N]", (int)round);
  }
  int64_t n = l->shape[0], c = s->ndim == 2 ? s->shape[1] : 1, right = 0;
  const uint8_t *sd = s->data, *ld = l->data;
  for (int64_t i = 0; i < n; i++) {
    int64_t pred = 0;
    if (c == 1) {
      pred = f32_at(sd + 4 * i) >= 0.5f;
    } else {
      for (int64_t k = 1; k < c; k++)
        if (f32_at(sd + 4 * (i * c + k)) > f32_at(sd + 4 * (i * c + pred))) pred = k;
    }
    right += l64 ? pred == i64_at(ld + 8 * i) : (double)pred == (double)f32_at(ld + 4 * i);
  }
  *acc = n ? (double)right / (double)n : NAN;
  *rows = n;
  fedc__client_st_view_free(&v);
  fedc_free(buf);
  return 0;
}

/*
 * The evaluate command on this model, run once per model: *out is the
 * folder of a run on the same weights (the flat vector w, or the container
 * as sent) if the last run was one, else of a new run, which replaces the
 * kept one. The federated report on round r's committed model and the
 * evaluation before training round r + 1, which starts from that model,
 * thus share one run (whichever comes first makes it), and report the
 * numbers of the same files. A failed run is not kept. The folder stays
 * until the next run or fedc__client_external_free; the model file written
 * for the command is removed once it ran.
 */
static int eval_run(fedc_client_external *x, const fedc_client_round *r, const float *w,
                    const uint8_t *model, size_t model_len, const run_dir **out) {
  uint8_t key[FEDC__SHA256_LEN];
  int rc = model != NULL ? fedc__sha256(model, model_len, key)
                         : fedc__sha256(w, r->n_params * sizeof(float), key);
  if (rc != 0) return fedc_error_set(FEDC_EINVAL, "client: cannot hash the model");
  if (x->eval_have && memcmp(key, x->eval_key, sizeof key) == 0) {
    fedc_log_debug("msg=\"evaluate command: this model was evaluated already; its run reused\" "
                   "round=%d", (int)r->round);
    *out = &x->eval_last;
    return 0;
  }
  if (x->eval_have) remove_dir(&x->eval_last);
  x->eval_have = 0;
  memset(&x->eval_last, 0, sizeof x->eval_last);
  rc = make_dir(&x->eval_last);
  if (rc == 0) rc = run_task(x, "evaluate", x->evaluate, &x->eval_last, r, w, model, model_len);
  if (rc != 0) {
    remove_dir(&x->eval_last);
    return rc;
  }
  unlink(x->eval_last.model);
  memcpy(x->eval_key, key, sizeof key);
  x->eval_have = 1;
  *out = &x->eval_last;
  return 0;
}

static int evaluate_any(void *ud, const fedc_client_round *r, const float *w,
                        const uint8_t *model, size_t model_len, fedc_client_metrics *out) {
  fedc_client_external *x = ud;
  const run_dir *dp = NULL;
  int rc = eval_run(x, r, w, model, model_len, &dp);
  cJSON *m = NULL;
  if (rc == 0) rc = read_metrics(dp->metrics, "evaluate command", r->round, &m);
  double acc = NAN;
  int64_t rows = 0;
  if (rc == 0) rc = predictions_accuracy(dp->predictions, r->round, &acc, &rows);
  if (rc == 0) {
    int bad;
    double n = metric_value(m, NULL, "num_samples", &bad);
    double loss = metric_value(m, NULL, "test_loss", &bad);
    if (isnan(loss)) loss = metric_value(m, NULL, "loss", &bad);
    double a = metric_value(m, NULL, "test_accuracy", &bad);
    if (isnan(a)) a = metric_value(m, NULL, "accuracy", &bad);
    out->samples = n >= 0 && n < 1e15 ? (int64_t)n : rows;
    if (out->samples == 0) out->samples = rows;
    out->loss = loss;
    out->accuracy = isfinite(acc) ? acc : a;
  }
  cJSON_Delete(m);
  return rc;
}

static int external_evaluate(void *ud, const fedc_client_round *r, const float *w,
                             fedc_client_metrics *out) {
  return evaluate_any(ud, r, w, NULL, 0, out);
}

static int external_evaluate_st(void *ud, const fedc_client_round *r, const uint8_t *model,
                                size_t model_len, fedc_client_metrics *out) {
  return evaluate_any(ud, r, NULL, model, model_len, out);
}

/*
 * Federated evaluation ("evaluate" task): the evaluate command on the
 * committed model, then its FEDC_PREDICTIONS_OUT (scores and labels) made
 * into the evaluation report by the library's own code, for the job's task
 * (its model type: binary, multiclass or regression) and threshold, the
 * same report the built-in trainer makes. Only counts and sums leave the
 * site (eval_site.c re-encodes it).
 */
static int external_report(void *ud, const fedc_client_round *r, const float *w, char **json) {
  fedc_client_external *x = ud;
  *json = NULL;
  fedc_model_spec spec;
  int rc = fedc_client_job_spec(r->job, &spec);
  fedc_eval_report *rep = rc == 0 ? fedc_malloc(sizeof *rep) : NULL;
  if (rc == 0 && rep == NULL) rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  /* the task, classes and threshold of the job, as the coordinator has them */
  if (rc == 0) rc = fedc_eval_report_init_for(rep, &spec, r->job->eval_threshold);
  const run_dir *dp = NULL;
  if (rc == 0) rc = eval_run(x, r, w, NULL, 0, &dp);
  if (rc == 0 && access(dp->predictions, F_OK) != 0)
    rc = failed(FEDC_ENOTFOUND, "round %d: evaluate command exited with status 0 but wrote no "
                "FEDC_PREDICTIONS_OUT (scores and labels): federated evaluation needs them",
                (int)r->round);
  if (rc == 0) {
    rc = fedc_eval_report_from_safetensors(dp->predictions, (fedc_eval_task)rep->task,
                                           rep->n_classes, rep->threshold, rep);
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = failed(rc, "round %d: evaluate command: FEDC_PREDICTIONS_OUT: %s", (int)r->round, msg);
    }
  }
  if (rc == 0) rc = fedc_eval_report_to_json(rep, json);
  fedc_free(rep);
  return rc;
}

/* The statistics phase of a job with a schema: fedc-client reads
 * [data] train by the schema itself (stats_site.c); the trainer gets the
 * federation's statistics in FEDC_TASK's job object afterwards. */
static int external_stats(void *ud, const fedc_client_job *job, char **json) {
  const fedc_client_external *x = ud;
  return fedc__client_csv_stats(x->train_csv, job, json);
}

/* A tensor job's round: the model as sent in, the update's bytes out (the
 * client checks them against the model); num_samples and train_loss from
 * the metrics or the update's metadata. */
static int external_train_st(void *ud, const fedc_client_round *r, const uint8_t *model,
                             size_t model_len, uint8_t **update, size_t *update_len,
                             fedc_client_metrics *out) {
  fedc_client_external *x = ud;
  run_dir d = {0};
  *update = NULL;
  *update_len = 0;
  int rc = make_dir(&d);
  if (rc == 0) rc = run_task(x, "train", x->command, &d, r, NULL, model, model_len);
  uint8_t *buf = NULL;
  size_t len = 0;
  if (rc == 0) rc = read_all(d.update, r->round, &buf, &len);
  fedc_client_st_view v = {0};
  int have_v = 0;
  if (rc == 0) {
    rc = fedc__client_st_view(buf, len, &v);
    have_v = rc == 0;
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = failed(rc, "round %d: trainer: FEDC_UPDATE_OUT is not a valid update: %s",
                  (int)r->round, msg);
    }
  }
  cJSON *m = NULL;
  if (rc == 0) rc = read_metrics(d.metrics, "trainer", r->round, &m);
  double n = NAN, loss = NAN;
  if (rc == 0)
    rc = samples_and_loss(m, fedc__client_st_meta(&v, "num_samples"),
                          fedc__client_st_meta(&v, "train_loss"), r->round, &n, &loss);
  if (have_v) fedc__client_st_view_free(&v);
  cJSON_Delete(m);
  remove_dir(&d);
  if (rc != 0) {
    fedc_free(buf);
    return rc;
  }
  out->samples = (int64_t)n;
  out->loss = loss;
  *update = buf;
  *update_len = len;
  return 0;
}

/* ---- making it ------------------------------------------------------------------------- */

int fedc__client_external_new_config(const fedc_config *cfg, fedc_client_external **out,
                                     fedc_client_trainer *trainer) {
  *out = NULL;
  memset(trainer, 0, sizeof *trainer);
  if (cfg->trainer_command[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "[trainer] command is not set");
  fedc_client_external *x = fedc_calloc(1, sizeof *x);
  if (x == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  x->command = fedc_strdup(cfg->trainer_command);
  x->evaluate = fedc_strdup(cfg->trainer_evaluate);
  x->train_csv = fedc_strdup(cfg->train);
  x->timeout_s = cfg->trainer_timeout_s;
  if (x->command == NULL || x->evaluate == NULL || x->train_csv == NULL) {
    fedc__client_external_free(x);
    return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  }
  trainer->train = external_train;
  trainer->evaluate = x->evaluate[0] ? external_evaluate : NULL;
  trainer->train_st = external_train_st;
  trainer->evaluate_st = x->evaluate[0] ? external_evaluate_st : NULL;
  trainer->report = x->evaluate[0] ? external_report : NULL;
  trainer->stats = external_stats;
  trainer->user_data = x;
  *out = x;
  return 0;
}
