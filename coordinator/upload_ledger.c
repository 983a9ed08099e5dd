/*
 * upload_ledger.c - the bookkeeping of chunked uploads: a chunk's place
 * against an upload, the /v1/upload query strings, the spool files and the
 * table of uploads under way (upload_ledger.h). A spool file only ever
 * holds checked bytes: a chunk is hashed before it is written, and a
 * failed write is cut back off, so the file is always a prefix of the
 * announced update.
 */
#include "upload_ledger.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"

fedc_chunk_place fedc__upload_chunk_place(uint64_t size, uint64_t accepted, uint64_t off,
                                          uint64_t len) {
  if (len == 0 || off > size || len > size - off) return FEDC_CHUNK_OVER;
  if (len > FEDC_UPLOAD_CHUNK_MAX) return FEDC_CHUNK_BIG;
  if (off + len <= accepted) return FEDC_CHUNK_HAVE;
  if (off != accepted) return FEDC_CHUNK_GAP;
  return FEDC_CHUNK_NEXT;
}

int fedc__upload_query_str(const char *q, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = q; p && *p;) {
    const char *end = strchr(p, '&');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
      size_t vl = n - kl - 1;
      if (vl + 1 > cap) return -1;
      memcpy(out, p + kl + 1, vl);
      out[vl] = '\0';
      return 1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

int fedc__upload_query_u64(const char *q, const char *key, uint64_t *out) {
  char v[24];
  int rc = fedc__upload_query_str(q, key, v, sizeof v);
  if (rc <= 0) return rc;
  if (v[0] == '\0' || strlen(v) > 19) return -1;
  uint64_t x = 0;
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  *out = x;
  return 1;
}

int fedc__upload_sha_ok(char *s) {
  size_t i = 0;
  for (; s[i]; i++) {
    if (!isxdigit((unsigned char)s[i])) return 0;
    s[i] = (char)tolower((unsigned char)s[i]);
  }
  return i == 64;
}

/* ---- spool files ---------------------------------------------------------- */

int fedc__upload_dir(const char *store_path, int make, char *out, size_t cap) {
  if (store_path == NULL || store_path[0] == '\0')
    return fedc_error_set(FEDC_EINVAL, "uploads: no [store] path");
  int n = snprintf(out, cap, "%s.uploads", store_path);
  if (n < 0 || (size_t)n >= cap) return fedc_error_set(FEDC_EINVAL, "uploads: path too long");
  if (make && fedc__mkdirs(out, 0700) != 0)
    return fedc_error_set(FEDC_EIO, "uploads: cannot make %s: %s", out, strerror(errno));
  return 0;
}

int fedc__upload_dir_sweep(const char *dir, const char *job_id) {
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s-r", job_id);
  size_t pl = strlen(prefix);
  int gone = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name);
    if (strncmp(e->d_name, prefix, pl) != 0 || nl < 5 || strcmp(e->d_name + nl - 5, ".part") != 0)
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) == 0) gone++;
  }
  closedir(d);
  return gone;
}

