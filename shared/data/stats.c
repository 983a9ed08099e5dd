/*
 * stats.c - per-feature statistics of a site and of a federation
 * (schema.h). A site counts, sums and squares its values into 128-bit
 * fixed-point integers (FEDC_STATS_FRAC_BITS fraction bits): a float's
 * value and square scale exactly by a power of two in double and round
 * once to an integer, so the federation's sums are the same whatever order
 * the sites arrive in, the exactness FedAvg's fixed-point sums give the
 * weights. Means and standard deviations come from the integers in long
 * double. Only these aggregates leave a site, never a row.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

#define SCALE 281474976710656.0L /* 2^FEDC_STATS_FRAC_BITS */

int fedc_stats_init(fedc_stats *st, int32_t d, int32_t n_classes) {
  memset(st, 0, sizeof *st);
  if (d < 1 || n_classes < 0 || n_classes > FEDC_STATS_MAX_CLASSES)
    return fedc_error_set(FEDC_EINVAL, "statistics: %d inputs, %d classes", (int)d,
                          (int)n_classes);
  st->d = d;
  st->n_classes = n_classes;
  st->count = fedc_calloc((size_t)d, sizeof *st->count);
  st->missing = fedc_calloc((size_t)d, sizeof *st->missing);
  st->sum = fedc_calloc((size_t)d, sizeof *st->sum);
  st->sumsq = fedc_calloc((size_t)d, sizeof *st->sumsq);
  st->min = fedc_malloc_array((size_t)d, sizeof *st->min);
  st->max = fedc_malloc_array((size_t)d, sizeof *st->max);
  if (!st->count || !st->missing || !st->sum || !st->sumsq || !st->min || !st->max) {
    fedc_stats_free(st);
    return fedc_error_set(FEDC_ENOMEM, "statistics: out of memory");
  }
  for (int32_t j = 0; j < d; j++) {
    st->min[j] = INFINITY;
    st->max[j] = -INFINITY;
  }
  return 0;
}

void fedc_stats_free(fedc_stats *st) {
  if (st == NULL) return;
  fedc_free(st->count);
  fedc_free(st->missing);
  fedc_free(st->sum);
  fedc_free(st->sumsq);
  fedc_free(st->min);
  fedc_free(st->max);
  memset(st, 0, sizeof *st);
}

/* v (a float or a float's square: at most 48 significant bits) scaled by
 * 2^48 in long double (64-bit mantissa: exact) and rounded once. */
static __int128 fixed(double v) { return (__int128)roundl((long double)v * SCALE); }

int fedc_stats_compute(const fedc_dataset *ds, int32_t n_classes, fedc_stats *out) {
  int rc = fedc_stats_init(out, (int32_t)ds->d, n_classes);
  if (rc != 0) return rc;
  out->rows = ds->n;
  for (int64_t i = 0; i < ds->n; i++) {
    const float *row = ds->x + i * ds->d;
    for (int32_t j = 0; j < out->d; j++) {
      double v = row[j];
      if (isnan(v)) {
        out->missing[j]++;
        continue;
      }
      /* |v| < 2^24 keeps v^2 2^48 below 2^96: the 128-bit sums hold 2^30
       * rows of it */
      if (!(fabs(v) < FEDC_STATS_MAX_ABS)) {
        fedc_stats_free(out);
        return fedc_error_set(FEDC_ERANGE,
                              "statistics: row %lld, input %d: |%g| >= 2^24, beyond what the "
                              "exact statistics hold; scale the column",
                              (long long)i + 1, (int)j + 1, v);
      }
      out->count[j]++;
      out->sum[j] += fixed(v);
      out->sumsq[j] += fixed(v * v);
      if (v < out->min[j]) out->min[j] = v;
      if (v > out->max[j]) out->max[j] = v;
    }
    if (n_classes > 0) {
      double lv = ds->y[i];
      if (!(lv >= 0 && lv < n_classes && lv == floor(lv))) {
        fedc_stats_free(out);
        return fedc_error_set(FEDC_ERANGE, "statistics: label %g outside the job's classes 0..%d",
                              lv, (int)n_classes - 1);
      }
      out->label_count[(int)lv]++;
    }
  }
  return 0;
}

int fedc_stats_add(fedc_stats *acc, const fedc_stats *st) {
  if (acc->d != st->d || acc->n_classes != st->n_classes)
    return fedc_error_set(FEDC_ESHAPE, "statistics: %d inputs and %d classes, expected %d and %d",
                          (int)st->d, (int)st->n_classes, (int)acc->d, (int)acc->n_classes);
  acc->rows += st->rows;
  for (int32_t j = 0; j < acc->d; j++) {
    acc->count[j] += st->count[j];
    acc->missing[j] += st->missing[j];
    acc->sum[j] += st->sum[j];
    acc->sumsq[j] += st->sumsq[j];
    if (st->min[j] < acc->min[j]) acc->min[j] = st->min[j];
    if (st->max[j] > acc->max[j]) acc->max[j] = st->max[j];
  }
  for (int32_t k = 0; k < acc->n_classes; k++) acc->label_count[k] += st->label_count[k];
  return 0;
}

