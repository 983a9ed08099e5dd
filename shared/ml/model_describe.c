/*
 * model_describe.c - a model's self-description (model_describe.h): the
 * model type, its output head and link (logreg: 1 logit and a sigmoid;
 * softmax and mlp: one logit per class and a softmax; linreg: 1 output,
 * identity), the hidden activation, the class labels, the fedc version;
 * and, for a job with a schema once the federation's statistics are known,
 * the feature names, the schema (to read a CSV by name), and the
 * preprocessing: per-input means and standard deviations, categorical
 * encodings and the imputation of missing values. The coordinator
 * (coordinator/model_meta.c) and fedc-sim (sim.c) both write it.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/version.h"
#include "ml/model_describe.h"

static char *print_free(cJSON *o) {
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  char *copy = t ? fedc_strdup(t) : NULL;
  cJSON_free(t);
  return copy;
}

void fedc_model_desc_free(fedc_model_desc *m) {
  fedc_free(m->classes);
  fedc_free(m->features);
  fedc_free(m->schema);
  fedc_free(m->prep);
  memset(m, 0, sizeof *m);
}

int fedc_model_describe(const fedc_model_spec *sp, const char *job_id, int32_t round,
                        const fedc_schema *s, const double *mean, const double *std,
                        const fedc_st_meta *extra, size_t n_extra, fedc_model_desc *m) {
  memset(m, 0, sizeof *m);
  if (n_extra > FEDC_MODEL_DESC_MAX - 12)
    return fedc_error_set(FEDC_EINVAL, "model metadata: %zu extra entries", n_extra);
  const char *link = sp->type == FEDC_MODEL_LOGREG   ? "sigmoid"
                     : sp->type == FEDC_MODEL_LINREG ? "identity"
                                                     : "softmax";
  snprintf(m->round, sizeof m->round, "%d", (int)round);
  snprintf(m->head, sizeof m->head, "%d", (int)sp->n_out);
  cJSON *cl = cJSON_CreateArray();
  int32_t k = sp->type == FEDC_MODEL_LOGREG ? 2 : sp->type == FEDC_MODEL_LINREG ? 0 : sp->n_out;
  int named = s != NULL && s->n_label_vocab == k && k > 0;
  const char *lq = named ? s->label_vocab : NULL;
  for (int32_t i = 0; cl && i < k; i++) {
    char t[FEDC_SCHEMA_NAME];
    if (named) { /* the declared class labels, in class order */
      const char *e = strchr(lq, '|');
      size_t l = e ? (size_t)(e - lq) : strlen(lq);
      snprintf(t, sizeof t, "%.*s", (int)l, lq);
      lq = e ? e + 1 : lq + l;
    } else {
      snprintf(t, sizeof t, "%d", (int)i);
    }
    cJSON_AddItemToArray(cl, cJSON_CreateString(t));
  }
  m->classes = print_free(cl);
  int n = 0;
  m->meta[n++] = (fedc_st_meta){"format", "fedc"};
  m->meta[n++] = (fedc_st_meta){"job", job_id ? job_id : ""};
  m->meta[n++] = (fedc_st_meta){"round", m->round};
  m->meta[n++] = (fedc_st_meta){"model_type", fedc_model_type_name(sp->type)};
  if (sp->type == FEDC_MODEL_TENSORS) { /* the site's own model: fedc knows no head of it */
    m->meta[n++] = (fedc_st_meta){"fedc_version", fedc_version()};
    for (size_t i = 0; i < n_extra; i++) m->meta[n++] = extra[i];
    m->n = (size_t)n;
    return 0;
  }
  m->meta[n++] = (fedc_st_meta){"head_outputs", m->head};
  m->meta[n++] = (fedc_st_meta){"link", link};
  m->meta[n++] = (fedc_st_meta){"hidden_activation", sp->n_hidden ? "relu" : "none"};
  m->meta[n++] = (fedc_st_meta){"fedc_version", fedc_version()};
  if (m->classes) m->meta[n++] = (fedc_st_meta){"class_labels", m->classes};
  if (mean != NULL && std != NULL && s != NULL) {
    cJSON *f = cJSON_CreateArray(), *p = cJSON_CreateObject();
    for (int32_t j = 0; f && j < s->d; j++) {
      char name[FEDC_SCHEMA_NAME * 2];
      fedc_schema_input_name(s, j, name, sizeof name);
      cJSON_AddItemToArray(f, cJSON_CreateString(name));
    }
    m->features = print_free(f);
    m->schema = fedc_schema_to_json(s);
    if (p) {
      cJSON_AddStringToObject(p, "standardize", "federation");
      cJSON_AddItemToObject(p, "mean", cJSON_CreateDoubleArray(mean, s->d));
      cJSON_AddItemToObject(p, "std", cJSON_CreateDoubleArray(std, s->d));
      cJSON_AddStringToObject(p, "missing", s->missing == FEDC_MISSING_MEAN ? "mean" : "refuse");
      /* a missing value is replaced by the federation's mean: 0 once standardized */
      cJSON_AddItemToObject(p, "impute", cJSON_CreateDoubleArray(mean, s->d));
      cJSON *enc = cJSON_AddObjectToObject(p, "one_hot");
      for (int32_t i = 0; enc && i < s->n_cols; i++)
        if (s->col[i].n_vocab > 0) {
          cJSON *v = cJSON_AddArrayToObject(enc, s->col[i].name);
          const char *q = s->col[i].vocab;
          while (v && *q) {
            const char *e = strchr(q, '|');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            char w[FEDC_SCHEMA_NAME];
            snprintf(w, sizeof w, "%.*s", (int)l, q);
            cJSON_AddItemToArray(v, cJSON_CreateString(w));
            q = e ? e + 1 : q + l;
          }
        }
    }
    m->prep = print_free(p);
    if (!m->features || !m->schema || !m->prep) {
      fedc_model_desc_free(m);
      return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
    }
    m->meta[n++] = (fedc_st_meta){"features", m->features};
    m->meta[n++] = (fedc_st_meta){"schema", m->schema};
    m->meta[n++] = (fedc_st_meta){"preprocessing", m->prep};
  }
  for (size_t i = 0; i < n_extra; i++) m->meta[n++] = extra[i];
  m->n = (size_t)n;
  return 0;
}
