/*
 * loader_schema.c - reads a CSV by a job's schema (schema.h): columns are
 * found by their header names, in any order; excluded columns are skipped;
 * categorical columns are one-hot encoded from the schema's vocabulary;
 * missing values are refused or kept as NaN for the federation's mean.
 * Every refusal is one message naming the file, the line and the column, so
 * that a site can fix its data before anything is trained or sent.
 *
 * The file is read whole: the tables a site trains a schema'd model on fit
 * in memory many times over.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

#define SHOW 40

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  s[n] = '\0';
  return s;
}

static int read_all(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *b = fedc_malloc(cap);
  while (b) {
    if (n + 1 >= cap) {
      char *p = cap > SIZE_MAX / 2 ? NULL : fedc_realloc(b, cap * 2);
      if (p == NULL) {
        fedc_free(b);
        b = NULL;
        break;
      }
      b = p;
      cap *= 2;
    }
    size_t got = fread(b + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (b == NULL) return fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
  if (err) {
    fedc_free(b);
    return fedc_error_set(FEDC_EIO, "%s: read error", path);
  }
  b[n] = '\0';
  if (memchr(b, '\0', n) != NULL) {
    fedc_free(b);
    return fedc_error_set(FEDC_EFORMAT, "%s: NUL byte in the file", path);
  }
  *out = b;
  *len = n;
  return 0;
}

/* Split s at commas in place into fields (at most max); returns the count
 * (which may exceed max: the rest are not stored). */
static size_t split(char *s, char **fields, size_t max) {
  size_t n = 0;
  for (;;) {
    char *c = strchr(s, ',');
    if (n < max) fields[n] = s;
    n++;
    if (c == NULL) break;
    *c = '\0';
    s = c + 1;
  }
  return n;
}

static int parse_num(const char *s, double *v) {
  char *end = NULL;
  errno = 0;
  double d = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(d) || !(fabs(d) < 3.4e38)) return -1;
  *v = d;
  return 0;
}

static int vocab_index(const fedc_schema_col *c, const char *v) {
  const char *p = c->vocab;
  size_t n = strlen(v);
  for (int k = 0; *p; k++) {
    const char *e = strchr(p, '|');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == n && memcmp(p, v, n) == 0) return k;
    if (e == NULL) break;
    p = e + 1;
  }
  return -1;
}

