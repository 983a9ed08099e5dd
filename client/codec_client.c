/*
 * codec_client.c - a site's side of compressed updates (codec_client.h).
 *
 * topk's residual e (error feedback: what earlier rounds did not send) is
 * kept in STATE_DIR/topk-<job id>.safetensors, written atomically before
 * the update leaves: tensors "residual" (e after round r) and
 * "prev.residual" (e before it), metadata job, round = r. As with
 * SCAFFOLD's variate, a client that trains round r again (it restarted,
 * or r was reopened) starts from "prev", so the entries it sends are
 * those of its first attempt and none is lost with an update that never
 * arrived; a later round starts from "residual". int8's rounding draws
 * from the stream (job seed, "int8", round, client id), as fedc-sim's.
 */
#include "codec_client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "wire/coded_update.h"
#include "wire/safetensors.h"

#define INT8_STREAM 0x696e7438u /* "int8": the simulator's too (sim_codec.c) */

struct fedc_client_codec {
  fedc_codec codec;
  size_t n, k;
  uint64_t seed;
  int32_t client_id;
  float *x;                /* the round's start model */
  float *e, *e_prev, *e_w; /* topk: residual, the one the file's round began from, scratch */
  int32_t file_round;      /* the round the residual file was written for; 0 = none */
  int32_t round;           /* the round begun */
  char job[128];
  char path[4200];
};

void fedc__client_codec_free(fedc_client_codec *cc) {
  if (cc == NULL) return;
  fedc_free(cc->x);
  fedc_free(cc->e);
  fedc_free(cc->e_prev);
  fedc_free(cc->e_w);
  fedc_free(cc);
}

/* A tensor named name of n F32 values into out. */
static int take(const fedc_st_file *f, const char *name, size_t n, float *out) {
  fedc_st_tensor t;
  if (fedc_st_find(f, name, &t) != 0 || t.ndim != 1 || t.shape[0] != (int64_t)n)
    return fedc_error_set(FEDC_EFORMAT, "no tensor %s of %zu values", name, n);
  memcpy(out, t.data, n * sizeof(float));
  return 0;
}

/* The residual file when there is one for this job and model size; a
 * file that does not fit is an error (the operator decides, as for
 * SCAFFOLD's). */
static int load(fedc_client_codec *cc) {
  struct stat st;
  if (stat(cc->path, &st) != 0) {
    if (errno == ENOENT) return 0; /* a new site: e = 0 */
    return fedc_error_set(FEDC_EIO, "[client] state_dir: cannot read %s: %s", cc->path,
                          strerror(errno));
  }
  fedc_st_file *f = NULL;
  int rc = fedc_st_read_file(cc->path, &f);
  const char *job = rc == 0 ? fedc_st_meta_get(f, "job") : NULL;
  const char *round = rc == 0 ? fedc_st_meta_get(f, "round") : NULL;
  if (rc == 0 && (job == NULL || strcmp(job, cc->job) != 0 || round == NULL))
    rc = fedc_error_set(FEDC_EFORMAT, "not this job's residual file");
  if (rc == 0) rc = take(f, "residual", cc->n, cc->e);
  if (rc == 0) rc = take(f, "prev.residual", cc->n, cc->e_prev);
  if (rc == 0) {
    char *end;
    long r = strtol(round, &end, 10);
    if (*end != '\0' || r < 1 || r > INT32_MAX)
      rc = fedc_error_set(FEDC_EFORMAT, "round \"%.20s\"", round);
    else
      cc->file_round = (int32_t)r;
  }
  fedc_st_free(f);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[client] state_dir: %s: %s", cc->path, msg);
  }
  fedc_log_info("msg=\"topk residual restored\" round=%d file=%s", (int)cc->file_round, cc->path);
  return 0;
}

/* Only [A-Za-z0-9_-] name a file. */
static int safe_id(const char *id) {
  if (id[0] == '\0' || strlen(id) >= 128) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      return 0;
  return 1;
}

