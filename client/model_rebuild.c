/*
 * model_rebuild.c - a model file rebuilt from a base file and a delta
 * file (see model_rebuild.h): the streaming decoder reads both with pread
 * and writes the new model with pwrite, in slices of 1 MiB, so the
 * client's memory for it is three slices whatever the model's size.
 */
#include "model_rebuild.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "wire/model_delta.h"
#include "wire/model_delta_stream.h"

typedef struct files {
  int base, delta, out;
} files;

static int read_at(int fd, uint64_t off, uint8_t *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return fedc_error_set(FEDC_EIO, "model rebuild: cannot read: %s",
                            r < 0 ? strerror(errno) : "short file");
    done += (size_t)r;
  }
  return 0;
}

static int rd_base(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  return read_at(((files *)ud)->base, off, buf, n);
}

static int rd_delta(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  return read_at(((files *)ud)->delta, off, buf, n);
}

static int wr_out(void *ud, uint64_t off, const uint8_t *buf, size_t n) {
  int fd = ((files *)ud)->out;
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return fedc_error_set(FEDC_EIO, "model rebuild: cannot write: %s",
                            w < 0 ? strerror(errno) : "no space");
    done += (size_t)w;
  }
  return 0;
}

int fedc__model_rebuild(const char *base, const char *delta, const char *out, uint64_t max,
                        int32_t base_round, int32_t round, uint64_t *len) {
  *len = 0;
  files f = {.base = open(base, O_RDONLY | O_CLOEXEC),
             .delta = open(delta, O_RDONLY | O_CLOEXEC),
             .out = -1};
  struct stat sb, sd;
  int rc = 0;
  if (f.base < 0 || f.delta < 0 || fstat(f.base, &sb) != 0 || fstat(f.delta, &sd) != 0) {
    rc = fedc_error_set(FEDC_EIO, "model rebuild: cannot open %s or %s: %s", base, delta,
                        strerror(errno));
    goto done;
  }
  uint8_t head[FEDC_MODEL_DELTA_HEAD];
  int32_t br = 0, r = 0;
  if (sd.st_size < (off_t)sizeof head || read_at(f.delta, 0, head, sizeof head) != 0 ||
      fedc_model_delta_rounds(head, sizeof head, &br, &r) != 0) {
    rc = fedc_error_set(FEDC_EFORMAT, "model rebuild: %s is not a model delta", delta);
    goto done;
  }
  if (br != base_round || r != round) {
    rc = fedc_error_set(FEDC_EFORMAT, "a delta from round %d to %d, not from %d to %d", (int)br,
                        (int)r, (int)base_round, (int)round);
    goto done;
  }
  f.out = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f.out < 0) {
    rc = fedc_error_set(FEDC_EIO, "model rebuild: cannot open %s: %s", out, strerror(errno));
    goto done;
  }
  fedc_model_delta_io io = {
      .read_base = rd_base, .read_other = rd_delta, .write = wr_out, .ud = &f};
  rc = fedc_model_delta_decode_stream(&io, (uint64_t)sd.st_size, (uint64_t)sb.st_size, max, len);
  if (rc == 0 && fsync(f.out) != 0)
    rc = fedc_error_set(FEDC_EIO, "model rebuild: cannot sync %s: %s", out, strerror(errno));
done:
  if (f.base >= 0) close(f.base);
  if (f.delta >= 0) close(f.delta);
  if (f.out >= 0) close(f.out);
  if (rc != 0) {
    *len = 0;
    if (f.out >= 0) (void)unlink(out);
  }
  return rc;
}
