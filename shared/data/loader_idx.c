/*
 * loader_idx.c - reads an image/label pair of IDX files (LeCun's MNIST
 * format, also used by Fashion-MNIST) into a fedc_dataset.
 *
 * Both files go through zlib's gz* reader, which looks at the first bytes
 * (the gzip magic 1f 8b) and either inflates or passes plain bytes through,
 * so the same code reads "train-images-idx3-ubyte" and its ".gz". The header
 * is checked before anything large is allocated, and the declared size is
 * checked against what the file on disk can possibly hold, so a corrupt or
 * hostile header cannot make us allocate terabytes. Pixels are read in 1 MiB
 * blocks and scaled to [0, 1] on the way into the float matrix; a gzip
 * stream that ends early or fails its CRC is an error even when every
 * declared byte arrived, and so is anything after the declared data.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"
#include "base/log.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_TYPE_UBYTE 0x08u
#define IDX_MAX_LABEL 254u
#define IDX_BLOCK (1u << 20)   /* bytes per gzread */
#define IDX_GZBUF (256u << 10) /* zlib's input buffer */
/* Deflate cannot expand more than 1032:1 (one 258-byte match in two bits);
 * a gzip file of s bytes therefore never holds more than s * 1032 bytes. */
#define IDX_MAX_RATIO 1032u

/* One open IDX file. file_size is -1 when the path is not a regular file
 * (a pipe, say), in which case the size check before allocation is skipped. */
typedef struct idx_file {
  const char *path;
  gzFile gz;
  int64_t file_size;
} idx_file;

/* Map the state of a gzFile after a short or failed read to an error code
 * and message. Returns 0 when zlib saw no error (the plain data just ended),
 * so the caller reports truncation in its own words. */
static int gz_failure(idx_file *f, const char *what) {
  int zerr = Z_OK;
  const char *zmsg = gzerror(f->gz, &zerr);
  /* zlib prefixes its message with the name given to gzdopen ("<fd:3>: "),
   * which means nothing to a reader; we print the path instead. */
  const char *colon = strstr(zmsg, ">: ");
  if (strncmp(zmsg, "<fd:", 4) == 0 && colon != NULL) zmsg = colon + 3;
  switch (zerr) {
  case Z_OK:
    return 0;
  case Z_ERRNO:
    return fedc_error_set(FEDC_EIO, "%s: reading %s: %s", f->path, what, zmsg);
  case Z_MEM_ERROR:
    return fedc_error_set(FEDC_ENOMEM, "%s: reading %s: zlib out of memory",
                          f->path, what);
  case Z_BUF_ERROR:
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated gzip stream while reading %s (%s)",
                          f->path, what, zmsg);
  default:
    return fedc_error_set(FEDC_EFORMAT, "%s: corrupt gzip data in %s (%s)",
                          f->path, what, zmsg);
  }
}

/*
 * Open path for reading through zlib. The descriptor is opened by us so that
 * a missing or unreadable file reports the real errno (gzopen may clobber
 * it). Errors: FEDC_EIO naming the path and strerror, FEDC_ENOMEM.
 */
static int idx_open(idx_file *f, const char *path) {
  f->path = path;
  f->gz = NULL;
  f->file_size = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(EISDIR));
  }
  if (S_ISREG(st.st_mode)) f->file_size = (int64_t)st.st_size;
  f->gz = gzdopen(fd, "rb");
  if (f->gz == NULL) { /* gzdopen leaves fd open when it fails */
    close(fd);
    return fedc_error_set(FEDC_ENOMEM, "%s: zlib out of memory", path);
  }
  gzbuffer(f->gz, IDX_GZBUF);
  return 0;
}

static void idx_close(idx_file *f) {
  if (f->gz) gzclose_r(f->gz);
  f->gz = NULL;
}

/*
 * Read up to len bytes, looping because gzread takes an unsigned int and may
 * return less than asked near the end. *got is what arrived; a short read
 * with no zlib error is not an error here (the caller knows what it
 * expected). Errors: those of gz_failure.
 */
