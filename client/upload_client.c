/*
 * upload_client.c - the client's chunked, resumable upload of a large
 * update and the copy of it kept in [client] state_dir (upload_client.h).
 *
 * The coordinator's offset is the truth: after a cut the transport resends
 * the chunk that was in flight (the coordinator had not taken it whole,
 * or, if only its answer was lost, acknowledges it again without writing),
 * and a client started again announces the same update (same size and
 * SHA-256) and goes on from the offset the coordinator answers; accepted
 * chunks are never sent again.
 */
#include "upload_client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "transfer_progress.h"

#define UPLOAD_TIMEOUT_S 600.0
#define JSON_MAX ((size_t)64 << 10)
#define MAX_ANNOUNCES 8 /* the coordinator lost the upload this often: give up */

size_t fedc__client_upload_threshold(void) {
  const char *e = getenv("FEDC_UPLOAD_CHUNKED_MIN");
  if (e && *e) {
    char *end;
    unsigned long long v = strtoull(e, &end, 10);
    if (*end == '\0' && v > 0) return (size_t)v;
  }
  return FEDC_UPLOAD_CHUNKED_MIN;
}

/* A number field of a JSON answer: 1 with it, else 0; *acked is set when
 * the answer is an update's acknowledgement ("accepted"). */
static int answer_field(const fedc_http_response *r, const char *key, uint64_t *out,
                        int *acked) {
  cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
  if (acked) *acked = o && cJSON_GetObjectItemCaseSensitive(o, "accepted") != NULL;
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  int ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9.0e15;
  if (ok) *out = (uint64_t)v->valuedouble;
  cJSON_Delete(o);
  return ok;
}

static int error_code_is(const fedc_http_response *r, const char *code) {
  cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
  const cJSON *e = o ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
  int is = cJSON_IsString(e) && strcmp(e->valuestring, code) == 0;
  cJSON_Delete(o);
  return is;
}

int fedc__client_upload_chunked(const fedc_upload_io *io, int32_t round, const uint8_t *buf,
                                size_t len, fedc_http_response *resp, uint64_t *sent) {
  char sha[FEDC__SHA256_HEX_LEN + 1], path[256];
  uint64_t moved = 0;
  if (sent) *sent = 0;
  memset(resp, 0, sizeof *resp);
  if (fedc__sha256_hex(buf, len, sha) != 0) return FEDC_EIO;
  fedc_progress p;
  char what[64];
  snprintf(what, sizeof what, "upload update round %d", (int)round);
  int started = 0, rc = 0;
  for (int announces = 0; announces < MAX_ANNOUNCES; announces++) {
    snprintf(path, sizeof path, "/v1/upload?round=%d&size=%zu&sha256=%s", (int)round, len, sha);
    rc = io->call(io->ctx, "upload", path, "application/octet-stream", "", 0, UPLOAD_TIMEOUT_S,
                  resp);
    if (rc != 0) break;
    uint64_t off = 0, chunk = 0;
    int acked = 0;
    if (resp->status != 200 || !answer_field(resp, "offset", &off, &acked) || acked ||
        !answer_field(resp, "chunk", &chunk, NULL) || off > len || chunk == 0)
      break; /* a refusal, or the update is in already: the caller reads it */
    fedc_http_response_free(resp);
    if (!started) {
      fedc__progress_start(&p, what, off, len);
      started = 1;
    }
    if (off > 0)
      fedc_log_info("msg=\"upload resumes\" round=%d offset=%" PRIu64 " size=%zu", (int)round,
                    off, len);
    int lost = 0; /* the coordinator no longer has the upload: announce again */
    while (!lost) {
      uint64_t n = len - off < chunk ? len - off : chunk;
      char csha[FEDC__SHA256_HEX_LEN + 1];
      if (fedc__sha256_hex(buf + off, (size_t)n, csha) != 0) {
        rc = FEDC_EIO;
        break;
      }
      snprintf(path, sizeof path, "/v1/upload/chunk?round=%d&offset=%" PRIu64 "&sha256=%s",
               (int)round, off, csha);
      rc = io->call(io->ctx, "upload chunk", path, "application/octet-stream", buf + off,
                    (size_t)n, UPLOAD_TIMEOUT_S, resp);
      if (rc != 0) break;
      moved += n;
      uint64_t next = 0;
      if (resp->status == 200) {
        if (answer_field(resp, "offset", &next, &acked) && !acked && next <= len) {
          fedc_http_response_free(resp);
          off = next;
          fedc__progress_update(&p, off, 0);
          continue;
        }
        fedc__progress_update(&p, len, 0);
        goto out; /* the last chunk: the update's answer */
      }
      if (resp->status == 409 && error_code_is(resp, "bad_offset") &&
          answer_field(resp, "offset", &next, NULL) && next <= len) {
        fedc_http_response_free(resp);
        off = next;
        continue;
      }
      if (resp->status == 404 && error_code_is(resp, "no_upload")) {
        fedc_http_response_free(resp);
        lost = 1;
        continue;
      }
      goto out; /* a refusal */
    }
    if (rc != 0 || !lost) break;
  }
out:
  if (started) fedc__progress_end(&p, rc == 0 && resp->status == 200);
  if (sent) *sent = moved;
  return rc;
}

