/*
 * test_loaders.c - unit tests for the IDX and CSV loaders and the dataset
 * helpers (shared/loader_idx.c, shared/loader_csv.c, shared/dataset.c).
 *
 * Each test writes its fixture files into a fresh mkdtemp directory under
 * /tmp, which teardown removes, and teardown also checks that the test left
 * no fedc allocation behind. The refusal tests check both the error code and
 * that the message names the file (and, for CSV, the line and column), since
 * that message is what a person fixing their data gets to see. One test
 * loads the real Fashion-MNIST from /usr/share/datasets/fashion-mnist when
 * the Debian package is installed, and reports how long the train set took.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct fixture {
  char dir[64];
  int64_t live;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/fedc-test-loaders-XXXXXX");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  fedc_error_clear();
  f->live = fedc_alloc_live();
  *state = f;
  return 0;
}

/* Remove the fixture directory, then check for leaks (after the cleanup, so
 * that a failed check does not leave files behind). */
static int teardown(void **state) {
  fixture *f = *state;
  fedc_alloc_fail_after(0, 0);
  int64_t live_after = fedc_alloc_live(), live_before = f->live;
  DIR *dir = opendir(f->dir);
  if (dir != NULL) {
    struct dirent *e;
    char p[512];
    while ((e = readdir(dir)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
      unlink(p);
    }
    closedir(dir);
  }
  rmdir(f->dir);
  free(f);
  assert_int_equal(live_after, live_before);
  return 0;
}

/* ---- fixture writers ---------------------------------------------------- */

static void path_of(void **state, const char *name, char *buf, size_t cap) {
  const fixture *f = *state;
  snprintf(buf, cap, "%s/%s", f->dir, name);
}

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *path, const char *text) {
  write_bytes(path, text, strlen(text));
}