static int idx_read(idx_file *f, void *buf, size_t len, size_t *got,
                    const char *what) {
  unsigned char *p = buf;
  *got = 0;
  while (*got < len) {
    size_t want = len - *got;
    if (want > INT_MAX) want = INT_MAX;
    int r = gzread(f->gz, p + *got, (unsigned)want);
    if (r < 0) {
      int rc = gz_failure(f, what);
      return rc ? rc : fedc_error_set(FEDC_EIO, "%s: read error", f->path);
    }
    if (r == 0) break;
    *got += (size_t)r;
  }
  if (*got < len) return gz_failure(f, what);
  return 0;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

/*
 * Read and check the header of an IDX file of unsigned bytes with ndims
 * dimensions (1 for labels, 3 for images) into dims. Errors: FEDC_EFORMAT
 * for a short header, a wrong magic, element type or dimension count;
 * FEDC_EIO for read errors.
 */
static int idx_header(idx_file *f, uint32_t magic, unsigned ndims,
                      uint32_t dims[3], const char *kind) {
  unsigned char b[16];
  size_t len = 4 + 4 * (size_t)ndims, got = 0;
  /* The magic first, so that a wrong file is named as such even when it is
   * shorter than the header we expected. */
  int rc = idx_read(f, b, 4, &got, "the header");
  if (rc) return rc;
  if (got < 4)
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated header (%zu of %zu bytes)", f->path,
                          got, len);
  uint32_t m = be32(b);
  if (b[0] != 0 || b[1] != 0)
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: not an IDX file (magic 0x%08" PRIx32
                          ", expected 0x%08" PRIx32 " for %s)",
                          f->path, m, magic, kind);
  if (b[2] != IDX_TYPE_UBYTE)
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: IDX element type 0x%02x is not unsigned byte "
                          "(magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 ")",
                          f->path, b[2], m, magic);
  if (b[3] != ndims)
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: IDX file has %u dimension(s), expected %u for "
                          "%s (magic 0x%08" PRIx32 ", expected 0x%08" PRIx32
                          ")",
                          f->path, b[3], ndims, kind, m, magic);
  rc = idx_read(f, b + 4, len - 4, &got, "the header");
  if (rc) return rc;
  if (got < len - 4)
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated header (%zu of %zu bytes)", f->path,
                          got + 4, len);
  for (unsigned i = 0; i < ndims; i++) dims[i] = be32(b + 4 + 4 * i);
  return 0;
}

/*
 * Refuse, before allocating, a header that declares more data than the file
 * can hold: exactly the remaining bytes for a plain file, at most
 * IDX_MAX_RATIO times the file size for gzip. Skipped when the size is
 * unknown. Errors: FEDC_EFORMAT.
 */
static int idx_plausible(idx_file *f, uint64_t header, uint64_t data,
                         const char *what) {
  if (f->file_size < 0) return 0;
  uint64_t size = (uint64_t)f->file_size;
  if (gzdirect(f->gz)) {
    if (data > size - header)
      return fedc_error_set(FEDC_EFORMAT,
                            "%s: truncated: header declares %" PRIu64
                            " bytes of %s but the file holds %" PRIu64,
                            f->path, data, what, size - header);
  } else if (size <= UINT64_MAX / IDX_MAX_RATIO &&
             data > size * IDX_MAX_RATIO) {
    return fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated: header declares %" PRIu64
                          " bytes of %s, more than a %" PRIu64
                          "-byte gzip file can hold",
                          f->path, data, what, size);
  }
  return 0;
}

/*
 * After the declared data: there must be nothing more, and zlib must have
 * seen a complete, CRC-checked stream (gzread only learns about a missing or
 * wrong trailer when asked for more). Closes the file either way.
 * Errors: FEDC_EFORMAT (trailing bytes, truncated or corrupt gzip), FEDC_EIO.
 */
static int idx_finish(idx_file *f) {
  unsigned char extra;
  int r = gzread(f->gz, &extra, 1);
  int rc = 0;
  if (r > 0) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s: trailing bytes after the declared data", f->path);
  } else {
    rc = gz_failure(f, "the end of the file");
    if (r < 0 && rc == 0)
      rc = fedc_error_set(FEDC_EIO, "%s: read error", f->path);
  }
  int zc = gzclose_r(f->gz);
  f->gz = NULL;
  if (rc == 0 && zc != Z_OK)
    rc = fedc_error_set(
        zc == Z_ERRNO ? FEDC_EIO : FEDC_EFORMAT, "%s: %s", f->path,
        zc == Z_BUF_ERROR ? "truncated gzip stream" : "error closing the file");
  return rc;
}

/*
 * Load images_path and labels_path into *out (overwritten without being
 * freed; release with fedc_dataset_free). Pixels become byte / 255.0f, labels
 * their byte value; n_classes is the largest label + 1.
 *
 * Errors: FEDC_EINVAL (NULL argument), FEDC_EIO (missing or unreadable file),
 * FEDC_EFORMAT (magic, type or dimension count wrong, empty, truncated,
 * trailing bytes, corrupt gzip, image and label counts differ, a label above
 * 254), FEDC_ENOMEM. On any error every buffer is freed, *out is zeroed and
 * fedc_error_msg() names the offending file.
 */
