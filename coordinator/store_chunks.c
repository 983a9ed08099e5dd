/*
 * store_chunks.c - checkpoints too big for one sqlite blob (store.h).
 *
 * SQLite refuses a blob over SQLITE_MAX_LENGTH (10^9 bytes), and binding a
 * whole model makes sqlite build a record of the model's size in memory. A
 * checkpoint larger than the chunk bound (FEDC_STORE_CHUNK_ABOVE bytes,
 * 256 MiB by default) is therefore kept as numbered rows of the table
 * checkpoint_chunks(round, seq, bytes), each at most FEDC__CKPT_CHUNK bytes
 * (or the bound, if smaller), while its row in checkpoints holds an empty
 * blob, the SHA-256 of the whole model, as every checkpoint's row does. The
 * chunks are written inside the caller's transaction (a round's commit),
 * each bound as a static slice of the caller's model, so that nothing of
 * the model's size is copied, and read back one chunk at a time. A store
 * whose checkpoints are single blobs reads as before.
 */
#include "store.h"

#include "base/alloc.h"
#include "base/error.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the largest chunk row (sqlite builds one record of that size per row) */
#define FEDC__CKPT_CHUNK ((size_t)16 << 20)
#define FEDC__CKPT_ABOVE_DEFAULT ((size_t)256 << 20)

/*
 * The bound above which a checkpoint is chunked: FEDC_STORE_CHUNK_ABOVE
 * (bytes, for tests that force chunking on small models), else 256 MiB.
 * An unparsable or zero value falls back on the default.
 */
size_t fedc__store_chunk_above(void) {
  const char *env = getenv("FEDC_STORE_CHUNK_ABOVE");
  if (env && *env) {
    char *end;
    unsigned long long v = strtoull(env, &end, 10);
    if (*end == '\0' && v > 0) return (size_t)v;
  }
  return FEDC__CKPT_ABOVE_DEFAULT;
}

static size_t chunk_size(void) {
  size_t above = fedc__store_chunk_above();
  return above < FEDC__CKPT_CHUNK ? above : FEDC__CKPT_CHUNK;
}

/*
 * Insert round's model as chunk rows, inside the caller's open transaction
 * (whose rollback removes them). Rows already there for that round (left by
 * nothing but a damaged file: a commit's rows go with its transaction) make
 * the insert fail on the primary key.
 */
int fedc__store_chunks_write(fedc_store *st, int32_t round, const uint8_t *model,
                             size_t len, const char *what) {
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db,
                              "INSERT INTO checkpoint_chunks(round, seq, bytes) "
                              "VALUES(?1, ?2, ?3)", -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, what);
  size_t step = chunk_size();
  int err = 0;
  int64_t seq = 0;
  for (size_t off = 0; off < len && !err; off += step, seq++) {
    size_t n = len - off < step ? len - off : step;
    sqlite3_bind_int64(s, 1, round);
    sqlite3_bind_int64(s, 2, seq);
    rc = sqlite3_bind_blob64(s, 3, model + off, n, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) err = fedc__store_db_error(st, rc, what);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
  sqlite3_finalize(s);
  return err;
}

/* The total length of round's chunks (0 when it has none). */
int fedc__store_chunks_len(fedc_store *st, int32_t round, int64_t *len) {
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  *len = 0;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT coalesce(sum(length(bytes)), 0) FROM "
                              "checkpoint_chunks WHERE round = ?1", -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "checkpoint chunks");
  sqlite3_bind_int64(s, 1, round);
  rc = sqlite3_step(s);
  int err = 0;
  if (rc == SQLITE_ROW)
    *len = sqlite3_column_int64(s, 0);
  else
    err = fedc__store_db_error(st, rc, "checkpoint chunks");
  sqlite3_finalize(s);
  return err;
}

/*
 * Read round's chunks in order into a new buffer (*out, fedc_free), one
 * chunk in sqlite's memory at a time. Chunks out of sequence are reported
 * as a damaged store.
 */
int fedc__store_chunks_read(fedc_store *st, int32_t round, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  int64_t total;
  int err = fedc__store_chunks_len(st, round, &total);
  if (err) return err;
  if (total <= 0)
    return fedc_error_set(FEDC_EFORMAT,
                          "store %s: checkpoint of round %d is empty and has no "
                          "chunks", fedc__store_path(st), (int)round);
  uint8_t *buf = fedc_malloc((size_t)total);
  if (buf == NULL)
    return fedc_error_set(FEDC_ENOMEM, "store %s: out of memory for checkpoint %d",
                          fedc__store_path(st), (int)round);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(fedc__store_db(st),
                              "SELECT seq, bytes FROM checkpoint_chunks "
                              "WHERE round = ?1 ORDER BY seq", -1, &s, NULL);
  if (rc != SQLITE_OK) {
    fedc_free(buf);
    return fedc__store_db_error(st, rc, "checkpoint chunks");
  }
  sqlite3_bind_int64(s, 1, round);
  size_t off = 0;
  int64_t want = 0;
  while (!err && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    size_t n = (size_t)sqlite3_column_bytes(s, 1);
    const void *p = sqlite3_column_blob(s, 1);
    if (sqlite3_column_int64(s, 0) != want++ || n > (size_t)total - off) {
      err = fedc_error_set(FEDC_EFORMAT,
                           "store %s: checkpoint of round %d: chunk %lld is out "
                           "of sequence", fedc__store_path(st), (int)round,
                           (long long)(want - 1));
    } else if (p == NULL && n > 0) {
      err = fedc__store_db_error(st, SQLITE_NOMEM, "checkpoint chunks");
    } else if (n) {
      memcpy(buf + off, p, n);
      off += n;
    }
  }
  if (!err && rc != SQLITE_DONE) err = fedc__store_db_error(st, rc, "checkpoint chunks");
  sqlite3_finalize(s);
  if (!err && off != (size_t)total)
    err = fedc_error_set(FEDC_EFORMAT, "store %s: checkpoint of round %d: chunks "
                         "changed while read", fedc__store_path(st), (int)round);
  if (err) {
    fedc_free(buf);
    return err;
  }
  *out = buf;
  *len = off;
  return 0;
}