void fedc_stats_moments(const fedc_stats *st, double *mean, double *std) {
  for (int32_t j = 0; j < st->d; j++) {
    if (st->count[j] == 0) {
      mean[j] = 0;
      std[j] = 1;
      continue;
    }
    long double n = (long double)st->count[j];
    long double m = (long double)st->sum[j] / SCALE / n;
    long double var = (long double)st->sumsq[j] / SCALE / n - m * m;
    mean[j] = (double)m;
    double sd = var > 0 ? (double)sqrtl(var) : 0.0;
    /* released under DP (min and max are then the declared bounds), the
     * noised variance can come out negative: then nothing is known but
     * the bounds, and the standard deviation of a uniform value over them
     * stands in for it (1 would blow a wide input up by its scale) */
    if (!(var > 0) && st->noise_multiplier > 0 && st->max[j] > st->min[j])
      sd = (st->max[j] - st->min[j]) / sqrt(12.0);
    /* a constant input is only centred; below float resolution of the
     * mean it is constant too */
    std[j] = sd > 1e-12 * (fabs(mean[j]) + 1e-30) && sd > 0 ? sd : 1.0;
  }
}

void fedc_stats_distance(const fedc_stats *site, const fedc_stats *fed, double *z,
                         int32_t *which) {
  *z = 0;
  *which = -1;
  if (site->d != fed->d) return;
  double *m = fedc_malloc_array((size_t)site->d * 3, sizeof(double));
  if (m == NULL) return;
  double *sd = m + site->d, *sm = m + 2 * site->d;
  fedc_stats_moments(fed, m, sd);
  double *unused = fedc_malloc_array((size_t)site->d, sizeof(double));
  if (unused) fedc_stats_moments(site, sm, unused);
  for (int32_t j = 0; unused && j < site->d; j++) {
    if (site->count[j] == 0) continue;
    double dz = fabs(sm[j] - m[j]) / sd[j];
    if (dz > *z) {
      *z = dz;
      *which = j;
    }
  }
  fedc_free(unused);
  fedc_free(m);
}

int fedc_dataset_standardize_with(fedc_dataset *ds, const double *mean, const double *std,
                                  int32_t d) {
  if (ds->d != d)
    return fedc_error_set(FEDC_ESHAPE, "standardize: %lld inputs, the statistics have %d",
                          (long long)ds->d, (int)d);
  for (int64_t i = 0; i < ds->n; i++) {
    float *row = ds->x + i * ds->d;
    for (int32_t j = 0; j < d; j++)
      row[j] = isnan(row[j]) ? 0.0f : (float)(((double)row[j] - mean[j]) / std[j]);
  }
  return 0;
}

/* ---- text ------------------------------------------------------------------------ */

static void i128_text(__int128 v, char *buf) {
  char tmp[48];
  int neg = v < 0, n = 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u);
  int k = 0;
  if (neg) buf[k++] = '-';
  while (n) buf[k++] = tmp[--n];
  buf[k] = '\0';
}