int fedc_load_idx(const char *images_path, const char *labels_path,
                  fedc_dataset *out) {
  if (out == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_load_idx: out is NULL");
  memset(out, 0, sizeof *out);
  if (images_path == NULL || labels_path == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_load_idx: NULL path");

  idx_file img = {images_path, NULL, -1}, lab = {labels_path, NULL, -1};
  unsigned char *block = NULL;
  float *x = NULL, *y = NULL;
  uint32_t idims[3] = {0, 0, 0}, ldims[3] = {0, 0, 0};
  int rc;

  if ((rc = idx_open(&img, images_path)) != 0) goto fail;
  if ((rc = idx_header(&img, IDX_MAGIC_IMAGES, 3, idims, "images")) != 0)
    goto fail;
  if ((rc = idx_open(&lab, labels_path)) != 0) goto fail;
  if ((rc = idx_header(&lab, IDX_MAGIC_LABELS, 1, ldims, "labels")) != 0)
    goto fail;

  uint64_t n = idims[0], rows = idims[1], cols = idims[2];
  if (n == 0) {
    rc = fedc_error_set(FEDC_EFORMAT, "%s: holds no images", images_path);
    goto fail;
  }
  if (rows == 0 || cols == 0) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s: empty image size %" PRIu64 "x%" PRIu64,
                        images_path, rows, cols);
    goto fail;
  }
  if (ldims[0] != n) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s holds %" PRIu64 " images but %s holds %" PRIu32
                        " labels",
                        images_path, n, labels_path, ldims[0]);
    goto fail;
  }
  uint64_t d = rows * cols; /* both < 2^32: no overflow */
  if (d > UINT64_MAX / n || n * d > SIZE_MAX / sizeof(float) ||
      n * d > (uint64_t)INT64_MAX) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s: %" PRIu64 " images of %" PRIu64 "x%" PRIu64
                        " is too large",
                        images_path, n, rows, cols);
    goto fail;
  }
  uint64_t total = n * d;
  if ((rc = idx_plausible(&img, 16, total, "pixels")) != 0) goto fail;
  if ((rc = idx_plausible(&lab, 8, n, "labels")) != 0) goto fail;

  x = fedc_malloc_aligned((size_t)total * sizeof(float));
  y = fedc_malloc_aligned((size_t)n * sizeof(float));
  block = fedc_malloc(IDX_BLOCK);
  if (x == NULL || y == NULL || block == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM,
                        "%s: out of memory for %" PRIu64 " images of %" PRIu64
                        " pixels",
                        images_path, n, d);
    goto fail;
  }

  /* Pixels, one block at a time, scaled as they land. */
  for (uint64_t done = 0; done < total;) {
    size_t want = total - done < IDX_BLOCK ? (size_t)(total - done) : IDX_BLOCK;
    size_t got = 0;
    if ((rc = idx_read(&img, block, want, &got, "pixels")) != 0) goto fail;
    if (got < want) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated: %" PRIu64 " of %" PRIu64
                          " pixel bytes present",
                          images_path, done + got, total);
      goto fail;
    }
    float *dst = x + done;
    for (size_t i = 0; i < want; i++) dst[i] = (float)block[i] / 255.0f;
    done += want;
  }
  if ((rc = idx_finish(&img)) != 0) goto fail;

  /* Labels, checked and converted the same way. */
  uint32_t max_label = 0;
  for (uint64_t done = 0; done < n;) {
    size_t want = n - done < IDX_BLOCK ? (size_t)(n - done) : IDX_BLOCK;
    size_t got = 0;
    if ((rc = idx_read(&lab, block, want, &got, "labels")) != 0) goto fail;
    if (got < want) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "%s: truncated: %" PRIu64 " of %" PRIu64
                          " labels present",
                          labels_path, done + got, n);
      goto fail;
    }
    for (size_t i = 0; i < want; i++) {
      if (block[i] > IDX_MAX_LABEL) {
        rc = fedc_error_set(FEDC_EFORMAT,
                            "%s: label %u of item %" PRIu64 " is above %u",
                            labels_path, block[i], done + i, IDX_MAX_LABEL);
        goto fail;
      }
      if (block[i] > max_label) max_label = block[i];
      y[done + i] = (float)block[i];
    }
    done += want;
  }
  if ((rc = idx_finish(&lab)) != 0) goto fail;

  fedc_free(block);
  out->n = (int64_t)n;
  out->d = (int64_t)d;
  out->x = x;
  out->y = y;
  out->n_classes = (int32_t)max_label + 1;
  fedc_log_debug("msg=\"loaded idx\" images=%s n=%" PRIu64 " d=%" PRIu64
                 " classes=%d",
                 images_path, n, d, out->n_classes);
  return 0;

fail:
  idx_close(&img);
  idx_close(&lab);
  fedc_free(block);
  fedc_free_aligned(x);
  fedc_free_aligned(y);
  memset(out, 0, sizeof *out);
  return rc;
}
