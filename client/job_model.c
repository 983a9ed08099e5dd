/*
 * job_model.c - the job's model on the client's side (client.h): the spec
 * a job describes, checked before anything is allocated for it; its
 * tensor layout as a trainer sees it; whether it fits the local data (the
 * built-in trainer's check); and updates encoded from a spec and a flat
 * vector through the wire layer.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"

_Static_assert(FEDC_CLIENT_MAX_HIDDEN == FEDC_MODEL_MAX_HIDDEN,
               "the public hidden-layer bound is the model's");
_Static_assert(FEDC_CLIENT_MAX_TENSORS == 2 * FEDC_MODEL_MAX_LAYERS,
               "two tensors a layer");

/*
 * Builds the spec and checks what needs no data: the class count for the
 * model's kind and the parameter count. The widths multiply and a job is
 * what a remote party says, so the count is bounded in double before any
 * buffer is sized by it.
 */
int fedc_client_job_spec(const fedc_client_job *job, fedc_model_spec *spec) {
  memset(spec, 0, sizeof *spec);
  int t = fedc_model_type_parse(job->type);
  if (t < 0)
    return fedc_error_set(FEDC_ERANGE, "the job's model type '%s' is not a built-in layout",
                          job->type);
  if (t == FEDC_MODEL_TENSORS)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "a tensors job needs [trainer] command: the built-in trainer trains "
                          "only the built-in dense models (docs/tensor-jobs.md)");
  const char *type = job->type;
  int multi = t == FEDC_MODEL_SOFTMAX || t == FEDC_MODEL_MLP;
  if (multi && job->classes < 2)
    return fedc_error_set(FEDC_ERANGE, "the job's %s model has %d classes; it needs at least 2",
                          type, (int)job->classes);
  if (!multi && job->classes > 2)
    return fedc_error_set(FEDC_ERANGE, "the job's %s model has one output but names %d classes",
                          type, (int)job->classes);
  spec->type = (fedc_model_type)t;
  spec->n_in = job->inputs;
  spec->n_out = multi ? job->classes : 1;
  spec->n_hidden = job->n_hidden;
  memcpy(spec->hidden, job->hidden, sizeof spec->hidden);
  spec->l1 = job->l1;
  spec->l2 = job->l2;
  double params = 0;
  int32_t in = spec->n_in;
  for (int32_t l = 0; l <= spec->n_hidden; l++) {
    int32_t o = l < spec->n_hidden ? spec->hidden[l] : spec->n_out;
    params += (double)in * o + o;
    in = o;
  }
  if (params > (double)FEDC_CLIENT_MAX_PARAMS) {
    memset(spec, 0, sizeof *spec);
    return fedc_error_set(FEDC_ERANGE,
                          "the job's %s model has %.0f parameters, "
                          "more than this client takes (%zu)",
                          type, params, FEDC_CLIENT_MAX_PARAMS);
  }
  return 0;
}

size_t fedc_client_layout(const fedc_model_spec *spec, fedc_client_tensor *out,
                          char names[][FEDC_CLIENT_NAME_MAX]) {
  size_t k = 0;
  for (int32_t l = 0; l < fedc_model_n_layers(spec) && k + 2 <= FEDC_CLIENT_MAX_TENSORS; l++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, l, &ly);
    snprintf(names[k], FEDC_CLIENT_NAME_MAX, "layers.%d.weight", (int)l);
    out[k] = (fedc_client_tensor){.name = names[k], .ndim = 2, .shape = {ly.out, ly.in},
                                  .offset = ly.w_off, .count = (size_t)ly.out * (size_t)ly.in};
    k++;
    snprintf(names[k], FEDC_CLIENT_NAME_MAX, "layers.%d.bias", (int)l);
    out[k] = (fedc_client_tensor){.name = names[k], .ndim = 1, .shape = {ly.out, 0},
                                  .offset = ly.b_off, .count = (size_t)ly.out};
    k++;
  }
  return k;
}