static int i128_parse(const char *s, __int128 *out) {
  int neg = *s == '-';
  if (neg) s++;
  if (*s == '\0' || strlen(s) > 38) return -1;
  __int128 v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

char *fedc_stats_to_json(const fedc_stats *st) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  double *mean = fedc_malloc_array((size_t)st->d * 2, sizeof(double));
  if (mean == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  double *std = mean + st->d;
  fedc_stats_moments(st, mean, std);
  cJSON_AddNumberToObject(o, "rows", (double)st->rows);
  cJSON_AddNumberToObject(o, "frac_bits", FEDC_STATS_FRAC_BITS);
  if (st->noise_multiplier > 0) cJSON_AddNumberToObject(o, "noise_multiplier", st->noise_multiplier);
  const char *names[] = {"count", "missing", "sum", "sumsq", "min", "max", "mean", "std"};
  for (int a = 0; a < 8; a++) {
    cJSON *arr = cJSON_AddArrayToObject(o, names[a]);
    for (int32_t j = 0; arr && j < st->d; j++) {
      char t[48];
      cJSON *it = NULL;
      switch (a) {
      case 0: it = cJSON_CreateNumber((double)st->count[j]); break;
      case 1: it = cJSON_CreateNumber((double)st->missing[j]); break;
      case 2: i128_text(st->sum[j], t); it = cJSON_CreateString(t); break;
      case 3: i128_text(st->sumsq[j], t); it = cJSON_CreateString(t); break;
      case 4: it = st->count[j] && isfinite(st->min[j]) ? cJSON_CreateNumber(st->min[j]) : cJSON_CreateNull(); break;
      case 5: it = st->count[j] && isfinite(st->max[j]) ? cJSON_CreateNumber(st->max[j]) : cJSON_CreateNull(); break;
      case 6: it = cJSON_CreateNumber(mean[j]); break;
      default: it = cJSON_CreateNumber(std[j]); break;
      }
      cJSON_AddItemToArray(arr, it);
    }
  }
  cJSON *lc = cJSON_AddArrayToObject(o, "label_counts");
  for (int32_t k = 0; lc && k < st->n_classes; k++)
    cJSON_AddItemToArray(lc, cJSON_CreateNumber((double)st->label_count[k]));
  fedc_free(mean);
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *copy = t ? fedc_strdup(t) : NULL;
  cJSON_free(t);
  return copy;
}

static const cJSON *arr_of(const cJSON *o, const char *name, int n) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsArray(a) && cJSON_GetArraySize(a) == n ? a : NULL;
}

int fedc_stats_from_json(const char *json, fedc_stats *out) {
  memset(out, 0, sizeof *out);
  cJSON *o = cJSON_Parse(json);
  if (o == NULL) return fedc_error_set(FEDC_EFORMAT, "statistics: not JSON");
  int rc = 0;
  const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(o, "count");
  const cJSON *lc = cJSON_GetObjectItemCaseSensitive(o, "label_counts");
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "rows");
  const cJSON *fb = cJSON_GetObjectItemCaseSensitive(o, "frac_bits");
  if (!cJSON_IsArray(cnt) || !cJSON_IsArray(lc) || !cJSON_IsNumber(rows) || !cJSON_IsNumber(fb) ||
      fb->valuedouble != FEDC_STATS_FRAC_BITS || rows->valuedouble < 0) {
    cJSON_Delete(o);
    return fedc_error_set(FEDC_EFORMAT, "statistics: count, label_counts, rows or frac_bits "
                          "absent or wrong");
  }
  int d = cJSON_GetArraySize(cnt), k = cJSON_GetArraySize(lc);
  rc = fedc_stats_init(out, d, k);
  if (rc != 0) {
    cJSON_Delete(o);
    return rc == FEDC_ENOMEM ? rc : fedc_error_set(FEDC_EFORMAT, "statistics: %d inputs, %d classes", d, k);
  }
  out->rows = (int64_t)rows->valuedouble;
  const cJSON *z = cJSON_GetObjectItemCaseSensitive(o, "noise_multiplier");
  if (cJSON_IsNumber(z) && z->valuedouble > 0) out->noise_multiplier = z->valuedouble;
  const char *names[] = {"count", "missing", "sum", "sumsq", "min", "max"};
  for (int a = 0; rc == 0 && a < 6; a++) {
    const cJSON *arr = arr_of(o, names[a], d), *it;
    if (arr == NULL) {
      rc = fedc_error_set(FEDC_EFORMAT, "statistics: '%s' absent or not %d long", names[a], d);
      break;
    }
    int j = 0;
    cJSON_ArrayForEach(it, arr) {
      int bad = 0;
      if (a < 2) {
        bad = !cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 9e15;
        if (!bad) (a == 0 ? out->count : out->missing)[j] = (int64_t)it->valuedouble;
      } else if (a < 4) {
        bad = !cJSON_IsString(it) || i128_parse(it->valuestring, a == 2 ? &out->sum[j] : &out->sumsq[j]);
      } else if (!cJSON_IsNull(it)) {
        bad = !cJSON_IsNumber(it);
        if (!bad) (a == 4 ? out->min : out->max)[j] = it->valuedouble;
      }
      if (bad) {
        rc = fedc_error_set(FEDC_EFORMAT, "statistics: '%s'[%d] is not valid", names[a], j);
        break;
      }
      j++;
    }
  }
  const cJSON *it;
  int j = 0;
  if (rc == 0)
    cJSON_ArrayForEach(it, lc) {
      if (!cJSON_IsNumber(it) || it->valuedouble < 0) {
        rc = fedc_error_set(FEDC_EFORMAT, "statistics: 'label_counts'[%d] is not valid", j);
        break;
      }
      out->label_count[j++] = (int64_t)it->valuedouble;
    }
  cJSON_Delete(o);
  if (rc != 0) fedc_stats_free(out);
  return rc;
}
