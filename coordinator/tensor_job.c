/*
 * tensor_job.c - the coordinator's view of its job's tensors: the layout
 * (ml/layout.h) every model is encoded, decoded and checked through, and
 * the integer tensors of a tensor job ([model] type = tensors), which the
 * engine never sees.
 *
 * A built-in dense model describes itself with its layout (all F32); a
 * tensor job's layout, initial values and integer rules come from [model]
 * init and integer_rule. The float tensors (F32, F16, BF16, widened
 * exactly) are the engine's model; the integer tensors live here: the
 * committed values (ints), this round's maximum over the updates folded
 * (ints_acc, reset by the round's first update) and the values a prepared
 * commit will make current (ints_next). All of it is used under mu, like
 * the engine. An open round is never persisted (it runs again after a
 * restart), so only the committed values reach the store, inside each
 * round's checkpoint.
 */
#include "coord_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/dtype.h"
#include "wire/compress.h"

/*
 * Read the initial model of a tensor job: its layout, its float values
 * into *wf and integer values into c->ints (both new). Errors are
 * FEDC_ECONFIG naming [model] init and the file.
 */
static int read_init(fedc_coord *c, fedc_st_file **out) {
  const char *path = c->cfg.model_init;
  uint8_t *bytes = NULL;
  size_t len = 0;
  fedc_st_file *f = NULL;
  /* fedc_st_read_file decodes F32 only: read the bytes, then decode any dtype */
  FILE *fp = fopen(path, "rb");
  int rc = 0;
  if (fp == NULL) {
    return fedc_error_set(FEDC_ECONFIG, "[model] init = %s: cannot open it (%s)", path,
                          strerror(errno));
  }
  if (fseek(fp, 0, SEEK_END) != 0) rc = FEDC_EIO;
  long size = rc == 0 ? ftell(fp) : -1;
  if (size < 0 || size > (long)((size_t)1 << 32)) rc = FEDC_EIO;
  if (rc == 0 && fseek(fp, 0, SEEK_SET) != 0) rc = FEDC_EIO;
  if (rc == 0) {
    len = (size_t)size;
    bytes = fedc_malloc(len ? len : 1);
    if (bytes == NULL) rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
    else if (fread(bytes, 1, len, fp) != len) rc = FEDC_EIO;
  }
  fclose(fp);
  if (rc == FEDC_EIO) rc = fedc_error_set(FEDC_ECONFIG, "[model] init = %s: cannot read it", path);
  if (rc == 0) {
    rc = fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY, &f);
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[384];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_ECONFIG, "[model] init = %s: not a valid safetensors file: %s",
                          path, msg);
    }
  }
  fedc_free(bytes);
  if (rc == 0) *out = f;
  return rc;
}

/*
 * [strategy] compression in a tensor job: the codecs encode one float32
 * delta, so every tensor of [model] init must be F32 (no F16 or BF16,
 * whose committed values are rounded to their dtype, and no integer
 * tensors, which a coded body does not carry). FEDC_ECONFIG naming the
 * first other tensor.
 */
static int compression_refusal(const fedc_coord *c) {
  for (size_t i = 0; i < c->layout.n; i++) {
    const fedc_layout_tensor *t = &c->layout.t[i];
    if (t->dtype == FEDC_ST_F32) continue;
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] compression = %s with [model] type = tensors: [model] "
                          "init = %s has tensor %s of dtype %s; the codecs carry a float32 "
                          "delta, so a compressed tensor job needs F32 tensors only; set "
                          "compression = none or convert the model (docs/compression.md)",
                          fedc_config_origin(&c->cfg, "strategy", "compression"),
                          fedc_codec_name((fedc_codec)c->cfg.compression), c->cfg.model_init,
                          t->name, fedc_st_dtype_name(t->dtype));
  }
  return 0;
}

