/*
 * scaffold_client.c - SCAFFOLD's client control variate at the site
 * (docs/strategies.md, docs/protocol.md). A round r:
 *
 *   the model container brings x and the server variate c ("variate.")
 *   the trainer trains from x with the correction c - c_i   -> y, K steps
 *   c_i+ = c_i - c + (x - y) / (K lr)  (agg/scaffold.h, option II)
 *   the update carries y and dc = c_i+ - c_i ("variate_delta.")
 *
 * c_i is kept in STATE_DIR/scaffold-<job id>.safetensors, written
 * atomically (temporary file, fsync, rename) before the update is sent:
 * tensors c_i+ ("layers.*") and the c_i the round started from
 * ("prev.layers.*"), metadata round = r. A client that trains round r
 * again (it restarted, or the coordinator restarted and reopened r) starts
 * again from "prev", so its update is the same bits as the first time;
 * any later round starts from c_i+. A client whose update for r was never
 * counted and that is next asked for a later round keeps c_i+ all the
 * same (the server's c then lacks its delta until it trains again): the
 * coordinator does not tell clients which updates it committed.
 */
#include "scaffold_client.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agg/scaffold.h"
#include "base/alloc.h"
#include "base/error.h"
#include "ml/model_pair.h"
#include "wire/client_json.h"

#define VARIATE_PREFIX "variate."
#define DELTA_PREFIX "variate_delta."
#define PREV_PREFIX "prev."

struct fedc_client_scaffold {
  fedc_model_spec spec;
  size_t n;
  char path[4200];
  char job[128];
  float *c, *x, *ci, *ci_prev, *start, *corr, *delta;
  int32_t file_round; /* the round c_i was last updated by; 0 = none */
};

void fedc_client_scaffold_free(fedc_client_scaffold *s) {
  if (s == NULL) return;
  float *bufs[] = {s->c, s->x, s->ci, s->ci_prev, s->start, s->corr, s->delta};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) fedc_free(bufs[i]);
  fedc_free(s);
}

/* The job id names the file: only [A-Za-z0-9_-] are let through. */
static int safe_id(const char *id) {
  if (id[0] == '\0') return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      return 0;
  return 1;
}

/* Read the state file when there is one for this job and model. */
static int load(fedc_client_scaffold *s) {
  struct stat st;
  if (stat(s->path, &st) != 0) {
    if (errno == ENOENT) return 0; /* a new site: c_i = 0 */
    return fedc_error_set(FEDC_EIO, "scaffold: cannot read %s: %s", s->path, strerror(errno));
  }
  fedc_st_file *f = NULL;
  int rc = fedc_st_read_file(s->path, &f);
  const char *job = rc == 0 ? fedc_st_meta_get(f, "job") : NULL;
  const char *round = rc == 0 ? fedc_st_meta_get(f, "round") : NULL;
  if (rc == 0 && (job == NULL || strcmp(job, s->job) != 0 || round == NULL))
    rc = fedc_error_set(FEDC_EFORMAT, "scaffold: %s is not this job's variate file", s->path);
  if (rc == 0) rc = fedc_model_pair_from_tensors(&s->spec, f, PREV_PREFIX, s->ci, s->ci_prev);
  if (rc == 0) {
    char *end;
    long r = strtol(round, &end, 10);
    if (*end != '\0' || r < 1 || r > INT32_MAX)
      rc = fedc_error_set(FEDC_EFORMAT, "scaffold: %s: round \"%s\"", s->path, round);
    else
      s->file_round = (int32_t)r;
  }
  fedc_st_free(f);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[client] state_dir: %s", msg);
  }
  return 0;
}