static void write_gz(const char *path, const void *data, size_t len) {
  gzFile gz = gzopen(path, "wb");
  assert_non_null(gz);
  assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
  assert_int_equal(gzclose(gz), Z_OK);
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* An IDX image: header + payload in a plain malloc'd buffer of *len bytes. */
static unsigned char *idx_bytes(uint32_t magic, const uint32_t *dims, int ndims,
                                const unsigned char *payload,
                                size_t payload_len, size_t *len) {
  size_t hdr = 4 + 4 * (size_t)ndims;
  unsigned char *b = malloc(hdr + payload_len + 1);
  assert_non_null(b);
  put_be32(b, magic);
  for (int i = 0; i < ndims; i++) put_be32(b + 4 + 4 * i, dims[i]);
  if (payload_len) memcpy(b + hdr, payload, payload_len);
  *len = hdr + payload_len;
  return b;
}

/* The small reference pair: 3 images of 2x3 pixels, labels 0, 4, 2. */
static const unsigned char small_pixels[18] = {
    0, 255, 128, 1, 2, 3, 10, 20, 30, 40, 50, 60, 254, 253, 127, 0, 0, 255};
static const unsigned char small_labels[3] = {0, 4, 2};

static void write_idx(const char *path, const unsigned char *b, size_t len,
                      int gz) {
  if (gz)
    write_gz(path, b, len);
  else
    write_bytes(path, b, len);
}

/* The small reference pair, gzipped when gz is set. */
static void write_small_images(const char *path, int gz) {
  uint32_t dims[3] = {3, 2, 3};
  size_t len;
  unsigned char *b = idx_bytes(0x803, dims, 3, small_pixels, 18, &len);
  write_idx(path, b, len, gz);
  free(b);
}

static void write_small_labels(const char *path, int gz) {
  uint32_t dims[1] = {3};
  size_t len;
  unsigned char *b = idx_bytes(0x801, dims, 1, small_labels, 3, &len);
  write_idx(path, b, len, gz);
  free(b);
}

static void write_small_pair(const char *images, const char *labels, int gz) {
  write_small_images(images, gz);
  write_small_labels(labels, gz);
}

static void assert_zeroed(const fedc_dataset *ds) {
  assert_int_equal(ds->n, 0);
  assert_int_equal(ds->d, 0);
  assert_null(ds->x);
  assert_null(ds->y);
  assert_int_equal(ds->n_classes, 0);
}

/* rc is code, *ds is zeroed and the message contains needle. */
static void assert_refused(int rc, int code, const fedc_dataset *ds,
                           const char *needle) {
  if (rc != code || strstr(fedc_error_msg(), needle) == NULL)
    print_error("rc=%s msg=\"%s\" wanted %s with \"%s\"\n", fedc_err_name(rc),
                fedc_error_msg(), fedc_err_name(code), needle);
  assert_int_equal(rc, code);
  assert_non_null(strstr(fedc_error_msg(), needle));
  assert_zeroed(ds);
}

static void assert_small_pair(const fedc_dataset *ds) {
  assert_int_equal(ds->n, 3);
  assert_int_equal(ds->d, 6);
  assert_int_equal(ds->n_classes, 5);
  assert_int_equal((uintptr_t)ds->x % 64, 0);
  assert_int_equal((uintptr_t)ds->y % 64, 0);
  for (int i = 0; i < 18; i++)
    assert_true(ds->x[i] == (float)small_pixels[i] / 255.0f);
  assert_true(ds->x[0] == 0.0f);
  assert_true(ds->x[1] == 1.0f);
  for (int i = 0; i < 3; i++) assert_true(ds->y[i] == (float)small_labels[i]);
}

/* ---- IDX ---------------------------------------------------------------- */

static void test_idx_plain_values(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_pair(ip, lp, 0);
  fedc_dataset ds;
  assert_int_equal(fedc_load_idx(ip, lp, &ds), 0);
  assert_small_pair(&ds);
  fedc_dataset_free(&ds);
  assert_zeroed(&ds);
}

static void test_idx_gzip_values(void **state) {
  char ip[128], lp[128];
  path_of(state, "img.gz", ip, sizeof ip);
  path_of(state, "lab.gz", lp, sizeof lp);
  write_small_pair(ip, lp, 1);
  unsigned char magic[2];
  FILE *fp = fopen(ip, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(magic, 1, 2, fp), 2);
  fclose(fp);
  assert_int_equal(magic[0], 0x1f); /* really gzipped on disk */
  assert_int_equal(magic[1], 0x8b);
  fedc_dataset ds;
  assert_int_equal(fedc_load_idx(ip, lp, &ds), 0);
  assert_small_pair(&ds);
  fedc_dataset_free(&ds);

  /* gzipped images with plain labels */
  char lp2[128];
  path_of(state, "lab.plain", lp2, sizeof lp2);
  write_small_labels(lp2, 0);
  assert_int_equal(fedc_load_idx(ip, lp2, &ds), 0);
  assert_small_pair(&ds);
  fedc_dataset_free(&ds);
}

static void test_idx_truncated_images(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_pair(ip, lp, 0);
  assert_int_equal(truncate(ip, 16 + 17), 0); /* one pixel short */
  fedc_dataset ds;
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), "truncated"));
  assert_int_equal(truncate(ip, 10), 0); /* inside the header */
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_int_equal(truncate(ip, 0), 0); /* empty */
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  write_small_pair(ip, lp, 0);
  assert_int_equal(truncate(lp, 8 + 2), 0); /* one label short */
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, lp);
}

/* A gzip file large enough that cutting it loses deflate data. */
static void write_big_gz_pair(const char *ip, const char *lp, uint32_t n) {
  uint32_t idims[3] = {n, 16, 16}, ldims[1] = {n};
  size_t np = (size_t)n * 256, il, ll;
  unsigned char *px = malloc(np), *lb = malloc(n);
  assert_non_null(px);
  assert_non_null(lb);
  uint32_t s = 12345;
  for (size_t i = 0; i < np; i++) {
    s = s * 1103515245u + 12345u;
    px[i] = (unsigned char)(s >> 24);
  }
  for (uint32_t i = 0; i < n; i++) lb[i] = (unsigned char)(i % 10);
  unsigned char *ib = idx_bytes(0x803, idims, 3, px, np, &il);
  unsigned char *lbb = idx_bytes(0x801, ldims, 1, lb, n, &ll);
  write_gz(ip, ib, il);
  write_gz(lp, lbb, ll);
  free(px);
  free(lb);
  free(ib);
  free(lbb);
}

