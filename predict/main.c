/*
 * fedc-predict - applies a model that fedc exported to a CSV file.
 *
 *     fedc-predict --model M.safetensors --input data.csv --output predictions.csv
 *
 * The model says what it needs (shared/ml/model_describe.c): its type, head
 * and link, and, for a job with a schema, the schema (the CSV is read by
 * column name, in any order, with the same refusals as a site), the
 * federation's means and standard deviations, the categorical encodings
 * and the imputation of missing values. The input is standardized and run
 * through the layers in double precision; each row gets its scores (P(class
 * 1) for logreg, one probability per class for softmax and mlp, the value
 * for linreg) and its predicted label (the model's class labels, "B" or "M"
 * when the job declared them). When the CSV has the label column,
 * the accuracy (classification) or R^2 (regression) is printed.
 * Exit codes: 0 done, 2 usage, 1 anything else (the message on stderr).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/version.h"
#include "data/schema.h"
#include "wire/safetensors.h"

#define MAX_LAYERS 16

typedef struct layer {
  int64_t in, out;
  const float *w, *b;
} layer;

static void usage(FILE *f) {
  fprintf(f, "usage: fedc-predict --model M.safetensors --input data.csv --output predictions.csv\n"
             "Applies a model exported by fedc (fedc-coordinator export ROUND FILE) to a\n"
             "CSV, with the preprocessing the model's metadata records. Options:\n"
             "  --model FILE    the model (safetensors with fedc metadata)\n"
             "  --input FILE    rows to score (a header; columns by name when the model has a schema)\n"
             "  --output FILE   scores and predicted labels, one row per input row\n"
             "  --label NAME    label column when the model has no schema (default: label)\n"
             "  --help, --version\n");
}

/* A JSON array of numbers of length d into a fedc_malloc'd double array. */
static double *num_array(const cJSON *o, const char *name, int64_t d) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != d) return NULL;
  double *v = fedc_malloc_array((size_t)d, sizeof *v);
  const cJSON *it;
  int64_t j = 0;
  cJSON_ArrayForEach(it, a) {
    if (v == NULL || !cJSON_IsNumber(it)) {
      fedc_free(v);
      return NULL;
    }
    v[j++] = it->valuedouble;
  }
  return v;
}

static int fail(const char *what) {
  fprintf(stderr, "fedc-predict: %s: %s\n", what, fedc_error_msg());
  return 1;
}

