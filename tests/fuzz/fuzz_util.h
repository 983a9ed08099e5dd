/*
 * fuzz_util.h - what the fuzz targets share: an invariant check that
 * aborts (so libFuzzer and the replay both report it as a crash), the
 * fedc block count for leak checks without LeakSanitizer, and in-memory
 * files (memfd) with a path, for loaders that only take a path.
 *
 * Every target is also built with gcc into a plain replay binary
 * (replay.c): nothing here needs clang or libFuzzer.
 */
#ifndef FEDC_FUZZ_UTIL_H
#define FEDC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant that does not hold is a finding: say which and crash. */
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: fuzz invariant failed: %s (last error: %s)\n", __FILE__, __LINE__,   \
              #cond, fedc_error_msg());                                                            \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* One error code of a list: FUZZ_ONE_OF(rc, FEDC_EFORMAT, FEDC_ENOMEM). */
static inline int fuzz_one_of(int rc, const int *codes, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (rc == codes[i]) return 1;
  return 0;
}
#define FUZZ_ONE_OF(rc, ...)                                                                       \
  fuzz_one_of((rc), (const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/*
 * An in-memory file that loaders open by path ("/proc/self/fd/N"): a
 * regular file on tmpfs, rewritten for each input, gone with the process,
 * so a crash leaves nothing behind in /tmp.
 */
typedef struct fuzz_file {
  int fd;
  char path[64];
} fuzz_file;

static inline void fuzz_file_open(fuzz_file *f, const char *name) {
  if (f->fd > 0) return;
  f->fd = memfd_create(name, MFD_CLOEXEC);
  if (f->fd < 0) {
    perror("memfd_create");
    abort();
  }
  snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replace the file's contents with n bytes of p. */
static inline void fuzz_file_set(fuzz_file *f, const void *p, size_t n) {
  if (ftruncate(f->fd, 0) != 0) {
    perror("ftruncate");
    abort();
  }
  const uint8_t *b = p;
  size_t off = 0;
  while (off < n) {
    ssize_t k = pwrite(f->fd, b + off, n - off, (off_t)off);
    if (k <= 0) {
      perror("pwrite");
      abort();
    }
    off += (size_t)k;
  }
}

/* Read the whole file back into a malloc'd, NUL-terminated buffer. */
static inline char *fuzz_file_get(const fuzz_file *f, size_t *len) {
  off_t end = lseek(f->fd, 0, SEEK_END);
  if (end < 0) abort();
  char *buf = malloc((size_t)end + 1);
  if (buf == NULL) abort();
  size_t off = 0;
  while (off < (size_t)end) {
    ssize_t k = pread(f->fd, buf + off, (size_t)end - off, (off_t)off);
    if (k <= 0) abort();
    off += (size_t)k;
  }
  buf[off] = '\0';
  if (len) *len = off;
  return buf;
}

#endif
