/*
 * model_download.c - resumable model downloads into [client] state_dir
 * (see model_download.h). The part file is written with pwrite at the
 * offset the answer's first byte belongs to, so a 206 continues exactly
 * where the bytes on disk end and a 200 rewrites from zero; its ETag is
 * kept in a small file beside it so that a restarted client resumes too.
 */
#include "model_download.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "model_rebuild.h"
#include "wire/model_delta.h"

static void save_tag(fedc_model_dl *d) {
  FILE *f = fopen(d->tag, "w");
  if (f == NULL) return; /* without it, a restart only starts over */
  fprintf(f, "%s\n", d->etag);
  fclose(f);
}

static void load_tag(fedc_model_dl *d) {
  d->etag[0] = '\0';
  FILE *f = fopen(d->tag, "r");
  if (f == NULL) return;
  if (fgets(d->etag, sizeof d->etag, f) == NULL) d->etag[0] = '\0';
  fclose(f);
  d->etag[strcspn(d->etag, "\r\n")] = '\0';
}

/* Both opens: the part file `part_name` (model-<job>.part or .delta.part)
 * and its ETag. */
static int open_part(fedc_model_dl *d, const char *state_dir, const char *job_id, int32_t round,
                     uint64_t max, const char *part_name) {
  memset(d, 0, sizeof *d);
  d->fd = -1;
  d->round = round;
  d->max = max;
  int a = snprintf(d->part, sizeof d->part, "%s/model-%s.%s", state_dir, job_id, part_name);
  int b = snprintf(d->tag, sizeof d->tag, "%s/model-%s.%s.etag", state_dir, job_id, part_name);
  int e = snprintf(d->final, sizeof d->final, "%s/model-%s.safetensors", state_dir, job_id);
  if (a < 0 || b < 0 || e < 0 || (size_t)a >= sizeof d->part || (size_t)b >= sizeof d->tag ||
      (size_t)e >= sizeof d->final)
    return fedc_error_set(FEDC_EIO, "[client] state_dir: path too long");
  if (fedc__mkdirs(state_dir, 0700) != 0)
    return fedc_error_set(FEDC_EIO, "[client] state_dir %s: cannot make it: %s", state_dir,
                          strerror(errno));
  d->fd = open(d->part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (d->fd < 0)
    return fedc_error_set(FEDC_EIO, "[client] state_dir: cannot open %s: %s", d->part,
                          strerror(errno));
  load_tag(d);
  struct stat st;
  if (d->etag[0] != '\0' && fstat(d->fd, &st) == 0)
    d->have = (uint64_t)st.st_size;
  else
    fedc__model_dl_restart(d);
  if (d->have > 0)
    fedc_log_info("msg=\"model download resumes\" round=%d from_bytes=%llu file=%s", (int)round,
                  (unsigned long long)d->have, d->part);
  return 0;
}

int fedc__model_dl_open(fedc_model_dl *d, const char *state_dir, const char *job_id, int32_t round,
                        uint64_t max) {
  return open_part(d, state_dir, job_id, round, max, "part");
}

int fedc__model_dl_open_delta(fedc_model_dl *d, const char *state_dir, const char *job_id,
                              int32_t round, uint64_t max, const char *base, int32_t base_round) {
  int rc = open_part(d, state_dir, job_id, round, max, "delta.part");
  if (rc != 0) return rc;
  d->delta = 1;
  d->base_round = base_round;
  int a = snprintf(d->base, sizeof d->base, "%s", base);
  int b = snprintf(d->scratch, sizeof d->scratch, "%s/model-%s.part", state_dir, job_id);
  if (a < 0 || b < 0 || (size_t)a >= sizeof d->base || (size_t)b >= sizeof d->scratch)
    return fedc_error_set(FEDC_EIO, "[client] state_dir: path too long");
  return 0;
}

void fedc__model_dl_restart(fedc_model_dl *d) {
  d->have = 0;
  d->etag[0] = '\0';
  if (d->fd >= 0 && ftruncate(d->fd, 0) != 0)
    fedc_log_warn("msg=\"cannot empty %s: %s\"", d->part, strerror(errno));
  (void)unlink(d->tag);
}

/* The answer's body, as it arrives, into the part file at its offset. */
static int sink(void *ud, const uint8_t *p, size_t n) {
  fedc_model_dl *d = ud;
  const fedc_http_response *r = d->resp;
  if (d->first) {
    d->first = 0;
    if (r->status == 206 && r->range_first >= 0 && (uint64_t)r->range_first == d->have) {
      d->total = r->range_total > 0 ? (uint64_t)r->range_total : 0;
    } else if (r->status == 200 && d->have == 0 && r->content_length >= 0 && !d->delta &&
               (uint64_t)r->content_length < FEDC_MODEL_FILE_MIN_BYTES) {
      d->total = (uint64_t)r->content_length; /* small: in memory, no file */
      d->mem = fedc_malloc(d->total + 1);
      if (d->mem == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory for the model");
    } else if (r->status == 200) {
      if (d->have > 0)
        fedc_log_info("msg=\"model download starts over\" round=%d reason=\"%s\"", (int)d->round,
                      d->etag[0] && strcmp(d->etag, r->etag) != 0 ? "the model changed"
                                                                  : "whole body sent");
      fedc__model_dl_restart(d);
      d->total = r->content_length >= 0 ? (uint64_t)r->content_length : 0;
    } else {
      return fedc_error_set(FEDC_EIO, "model download: a 206 for bytes %lld, not the %llu on hand",
                            (long long)r->range_first, (unsigned long long)d->have);
    }
    if (d->total > d->max)
      return fedc_error_set(FEDC_ETOOBIG, "model of %llu bytes is larger than %llu",
                            (unsigned long long)d->total, (unsigned long long)d->max);
    if (d->mem == NULL && strcmp(d->etag, r->etag) != 0) {
      snprintf(d->etag, sizeof d->etag, "%s", r->etag);
      save_tag(d);
    }
    char what[64];
    snprintf(what, sizeof what, "download model round %d", (int)d->round);
    fedc__progress_start(&d->prog, what, d->have, d->total);
    d->prog_on = 1;
  }
  if (d->have + n > d->max)
    return fedc_error_set(FEDC_ETOOBIG, "model larger than %llu bytes", (unsigned long long)d->max);
  if (d->mem != NULL) {
    if (d->have + n > d->total)
      return fedc_error_set(FEDC_EIO, "model body longer than its Content-Length");
    memcpy(d->mem + d->have, p, n);
    d->have += n;
    d->received += n;
    return 0;
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = pwrite(d->fd, p + off, n - off, (off_t)(d->have + off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return fedc_error_set(FEDC_EIO, "cannot write %s: %s", d->part,
                            w < 0 ? strerror(errno) : "no space");
    off += (size_t)w;
  }
  d->have += n;
  d->received += n;
  fedc__progress_update(&d->prog, d->have, d->total);
  return 0;
}

void fedc__model_dl_attempt(fedc_model_dl *d, fedc_http_call *call,
                            const fedc_http_response *resp) {
  int k = 0;
  if (d->mem != NULL) { /* a small model cut in memory: from the start */
    fedc_free(d->mem);
    d->mem = NULL;
    d->have = 0;
  }
  if (d->prog_on) fedc__progress_end(&d->prog, 0); /* the last attempt was cut */
  d->prog_on = 0;
  if (d->have > 0 && d->etag[0] != '\0') {
    snprintf(d->range, sizeof d->range, "Range: bytes=%llu-", (unsigned long long)d->have);
    snprintf(d->if_range, sizeof d->if_range, "If-Range: %s", d->etag);
    d->headers[k++] = d->range;
    d->headers[k++] = d->if_range;
    d->resumes++;
    if (d->received > 0) /* cut in this process (a restart logs it at open) */
      fedc_log_info("msg=\"model download resumes\" round=%d from_bytes=%llu", (int)d->round,
                    (unsigned long long)d->have);
  }
  d->headers[k] = NULL;
  d->first = 1;
  d->resp = resp;
  call->headers = d->headers;
  call->sink = sink;
  call->sink_ud = d;
}

/* The file's n bytes read back into a new buffer (NUL-terminated). */
static int read_back(const char *path, int fd, uint64_t n, uint8_t **out) {
  *out = NULL;
  uint8_t *b = fedc_malloc(n + 1);
  if (b == NULL)
    return fedc_error_set(FEDC_ENOMEM, "out of memory for a %llu-byte model",
                          (unsigned long long)n);
  size_t off = 0;
  while (off < n) {
    ssize_t r = pread(fd, b + off, n - off, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      fedc_free(b);
      return fedc_error_set(FEDC_EIO, "cannot read %s back: %s", path,
                            r < 0 ? strerror(errno) : "short file");
    }
    off += (size_t)r;
  }
  b[n] = 0;
  *out = b;
  return 0;
}

/* The part file's SHA-256 against the answer's, hashed in slices. */
static int check_part(fedc_model_dl *d, const fedc_http_response *resp) {
  if (resp->sha256[0] == '\0') return 0;
  enum { SLICE = 1 << 20 };
  uint8_t *buf = fedc_malloc(SLICE), sha[FEDC__SHA256_LEN];
  fedc__sha256_ctx h;
  if (buf == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory for a hash slice");
  int rc = fedc__sha256_begin(&h);
  for (uint64_t off = 0; rc == 0 && off < d->have;) {
    size_t m = d->have - off < SLICE ? (size_t)(d->have - off) : SLICE;
    ssize_t r = pread(d->fd, buf, m, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      rc = fedc_error_set(FEDC_EIO, "cannot read %s back: %s", d->part,
                          r < 0 ? strerror(errno) : "short file");
    else {
      rc = fedc__sha256_update(&h, buf, (size_t)r);
      off += (uint64_t)r;
    }
  }
  if (rc == 0) rc = fedc__sha256_finish(&h, sha);
  fedc__sha256_free(&h);
  fedc_free(buf);
  if (rc != 0) return rc;
  char got[FEDC__SHA256_HEX_LEN + 1];
  for (int i = 0; i < FEDC__SHA256_LEN; i++)
    snprintf(got + 2 * i, 3, "%02x", sha[i]);
  if (strcasecmp(got, resp->sha256) != 0) {
    fedc__model_dl_restart(d);
    return fedc_error_set(FEDC_ECHECKSUM, "model download: SHA-256 %s, the coordinator sent %s",
                          got, resp->sha256);
  }
  return 0;
}

/*
 * A download asked for as a delta, all on disk: its SHA-256 checked in
 * slices; a delta rebuilt with the base into the scratch file, renamed
 * over the base and read (0), or dropped (FEDC_MODEL_DL_DELTA_BAD); a
 * whole model answered instead: 2, for the caller's usual path.
 */
static int finish_delta(fedc_model_dl *d, const fedc_http_response *resp, uint8_t **bytes,
                        size_t *len) {
  int rc = check_part(d, resp);
  if (rc != 0) return rc;
  uint8_t head[FEDC_MODEL_DELTA_HEAD];
  if (d->have < sizeof head || pread(d->fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
      !fedc_model_delta_is(head, sizeof head))
    return 2;
  uint64_t n = 0, delta_len = d->have;
  rc = fedc__model_rebuild(d->base, d->part, d->scratch, d->max, d->base_round, d->round, &n);
  fedc__model_dl_restart(d); /* the delta is used up, whatever came of it */
  if (rc == FEDC_ENOMEM) return rc;
  if (rc != 0) {
    fedc_log_warn("msg=\"model delta refused, fetching the whole model\" round=%d error=\"%s\"",
                  (int)d->round, fedc_error_msg());
    return FEDC_MODEL_DL_DELTA_BAD;
  }
  if (rename(d->scratch, d->final) != 0) {
    rc = fedc_error_set(FEDC_EIO, "cannot rename %s: %s", d->scratch, strerror(errno));
    (void)unlink(d->scratch);
    return rc;
  }
  int fd = open(d->final, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fedc_error_set(FEDC_EIO, "cannot open %s: %s", d->final, strerror(errno));
  rc = read_back(d->final, fd, n, bytes);
  close(fd);
  if (rc != 0) return rc;
  *len = (size_t)n;
  d->rebuilt = 1;
  d->in_file = 1;
  fedc_log(d->resumes > 0 ? FEDC_LOG_INFO : FEDC_LOG_DEBUG,
           "msg=\"model rebuilt from a delta\" round=%d base=%d delta_bytes=%llu "
           "model_bytes=%llu received=%llu resumes=%d file=%s",
           (int)d->round, (int)d->base_round, (unsigned long long)delta_len, (unsigned long long)n,
           (unsigned long long)d->received, d->resumes, d->final);
  return 0;
}

int fedc__model_dl_finish(fedc_model_dl *d, const fedc_http_response *resp, uint8_t **bytes,
                          size_t *len) {
  *bytes = NULL;
  *len = 0;
  if (d->prog_on) fedc__progress_end(&d->prog, 1);
  d->prog_on = 0;
  /* the sink never ran: an empty body; else all of the size announced */
  int whole =
      d->first ? d->have == 0 && resp->content_length <= 0 : d->total == 0 || d->have == d->total;
  if (!whole) {
    fedc__model_dl_restart(d);
    return fedc_error_set(FEDC_ECHECKSUM, "model download: %llu bytes on hand of %llu",
                          (unsigned long long)d->have, (unsigned long long)d->total);
  }
  if (d->mem != NULL) { /* a small model: checked in memory, no file */
    char got[FEDC__SHA256_HEX_LEN + 1];
    int rc = fedc__sha256_hex(d->mem, d->have, got);
    if (rc == 0 && resp->sha256[0] != '\0' && strcasecmp(got, resp->sha256) != 0)
      rc = fedc_error_set(FEDC_ECHECKSUM, "model download: SHA-256 %s, the coordinator sent %s",
                          got, resp->sha256);
    if (rc != 0) {
      fedc_free(d->mem);
      d->mem = NULL;
      d->have = 0;
      return rc;
    }
    d->mem[d->have] = 0;
    *bytes = d->mem;
    *len = d->have;
    d->mem = NULL;
    d->have = 0;
    return 0;
  }
  if (d->delta) {
    int rc = finish_delta(d, resp, bytes, len);
    if (rc != 2) return rc; /* rebuilt, or failed, or the delta refused */
    /* 2: a whole model after all, on disk: read it as any */
  }
  uint8_t *b = fedc_malloc(d->have + 1); /* NUL-terminated, as a response body */
  if (b == NULL)
    return fedc_error_set(FEDC_ENOMEM, "out of memory for a %llu-byte model",
                          (unsigned long long)d->have);
  size_t off = 0;
  while (off < d->have) {
    ssize_t r = pread(d->fd, b + off, d->have - off, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      fedc_free(b);
      return fedc_error_set(FEDC_EIO, "cannot read %s back: %s", d->part,
                            r < 0 ? strerror(errno) : "short file");
    }
    off += (size_t)r;
  }
  if (resp->sha256[0] != '\0') {
    char got[FEDC__SHA256_HEX_LEN + 1];
    int rc = fedc__sha256_hex(b, d->have, got);
    if (rc != 0 || strcasecmp(got, resp->sha256) != 0) {
      fedc_free(b);
      fedc__model_dl_restart(d);
      return rc ? rc
                : fedc_error_set(FEDC_ECHECKSUM,
                                 "model download: SHA-256 %s, the coordinator sent %s", got,
                                 resp->sha256);
    }
  }
  b[d->have] = 0;
  if (rename(d->part, d->final) != 0)
    fedc_log_warn("msg=\"cannot rename %s: %s\"", d->part, strerror(errno));
  else
    d->in_file = 1;
  (void)unlink(d->tag);
  /* received beyond the bytes on disk at the start: what a cut made us
   * fetch again */
  fedc_log(d->resumes > 0 || d->received != d->have ? FEDC_LOG_INFO : FEDC_LOG_DEBUG,
           "msg=\"model downloaded\" round=%d bytes=%llu received=%llu resumes=%d file=%s",
           (int)d->round, (unsigned long long)d->have, (unsigned long long)d->received, d->resumes,
           d->final);
  *bytes = b;
  *len = d->have;
  d->have = 0; /* the part file is gone: nothing to resume */
  d->etag[0] = '\0';
  return 0;
}

void fedc__model_dl_close(fedc_model_dl *d) {
  fedc_free(d->mem);
  d->mem = NULL;
  if (d->fd >= 0) {
    struct stat st;
    /* nothing to resume: leave nothing behind */
    if (d->etag[0] == '\0' && fstat(d->fd, &st) == 0 && st.st_size == 0) {
      (void)unlink(d->part);
      (void)unlink(d->tag);
    }
    close(d->fd);
  }
  d->fd = -1;
}