int main(int argc, char **argv) {
  const char *model = NULL, *input = NULL, *output = NULL, *label = "label";
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {"input", required_argument, 0, 'i'},
                                       {"output", required_argument, 0, 'o'},
                                       {"label", required_argument, 0, 'l'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'm': model = optarg; break;
    case 'i': input = optarg; break;
    case 'o': output = optarg; break;
    case 'l': label = optarg; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("fedc-predict %s\n", fedc_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (model == NULL || input == NULL || output == NULL || optind != argc) {
    usage(stderr);
    return 2;
  }
  fedc_st_file *f = NULL;
  if (fedc_st_read_file(model, &f) != 0) return fail(model);
  const char *type = fedc_st_meta_get(f, "model_type");
  const char *link = fedc_st_meta_get(f, "link");
  const char *schema_text = fedc_st_meta_get(f, "schema");
  const char *prep_text = fedc_st_meta_get(f, "preprocessing");
  /* the class labels, printed as the predicted label ("B", "M"; "0", "1"
   * for numeric labels); read after the model's head is known */
  const char *classes_text = fedc_st_meta_get(f, "class_labels");
  if (type == NULL || link == NULL) {
    fprintf(stderr, "fedc-predict: %s: no model_type or link in its metadata: not a model "
            "that describes itself (exported by a fedc older than 0.3?)\n", model);
    fedc_st_free(f);
    return 1;
  }
  layer L[MAX_LAYERS];
  int nl = 0;
  for (; nl < MAX_LAYERS; nl++) {
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "layers.%d.weight", nl);
    snprintf(bn, sizeof bn, "layers.%d.bias", nl);
    fedc_st_tensor w, b;
    if (fedc_st_find(f, wn, &w) != 0) break;
    if (fedc_st_find(f, bn, &b) != 0 || w.ndim != 2 || b.ndim != 1 || b.shape[0] != w.shape[0] ||
        (nl > 0 && w.shape[1] != L[nl - 1].out)) {
      fprintf(stderr, "fedc-predict: %s: layer %d's tensors do not fit\n", model, nl);
      fedc_st_free(f);
      return 1;
    }
    L[nl] = (layer){w.shape[1], w.shape[0], w.data, b.data};
  }
  if (nl == 0) {
    fprintf(stderr, "fedc-predict: %s: no layers.0.weight\n", model);
    fedc_st_free(f);
    return 1;
  }
  int64_t d = L[0].in, k = L[nl - 1].out;
  int softmax = strcmp(link, "softmax") == 0, sigmoid = strcmp(link, "sigmoid") == 0;

  /* the data, read as the sites read it */
  fedc_dataset ds = {0};
  fedc_schema *s = fedc_malloc(sizeof *s);
  double *mean = NULL, *std = NULL;
  int rc = s ? 0 : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0 && schema_text) {
    rc = fedc_schema_from_json(schema_text, s);
    if (rc == 0) rc = fedc_load_csv_schema(input, s, 0, &ds);
  } else if (rc == 0) {
    rc = fedc_load_csv(input, label, &ds);
  }
  if (rc != 0) {
    fedc_free(s);
    fedc_st_free(f);
    return fail(input);
  }
  if (ds.d != d) {
    fprintf(stderr, "fedc-predict: %s has %lld inputs per row, the model takes %lld\n", input,
            (long long)ds.d, (long long)d);
    return 1;
  }
  int has_label = 1;
  if (schema_text) {
    /* the loader leaves labels 0 when the column is absent: look again */
    FILE *in = fopen(input, "re");
    char head[1 << 16];
    has_label = 0;
    if (in && fgets(head, sizeof head, in)) {
      char *save = NULL;
      for (char *t = strtok_r(head, ",\r\n", &save); t; t = strtok_r(NULL, ",\r\n", &save)) {
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ') t[--n] = '\0';
        if (strcmp(t, s->label) == 0) has_label = 1;
      }
    }
    if (in) fclose(in);
  }
  if (prep_text) {
    cJSON *p = cJSON_Parse(prep_text);
    mean = num_array(p, "mean", d);
    std = num_array(p, "std", d);
    cJSON_Delete(p);
    if (mean == NULL || std == NULL) {
      fprintf(stderr, "fedc-predict: %s: its preprocessing metadata is not %lld means and "
              "standard deviations\n", model, (long long)d);
      return 1;
    }
  }
  cJSON *cls = classes_text ? cJSON_Parse(classes_text) : NULL;
  if (cls && (!cJSON_IsArray(cls) || cJSON_GetArraySize(cls) != (sigmoid ? 2 : (int)k))) {
    cJSON_Delete(cls); /* not one label per class: print class indices */
    cls = NULL;
  }
  FILE *out = fopen(output, "we");
  if (out == NULL) {
    perror(output);
    return 1;
  }
  if (sigmoid) fprintf(out, "score,label\n");
  else if (softmax) {
    for (int64_t c = 0; c < k; c++) fprintf(out, "score_%lld,", (long long)c);
    fprintf(out, "label\n");
  } else fprintf(out, "prediction\n");
  int64_t width = d;
  for (int l = 0; l < nl; l++)
    if (L[l].out > width) width = L[l].out;
  double *a = fedc_malloc_array((size_t)width * 2, sizeof(double));
  if (a == NULL) return fail("out of memory");
  double *z = a + width;
  int64_t correct = 0;
  double sse = 0, sy = 0, syy = 0;
  for (int64_t i = 0; i < ds.n; i++) {
    const float *row = ds.x + i * d;
    for (int64_t j = 0; j < d; j++) {
      double v = row[j];
      a[j] = isnan(v) ? 0.0 : mean ? (v - mean[j]) / std[j] : v;
    }
    for (int l = 0; l < nl; l++) {
      for (int64_t o = 0; o < L[l].out; o++) {
        double acc = L[l].b[o];
        const float *wr = L[l].w + o * L[l].in;
        for (int64_t j = 0; j < L[l].in; j++) acc += (double)wr[j] * a[j];
        z[o] = l + 1 < nl && acc < 0 ? 0.0 : acc; /* hidden layers: ReLU */
      }
      memcpy(a, z, (size_t)L[l].out * sizeof(double));
    }
    double y = ds.y[i];
    if (sigmoid) {
      double p = 1.0 / (1.0 + exp(-a[0]));
      int lab = p >= 0.5;
      const cJSON *name = cls ? cJSON_GetArrayItem(cls, lab) : NULL;
      if (cJSON_IsString(name)) fprintf(out, "%.17g,%s\n", p, name->valuestring);
      else fprintf(out, "%.17g,%d\n", p, lab);
      correct += lab == (int)y;
    } else if (softmax) {
      double m = a[0], sum = 0;
      int64_t best = 0;
      for (int64_t c = 1; c < k; c++)
        if (a[c] > m) m = a[c], best = c;
      for (int64_t c = 0; c < k; c++) sum += exp(a[c] - m);
      for (int64_t c = 0; c < k; c++) fprintf(out, "%.17g,", exp(a[c] - m) / sum);
      const cJSON *name = cls ? cJSON_GetArrayItem(cls, (int)best) : NULL;
      if (cJSON_IsString(name)) fprintf(out, "%s\n", name->valuestring);
      else fprintf(out, "%lld\n", (long long)best);
      correct += best == (int64_t)y;
    } else {
      fprintf(out, "%.17g\n", a[0]);
      sse += (a[0] - y) * (a[0] - y);
      sy += y;
      syy += y * y;
    }
  }
  int bad = fclose(out) != 0;
  if (bad) {
    perror(output);
    return 1;
  }
  if (has_label) {
    if (sigmoid || softmax)
      printf("rows=%lld accuracy=%.6f\n", (long long)ds.n, (double)correct / (double)ds.n);
    else {
      double sst = syy - sy * sy / (double)ds.n;
      printf("rows=%lld r2=%.6f mse=%.6g\n", (long long)ds.n, sst > 0 ? 1.0 - sse / sst : NAN,
             sse / (double)ds.n);
    }
  } else {
    printf("rows=%lld\n", (long long)ds.n);
  }
  cJSON_Delete(cls);
  fedc_free(a);
  fedc_free(mean);
  fedc_free(std);
  fedc_free(s);
  fedc_dataset_free(&ds);
  fedc_st_free(f);
  return 0;
}