static off_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

static void test_idx_truncated_gzip(void **state) {
  char ip[128], lp[128];
  path_of(state, "img.gz", ip, sizeof ip);
  path_of(state, "lab.gz", lp, sizeof lp);
  fedc_dataset ds;

  write_big_gz_pair(ip, lp, 64);
  assert_int_equal(fedc_load_idx(ip, lp, &ds), 0);
  assert_int_equal(ds.n, 64);
  assert_int_equal(ds.n_classes, 10);
  fedc_dataset_free(&ds);

  /* Half the compressed bytes: pixel data is missing. */
  assert_int_equal(truncate(ip, file_size(ip) / 2), 0);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);

  /* Only the 8-byte trailer (CRC, length) cut short: every declared pixel
   * decompresses, but the stream is still incomplete. */
  write_big_gz_pair(ip, lp, 64);
  assert_int_equal(truncate(ip, file_size(ip) - 3), 0);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), "truncated"));

  /* The same for the labels file. */
  write_big_gz_pair(ip, lp, 64);
  assert_int_equal(truncate(lp, file_size(lp) - 1), 0);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, lp);
}

static void test_idx_gzip_bad_crc(void **state) {
  char ip[128], lp[128];
  path_of(state, "img.gz", ip, sizeof ip);
  path_of(state, "lab.gz", lp, sizeof lp);
  write_big_gz_pair(ip, lp, 8);
  /* Flip a bit of the stored CRC-32 (the 8th byte from the end). */
  off_t sz = file_size(ip);
  FILE *fp = fopen(ip, "r+b");
  assert_non_null(fp);
  assert_int_equal(fseeko(fp, sz - 8, SEEK_SET), 0);
  int c = fgetc(fp);
  assert_int_equal(fseeko(fp, sz - 8, SEEK_SET), 0);
  fputc(c ^ 1, fp);
  fclose(fp);
  fedc_dataset ds;
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
}

static void test_idx_wrong_magic(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_pair(ip, lp, 0);
  fedc_dataset ds;

  /* labels where images are expected, and the other way round */
  assert_refused(fedc_load_idx(lp, ip, &ds), FEDC_EFORMAT, &ds, lp);
  assert_non_null(strstr(fedc_error_msg(), "0x00000801"));

  /* not IDX at all */
  write_text(ip, "PK\x03\x04 this is a zip file, not an IDX one");
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);

  /* right type, wrong dimension count (4 dims) */
  uint32_t dims[4] = {3, 2, 3, 1};
  size_t len;
  unsigned char *b = idx_bytes(0x804, dims, 4, small_pixels, 18, &len);
  write_bytes(ip, b, len);
  free(b);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), "dimension"));

  /* signed-int element type (0x0C) */
  uint32_t d3[3] = {3, 2, 3};
  b = idx_bytes(0x0C03, d3, 3, small_pixels, 18, &len);
  write_bytes(ip, b, len);
  free(b);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);

  /* label file with the wrong magic, gzipped */
  write_small_pair(ip, lp, 0);
  uint32_t ld[1] = {3};
  b = idx_bytes(0x901, ld, 1, small_labels, 3, &len);
  write_gz(lp, b, len);
  free(b);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, lp);
}

static void test_idx_count_mismatch(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_pair(ip, lp, 0);
  uint32_t ld[1] = {2};
  size_t len;
  unsigned char *b = idx_bytes(0x801, ld, 1, small_labels, 2, &len);
  write_bytes(lp, b, len);
  free(b);
  fedc_dataset ds;
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), lp));
}