/* "compression": {"codec": name, "topk_fraction": f} of the job object. */
static int parse(const char *job_json, fedc_codec *codec, double *fraction) {
  *codec = FEDC_CODEC_NONE;
  *fraction = 0;
  cJSON *o = cJSON_Parse(job_json ? job_json : "{}");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "compression");
  int rc = 0;
  if (c != NULL) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "codec");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "topk_fraction");
    int k = cJSON_IsString(name) ? fedc_codec_parse(name->valuestring) : -1;
    if (k < 0)
      rc = fedc_error_set(FEDC_EFORMAT, "join: \"job\".\"compression\".\"codec\" is not one "
                                        "of none, f16, bf16, int8, topk");
    else if (FEDC_CODEC_SPARSE(k) &&
             !(cJSON_IsNumber(f) && f->valuedouble > 0 && f->valuedouble <= 1))
      rc = fedc_error_set(FEDC_EFORMAT, "join: \"job\".\"compression\".\"topk_fraction\" "
                                        "is not a number in (0, 1]");
    else {
      *codec = (fedc_codec)k;
      *fraction = FEDC_CODEC_SPARSE(k) ? f->valuedouble : 0;
    }
  }
  cJSON_Delete(o);
  return rc;
}

int fedc__client_codec_new(const char *job_json, const char *state_dir, const char *job_id,
                           uint64_t seed, int32_t client_id, size_t n, fedc_client_codec **out) {
  *out = NULL;
  fedc_codec codec;
  double fraction;
  int rc = parse(job_json, &codec, &fraction);
  if (rc != 0 || codec == FEDC_CODEC_NONE) return rc;
  if (FEDC_CODEC_SPARSE(codec) && (state_dir == NULL || state_dir[0] == '\0'))
    return fedc_error_set(FEDC_ECONFIG,
                          "the job sends top-k updates, whose error-feedback residual must "
                          "outlive this process: set [client] state_dir to a folder of this site");
  if (FEDC_CODEC_SPARSE(codec) && !safe_id(job_id))
    return fedc_error_set(FEDC_EFORMAT, "topk: job id \"%.40s\" cannot name a file", job_id);
  fedc_client_codec *cc = fedc_calloc(1, sizeof *cc);
  if (cc == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  cc->codec = codec;
  cc->n = n;
  cc->k = fedc_coded_topk_k(n, fraction);
  cc->seed = seed;
  cc->client_id = client_id;
  snprintf(cc->job, sizeof cc->job, "%s", job_id);
  cc->x = fedc_malloc_array(n ? n : 1, sizeof(float));
  rc = cc->x ? 0 : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0 && FEDC_CODEC_SPARSE(codec)) {
    int len = snprintf(cc->path, sizeof cc->path, "%s/topk-%s.safetensors", state_dir, job_id);
    if (len < 0 || (size_t)len >= sizeof cc->path)
      rc = fedc_error_set(FEDC_ECONFIG, "[client] state_dir: path too long");
    float **bufs[] = {&cc->e, &cc->e_prev, &cc->e_w};
    for (size_t i = 0; rc == 0 && i < 3; i++)
      if ((*bufs[i] = fedc_calloc(n ? n : 1, sizeof(float))) == NULL)
        rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
    struct stat st;
    if (rc == 0 && stat(state_dir, &st) != 0 && mkdir(state_dir, 0700) != 0)
      rc = fedc_error_set(FEDC_ECONFIG, "[client] state_dir %s: %s", state_dir, strerror(errno));
    if (rc == 0) rc = load(cc);
  }
  if (rc != 0) {
    fedc__client_codec_free(cc);
    return rc;
  }
  fedc_log_info("msg=\"updates compressed\" codec=%s kept=%zu of=%zu", fedc_codec_name(codec),
                FEDC_CODEC_SPARSE(codec) ? cc->k : n, n);
  *out = cc;
  return 0;
}

void fedc__client_codec_begin(fedc_client_codec *cc, int32_t round, const float *x) {
  memcpy(cc->x, x, cc->n * sizeof(float));
  cc->round = round;
}

/*
 * topk: the residual this round starts from (prev when the file was
 * written for this very round) is copied to scratch, the encoder updates
 * the scratch, the file is written with (scratch, start), and only then
 * do they become the residual in memory: a failed write leaves the client
 * as it was.
 */
