/*
 * http_body.c - reference-counted, read-only response bodies (see
 * http_body.h). The count is atomic so that a body made on a worker thread
 * (the commit) and sent on the loop thread needs no lock; the bytes are
 * immutable once wrapped, so readers need none either.
 */
#include "http_body.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mapped.h"
#include "base/mbedtls_compat.h"

struct fedc_http_body {
  int32_t refs;
  uint8_t *bytes;
  size_t len;
  int mapped; /* bytes are a read-only mapping of a file (fedc_http_body_map) */
  char sha256[FEDC__SHA256_HEX_LEN + 1];
};

static int64_t live_bodies;

int fedc_http_body_new(uint8_t *bytes, size_t len, fedc_http_body **out) {
  *out = NULL;
  fedc_http_body *b = fedc_calloc(1, sizeof *b);
  if (b == NULL) {
    fedc_free(bytes);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  int rc = fedc__sha256_hex(bytes ? (const void *)bytes : (const void *)"", len, b->sha256);
  if (rc != 0) {
    fedc_free(bytes);
    fedc_free(b);
    return rc;
  }
  b->refs = 1;
  b->bytes = bytes;
  b->len = len;
  __atomic_add_fetch(&live_bodies, 1, __ATOMIC_RELAXED);
  *out = b;
  return 0;
}

/* The file hashed through pread in slices (the page cache, not this
 * process's memory), then mapped read-only and registered, so that a
 * sender may drop the pages it has sent (base/mapped.h). */
int fedc_http_body_map(const char *path, fedc_http_body **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
    int rc = fedc_error_set(FEDC_EIO, "cannot map %s: %s", path,
                            fd < 0 || errno ? strerror(errno) : "empty");
    if (fd >= 0) close(fd);
    return rc;
  }
  const size_t len = (size_t)st.st_size;
  enum { SLICE = 1 << 20 };
  uint8_t *buf = fedc_malloc(SLICE), sha[FEDC__SHA256_LEN];
  fedc__sha256_ctx h;
  int rc = buf ? fedc__sha256_begin(&h) : fedc_error_set(FEDC_ENOMEM, "out of memory");
  int begun = buf != NULL && rc == 0;
  for (size_t off = 0; rc == 0 && off < len;) {
    ssize_t r = pread(fd, buf, len - off < SLICE ? len - off : SLICE, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      rc = fedc_error_set(FEDC_EIO, "cannot read %s: %s", path, strerror(errno));
    else
      rc = fedc__sha256_update(&h, buf, (size_t)r);
    off += r > 0 ? (size_t)r : 0;
  }
  if (rc == 0) rc = fedc__sha256_finish(&h, sha);
  if (begun) fedc__sha256_free(&h);
  fedc_free(buf);
  void *p = MAP_FAILED;
  if (rc == 0) {
    p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) rc = fedc_error_set(FEDC_EIO, "cannot map %s: %s", path, strerror(errno));
  }
  close(fd);
  fedc_http_body *b = rc == 0 ? fedc_calloc(1, sizeof *b) : NULL;
  if (rc == 0 && b == NULL) rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc != 0) {
    if (p != MAP_FAILED) munmap(p, len);
    return rc;
  }
  for (int i = 0; i < FEDC__SHA256_LEN; i++) {
    static const char hex[] = "0123456789abcdef";
    b->sha256[2 * i] = hex[sha[i] >> 4];
    b->sha256[2 * i + 1] = hex[sha[i] & 15];
  }
  b->refs = 1;
  b->bytes = p;
  b->len = len;
  b->mapped = 1;
  (void)fedc__mapped_register(p, len); /* full table: its pages are simply kept */
  __atomic_add_fetch(&live_bodies, 1, __ATOMIC_RELAXED);
  *out = b;
  return 0;
}

fedc_http_body *fedc_http_body_ref(fedc_http_body *b) {
  if (b) __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
  return b;
}

/* The last reference frees: acquire-release, so that whatever a thread did
 * with the body before dropping its reference happens before the free. */
void fedc_http_body_unref(fedc_http_body *b) {
  if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  if (b->mapped) {
    fedc__mapped_unregister(b->bytes);
    munmap(b->bytes, b->len);
  } else {
    fedc_free(b->bytes);
  }
  fedc_free(b);
  __atomic_sub_fetch(&live_bodies, 1, __ATOMIC_RELAXED);
}

const uint8_t *fedc_http_body_data(const fedc_http_body *b) {
  return b->bytes ? b->bytes : (const uint8_t *)"";
}

size_t fedc_http_body_len(const fedc_http_body *b) {
  return b->len;
}

const char *fedc_http_body_sha256(const fedc_http_body *b) {
  return b->sha256;
}

int32_t fedc_http_body_refs(const fedc_http_body *b) {
  return __atomic_load_n(&b->refs, __ATOMIC_RELAXED);
}

int64_t fedc_http_body_live(void) {
  return __atomic_load_n(&live_bodies, __ATOMIC_RELAXED);
}