static void test_idx_trailing_bytes(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  fedc_dataset ds;
  uint32_t idims[3] = {3, 2, 3}, ldims[1] = {3};
  unsigned char px[19], lb[4] = {0, 4, 2, 7};
  memcpy(px, small_pixels, 18);
  px[18] = 9;
  size_t len;

  /* plain images with one extra byte */
  write_small_pair(ip, lp, 0);
  unsigned char *b = idx_bytes(0x803, idims, 3, px, 19, &len);
  write_bytes(ip, b, len);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), "trailing"));
  /* the same, gzipped */
  write_gz(ip, b, len);
  free(b);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  assert_non_null(strstr(fedc_error_msg(), "trailing"));

  /* labels with one extra byte */
  write_small_pair(ip, lp, 0);
  b = idx_bytes(0x801, ldims, 1, lb, 4, &len);
  write_bytes(lp, b, len);
  free(b);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, lp);
}

static void test_idx_label_too_big(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_pair(ip, lp, 0);
  uint32_t ld[1] = {3};
  unsigned char lb[3] = {0, 255, 1};
  size_t len;
  unsigned char *b = idx_bytes(0x801, ld, 1, lb, 3, &len);
  write_bytes(lp, b, len);
  fedc_dataset ds;
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, lp);
  lb[1] = 254; /* the largest allowed */
  free(b);
  b = idx_bytes(0x801, ld, 1, lb, 3, &len);
  write_bytes(lp, b, len);
  free(b);
  assert_int_equal(fedc_load_idx(ip, lp, &ds), 0);
  assert_int_equal(ds.n_classes, 255);
  fedc_dataset_free(&ds);
}

/* A header that declares 4 billion images in a tiny file must be refused
 * before anything is allocated for them (ASan would abort on the attempt). */