int fedc__coord_tensors_init(fedc_coord *c, float **w_init) {
  *w_init = NULL;
  int tensors = c->cfg.model_type == FEDC_MODEL_TENSORS;
  int rc;
  fedc_st_file *f = NULL;
  if (!tensors) {
    rc = fedc_coord_model_spec(&c->cfg, &c->spec);
    if (rc == 0) rc = fedc_layout_from_spec(&c->spec, &c->layout);
  } else {
    memset(&c->spec, 0, sizeof c->spec);
    c->spec.type = FEDC_MODEL_TENSORS;
    rc = read_init(c, &f);
    if (rc == 0) {
      rc = fedc_layout_from_file(f, &c->layout);
      if (rc != 0 && rc != FEDC_ENOMEM) {
        char msg[384];
        snprintf(msg, sizeof msg, "%s", fedc_error_msg());
        rc = fedc_error_set(FEDC_ECONFIG, "[model] init = %s: %s", c->cfg.model_init, msg);
      }
    }
    if (rc == 0) {
      rc = fedc_layout_set_rules(&c->layout, c->cfg.integer_rule);
      if (rc == FEDC_ECONFIG) {
        char msg[384];
        snprintf(msg, sizeof msg, "%s", fedc_error_msg());
        rc = fedc_error_set(FEDC_ECONFIG, "%s: [model] integer_rule = %s: %s",
                            fedc_config_origin(&c->cfg, "model", "integer_rule"),
                            c->cfg.integer_rule, msg);
      }
    }
    if (rc == 0 && (fedc__coord_scaffold_on(c) || fedc__coord_async_on(c)))
      rc = fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] name = %s with [model] type = tensors: SCAFFOLD's "
                          "variates and FedBuff's steps are built for the built-in models' "
                          "float32 layouts only; use another strategy for a tensor job",
                          fedc_config_origin(&c->cfg, "strategy", "name"), c->cfg.strategy);
    if (rc == 0 && c->cfg.compression != FEDC_CODEC_NONE)
      rc = compression_refusal(c);
    if (rc == 0 && c->cfg.secagg && fedc_layout_has_max(&c->layout))
      rc = fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] integer_rule = %s: max needs every update's integer "
                          "tensors, which secure aggregation does not send (only the masked "
                          "float tensors); use keep with [privacy] secure_aggregation = true",
                          fedc_config_origin(&c->cfg, "model", "integer_rule"),
                          c->cfg.integer_rule);
  }
  size_t ni = c->layout.n_int ? c->layout.n_int : 1;
  if (rc == 0) {
    c->n_params = c->layout.n_float;
    c->ints = fedc_calloc(ni, sizeof(int64_t));
    c->ints_acc = fedc_calloc(ni, sizeof(int64_t));
    c->ints_next = fedc_calloc(ni, sizeof(int64_t));
    *w_init = fedc_malloc_array(c->n_params, sizeof(float));
    if (!c->ints || !c->ints_acc || !c->ints_next || !*w_init)
      rc = fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  }
  if (rc == 0 && tensors) {
    rc = fedc_layout_read(&c->layout, f, *w_init, c->ints);
    if (rc != 0 && rc != FEDC_ENOMEM) {
      char msg[384];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_ECONFIG, "[model] init = %s: %s", c->cfg.model_init, msg);
    }
  } else if (rc == 0) {
    fedc_model_init(&c->spec, c->cfg.seed, *w_init);
  }
  fedc_st_free(f);
  if (rc != 0) {
    fedc_free(*w_init);
    *w_init = NULL;
  }
  return rc;
}

void fedc__coord_tensors_free(fedc_coord *c) {
  fedc_layout_free(&c->layout);
  fedc_free(c->ints);
  fedc_free(c->ints_acc);
  fedc_free(c->ints_next);
  c->ints = c->ints_acc = c->ints_next = NULL;
}

/* The tensors as the job object and the job's identity list them. */
static cJSON *tensor_list(const fedc_coord *c) {
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < c->layout.n; i++) {
    const fedc_layout_tensor *t = &c->layout.t[i];
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
    if (o == NULL || shape == NULL) {
      cJSON_Delete(o);
      cJSON_Delete(shape);
      cJSON_Delete(arr);
      return NULL;
    }
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", fedc_st_dtype_name(t->dtype));
    for (int32_t d = 0; d < t->ndim; d++)
      cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddItemToObject(o, "shape", shape);
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

int fedc__coord_tensors_job_json(const fedc_coord *c, cJSON *model) {
  cJSON *arr = tensor_list(c);
  if (arr == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  cJSON_AddItemToObject(model, "tensors", arr);
  return 0;
}

/* The identity of a tensor job in the store: its tensors, the seed and
 * the strategy (a restart with another init file of the same tensors
 * resumes; one with other tensors is refused; the integer rules may
 * change). */
char *fedc__coord_tensors_spec_json(const fedc_coord *c) {
  cJSON *o = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(o, "model");
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->cfg.seed);
  cJSON_AddStringToObject(model, "type", "tensors");
  cJSON *arr = tensor_list(c);
  if (arr) cJSON_AddItemToObject(model, "tensors", arr);
  cJSON_AddStringToObject(o, "seed", seed);
  cJSON_AddStringToObject(o, "strategy", c->cfg.strategy);
  char *text = arr ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  char *copy = text ? fedc_strdup(text) : NULL;
  cJSON_free(text);
  return copy;
}

void fedc__coord_tensors_fold(fedc_coord *c, const int64_t *ints) {
  if (c->layout.n_int == 0) return;
  /* the engine counted this update: the round's (or attempt's) first resets */
  fedc_layout_int_fold(&c->layout, c->ints_acc, ints, fedc_engine_reported(c->engine) == 1);
}

const int64_t *fedc__coord_tensors_prepare(fedc_coord *c) {
  fedc_layout_int_next(&c->layout, c->ints, c->ints_acc, fedc_engine_reported(c->engine) > 0,
                       c->ints_next);
  return c->ints_next;
}

void fedc__coord_tensors_commit(fedc_coord *c) {
  int64_t *t = c->ints;
  c->ints = c->ints_next;
  c->ints_next = t;
}
