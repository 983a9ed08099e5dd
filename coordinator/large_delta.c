/*
 * large_delta.c - model deltas in large-model mode ([server] spill_above_mb
 * with [server] model_deltas; docs/compression.md "Model downloads as
 * deltas"). The in-memory delta (model_serve.c) would add a second
 * model-sized buffer to a coordinator whose memory is bounded by a few
 * models, so here the delta is encoded in slices (wire/model_delta_stream.h)
 * at the one moment both models are in memory anyway: in the commit, after
 * the next model is made and before the served one is let go. It is
 * written to <store>.delta.tmp, fsync'd, renamed to <store>.delta (a
 * download still sending the last delta keeps its file through its own
 * mapping), and served from a read-only mapping whose pages the sender
 * drops as it goes (http_body.h). So the commit adds three 1 MiB slices and
 * serving adds nothing resident. A restart drops the files: the first
 * round after it sends whole models.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "coord_internal.h"
#include "wire/model_delta_stream.h"

typedef struct sources {
  const uint8_t *base, *next;
  size_t base_len, next_len;
  int fd;
} sources;

static int rd_base(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  const sources *s = ud;
  if (off > s->base_len || n > s->base_len - off)
    return fedc_error_set(FEDC_EFORMAT, "model delta: read past the base");
  memcpy(buf, s->base + off, n);
  return 0;
}

static int rd_next(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  const sources *s = ud;
  if (off > s->next_len || n > s->next_len - off)
    return fedc_error_set(FEDC_EFORMAT, "model delta: read past the model");
  memcpy(buf, s->next + off, n);
  return 0;
}

static int wr(void *ud, uint64_t off, const uint8_t *buf, size_t n) {
  const sources *s = ud;
  for (size_t done = 0; done < n;) {
    ssize_t w = pwrite(s->fd, buf + done, n - done, (off_t)(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return fedc_error_set(FEDC_EIO, "model delta file: %s", w < 0 ? strerror(errno) : "no space");
    done += (size_t)w;
  }
  return 0;
}

static void paths(const fedc_coord *c, char *tmp, char *fin, size_t n) {
  snprintf(tmp, n, "%s.delta.tmp", c->cfg.store_path);
  snprintf(fin, n, "%s.delta", c->cfg.store_path);
}

/* The delta files of a past run or of this one removed, and the pending
 * delta dropped (start, stop): a delta is only ever served by the run that
 * made it. */
void fedc__coord_large_delta_reset(fedc_coord *c) {
  char tmp[FEDC_CONFIG_PATH_MAX + 16], fin[FEDC_CONFIG_PATH_MAX + 16];
  paths(c, tmp, fin, sizeof tmp);
  (void)unlink(tmp);
  (void)unlink(fin);
  fedc_http_body_unref(c->large_delta);
  c->large_delta = NULL;
}

/*
 * The commit's delta (worker, under mu): from prev, the body served for
 * round - 1 (its SHA-256 known), to next, the new model's container (its
 * SHA-256 taken in the same pass), into <store>.delta.tmp in slices; a
 * delta no smaller than the model, or any error (logged), leaves none.
 * Then fsync, rename to <store>.delta and map it as c->large_delta.
 */
void fedc__coord_large_delta(fedc_coord *c, const fedc_http_body *prev, const uint8_t *next,
                             size_t next_len, int32_t round) {
  fedc_http_body_unref(c->large_delta);
  c->large_delta = NULL;
  if (!c->cfg.server_model_deltas || c->spill_path[0] == '\0' || prev == NULL) return;
  char tmp[FEDC_CONFIG_PATH_MAX + 16], fin[FEDC_CONFIG_PATH_MAX + 16];
  paths(c, tmp, fin, sizeof tmp);
  double t0 = fedc__coord_now();
  sources s = {.base = fedc_http_body_data(prev),
               .base_len = fedc_http_body_len(prev),
               .next = next,
               .next_len = next_len,
               .fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  int rc = s.fd < 0 ? fedc_error_set(FEDC_EIO, "cannot open %s: %s", tmp, strerror(errno)) : 0;
  uint64_t len = 0;
  if (rc == 0) {
    fedc_model_delta_io io = {.read_base = rd_base, .read_other = rd_next, .write = wr, .ud = &s};
    rc = fedc_model_delta_encode_stream(&io, s.base_len, round - 1, fedc_http_body_sha256(prev),
                                        next_len, round, NULL, &len);
  }
  if (rc == 0 && len >= next_len) rc = 1; /* no smaller than the model: not served */
  if (rc == 0 && fsync(s.fd) != 0)
    rc = fedc_error_set(FEDC_EIO, "cannot sync %s: %s", tmp, strerror(errno));
  if (s.fd >= 0) close(s.fd);
  if (rc == 0 && rename(tmp, fin) != 0)
    rc = fedc_error_set(FEDC_EIO, "cannot rename %s: %s", tmp, strerror(errno));
  fedc_http_body *b = NULL;
  if (rc == 0) rc = fedc_http_body_map(fin, &b);
  if (rc != 0) {
    if (rc < 0)
      fedc_log_warn("round=%d msg=\"no model delta\" error=\"%s\"", (int)round, fedc_error_msg());
    (void)unlink(tmp);
    return;
  }
  c->large_delta = b;
  fedc_log_info("round=%d msg=\"model delta\" bytes=%llu model_bytes=%zu file=%s secs=%.3f",
                (int)round, (unsigned long long)len, next_len, fin, fedc__coord_now() - t0);
}

fedc_http_body *fedc__coord_large_delta_take(fedc_coord *c) {
  fedc_http_body *b = c->large_delta;
  c->large_delta = NULL;
  return b;
}
