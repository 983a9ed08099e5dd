/*
 * fuzz_idx.c - fuzz target for the IDX loader (fedc_load_idx): LeCun's
 * image and label files, plain or gzipped, as a site or the simulator
 * reads them.
 *
 * The input holds both files: a 2-byte little-endian length L, then L
 * bytes of the images file (fewer if the input ends first), then the
 * labels file. Each goes into an in-memory file opened by path, so the
 * loader's size checks see a regular file. Checked: only the documented
 * error codes, and on error a zeroed data set and a message naming one of
 * the two files; a loaded set has every pixel k/255 for a byte k, integer
 * labels up to 254 and n_classes the largest label + 1; and the set written
 * back as plain IDX loads to the same floats, bit for bit. Every fedc block
 * allocated is freed before the input is done.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"
#include "fuzz_util.h"

static fuzz_file img, lab, img2, lab2;

static void put_be32(FILE *f, uint32_t v) {
  unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  FUZZ_CHECK(fwrite(b, 1, 4, f) == 4);
}

/* Back to plain IDX: one row of d pixels becomes 1 x d. */
static void write_idx(const fedc_dataset *ds) {
  FILE *f = fopen(img2.path, "wb");
  FUZZ_CHECK(f != NULL);
  put_be32(f, 0x00000803u);
  put_be32(f, (uint32_t)ds->n);
  put_be32(f, 1);
  put_be32(f, (uint32_t)ds->d);
  for (int64_t i = 0; i < ds->n * ds->d; i++)
    FUZZ_CHECK(fputc((int)lrintf(ds->x[i] * 255.0f), f) != EOF);
  FUZZ_CHECK(fclose(f) == 0);
  f = fopen(lab2.path, "wb");
  FUZZ_CHECK(f != NULL);
  put_be32(f, 0x00000801u);
  put_be32(f, (uint32_t)ds->n);
  for (int64_t i = 0; i < ds->n; i++)
    FUZZ_CHECK(fputc((int)ds->y[i], f) != EOF);
  FUZZ_CHECK(fclose(f) == 0);
}

static void check_loaded(const fedc_dataset *ds) {
  FUZZ_CHECK(ds->n >= 1 && ds->d >= 1 && ds->x != NULL && ds->y != NULL);
  for (int64_t i = 0; i < ds->n * ds->d; i++) {
    float v = ds->x[i];
    long k = lrintf(v * 255.0f);
    FUZZ_CHECK(k >= 0 && k <= 255 && v == (float)k / 255.0f);
  }
  float max = 0;
  for (int64_t i = 0; i < ds->n; i++) {
    float v = ds->y[i];
    FUZZ_CHECK(v >= 0 && v <= 254 && v == floorf(v));
    if (v > max) max = v;
  }
  FUZZ_CHECK(ds->n_classes == (int32_t)max + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  fuzz_file_open(&img, "fedc-fuzz-images");
  fuzz_file_open(&lab, "fedc-fuzz-labels");
  fuzz_file_open(&img2, "fedc-fuzz-images-out");
  fuzz_file_open(&lab2, "fedc-fuzz-labels-out");
  size_t split = size >= 2 ? (size_t)data[0] | (size_t)data[1] << 8 : 0;
  const uint8_t *rest = size >= 2 ? data + 2 : data + size;
  size_t rest_len = size >= 2 ? size - 2 : 0;
  if (split > rest_len) split = rest_len;
  fuzz_file_set(&img, rest, split);
  fuzz_file_set(&lab, rest + split, rest_len - split);

  fedc_dataset ds;
  memset(&ds, 0x5a, sizeof ds);
  int rc = fedc_load_idx(img.path, lab.path, &ds);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_ENOMEM));
  if (rc != 0) {
    FUZZ_CHECK(ds.n == 0 && ds.d == 0 && ds.x == NULL && ds.y == NULL && ds.n_classes == 0);
    const char *m = fedc_error_msg();
    FUZZ_CHECK(strstr(m, img.path) != NULL || strstr(m, lab.path) != NULL);
  } else {
    check_loaded(&ds);
    write_idx(&ds);
    fedc_dataset back;
    FUZZ_CHECK(fedc_load_idx(img2.path, lab2.path, &back) == 0);
    FUZZ_CHECK(back.n == ds.n && back.d == ds.d && back.n_classes == ds.n_classes);
    FUZZ_CHECK(memcmp(back.x, ds.x, (size_t)(ds.n * ds.d) * sizeof(float)) == 0);
    FUZZ_CHECK(memcmp(back.y, ds.y, (size_t)ds.n * sizeof(float)) == 0);
    fedc_dataset_free(&back);
  }
  fedc_dataset_free(&ds);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