static void test_idx_huge_header(void **state) {
  char ip[128], lp[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  uint32_t idims[3] = {0xFFFFFFFFu, 255, 255}, ldims[1] = {0xFFFFFFFFu};
  size_t il, ll;
  unsigned char *ib = idx_bytes(0x803, idims, 3, small_pixels, 18, &il);
  unsigned char *lb = idx_bytes(0x801, ldims, 1, small_labels, 3, &ll);
  write_bytes(ip, ib, il);
  write_bytes(lp, lb, ll);
  fedc_dataset ds;
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  write_gz(ip, ib, il);
  write_gz(lp, lb, ll);
  assert_refused(fedc_load_idx(ip, lp, &ds), FEDC_EFORMAT, &ds, ip);
  free(ib);
  free(lb);
}

static void test_idx_missing_file(void **state) {
  char ip[128], lp[128], missing[128];
  path_of(state, "img", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  path_of(state, "no-such-file", missing, sizeof missing);
  write_small_pair(ip, lp, 0);
  fedc_dataset ds;
  assert_refused(fedc_load_idx(missing, lp, &ds), FEDC_EIO, &ds, missing);
  assert_non_null(strstr(fedc_error_msg(), "No such file"));
  assert_refused(fedc_load_idx(ip, missing, &ds), FEDC_EIO, &ds, missing);
  const fixture *f = *state; /* a directory is not a readable file */
  assert_refused(fedc_load_idx(f->dir, lp, &ds), FEDC_EIO, &ds, f->dir);
}

static void test_idx_alloc_failure(void **state) {
  char ip[128], lp[128];
  path_of(state, "img.gz", ip, sizeof ip);
  path_of(state, "lab", lp, sizeof lp);
  write_small_images(ip, 1);
  write_small_labels(lp, 0);
  int64_t live = fedc_alloc_live();
  int k, rc = -1;
  for (k = 1; k < 100; k++) {
    fedc_dataset ds;
    fedc_alloc_fail_after(k, 1);
    rc = fedc_load_idx(ip, lp, &ds);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      assert_small_pair(&ds);
      fedc_dataset_free(&ds);
      break;
    }
    assert_int_equal(rc, FEDC_ENOMEM);
    assert_zeroed(&ds);
    assert_int_equal(fedc_alloc_live(), live);
  }
  assert_int_equal(rc, 0);
  assert_true(k > 1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check_fmnist(const fedc_dataset *ds, int64_t n, int64_t per_class) {
  assert_int_equal(ds->n, n);
  assert_int_equal(ds->d, 784);
  assert_int_equal(ds->n_classes, 10);
  int64_t count[10] = {0};
  for (int64_t i = 0; i < ds->n; i++) {
    float l = ds->y[i];
    assert_true(l >= 0 && l <= 9 && l == floorf(l));
    count[(int)l]++;
  }
  for (int c = 0; c < 10; c++) assert_int_equal(count[c], per_class);
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < ds->n * ds->d; i++) {
    float v = ds->x[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  assert_true(lo >= 0.0f && hi <= 1.0f);
  assert_true(lo == 0.0f && hi == 1.0f); /* the images use the full range */
}

static void test_idx_fashion_mnist(void **state) {
  const char *ti = FMNIST_DIR "/train-images-idx3-ubyte.gz";
  const char *tl = FMNIST_DIR "/train-labels-idx1-ubyte.gz";
  const char *vi = FMNIST_DIR "/t10k-images-idx3-ubyte.gz";
  const char *vl = FMNIST_DIR "/t10k-labels-idx1-ubyte.gz";
  if (access(ti, R_OK) != 0 || access(tl, R_OK) != 0 || access(vi, R_OK) != 0 ||
      access(vl, R_OK) != 0) {
    print_message("fashion-mnist not installed in " FMNIST_DIR "; skipped\n");
    skip();
  }
  fedc_dataset train, test;
  double t0 = now_s();
  int rc = fedc_load_idx(ti, tl, &train);
  double t1 = now_s();
  if (rc != 0) print_error("%s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  print_message("fashion-mnist train (60000x784) loaded in %.3f s\n", t1 - t0);
  rc = fedc_load_idx(vi, vl, &test);
  if (rc != 0) print_error("%s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  check_fmnist(&train, 60000, 6000);
  check_fmnist(&test, 10000, 1000);
  fedc_dataset_free(&train);
  fedc_dataset_free(&test);
}

/* ---- CSV ---------------------------------------------------------------- */

static void test_csv_values(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  write_text(p, "f1,f2,label\n"
                "1.5,-2,0\n"
                " 3e2 ,\t0.25 ,2\n"
                "-0,1e-3,1\n");
  fedc_dataset ds;
  int rc = fedc_load_csv(p, "label", &ds);
  if (rc) print_error("%s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  assert_int_equal(ds.n, 3);
  assert_int_equal(ds.d, 2);
  assert_int_equal(ds.n_classes, 3);
  assert_int_equal((uintptr_t)ds.x % 64, 0);
  const float want[6] = {1.5f, -2.0f, 300.0f, 0.25f, -0.0f, 1e-3f};
  const float wy[3] = {0, 2, 1};
  for (int i = 0; i < 6; i++) assert_true(ds.x[i] == want[i]);
  for (int i = 0; i < 3; i++) assert_true(ds.y[i] == wy[i]);
  fedc_dataset_free(&ds);
  assert_zeroed(&ds);
}

static void test_csv_label_any_position(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  const char *files[3] = {
      "y,a,b\n1,10,20\n0,30,40\n",
      "a,y,b\n10,1,20\n30,0,40\n",
      "a,b,y\n10,20,1\n30,40,0\n",
  };
  for (int f = 0; f < 3; f++) {
    write_text(p, files[f]);
    fedc_dataset ds;
    assert_int_equal(fedc_load_csv(p, "y", &ds), 0);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.d, 2);
    assert_int_equal(ds.n_classes, 2);
    const float want[4] = {10, 20, 30, 40};
    for (int i = 0; i < 4; i++) assert_true(ds.x[i] == want[i]);
    assert_true(ds.y[0] == 1.0f && ds.y[1] == 0.0f);
    fedc_dataset_free(&ds);
  }
  /* a header name that only contains the label name is not the label */
  write_text(p, "ylabel,y\n5,1\n");
  fedc_dataset ds;
  assert_int_equal(fedc_load_csv(p, "y", &ds), 0);
  assert_true(ds.x[0] == 5.0f && ds.y[0] == 1.0f);
  fedc_dataset_free(&ds);
}

static void test_csv_crlf_and_trailing_empty_lines(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  write_text(p, "\xEF\xBB\xBF"
                "a,label\r\n1,0\r\n2,1\r\n\r\n\n");
  fedc_dataset ds;
  int rc = fedc_load_csv(p, "label", &ds);
  if (rc) print_error("%s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  assert_int_equal(ds.n, 2);
  assert_true(ds.x[0] == 1.0f && ds.x[1] == 2.0f);
  assert_true(ds.y[0] == 0.0f && ds.y[1] == 1.0f);
  fedc_dataset_free(&ds);
  /* no newline at the end of the last line */
  write_text(p, "a,label\r\n1,0\r\n2,1");
  assert_int_equal(fedc_load_csv(p, "label", &ds), 0);
  assert_int_equal(ds.n, 2);
  assert_true(ds.y[1] == 1.0f);
  fedc_dataset_free(&ds);
}

static void test_csv_ragged_row(void **state) {
  char p[128], want[160];
  path_of(state, "a.csv", p, sizeof p);
  fedc_dataset ds;
  snprintf(want, sizeof want, "%s:3:", p);
  write_text(p, "a,b,label\n1,2,0\n3,1\n5,6,1\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
  assert_non_null(strstr(fedc_error_msg(), "'label'")); /* the missing one */
  write_text(p, "a,b,label\n1,2,0\n3,4,1,9\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
  write_text(p, "a,b,label\r\n1,2,0\r\n3,4\r\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
}

static void test_csv_non_numeric(void **state) {
  char p[128], want[160];
  path_of(state, "a.csv", p, sizeof p);
  fedc_dataset ds;
  const char *bad[] = {"abc", "1.5x", "", "\"3\"", "1 2", "0x", "--1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[256];
    snprintf(text, sizeof text, "age,height,label\n1,2,0\n3,4,1\n5,%s,1\n",
             bad[i]);
    write_text(p, text);
    snprintf(want, sizeof want, "%s:4:", p);
    assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
    assert_non_null(strstr(fedc_error_msg(), "'height'"));
  }
  /* in the label column */
  write_text(p, "age,label\n1,zero\n");
  snprintf(want, sizeof want, "%s:2:", p);
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
  assert_non_null(strstr(fedc_error_msg(), "'label'"));
}

static void test_csv_nonfinite(void **state) {
  char p[128], want[160];
  path_of(state, "a.csv", p, sizeof p);
  snprintf(want, sizeof want, "%s:2:", p);
  fedc_dataset ds;
  const char *bad[] = {"inf", "-Infinity", "nan", "1e999", "1e39"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "x,label\n%s,1\n", bad[i]);
    write_text(p, text);
    assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
    assert_non_null(strstr(fedc_error_msg(), "'x'"));
  }
}

static void test_csv_missing_label_column(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  write_text(p, "a,b,target\n1,2,0\n");
  fedc_dataset ds;
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_ENOTFOUND, &ds, p);
  assert_non_null(strstr(fedc_error_msg(), "'label'"));
  write_text(p, "");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, p);
  write_text(p, "a,label\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, p);
  write_text(p, "label\n1\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, p);
  write_text(p, "label,a,label\n1,2,3\n");
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, p);
}

static void test_csv_missing_file(void **state) {
  char p[128];
  path_of(state, "nope.csv", p, sizeof p);
  fedc_dataset ds;
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EIO, &ds, p);
  assert_non_null(strstr(fedc_error_msg(), "No such file"));
}

static void test_csv_blank_line_inside(void **state) {
  char p[128], want[160];
  path_of(state, "a.csv", p, sizeof p);
  write_text(p, "a,label\n1,0\n\n2,1\n");
  snprintf(want, sizeof want, "%s:3:", p);
  fedc_dataset ds;
  assert_refused(fedc_load_csv(p, "label", &ds), FEDC_EFORMAT, &ds, want);
}

static void test_csv_regression_labels(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  fedc_dataset ds;
  write_text(p, "a,price\n1,0.5\n2,3\n");
  assert_int_equal(fedc_load_csv(p, "price", &ds), 0);
  assert_int_equal(ds.n_classes, 0);
  assert_true(ds.y[0] == 0.5f && ds.y[1] == 3.0f);
  fedc_dataset_free(&ds);
  write_text(p, "a,price\n1,-1\n2,3\n");
  assert_int_equal(fedc_load_csv(p, "price", &ds), 0);
  assert_int_equal(ds.n_classes, 0);
  fedc_dataset_free(&ds);
  write_text(p, "a,price\n1,16777216\n2,3\n");
  assert_int_equal(fedc_load_csv(p, "price", &ds), 0);
  assert_int_equal(ds.n_classes, 0);
  fedc_dataset_free(&ds);
  write_text(p, "a,cls\n1,7\n2,3.0\n");
  assert_int_equal(fedc_load_csv(p, "cls", &ds), 0);
  assert_int_equal(ds.n_classes, 8);
  fedc_dataset_free(&ds);
}

/* Lines far longer than any fixed buffer: 5000 columns, long names. */
static void test_csv_long_lines(void **state) {
  char p[128];
  path_of(state, "wide.csv", p, sizeof p);
  const int cols = 5000, rows = 4;
  size_t cap = 1 << 20, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  for (int c = 0; c < cols; c++)
    len += (size_t)snprintf(text + len, cap - len,
                            "feature_with_a_rather_long_name_%05d,", c);
  len += (size_t)snprintf(text + len, cap - len, "label\n");
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < cols; c++)
      len += (size_t)snprintf(text + len, cap - len, "%d.25,", r * cols + c);
    len += (size_t)snprintf(text + len, cap - len, "%d\n", r);
  }
  assert_true(len < cap);
  write_text(p, text);
  free(text);
  fedc_dataset ds;
  int rc = fedc_load_csv(p, "label", &ds);
  if (rc) print_error("%s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  assert_int_equal(ds.n, rows);
  assert_int_equal(ds.d, cols);
  assert_int_equal(ds.n_classes, rows);
  for (int64_t i = 0; i < ds.n * ds.d; i++)
    assert_true(ds.x[i] == (float)((double)i + 0.25));
  fedc_dataset_free(&ds);
}

/* A CSV that makes every growth path run: a header line longer than the
 * first line buffer and more rows than the first scratch capacity. */
static void write_alloc_csv(const char *p) {
  FILE *fp = fopen(p, "w");
  assert_non_null(fp);
  fprintf(fp, "a_column_with_a_long_name_to_force_line_buffer_growth_0,"
              "a_column_with_a_long_name_to_force_line_buffer_growth_1,"
              "a_column_with_a_long_name_to_force_line_buffer_growth_2,"
              "a_column_with_a_long_name_to_force_line_buffer_growth_3,"
              "class\n");
  for (int i = 0; i < 600; i++)
    fprintf(fp, "%d,%d.5,%d,-%d,%d\n", i, i, i * 3, i, i % 4);
  fclose(fp);
}

static void test_csv_alloc_failure(void **state) {
  char p[128];
  path_of(state, "a.csv", p, sizeof p);
  write_alloc_csv(p);
  int64_t live = fedc_alloc_live();
  int k, rc = -1;
  for (k = 1; k < 1000; k++) {
    fedc_dataset ds;
    fedc_alloc_fail_after(k, 1);
    rc = fedc_load_csv(p, "class", &ds);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      assert_int_equal(ds.n, 600);
      assert_int_equal(ds.d, 4);
      assert_int_equal(ds.n_classes, 4);
      assert_true(ds.x[4 * 599 + 1] == 599.5f);
      fedc_dataset_free(&ds);
      break;
    }
    if (rc != FEDC_ENOMEM) print_error("k=%d: %s\n", k, fedc_error_msg());
    assert_int_equal(rc, FEDC_ENOMEM);
    assert_zeroed(&ds);
    assert_int_equal(fedc_alloc_live(), live);
  }
  assert_int_equal(rc, 0);
  assert_true(k > 5); /* the growth paths really were exercised */
}

/* ---- dataset helpers ---------------------------------------------------- */

static void test_standardize(void **state) {
  char p[128], q[128];
  path_of(state, "train.csv", p, sizeof p);
  path_of(state, "test.csv", q, sizeof q);
  FILE *fp = fopen(p, "w");
  assert_non_null(fp);
  fprintf(fp, "big,const,small,label\n");
  for (int i = 0; i < 1000; i++)
    fprintf(fp, "%d,7,%g,%d\n", 100000 + (i % 17) * 3, 1e-3 * (i % 5), i % 2);
  fclose(fp);
  write_text(q, "big,const,small,label\n100024,7,0.002,1\n100000,9,0,0\n");
  fedc_dataset tr, te;
  assert_int_equal(fedc_load_csv(p, "label", &tr), 0);
  assert_int_equal(fedc_load_csv(q, "label", &te), 0);

  /* the train statistics, computed here independently */
  double mean[3] = {0}, var[3] = {0};
  for (int64_t i = 0; i < tr.n; i++)
    for (int j = 0; j < 3; j++) mean[j] += tr.x[i * 3 + j];
  for (int j = 0; j < 3; j++) mean[j] /= (double)tr.n;
  for (int64_t i = 0; i < tr.n; i++)
    for (int j = 0; j < 3; j++) {
      double dv = tr.x[i * 3 + j] - mean[j];
      var[j] += dv * dv;
    }
  for (int j = 0; j < 3; j++) var[j] /= (double)tr.n;

  assert_int_equal(fedc_dataset_standardize(&tr, &te), 0);
  for (int j = 0; j < 3; j++) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < tr.n; i++) m += tr.x[i * 3 + j];
    m /= (double)tr.n;
    for (int64_t i = 0; i < tr.n; i++)
      s += (tr.x[i * 3 + j] - m) * (tr.x[i * 3 + j] - m);
    s = sqrt(s / (double)tr.n);
    assert_true(fabs(m) < 1e-5);
    if (j == 1)
      assert_true(s == 0.0); /* constant column: centred only, no NaN */
    else
      assert_true(fabs(s - 1.0) < 1e-4);
  }
  /* the test set got the train transform */
  assert_true(fabs(te.x[0] - (100024 - mean[0]) / sqrt(var[0])) < 1e-4);
  assert_true(te.x[1] == 0.0f && te.x[4] == 2.0f); /* const: 7 -> 0, 9 -> 2 */
  assert_true(fabs(te.x[2] - (0.002 - mean[2]) / sqrt(var[2])) < 1e-3);

  /* shape mismatch and empty train are refused */
  fedc_dataset bad = te;
  bad.d = 2;
  assert_int_equal(fedc_dataset_standardize(&tr, &bad), FEDC_ESHAPE);
  fedc_dataset empty = {0};
  assert_int_equal(fedc_dataset_standardize(&empty, NULL), FEDC_EINVAL);
  fedc_dataset_free(&tr);
  fedc_dataset_free(&te);
}

static void test_dataset_free_zeroed(void **state) {
  fedc_dataset ds = {0};
  fedc_dataset_free(&ds);
  fedc_dataset_free(&ds);
  fedc_dataset_free(NULL);
  assert_zeroed(&ds);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_idx_plain_values),       T(test_idx_gzip_values),
      T(test_idx_truncated_images),   T(test_idx_truncated_gzip),
      T(test_idx_gzip_bad_crc),       T(test_idx_wrong_magic),
      T(test_idx_count_mismatch),     T(test_idx_trailing_bytes),
      T(test_idx_label_too_big),      T(test_idx_huge_header),
      T(test_idx_missing_file),       T(test_idx_alloc_failure),
      T(test_idx_fashion_mnist),      T(test_csv_values),
      T(test_csv_label_any_position), T(test_csv_crlf_and_trailing_empty_lines),
      T(test_csv_ragged_row),         T(test_csv_non_numeric),
      T(test_csv_nonfinite),          T(test_csv_missing_label_column),
      T(test_csv_missing_file),       T(test_csv_blank_line_inside),
      T(test_csv_regression_labels),  T(test_csv_long_lines),
      T(test_csv_alloc_failure),      T(test_standardize),
      T(test_dataset_free_zeroed),
  };
  return cmocka_run_group_tests_name("loaders", tests, NULL, NULL);
}