int fedc_load_csv_schema(const char *path, const fedc_schema *s, int label_required,
                         fedc_dataset *out) {
  if (out == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_load_csv_schema: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL || s == NULL || s->n_cols < 1)
    return fedc_error_set(FEDC_EINVAL, "fedc_load_csv_schema: NULL argument or empty schema");
  char *buf = NULL;
  size_t len = 0;
  int rc = read_all(path, &buf, &len);
  if (rc != 0) return rc;
  char **fields = NULL;
  int32_t *col_of = NULL; /* header column -> schema column, -1 label, -2 excluded */
  float *x = NULL, *y = NULL;
  size_t ncols = 0;

  /* count the data lines first: the buffers are sized once */
  size_t lines = 0;
  for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
  lines++;
  char *p = buf;
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  char *nl = strchr(p, '\n');
  if (nl) *nl = '\0';
  char *header = p;
  p = nl ? nl + 1 : p + strlen(p);
  if (trim(header)[0] == '\0') {
    rc = fedc_error_set(FEDC_EFORMAT, "%s:1: empty header, expected column names", path);
    goto done;
  }
  {
    size_t nf = 1;
    for (char *q = header; *q; q++) nf += *q == ',';
    ncols = nf;
  }
  fields = fedc_malloc_array(ncols, sizeof *fields);
  col_of = fedc_malloc_array(ncols, sizeof *col_of);
  int32_t *where = fedc_malloc_array((size_t)s->n_cols + 1, sizeof *where);
  if (fields == NULL || col_of == NULL || where == NULL) {
    fedc_free(where);
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  split(header, fields, ncols);
  for (int32_t j = 0; j < s->n_cols; j++) where[j] = -1;
  size_t label_col = SIZE_MAX;
  for (size_t c = 0; c < ncols && rc == 0; c++) {
    char *name = trim(fields[c]);
    if (strcmp(name, s->label) == 0) {
      if (label_col != SIZE_MAX)
        rc = fedc_error_set(FEDC_EFORMAT, "%s:1: column %zu '%s': the label column appears twice",
                            path, c + 1, name);
      label_col = c;
      col_of[c] = -1;
      continue;
    }
    int32_t j = -1;
    for (int32_t k = 0; k < s->n_cols; k++)
      if (strcmp(s->col[k].name, name) == 0) j = k;
    if (j >= 0) {
      if (where[j] >= 0)
        rc = fedc_error_set(FEDC_EFORMAT, "%s:1: column %zu '%s': named twice in the header", path,
                            c + 1, name);
      where[j] = (int32_t)c;
      col_of[c] = j;
      continue;
    }
    int ex = 0;
    for (int32_t k = 0; k < s->n_exclude; k++) ex |= strcmp(s->exclude[k], name) == 0;
    if (ex) {
      col_of[c] = -2;
      continue;
    }
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s:1: column %zu '%s': not a feature of the job's schema, nor its label "
                        "'%s'; list it in [data] exclude to ignore it",
                        path, c + 1, name, s->label);
  }
  for (int32_t j = 0; rc == 0 && j < s->n_cols; j++)
    if (where[j] < 0)
      rc = fedc_error_set(FEDC_EFORMAT,
                          "%s:1: column '%s': feature %d of the job's schema is missing from "
                          "the header",
                          path, s->col[j].name, (int)j + 1);
  fedc_free(where);
  if (rc == 0 && label_required && label_col == SIZE_MAX)
    rc = fedc_error_set(FEDC_ENOTFOUND, "%s:1: column '%s': no label column in the header", path,
                        s->label);
  if (rc != 0) goto done;

  size_t d = (size_t)s->d;
  x = fedc_malloc_aligned(lines * d * sizeof(float) + 64);
  y = fedc_malloc_aligned(lines * sizeof(float) + 64);
  if (x == NULL || y == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  size_t n = 0;
  int64_t lineno = 1, blank = 0;
  int classes = 1;
  double max_label = 0;
  while (*p) {
    nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    char *line = p;
    p = nl ? nl + 1 : p + strlen(p);
    lineno++;
    if (trim(line)[0] == '\0') {
      if (blank == 0) blank = lineno;
      continue;
    }
    if (blank) {
      rc = fedc_error_set(FEDC_EFORMAT, "%s:%" PRId64 ": empty line before more data (line %" PRId64 ")",
                          path, blank, lineno);
      goto done;
    }
    size_t nf = split(line, fields, ncols);
    if (nf != ncols) {
      rc = fedc_error_set(FEDC_EFORMAT, "%s:%" PRId64 ": column %zu: %zu fields, expected %zu", path,
                          lineno, nf < ncols ? nf + 1 : ncols + 1, nf, ncols);
      goto done;
    }
    float *row = x + n * d;
    y[n] = 0;
    for (size_t c = 0; c < ncols; c++) {
      if (col_of[c] == -2) continue;
      char *v = trim(fields[c]);
      char hname[FEDC_SCHEMA_NAME];
      const char *cname = col_of[c] == -1 ? s->label : s->col[col_of[c]].name;
      snprintf(hname, sizeof hname, "%s", cname);
      const char *why = NULL;
      if (col_of[c] == -1) {
        double lv;
        int k;
        if (*v == '\0') why = "is empty (a label is never missing)";
        else if (s->n_label_vocab > 0 && (k = fedc_schema_class_of(s, v)) < 0)
          why = "is not one of the job's class labels ([data] class_labels)";
        else if (s->n_label_vocab > 0) {
          y[n] = (float)k;
          if (k > max_label) max_label = k;
        } else if (parse_num(v, &lv) != 0) why = "is not a number";
        else {
          y[n] = (float)lv;
          if (!(lv >= 0 && lv < 16777216.0 && lv == floor(lv))) classes = 0;
          if (lv > max_label) max_label = lv;
        }
      } else {
        const fedc_schema_col *sc = &s->col[col_of[c]];
        float *dst = row + sc->offset;
        int32_t w = sc->n_vocab > 0 ? sc->n_vocab : 1;
        if (*v == '\0' || strcmp(v, "NA") == 0 || strcmp(v, "NaN") == 0 || strcmp(v, "nan") == 0) {
          if (s->missing == FEDC_MISSING_MEAN)
            for (int32_t k = 0; k < w; k++) dst[k] = NAN;
          else
            why = "is missing, and [data] missing = refuse";
        } else if (sc->n_vocab > 0) {
          int k = vocab_index(sc, v);
          if (k < 0) why = "is not in the column's vocabulary ([data] categorical)";
          else
            for (int32_t t = 0; t < w; t++) dst[t] = t == k ? 1.0f : 0.0f;
        } else {
          double dv;
          if (parse_num(v, &dv) != 0) why = "is not a finite number";
          else dst[0] = (float)dv;
        }
      }
      if (why) {
        rc = fedc_error_set(FEDC_EFORMAT, "%s:%" PRId64 ": column %zu '%s': '%.*s%s' %s", path,
                            lineno, c + 1, hname, SHOW, v, strlen(v) > SHOW ? "..." : "", why);
        goto done;
      }
    }
    n++;
  }
  if (n == 0) {
    rc = fedc_error_set(FEDC_EFORMAT, "%s: no data rows after the header", path);
    goto done;
  }
  out->n = (int64_t)n;
  out->d = (int64_t)d;
  out->x = x;
  out->y = y;
  out->n_classes = label_col == SIZE_MAX ? 0 : classes ? (int32_t)max_label + 1 : 0;
  if (label_col != SIZE_MAX && s->n_label_vocab > 0) out->n_classes = s->n_label_vocab;
  x = y = NULL;
done:
  fedc_free(buf);
  fedc_free(fields);
  fedc_free(col_of);
  fedc_free_aligned(x);
  fedc_free_aligned(y);
  return rc;
}
