/*
 * upload_ledger.h - the bookkeeping of chunked uploads (docs/protocol.md,
 * "Chunked uploads"): where a chunk falls against what an upload has
 * accepted, the query strings of /v1/upload, the spool file of one upload
 * (<store>.uploads/<job>-r<round>-c<client>.part, appended and fsync'd one
 * checked chunk at a time) and the table of uploads under way, one per
 * client. No HTTP and no round state here (upload_api.c has those), so
 * that the unit tests (tests/unit/test_upload_ledger.c) drive it alone.
 */
#ifndef FEDC_COORD_UPLOAD_LEDGER_H
#define FEDC_COORD_UPLOAD_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "base/mbedtls_compat.h"

/* The largest chunk the coordinator takes, and the size it tells clients
 * to use (a chunk is one ordinary request, so it is also bounded by
 * [server] max_body_mb). */
#define FEDC_UPLOAD_CHUNK_MAX ((uint64_t)16 << 20)
#define FEDC_UPLOAD_CHUNK ((uint64_t)4 << 20)

/* Where a chunk [off, off + len) falls against an upload of size bytes of
 * which accepted are in: */
typedef enum {
  FEDC_CHUNK_NEXT = 0, /* starts at accepted and fits: take it */
  FEDC_CHUNK_HAVE = 1, /* lies wholly within the accepted bytes: a resend, nothing to do */
  FEDC_CHUNK_GAP = 2,  /* starts elsewhere (a gap or an overlap): 409, with the offset */
  FEDC_CHUNK_OVER = 3, /* runs past size, or is empty: 400 */
  FEDC_CHUNK_BIG = 4   /* longer than FEDC_UPLOAD_CHUNK_MAX: 413 */
} fedc_chunk_place;

fedc_chunk_place fedc__upload_chunk_place(uint64_t size, uint64_t accepted, uint64_t off,
                                          uint64_t len);

/* The value of key in a query string "a=1&b=2" into out (cap bytes, NUL
 * ended): 1 found, 0 absent, -1 too long. */
int fedc__upload_query_str(const char *q, const char *key, char *out, size_t cap);
/* A decimal unsigned value: 1 found, 0 absent, -1 malformed. */
int fedc__upload_query_u64(const char *q, const char *key, uint64_t *out);
/* 1 when s is 64 hex digits (lower-cased in place), else 0. */
int fedc__upload_sha_ok(char *s);

/* One upload under way. */
typedef struct fedc_upload {
  int32_t client_id, round;
  uint64_t size;     /* announced */
  uint64_t accepted; /* bytes checked, written and fsync'd */
  char sha[65];      /* announced SHA-256 of the whole update */
  int fd;            /* the spool file, -1 when closed */
  int busy;          /* a chunk or the final check is on a worker */
  double last;       /* monotonic seconds of the last chunk or announce */
  fedc__sha256_ctx h; /* over the accepted bytes, in order */
  char path[512];
  /* early folds (upload_fold.h): 0 until the header is in, 1 folding
   * (fold), -1 folded at completion; owned by upload_api.c */
  int fold_state;
  struct fedc_upload_fold *fold;
} fedc_upload;

/* The spool folder of a store: "<store_path>.uploads" into out; made (0700)
 * when make is set. 0, or FEDC_EIO / FEDC_EINVAL with a message. */
int fedc__upload_dir(const char *store_path, int make, char *out, size_t cap);
/* Remove the spool files a past run of this job left in dir (its
 * "<job>-r*.part" files); returns how many went. */
int fedc__upload_dir_sweep(const char *dir, const char *job_id);

/* Begin u as a new upload (its spool file created empty, its hash begun).
 * 0, or FEDC_EIO. */
int fedc__upload_open(fedc_upload *u, const char *dir, const char *job_id, int32_t client_id,
                      int32_t round, uint64_t size, const char sha[65]);
/* Check that buf (len bytes) has the SHA-256 chunk_sha, then append it at
 * u->accepted, fsync and fold it into the running hash; u->accepted grows
 * by len. FEDC_ECHECKSUM (nothing written) when the checksum is wrong,
 * FEDC_EIO on a write error (the file is cut back to u->accepted). Any
 * thread, while u is busy. */
int fedc__upload_append(fedc_upload *u, const uint8_t *buf, size_t len, const char chunk_sha[65]);
/* Once accepted == size: 0 when the running hash is the announced one,
 * else FEDC_ECHECKSUM with a message. Ends the hash. */
int fedc__upload_finish_hash(fedc_upload *u);
/* Close and remove the spool file, end the hash; u can be reused. */
void fedc__upload_discard(fedc_upload *u);

/* The uploads under way, at most one per client (loop thread). */
typedef struct fedc_upload_table {
  fedc_upload **v;
  int32_t n, cap;
} fedc_upload_table;

fedc_upload *fedc__upload_find(const fedc_upload_table *t, int32_t client_id);
/* A new zeroed entry for client_id (fd -1); NULL when out of memory. */
fedc_upload *fedc__upload_add(fedc_upload_table *t, int32_t client_id);
/* Take u out of the table and free it (its file discarded). */
void fedc__upload_remove(fedc_upload_table *t, fedc_upload *u);
/* Remove every idle upload of a round below round (a round that has
 * moved on); returns how many. */
int fedc__upload_sweep_stale(fedc_upload_table *t, int32_t round);
void fedc__upload_table_free(fedc_upload_table *t);

#endif