int fedc__upload_open(fedc_upload *u, const char *dir, const char *job_id, int32_t client_id,
                      int32_t round, uint64_t size, const char sha[65]) {
  u->client_id = client_id;
  u->round = round;
  u->size = size;
  u->accepted = 0;
  u->fold_state = 0;
  snprintf(u->sha, sizeof u->sha, "%s", sha);
  int n = snprintf(u->path, sizeof u->path, "%s/%s-r%d-c%d.part", dir, job_id, (int)round,
                   (int)client_id);
  if (n < 0 || (size_t)n >= sizeof u->path)
    return fedc_error_set(FEDC_EIO, "uploads: spool path too long");
  u->fd = open(u->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (u->fd < 0)
    return fedc_error_set(FEDC_EIO, "uploads: cannot create %s: %s", u->path, strerror(errno));
  if (fedc__sha256_begin(&u->h) != 0) {
    close(u->fd);
    unlink(u->path);
    u->fd = -1;
    return FEDC_EIO;
  }
  return 0;
}

int fedc__upload_append(fedc_upload *u, const uint8_t *buf, size_t len, const char chunk_sha[65]) {
  char got[FEDC__SHA256_HEX_LEN + 1];
  if (fedc__sha256_hex(buf, len, got) != 0) return FEDC_EIO;
  if (strcmp(got, chunk_sha) != 0)
    return fedc_error_set(FEDC_ECHECKSUM,
                          "chunk at offset %llu (%zu bytes): its SHA-256 is %s, not the %s sent "
                          "with it",
                          (unsigned long long)u->accepted, len, got, chunk_sha);
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(u->fd, buf + done, len - done, (off_t)(u->accepted + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : ENOSPC;
      if (ftruncate(u->fd, (off_t)u->accepted) != 0) { /* best effort: the prefix stays */
      }
      return fedc_error_set(FEDC_EIO, "uploads: cannot write %s: %s", u->path, strerror(e));
    }
    done += (size_t)w;
  }
  if (fdatasync(u->fd) != 0) {
    int e = errno;
    if (ftruncate(u->fd, (off_t)u->accepted) != 0) {
    }
    return fedc_error_set(FEDC_EIO, "uploads: cannot sync %s: %s", u->path, strerror(e));
  }
  if (fedc__sha256_update(&u->h, buf, len) != 0) return FEDC_EIO;
  u->accepted += len;
  return 0;
}

int fedc__upload_finish_hash(fedc_upload *u) {
  uint8_t d[FEDC__SHA256_LEN];
  int rc = fedc__sha256_finish(&u->h, d);
  fedc__sha256_free(&u->h);
  if (rc != 0) return FEDC_EIO;
  char hex[FEDC__SHA256_HEX_LEN + 1];
  for (int i = 0; i < FEDC__SHA256_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  if (strcmp(hex, u->sha) != 0)
    return fedc_error_set(FEDC_ECHECKSUM,
                          "the update's %llu bytes have the SHA-256 %s, not the %s announced",
                          (unsigned long long)u->size, hex, u->sha);
  return 0;
}

void fedc__upload_discard(fedc_upload *u) {
  if (u->fd >= 0) {
    close(u->fd);
    unlink(u->path);
    fedc__sha256_free(&u->h);
  }
  u->fd = -1;
  u->accepted = 0;
}

/* ---- the table ------------------------------------------------------------ */

fedc_upload *fedc__upload_find(const fedc_upload_table *t, int32_t client_id) {
  for (int32_t i = 0; i < t->n; i++)
    if (t->v[i]->client_id == client_id) return t->v[i];
  return NULL;
}

fedc_upload *fedc__upload_add(fedc_upload_table *t, int32_t client_id) {
  if (t->n == t->cap) {
    int32_t nc = t->cap ? 2 * t->cap : 8;
    fedc_upload **nv = fedc_realloc(t->v, (size_t)nc * sizeof *nv);
    if (nv == NULL) return NULL;
    t->v = nv;
    t->cap = nc;
  }
  fedc_upload *u = fedc_calloc(1, sizeof *u);
  if (u == NULL) return NULL;
  u->fd = -1;
  u->client_id = client_id;
  t->v[t->n++] = u;
  return u;
}

void fedc__upload_remove(fedc_upload_table *t, fedc_upload *u) {
  for (int32_t i = 0; i < t->n; i++)
    if (t->v[i] == u) {
      t->v[i] = t->v[--t->n];
      break;
    }
  fedc__upload_discard(u);
  fedc_free(u);
}

int fedc__upload_sweep_stale(fedc_upload_table *t, int32_t round) {
  int gone = 0;
  for (int32_t i = 0; i < t->n;) {
    fedc_upload *u = t->v[i];
    if (!u->busy && u->round < round) {
      fedc__upload_remove(t, u);
      gone++;
    } else {
      i++;
    }
  }
  return gone;
}

void fedc__upload_table_free(fedc_upload_table *t) {
  while (t->n > 0) fedc__upload_remove(t, t->v[0]);
  fedc_free(t->v);
  t->v = NULL;
  t->cap = 0;
}
