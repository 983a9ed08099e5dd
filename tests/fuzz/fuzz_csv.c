/*
 * fuzz_csv.c - fuzz target for the CSV loader (fedc_load_csv), which reads
 * a site's own table, or anything a user points [data] train at.
 *
 * The input is the file (an in-memory file opened by path), loaded with
 * the label column "label". Checked: only the documented error codes, and
 * on error a zeroed data set and a message that names the file; a loaded
 * set has rows and features, finite values, and n_classes exactly as
 * data.h defines it from the labels; and the set written back as CSV (the
 * label first, every float with 9 significant digits) loads to the same
 * floats, bit for bit. Every fedc block allocated is freed before the
 * input is done.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"
#include "fuzz_util.h"

static fuzz_file in, out;

static void check_loaded(const fedc_dataset *ds) {
  FUZZ_CHECK(ds->n >= 1 && ds->d >= 1 && ds->x != NULL && ds->y != NULL);
  int classes = 1;
  double max = 0;
  for (int64_t i = 0; i < ds->n * ds->d; i++)
    FUZZ_CHECK(isfinite(ds->x[i]));
  for (int64_t i = 0; i < ds->n; i++) {
    float v = ds->y[i];
    FUZZ_CHECK(isfinite(v));
    if (!(v >= 0 && v < 16777216.0f && v == floorf(v))) classes = 0;
    if (v > max) max = v;
  }
  FUZZ_CHECK(ds->n_classes == (classes ? (int32_t)max + 1 : 0));
}

/* Write ds as CSV: "label,f1,f2,..." then the rows. */
static void write_csv(const fedc_dataset *ds) {
  FILE *f = fopen(out.path, "w");
  FUZZ_CHECK(f != NULL);
  fprintf(f, "label");
  for (int64_t j = 0; j < ds->d; j++)
    fprintf(f, ",f%lld", (long long)j + 1);
  fprintf(f, "\n");
  for (int64_t i = 0; i < ds->n; i++) {
    fprintf(f, "%.9g", (double)ds->y[i]);
    for (int64_t j = 0; j < ds->d; j++)
      fprintf(f, ",%.9g", (double)ds->x[i * ds->d + j]);
    fprintf(f, "\n");
  }
  FUZZ_CHECK(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  fuzz_file_open(&in, "fedc-fuzz.csv");
  fuzz_file_open(&out, "fedc-fuzz-out.csv");
  fuzz_file_set(&in, data, size);

  fedc_dataset ds;
  memset(&ds, 0x5a, sizeof ds);
  int rc = fedc_load_csv(in.path, "label", &ds);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_ENOTFOUND, FEDC_ENOMEM));
  if (rc != 0) {
    FUZZ_CHECK(ds.n == 0 && ds.d == 0 && ds.x == NULL && ds.y == NULL && ds.n_classes == 0);
    FUZZ_CHECK(strncmp(fedc_error_msg(), in.path, strlen(in.path)) == 0);
  } else {
    check_loaded(&ds);
    write_csv(&ds);
    fedc_dataset back;
    FUZZ_CHECK(fedc_load_csv(out.path, "label", &back) == 0);
    FUZZ_CHECK(back.n == ds.n && back.d == ds.d && back.n_classes == ds.n_classes);
    FUZZ_CHECK(memcmp(back.x, ds.x, (size_t)(ds.n * ds.d) * sizeof(float)) == 0);
    FUZZ_CHECK(memcmp(back.y, ds.y, (size_t)ds.n * sizeof(float)) == 0);
    fedc_dataset_free(&back);
  }
  fedc_dataset_free(&ds);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