static int check_labels(const fedc_client_job *job, const fedc_model_spec *spec,
                        const fedc_dataset *ds, const char *key) {
  const char *type = job->type;
  if (spec->type == FEDC_MODEL_SOFTMAX || spec->type == FEDC_MODEL_MLP) {
    if (ds->n_classes == 0)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s: the labels are not class indices "
                            "0..K-1, but the job's %s model classifies into %d classes",
                            key, type, (int)job->classes);
    if (ds->n_classes > job->classes)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s has label %d, but the job's %s model "
                            "has %d classes (labels 0..%d)",
                            key, (int)ds->n_classes - 1, type, (int)job->classes,
                            (int)job->classes - 1);
  } else if (spec->type == FEDC_MODEL_LOGREG) {
    if (ds->n_classes == 0 || ds->n_classes > 2)
      return fedc_error_set(FEDC_ERANGE,
                            "[data] %s: the job's logreg model needs labels 0 "
                            "and 1, but the data has %s%d",
                            key, ds->n_classes ? "label " : "labels that are not class indices",
                            ds->n_classes ? (int)ds->n_classes - 1 : 0);
  }
  return 0;
}

int fedc_client_check_fit(const fedc_client_job *job, const fedc_dataset *train,
                          const fedc_dataset *test, fedc_model_spec *spec) {
  fedc_model_spec s;
  int rc = fedc_client_job_spec(job, &s);
  memset(spec, 0, sizeof *spec);
  if (rc != 0) return rc;
  if (train->d != job->inputs)
    return fedc_error_set(FEDC_ESHAPE,
                          "[data] train has %lld features per row, but the "
                          "job's %s model takes %d inputs",
                          (long long)train->d, job->type, (int)job->inputs);
  rc = check_labels(job, &s, train, "train");
  if (rc == 0 && test != NULL && test->n > 0) {
    if (test->d != job->inputs)
      return fedc_error_set(FEDC_ESHAPE,
                            "[data] test has %lld features per row, but the "
                            "job's %s model takes %d inputs",
                            (long long)test->d, job->type, (int)job->inputs);
    rc = check_labels(job, &s, test, "test");
  }
  if (rc != 0) return rc;
  *spec = s;
  return 0;
}

void fedc_client_train_params(const fedc_client_job *job, fedc_train_params *p) {
  *p = (fedc_train_params){0}; /* unweighted unless the trainer adds class weights */
  p->epochs = job->train.epochs;
  p->batch_size = job->train.batch_size;
  p->lr = job->train.lr;
  p->momentum = job->train.momentum;
  p->prox_mu = job->train.prox_mu;
}

int fedc_client_update_encode(const fedc_model_spec *spec, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len) {
  fedc_st_tensor t[FEDC_CLIENT_MAX_TENSORS];
  size_t nt = fedc_model_tensors(spec, w, t, FEDC_CLIENT_MAX_TENSORS);
  return fedc_client_update_encode_tensors(t, nt, round, num_samples, train_loss, out, out_len);
}

int fedc_client_update_write(const char *path, const fedc_model_spec *spec, const float *w,
                             int32_t round, int64_t num_samples, double train_loss) {
  fedc_st_tensor t[FEDC_CLIENT_MAX_TENSORS];
  size_t nt = fedc_model_tensors(spec, w, t, FEDC_CLIENT_MAX_TENSORS);
  return fedc_client_update_write_tensors(path, t, nt, round, num_samples, train_loss);
}

/*
 * The join answer's "job"."schema" and "job"."stats" as JSON text, into
 * *schema and *stats (freed and replaced; NULL when absent). Errors:
 * FEDC_EFORMAT (one of them is not an object), FEDC_ENOMEM.
 */
int fedc__client_job_extras(char **schema, char **stats, const void *body, size_t len) {
  fedc_free(*schema);
  fedc_free(*stats);
  *schema = *stats = NULL;
  cJSON *root = cJSON_ParseWithLength((const char *)body, len);
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
  const char *names[2] = {"schema", "stats"};
  char **outs[2] = {schema, stats};
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(job, names[i]);
    if (o == NULL) continue;
    if (!cJSON_IsObject(o)) {
      rc = fedc_error_set(FEDC_EFORMAT, "join: \"job\".\"%s\" is not an object", names[i]);
      break;
    }
    char *t = cJSON_PrintUnformatted(o);
    *outs[i] = t ? fedc_strdup(t) : NULL;
    cJSON_free(t);
    if (*outs[i] == NULL) rc = fedc_error_set(FEDC_ENOMEM, "join: out of memory");
  }
  cJSON_Delete(root);
  if (rc != 0) {
    fedc_free(*schema);
    fedc_free(*stats);
    *schema = *stats = NULL;
  }
  return rc;
}