int fedc__client_codec_encode(fedc_client_codec *cc, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len) {
  fedc_rng rng;
  fedc_rng_derive(&rng, cc->seed, INT8_STREAM, (uint64_t)round, (uint64_t)cc->client_id);
  fedc_coded_meta m = {.round = round,
                       .codec = cc->codec,
                       .num_samples = (uint64_t)num_samples,
                       .train_loss = train_loss,
                       .n = cc->n,
                       .k = FEDC_CODEC_SPARSE(cc->codec) ? cc->k : 0};
  if (!FEDC_CODEC_SPARSE(cc->codec))
    return fedc_coded_encode(&m, w, cc->x, NULL, &rng, out, out_len);
  const float *start = cc->file_round == round ? cc->e_prev : cc->e;
  memcpy(cc->e_w, start, cc->n * sizeof(float));
  int rc = fedc_coded_encode(&m, w, cc->x, cc->e_w, &rng, out, out_len);
  if (rc != 0) return rc;
  char r[32];
  snprintf(r, sizeof r, "%d", (int)round);
  fedc_st_meta meta[] = {{"format", "fedc-topk-residual"}, {"job", cc->job}, {"round", r}};
  fedc_st_tensor t[2] = {
      {.name = "residual", .ndim = 1, .shape = {(int64_t)cc->n}, .data = cc->e_w},
      {.name = "prev.residual", .ndim = 1, .shape = {(int64_t)cc->n}, .data = start}};
  rc = fedc_st_write_file(cc->path, t, 2, meta, 3);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    fedc_free(*out);
    *out = NULL;
    return fedc_error_set(rc, "[client] state_dir: cannot keep the topk residual: %s", msg);
  }
  /* in memory as in the file: e = the new residual, e_prev = the start */
  if (start == cc->e) {
    float *old = cc->e_prev;
    cc->e_prev = cc->e;
    cc->e = cc->e_w;
    cc->e_w = old;
  } else { /* start was e_prev: it stays; e takes the new residual */
    float *old = cc->e;
    cc->e = cc->e_w;
    cc->e_w = old;
  }
  cc->file_round = round;
  return 0;
}

/* Where tensor i of the order lives in the flat vector: the job's layout
 * (a dense job), or the model's own header order (a tensor job, n_layout
 * 0: the coordinator's layout is its [model] init's header order). */
static void slot(const fedc_client_st_view *model, const fedc_client_tensor *layout, size_t i,
                 size_t *off, const char **name, size_t *count) {
  if (layout != NULL) {
    *name = layout[i].name;
    *off = layout[i].offset;
    *count = layout[i].count;
  } else {
    *name = model->t[i].name;
    *count = (size_t)model->t[i].count;
  }
}

/* The tensors of view v into out (n floats), by name, in slot's order. */
static int flatten(const fedc_client_st_view *v, const fedc_client_st_view *model,
                   const fedc_client_tensor *layout, size_t n_order, size_t n, float *out,
                   const char *what) {
  size_t filled = 0;
  for (size_t i = 0; i < n_order; i++) {
    size_t off = filled, count;
    const char *name;
    slot(model, layout, i, &off, &name, &count);
    const fedc_client_st_entry *e = NULL;
    for (size_t j = 0; j < v->n && e == NULL; j++)
      if (strcmp(v->t[j].name, name) == 0) e = &v->t[j];
    if (e == NULL || e->code != FEDC_ST_F32 || e->count != count || off + count > n)
      return fedc_error_set(FEDC_EFORMAT, "compressed update: the %s has no F32 tensor %s of %zu "
                                          "values",
                            what, name, count);
    memcpy(out + off, e->data, count * sizeof(float));
    filled += count;
  }
  if (filled != n)
    return fedc_error_set(FEDC_EFORMAT, "compressed update: the tensors hold %zu of %zu weights",
                          filled, n);
  return 0;
}

/*
 * train_st's round: x from the model's bytes, w from the update's, both
 * in the layout's order (a tensor job: the model's header order), so the
 * body is the one the built-in path would make from the same weights
 * (begin's x, then encode's w); w is scratch.
 */
int fedc__client_codec_encode_st(fedc_client_codec *cc, const fedc_client_st_view *model,
                                 const fedc_client_st_view *update,
                                 const fedc_client_tensor *layout, size_t n_layout, int32_t round,
                                 int64_t num_samples, double train_loss, uint8_t **out,
                                 size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  float *w = fedc_malloc_array(cc->n ? cc->n : 1, sizeof(float));
  if (w == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  size_t n_order = layout != NULL ? n_layout : model->n;
  int rc = flatten(model, model, layout, n_order, cc->n, cc->x, "round's model");
  if (rc == 0) rc = flatten(update, model, layout, n_order, cc->n, w, "trainer's update");
  if (rc == 0) {
    cc->round = round;
    rc = fedc__client_codec_encode(cc, w, round, num_samples, train_loss, out, out_len);
  }
  fedc_free(w);
  return rc;
}

size_t fedc__client_codec_st_count(const fedc_client_st_view *model) {
  size_t n = 0;
  for (size_t i = 0; i < model->n; i++) {
    if (model->t[i].code != FEDC_ST_F32) return 0;
    n += (size_t)model->t[i].count;
  }
  return n;
}