int fedc_client_scaffold_new(const char *state_dir, const char *job_id,
                             const fedc_model_spec *spec, fedc_client_scaffold **out) {
  *out = NULL;
  if (state_dir == NULL || state_dir[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG,
                          "the job uses SCAFFOLD, whose client control variate must outlive "
                          "this process: set [client] state_dir to a folder of this site");
  if (!safe_id(job_id) || strlen(job_id) >= 128)
    return fedc_error_set(FEDC_EFORMAT, "scaffold: job id \"%.40s\" cannot name a file", job_id);
  fedc_client_scaffold *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "scaffold: out of memory");
  s->spec = *spec;
  s->n = fedc_model_n_params(spec);
  snprintf(s->job, sizeof s->job, "%s", job_id);
  int len = snprintf(s->path, sizeof s->path, "%s/scaffold-%s.safetensors", state_dir, job_id);
  int rc = len > 0 && (size_t)len < sizeof s->path
               ? 0
               : fedc_error_set(FEDC_ECONFIG, "[client] state_dir: path too long");
  float **bufs[] = {&s->c, &s->x, &s->ci, &s->ci_prev, &s->start, &s->corr, &s->delta};
  for (size_t i = 0; rc == 0 && i < sizeof bufs / sizeof *bufs; i++)
    if ((*bufs[i] = fedc_calloc(s->n ? s->n : 1, sizeof(float))) == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "scaffold: out of memory");
  if (rc == 0) {
    struct stat st;
    if (stat(state_dir, &st) != 0 && mkdir(state_dir, 0700) != 0)
      rc = fedc_error_set(FEDC_ECONFIG, "[client] state_dir %s: %s", state_dir,
                          strerror(errno));
  }
  if (rc == 0) rc = load(s);
  if (rc != 0) {
    fedc_client_scaffold_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int fedc_client_scaffold_model(fedc_client_scaffold *s, const fedc_st_file *f, float *w) {
  return fedc_model_pair_from_tensors(&s->spec, f, VARIATE_PREFIX, w, s->c);
}

/* Round r starts from c_i, or from the c_i it started from last time when
 * r is the round the file was last written for. */
const float *fedc_client_scaffold_begin(fedc_client_scaffold *s, int32_t round, const float *x) {
  const float *from = s->file_round == round ? s->ci_prev : s->ci;
  memcpy(s->start, from, s->n * sizeof(float));
  memcpy(s->x, x, s->n * sizeof(float));
  fedc_scaffold_correction(s->c, s->start, s->n, s->corr);
  return s->corr;
}

int fedc_client_scaffold_finish(fedc_client_scaffold *s, int32_t round, const float *y,
                                int64_t steps, float lr) {
  float *ci_new = s->ci_prev; /* reused as scratch, then swapped below */
  int rc = fedc_scaffold_client_update(s->c, s->start, s->x, y, s->n, steps, lr, ci_new,
                                       s->delta);
  if (rc != 0) return rc;
  /* the file: c_i+ and the start, written before the update leaves */
  char r[32];
  snprintf(r, sizeof r, "%d", (int)round);
  fedc_st_meta meta[] = {{"format", "fedc-scaffold"}, {"job", s->job}, {"round", r}};
  fedc_st_tensor t[FEDC_PAIR_MAX_TENSORS];
  char names[FEDC_PAIR_MAX_TENSORS][FEDC_PAIR_NAME_MAX];
  size_t nt;
  rc = fedc_model_pair_tensors(&s->spec, ci_new, PREV_PREFIX, s->start, t, names, &nt);
  if (rc == 0) rc = fedc_st_write_file(s->path, t, nt, meta, 3);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[client] state_dir: cannot keep the control variate: %s", msg);
  }
  /* in memory as in the file: ci = c_i+, ci_prev = the start */
  float *old_ci = s->ci;
  s->ci = ci_new;
  s->ci_prev = old_ci;
  memcpy(s->ci_prev, s->start, s->n * sizeof(float));
  s->file_round = round;
  return 0;
}

int fedc_client_scaffold_encode(const fedc_client_scaffold *s, const float *y, int32_t round,
                                int64_t num_samples, double train_loss, uint8_t **out,
                                size_t *out_len) {
  fedc_st_tensor t[FEDC_PAIR_MAX_TENSORS];
  char names[FEDC_PAIR_MAX_TENSORS][FEDC_PAIR_NAME_MAX];
  size_t nt;
  int rc = fedc_model_pair_tensors(&s->spec, y, DELTA_PREFIX, s->delta, t, names, &nt);
  return rc == 0 ? fedc_client_update_encode_tensors(t, nt, round, num_samples, train_loss, out,
                                                     out_len)
                 : rc;
}