/* ---- the pending update in state_dir ---------------------------------------- */

/* Only [A-Za-z0-9_-] name a file. */
static int safe_id(const char *id) {
  if (id == NULL || id[0] == '\0' || strlen(id) > 64) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return 0;
  return 1;
}

static int names(const char *state_dir, const char *job, char *bin, char *meta, size_t cap) {
  if (state_dir == NULL || state_dir[0] == '\0' || !safe_id(job)) return 0;
  int a = snprintf(bin, cap, "%s/upload-%s.bin", state_dir, job);
  int b = snprintf(meta, cap, "%s/upload-%s.meta", state_dir, job);
  return a > 0 && (size_t)a < cap && b > 0 && (size_t)b < cap;
}

static int write_file(const char *path, const void *buf, size_t len) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int ok = f != NULL && fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (f != NULL && fclose(f) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) {
    int e = errno;
    unlink(tmp);
    return fedc_error_set(FEDC_EIO, "[client] state_dir: cannot write %s: %s", path, strerror(e));
  }
  return 0;
}

int fedc__client_pending_keep(const char *state_dir, const char *job, int32_t round,
                              const char *model_sha, const uint8_t *buf, size_t len) {
  char bin[1024], meta[1024];
  if (!names(state_dir, job, bin, meta, sizeof bin)) return 0;
  unlink(meta); /* the old meta must not describe the new bytes */
  int rc = write_file(bin, buf, len);
  if (rc != 0) return rc;
  char text[200];
  int n = snprintf(text, sizeof text, "round=%d model=%s size=%zu\n", (int)round, model_sha, len);
  return write_file(meta, text, (size_t)n);
}

int fedc__client_pending_load(const char *state_dir, const char *job, int32_t round,
                              const char *model_sha, uint8_t **buf, size_t *len) {
  char bin[1024], meta[1024];
  *buf = NULL;
  *len = 0;
  if (!names(state_dir, job, bin, meta, sizeof bin)) return 0;
  FILE *f = fopen(meta, "r");
  if (f == NULL) return 0;
  int r = 0;
  char model[80] = "";
  size_t size = 0;
  int got = fscanf(f, "round=%d model=%79s size=%zu", &r, model, &size);
  fclose(f);
  if (got != 3 || r != round || strcmp(model, model_sha) != 0 || size == 0) return 0;
  struct stat st;
  if (stat(bin, &st) != 0 || (size_t)st.st_size != size) return 0;
  uint8_t *b = fedc_malloc(size);
  f = b ? fopen(bin, "rb") : NULL;
  int ok = f != NULL && fread(b, 1, size, f) == size;
  if (f) fclose(f);
  if (!ok) {
    fedc_free(b);
    return 0;
  }
  *buf = b;
  *len = size;
  return 1;
}

void fedc__client_pending_drop(const char *state_dir, const char *job) {
  char bin[1024], meta[1024];
  if (!names(state_dir, job, bin, meta, sizeof bin)) return;
  unlink(meta);
  unlink(bin);
}
