/*
 * store_sqlite.c - the coordinator's durable state (store.h) on sqlite3.
 *
 * One file in WAL mode with synchronous=FULL, so that a transaction that
 * returned from COMMIT survives kill -9 and power loss. The schema is
 * stamped with an application id and a version (PRAGMA user_version); a
 * file that is not sqlite, belongs to another program, or carries a version
 * this code does not know is refused rather than modified. Each operation
 * that reads-then-writes runs in BEGIN IMMEDIATE, so that the check and the
 * write see the same state; a round's commit (its row, its checkpoint, its
 * update rows, the clients' counts) is one transaction, rolled back whole on
 * any failure.
 *
 * Errors are translated here and nowhere else: a sqlite failure becomes
 * FEDC_EIO (FEDC_ENOMEM for SQLITE_NOMEM, FEDC_EFORMAT for a corrupt file,
 * FEDC_ETOOBIG for an oversized blob) with "store PATH: what: sqlite's
 * message" in the error buffer. What the store hands back is allocated with
 * fedc_malloc; sqlite's own memory stays sqlite's. A store is used by one
 * thread at a time; nothing here is global.
 */
#include "store.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/random.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Bumped whenever the schema changes; files of other versions are refused. */
#define SCHEMA_VERSION 1
/* PRAGMA application_id: "fedc" in ASCII, so that `file` and we can tell a
 * fedc store from some other program's sqlite database. */
#define APPLICATION_ID 0x66656463
/* How long a writer waits for another connection's lock before SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 5000
#define NAME_MAX_BYTES 127

static const char SCHEMA_SQL[] =
    "CREATE TABLE job("
    " id TEXT PRIMARY KEY NOT NULL,"
    " spec TEXT NOT NULL,"
    " created_at REAL NOT NULL);"
    "CREATE TABLE clients("
    " id INTEGER PRIMARY KEY,"
    " fingerprint TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL DEFAULT '',"
    " status INTEGER NOT NULL,"
    " created_at REAL NOT NULL,"
    " updates INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE rounds("
    " round INTEGER PRIMARY KEY CHECK (round >= 1),"
    " selected INTEGER NOT NULL,"
    " clients INTEGER NOT NULL,"
    " samples INTEGER NOT NULL,"
    " train_loss REAL,"
    " test_loss REAL,"
    " test_acc REAL,"
    " secs REAL,"
    " committed_at REAL NOT NULL,"
    " sha256 TEXT NOT NULL);"
    "CREATE TABLE checkpoints("
    " round INTEGER PRIMARY KEY CHECK (round >= 0),"
    " model BLOB NOT NULL,"
    " sha256 TEXT NOT NULL);"
    "CREATE TABLE updates("
    " round INTEGER NOT NULL REFERENCES rounds(round),"
    " client_id INTEGER NOT NULL REFERENCES clients(id),"
    " num_samples INTEGER NOT NULL,"
    " train_loss REAL,"
    " sha256 TEXT NOT NULL,"
    " received_at REAL NOT NULL,"
    " PRIMARY KEY (round, client_id)) WITHOUT ROWID;"
    "CREATE INDEX updates_by_client ON updates(client_id);";

#define OPT_STATE_SQL                                                        \
  "CREATE TABLE IF NOT EXISTS opt_state(round INTEGER PRIMARY KEY "          \
  "REFERENCES rounds(round), state BLOB NOT NULL)"

#define SECRETS_SQL                                                          \
  "CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY NOT NULL, "      \
  "value INTEGER NOT NULL)"

#define PRIVACY_SQL                                                          \
  "CREATE TABLE IF NOT EXISTS privacy("                                      \
  "round INTEGER PRIMARY KEY REFERENCES rounds(round), "                     \
  "epsilon REAL NOT NULL, delta REAL NOT NULL, clip_norm REAL)"

/* the audit trail (audit.c) and the certificates' details (certs.c) */
#define AUDIT_SQL                                                            \
  "CREATE TABLE IF NOT EXISTS audit(round INTEGER PRIMARY KEY "              \
  "REFERENCES rounds(round), record TEXT NOT NULL, digest TEXT NOT NULL)"
#define CERTS_SQL                                                            \
  "CREATE TABLE IF NOT EXISTS certs(fingerprint TEXT PRIMARY KEY NOT NULL, " \
  "name TEXT NOT NULL, not_after REAL NOT NULL, admin INTEGER NOT NULL, "    \
  "pem TEXT NOT NULL)"
#define EVALS_SQL                                                            \
  "CREATE TABLE IF NOT EXISTS evals("                                        \
  "round INTEGER PRIMARY KEY REFERENCES rounds(round), "                     \
  "asked INTEGER NOT NULL, sites INTEGER NOT NULL, samples INTEGER NOT NULL, " \
  "value REAL, score REAL, metrics TEXT NOT NULL, report TEXT NOT NULL, per_site TEXT)"

/* checkpoints over the chunk bound, in numbered rows (store_chunks.c) */
#define CHUNKS_SQL                                                           \
  "CREATE TABLE IF NOT EXISTS checkpoint_chunks(round INTEGER NOT NULL, "    \
  "seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (round, seq))"

#define ROUND_COLS                                                          \
  "round, selected, clients, samples, train_loss, test_loss, test_acc, "   \
  "secs, committed_at, sha256"
#define CLIENT_COLS "id, fingerprint, name, status, created_at, updates"
#define UPDATE_COLS "client_id, num_samples, train_loss, sha256, received_at"

struct fedc_store {
  sqlite3 *db;
  char *path;
  /* Prepared once at open: the statements of the hot paths (a round's
   * commit, the per-connection client lookup). */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *last_round;
  sqlite3_stmt *ins_round, *ins_ckpt, *ins_update, *bump_client;
  sqlite3_stmt *find_client;
  /* fedc_store_lock: the locked descriptor (0 = not locked, the daemon's
   * hold; fd + 1) and the WAL's identity once seen */
  int lock_fd1;
  int wal_known;
  dev_t wal_dev;
  ino_t wal_ino;
};

/* ---- errors ----------------------------------------------------------- */

/*
 * Record the failure of a sqlite call on st->db (result code rc, while
 * doing `what`) and return the fedc code for it. Must run before anything
 * else touches the connection, since sqlite keeps only the last message.
 */
static int db_error(fedc_store *st, int rc, const char *what) {
  int err;
  switch (rc & 0xff) {
  case SQLITE_NOMEM: err = FEDC_ENOMEM; break;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: err = FEDC_EFORMAT; break;
  case SQLITE_TOOBIG: err = FEDC_ETOOBIG; break;
  default: err = rc == SQLITE_IOERR_NOMEM ? FEDC_ENOMEM : FEDC_EIO; break;
  }
  const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
  return fedc_error_set(err, "store %s: %s: %s", st->path, what, msg);
}

static int nomem(const char *path) {
  return fedc_error_set(FEDC_ENOMEM, "store %s: out of memory", path);
}

/* ---- small helpers ------------------------------------------------------ */

static double now_unix(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void to_hex(const uint8_t *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

/* 1 if s is exactly 64 lowercase hex digits (reads at most 65 bytes). */
static int is_hex64(const char *s) {
  if (s == NULL || strnlen(s, 65) != 64) return 0;
  for (int i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65]) {
  if (fedc__sha256_hex(data, len, out) != 0) out[0] = '\0';
}

/* NAN is kept as SQL NULL ("not measured") and read back as NAN. */
static void bind_real(sqlite3_stmt *s, int i, double v) {
  if (isnan(v))
    sqlite3_bind_null(s, i);
  else
    sqlite3_bind_double(s, i, v);
}

static double col_real(sqlite3_stmt *s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return NAN;
  return sqlite3_column_double(s, i);
}

/*
 * Copy text column i into dst (cap bytes with the NUL). A value too long
 * for the field cannot have been written by this code: FEDC_EFORMAT.
 */
static int col_text(fedc_store *st, sqlite3_stmt *s, int i, char *dst,
                    size_t cap, const char *what) {
  const unsigned char *t = sqlite3_column_text(s, i);
  size_t n = (size_t)sqlite3_column_bytes(s, i);
  if (t == NULL) {
    if (sqlite3_column_type(s, i) != SQLITE_NULL)
      return db_error(st, SQLITE_NOMEM, what);
    n = 0;
  }
  if (n >= cap)
    return fedc_error_set(FEDC_EFORMAT,
                          "store %s: %s: a stored text of %zu bytes exceeds "
                          "its field (%zu)",
                          st->path, what, n, cap - 1);
  if (n) memcpy(dst, t, n);
  dst[n] = '\0';
  return 0;
}

/* Reset a statement and drop its bindings (they may point at the caller's
 * memory, bound SQLITE_STATIC). */
static void stmt_done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Step a statement that yields no rows; reset it either way. */
static int step_done(fedc_store *st, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  int err = 0;
  if (rc != SQLITE_DONE) err = db_error(st, rc, what);
  stmt_done(s);
  return err;
}

static int prepare(fedc_store *st, const char *sql, sqlite3_stmt **out,
                   unsigned flags) {
  int rc = sqlite3_prepare_v3(st->db, sql, -1, flags, out, NULL);
  if (rc != SQLITE_OK) {
    *out = NULL;
    return db_error(st, rc, "prepare");
  }
  return 0;
}

static int wal_check(fedc_store *st);

static int tx_begin(fedc_store *st) {
  int err = wal_check(st);
  return err ? err : step_done(st, st->begin, "begin transaction");
}

static int tx_commit(fedc_store *st, const char *what) {
  return step_done(st, st->commit, what);
}

/* Roll back if a transaction is still open (sqlite rolls some failures
 * back by itself). Leaves the error message of the failure alone. */
static void tx_rollback(fedc_store *st) {
  if (sqlite3_get_autocommit(st->db)) return;
  sqlite3_step(st->rollback);
  sqlite3_reset(st->rollback);
}

/* Run a statement returning one integer (a PRAGMA, a count). */
static int query_int(fedc_store *st, const char *sql, int64_t *out) {
  sqlite3_stmt *s;
  int err = prepare(st, sql, &s, 0);
  if (err) return err;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64(s, 0);
  else if (rc == SQLITE_DONE)
    *out = 0;
  else
    err = db_error(st, rc, sql);
  sqlite3_finalize(s);
  return err;
}

static int exec(fedc_store *st, const char *sql, const char *what) {
  int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : db_error(st, rc, what);
}

/* ---- open / close ------------------------------------------------------- */

/*
 * Switch to WAL and check that it took: on a file sqlite cannot write the
 * pragma may silently keep the old mode, and the durability promise of
 * store.h rests on WAL with synchronous=FULL.
 */
static int set_journal(fedc_store *st) {
  sqlite3_stmt *s;
  int err = prepare(st, "PRAGMA journal_mode=WAL", &s, 0);
  if (err) return err;
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    err = db_error(st, rc, "journal_mode=WAL");
  } else {
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    if (mode == NULL || sqlite3_stricmp(mode, "wal") != 0)
      err = fedc_error_set(FEDC_EIO,
                           "store %s: cannot switch to WAL journal mode "
                           "(still '%s'); is the file or its directory "
                           "read-only?",
                           st->path, mode ? mode : "?");
  }
  sqlite3_finalize(s);
  if (err) return err;
  err = exec(st, "PRAGMA synchronous=FULL", "synchronous=FULL");
  if (err) return err;
  return exec(st, "PRAGMA foreign_keys=ON", "foreign_keys=ON");
}

/*
 * Create the schema in a new (empty) file, or check the stamp of an old
 * one. The first read of the file happens here, so this is where a file
 * that is not sqlite at all shows up (SQLITE_NOTADB -> FEDC_EFORMAT). An
 * existing store is only read, so that a read-only file still opens.
 */
static int check_schema(fedc_store *st) {
  int64_t version, app, objects;
  int err = query_int(st, "PRAGMA user_version", &version);
  if (err == FEDC_EFORMAT)
    return fedc_error_set(FEDC_EFORMAT,
                          "store %s: not a sqlite database, or a damaged "
                          "one (%s)",
                          st->path, sqlite3_errmsg(st->db));
  if (err == FEDC_EIO &&
      (sqlite3_extended_errcode(st->db) & 0xff) == SQLITE_READONLY)
    return fedc_error_set(FEDC_EIO,
                          "store %s: cannot read it: %s (a WAL store needs "
                          "to create its -wal and -shm files beside it)",
                          st->path, sqlite3_errmsg(st->db));
  if (err) return err;
  if ((err = query_int(st, "PRAGMA application_id", &app)) != 0) return err;
  if (version != 0 && version != SCHEMA_VERSION)
    return fedc_error_set(FEDC_EFORMAT,
                          "store %s: unknown schema version %lld (this fedc "
                          "knows version %d)",
                          st->path, (long long)version, SCHEMA_VERSION);
  if (version == SCHEMA_VERSION) {
    if (app != APPLICATION_ID)
      return fedc_error_set(FEDC_EFORMAT,
                            "store %s: not a fedc store (application_id "
                            "0x%llx)",
                            st->path, (unsigned long long)app);
    return 0;
  }

  /* Version 0: a new file, unless some other program's tables are in it.
   * Check again under the write lock in case another process is creating
   * the same store right now. */
  if ((err = exec(st, "BEGIN IMMEDIATE", "create schema")) != 0) return err;
  if ((err = query_int(st, "PRAGMA user_version", &version)) != 0) goto fail;
  if ((err = query_int(st, "SELECT count(*) FROM sqlite_master", &objects)))
    goto fail;
  if (version == SCHEMA_VERSION) {
    tx_rollback(st);
    return check_schema(st);
  }
  if (version != 0 || objects != 0) {
    err = fedc_error_set(FEDC_EFORMAT,
                         "store %s: not a fedc store (a sqlite database "
                         "with %lld other objects, user_version %lld)",
                         st->path, (long long)objects, (long long)version);
    goto fail;
  }
  char stamp[96];
  snprintf(stamp, sizeof stamp, "PRAGMA user_version=%d;"
           "PRAGMA application_id=%d;", SCHEMA_VERSION, APPLICATION_ID);
  if ((err = exec(st, SCHEMA_SQL, "create schema")) != 0) goto fail;
  if ((err = exec(st, stamp, "create schema")) != 0) goto fail;
  if ((err = exec(st, "COMMIT", "create schema")) != 0) goto fail;
  return 0;
fail:
  tx_rollback(st);
  return err;
}

static int prepare_hot(fedc_store *st) {
  const unsigned P = SQLITE_PREPARE_PERSISTENT;
  int err;
  if ((err = prepare(st, "BEGIN IMMEDIATE", &st->begin, P)) ||
      (err = prepare(st, "COMMIT", &st->commit, P)) ||
      (err = prepare(st, "ROLLBACK", &st->rollback, P)) ||
      (err = prepare(st, "SELECT coalesce(max(round), 0) FROM rounds",
                     &st->last_round, P)) ||
      (err = prepare(st,
                     "INSERT INTO rounds(" ROUND_COLS ") "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                     &st->ins_round, P)) ||
      (err = prepare(st,
                     "INSERT INTO checkpoints(round, model, sha256) "
                     "VALUES(?1, ?2, ?3)",
                     &st->ins_ckpt, P)) ||
      (err = prepare(st,
                     "INSERT INTO updates(round, " UPDATE_COLS ") "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                     &st->ins_update, P)) ||
      (err = prepare(st,
                     "UPDATE clients SET updates = updates + 1 WHERE id = ?1",
                     &st->bump_client, P)) ||
      (err = prepare(st,
                     "SELECT " CLIENT_COLS " FROM clients "
                     "WHERE fingerprint = ?1",
                     &st->find_client, P)))
    return err;
  return 0;
}

/*
 * Open or create the store at path. Everything that fails after the
 * connection exists is cleaned up through fedc_store_close, which copes
 * with a half-built store.
 */
int fedc_store_open(const char *path, fedc_store **out) {
  if (out) *out = NULL;
  if (path == NULL || out == NULL || path[0] == '\0')
    return fedc_error_set(FEDC_EINVAL, "store: no path given");
  fedc_store *st = fedc_calloc(1, sizeof *st);
  if (st == NULL) return nomem(path);
  st->path = fedc_strdup(path);
  if (st->path == NULL) {
    fedc_free(st);
    return nomem(path);
  }
  int rc = sqlite3_open_v2(path, &st->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_FULLMUTEX,
                           NULL);
  int err;
  if (rc != SQLITE_OK) {
    err = db_error(st, rc, "open");
    goto fail;
  }
  sqlite3_extended_result_codes(st->db, 1);
  sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
  if ((err = check_schema(st)) != 0) goto fail;
  if ((err = set_journal(st)) != 0) goto fail;
  /* the privacy ledger and the secrets came after the first stores: add
   * them where missing */
  if ((err = exec(st, PRIVACY_SQL, "create the privacy ledger")) != 0) goto fail;
  if ((err = exec(st, SECRETS_SQL, "create the secrets table")) != 0) goto fail;
  if ((err = exec(st, OPT_STATE_SQL, "create the optimizer table")) != 0) goto fail;
  if ((err = exec(st, AUDIT_SQL, "create the audit trail")) != 0) goto fail;
  if ((err = exec(st, CERTS_SQL, "create the certificates table")) != 0) goto fail;
  if ((err = exec(st, EVALS_SQL, "create the evaluation table")) != 0) goto fail;
  if ((err = exec(st, CHUNKS_SQL, "create the checkpoint chunks table")) != 0) goto fail;
  if ((err = prepare_hot(st)) != 0) goto fail;
  *out = st;
  return 0;
fail:
  fedc_store_close(st);
  return err;
}

void fedc_store_close(fedc_store *st) {
  if (st == NULL) return;
  sqlite3_stmt *all[] = {st->begin,      st->commit,    st->rollback,
                         st->last_round, st->ins_round, st->ins_ckpt,
                         st->ins_update, st->bump_client, st->find_client};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    sqlite3_finalize(all[i]);
  /* With every statement finalized, close does not fail on BUSY; the last
   * connection checkpoints the WAL into the main file and removes it. */
  sqlite3_close(st->db);
  if (st->lock_fd1) close(st->lock_fd1 - 1); /* drops the lock */
  fedc_free(st->path);
  fedc_free(st);
}

/* ---- for the store's companion files (audit.c, certs.c) ----------------- */

struct sqlite3 *fedc__store_db(fedc_store *st) { return st->db; }
const char *fedc__store_path(const fedc_store *st) { return st->path; }
int fedc__store_db_error(fedc_store *st, int rc, const char *what) {
  return db_error(st, rc, what);
}

/* ---- the daemon's hold on its store ------------------------------------- */

/* Is <path>-wal the file recorded, or (first time it exists) record it.
 * Not locked (a subcommand): nothing to check. */
static int wal_check(fedc_store *st) {
  if (st->lock_fd1 == 0) return 0;
  char wal[4096];
  snprintf(wal, sizeof wal, "%s-wal", st->path);
  struct stat sb;
  if (stat(wal, &sb) != 0) {
    if (errno == ENOENT && !st->wal_known) return 0; /* not yet created */
    return fedc_error_set(FEDC_EIO,
                          "store %s: its write-ahead log %s was deleted under the running "
                          "coordinator; stopping rather than commit into a log that a "
                          "crash would lose (restart the coordinator; the last rounds "
                          "may have to be redone)",
                          st->path, wal);
  }
  if (!st->wal_known) {
    st->wal_known = 1;
    st->wal_dev = sb.st_dev;
    st->wal_ino = sb.st_ino;
    return 0;
  }
  if (sb.st_dev != st->wal_dev || sb.st_ino != st->wal_ino)
    return fedc_error_set(FEDC_EIO,
                          "store %s: its write-ahead log %s was replaced under the running "
                          "coordinator; stopping rather than commit into a log that a "
                          "crash would lose",
                          st->path, wal);
  return 0;
}

int fedc_store_lock(fedc_store *st) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  if (st->lock_fd1) return 0;
  int fd = open(st->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fedc_error_set(FEDC_EIO, "store %s: cannot open it to lock it: %s", st->path,
                          strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return fedc_error_set(FEDC_EIO,
                            "store %s is in use by another coordinator (it holds the "
                            "store's lock); one store serves one coordinator",
                            st->path);
    return fedc_error_set(FEDC_EIO, "store %s: cannot lock it: %s", st->path, strerror(e));
  }
  st->lock_fd1 = fd + 1;
  /* a read now makes sqlite open the WAL, whose identity is recorded */
  int err = exec(st, "SELECT count(*) FROM sqlite_master", "read the schema");
  if (err == 0) err = wal_check(st);
  return err;
}

/* ---- the job ------------------------------------------------------------ */

/*
 * Record job_spec with a new random id on first use, or check it on every
 * later use. Read and insert happen under one write lock, so two
 * coordinators started on the same file cannot both record a job.
 */
int fedc_store_job_bind(fedc_store *st, const char *job_spec,
                        char job_id[33]) {
  if (st == NULL || job_spec == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: job_bind without a spec");
  sqlite3_stmt *s = NULL;
  char id[33];
  int err = tx_begin(st);
  if (err) return err;
  if ((err = prepare(st, "SELECT id, spec FROM job", &s, 0)) != 0) goto out;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const char *stored = (const char *)sqlite3_column_text(s, 1);
    if ((err = col_text(st, s, 0, id, sizeof id, "job")) != 0) goto out;
    if (stored == NULL) {
      err = db_error(st, SQLITE_NOMEM, "job");
      goto out;
    }
    if (strcmp(stored, job_spec) != 0) {
      err = fedc_error_set(FEDC_ECONFIG,
                           "store %s holds job %s with a different spec: "
                           "stored %s, given %s",
                           st->path, id, stored, job_spec);
      goto out;
    }
    if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
      err = rc == SQLITE_ROW
                ? fedc_error_set(FEDC_EFORMAT,
                                 "store %s: more than one job recorded",
                                 st->path)
                : db_error(st, rc, "job");
      goto out;
    }
  } else if (rc == SQLITE_DONE) {
    uint8_t raw[16];
    sqlite3_randomness(sizeof raw, raw);
    to_hex(raw, sizeof raw, id);
    sqlite3_finalize(s);
    s = NULL;
    if ((err = prepare(st,
                       "INSERT INTO job(id, spec, created_at) "
                       "VALUES(?1, ?2, ?3)",
                       &s, 0)) != 0)
      goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if ((rc = sqlite3_bind_text(s, 2, job_spec, -1, SQLITE_STATIC)) !=
        SQLITE_OK) {
      err = db_error(st, rc, "record job");
      goto out;
    }
    sqlite3_bind_double(s, 3, now_unix());
    if ((err = step_done(st, s, "record job")) != 0) goto out;
  } else {
    err = db_error(st, rc, "job");
    goto out;
  }
  sqlite3_finalize(s);
  s = NULL;
  err = tx_commit(st, "job commit");
out:
  sqlite3_finalize(s);
  if (err)
    tx_rollback(st);
  else if (job_id)
    memcpy(job_id, id, sizeof id);
  return err;
}

/* ---- clients ------------------------------------------------------------ */

static int check_fingerprint(fedc_store *st, const char *fp) {
  if (is_hex64(fp)) return 0;
  return fedc_error_set(FEDC_EINVAL,
                        "store %s: a client fingerprint must be 64 "
                        "lowercase hex digits, not \"%.80s\"",
                        st->path, fp ? fp : "(null)");
}

static int check_name(fedc_store *st, const char *name) {
  if (name == NULL || strnlen(name, NAME_MAX_BYTES + 1) <= NAME_MAX_BYTES)
    return 0;
  return fedc_error_set(FEDC_EINVAL,
                        "store %s: client name \"%.40s...\" is longer than "
                        "%d bytes",
                        st->path, name, NAME_MAX_BYTES);
}

static int read_client(fedc_store *st, sqlite3_stmt *s, fedc_store_client *c) {
  memset(c, 0, sizeof *c);
  c->id = (int32_t)sqlite3_column_int64(s, 0);
  int err = col_text(st, s, 1, c->fingerprint, sizeof c->fingerprint,
                     "client");
  if (!err) err = col_text(st, s, 2, c->name, sizeof c->name, "client");
  c->status = sqlite3_column_int(s, 3) == FEDC_CLIENT_REVOKED
                  ? FEDC_CLIENT_REVOKED
                  : FEDC_CLIENT_ALLOWED;
  c->created_at = sqlite3_column_double(s, 4);
  c->updates = sqlite3_column_int64(s, 5);
  return err;
}

/* Look a fingerprint up with the persistent statement: 0 and *c filled,
 * FEDC_ENOTFOUND (no message set), or another error. */
static int find_client(fedc_store *st, const char *fp, fedc_store_client *c) {
  sqlite3_stmt *s = st->find_client;
  sqlite3_bind_text(s, 1, fp, 64, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  int err;
  if (rc == SQLITE_ROW)
    err = read_client(st, s, c);
  else if (rc == SQLITE_DONE)
    err = FEDC_ENOTFOUND;
  else
    err = db_error(st, rc, "find client");
  stmt_done(s);
  return err;
}

/*
 * Add a fingerprint as allowed, or re-allow a known one (keeping its id and
 * update count). A NULL name leaves a known client's name as it is and
 * gives a new one an empty name.
 */
int fedc_store_client_allow(fedc_store *st, const char *fingerprint,
                            const char *name, int32_t *id) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  int err = check_fingerprint(st, fingerprint);
  if (!err) err = check_name(st, name);
  if (err) return err;
  if ((err = tx_begin(st)) != 0) return err;
  fedc_store_client c;
  sqlite3_stmt *s = NULL;
  int32_t got = 0;
  err = find_client(st, fingerprint, &c);
  if (err == 0) {
    got = c.id;
    err = prepare(st,
                  "UPDATE clients SET status = ?1, "
                  "name = coalesce(?2, name) WHERE id = ?3",
                  &s, 0);
    if (err) goto out;
    sqlite3_bind_int(s, 1, FEDC_CLIENT_ALLOWED);
    if (name) sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, got);
    err = step_done(st, s, "allow client");
  } else if (err == FEDC_ENOTFOUND) {
    err = prepare(st,
                  "INSERT INTO clients(fingerprint, name, status, "
                  "created_at, updates) VALUES(?1, ?2, ?3, ?4, 0)",
                  &s, 0);
    if (err) goto out;
    sqlite3_bind_text(s, 1, fingerprint, 64, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, name ? name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, FEDC_CLIENT_ALLOWED);
    sqlite3_bind_double(s, 4, now_unix());
    err = step_done(st, s, "allow client");
    got = (int32_t)sqlite3_last_insert_rowid(st->db);
  }
  if (err) goto out;
  err = tx_commit(st, "allow client");
out:
  sqlite3_finalize(s);
  if (err)
    tx_rollback(st);
  else if (id)
    *id = got;
  return err;
}

/* Run a one-row UPDATE whose text/int parameters are already described by
 * the caller; FEDC_ENOTFOUND with `missing` when it matched no row. A single
 * statement is its own transaction. */
static int update_one(fedc_store *st, sqlite3_stmt *s, const char *what,
                      const char *missing) {
  int err = step_done(st, s, what);
  if (err == 0 && sqlite3_changes(st->db) == 0)
    err = fedc_error_set(FEDC_ENOTFOUND, "store %s: %s", st->path, missing);
  return err;
}

int fedc_store_client_revoke(fedc_store *st, const char *fingerprint) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  int err = check_fingerprint(st, fingerprint);
  if (err) return err;
  sqlite3_stmt *s;
  if ((err = prepare(st, "UPDATE clients SET status = ?1 "
                         "WHERE fingerprint = ?2", &s, 0)) != 0)
    return err;
  sqlite3_bind_int(s, 1, FEDC_CLIENT_REVOKED);
  sqlite3_bind_text(s, 2, fingerprint, 64, SQLITE_STATIC);
  char missing[96];
  snprintf(missing, sizeof missing, "no client with fingerprint %.16s...",
           fingerprint);
  err = update_one(st, s, "revoke client", missing);
  sqlite3_finalize(s);
  return err;
}

int fedc_store_client_find(fedc_store *st, const char *fingerprint,
                           fedc_store_client *out) {
  if (st == NULL || out == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: client_find without output");
  int err = check_fingerprint(st, fingerprint);
  if (err) return err;
  err = find_client(st, fingerprint, out);
  if (err == FEDC_ENOTFOUND)
    fedc_error_set(err, "store %s: no client with fingerprint %.16s...",
                   st->path, fingerprint);
  return err;
}

int fedc_store_client_set_name(fedc_store *st, int32_t id, const char *name) {
  if (st == NULL || name == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: set_name without a name");
  int err = check_name(st, name);
  if (err) return err;
  sqlite3_stmt *s;
  if ((err = prepare(st, "UPDATE clients SET name = ?1 WHERE id = ?2", &s,
                     0)) != 0)
    return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, id);
  char missing[48];
  snprintf(missing, sizeof missing, "no client with id %d", (int)id);
  err = update_one(st, s, "rename client", missing);
  sqlite3_finalize(s);
  return err;
}

int fedc_store_client_name_taken(fedc_store *st, const char *name, const char *fingerprint,
                                 int *taken) {
  *taken = 0;
  if (st == NULL || name == NULL || fingerprint == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: name_taken without a name");
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT 1 FROM clients WHERE name = ?1 AND fingerprint != ?2 LIMIT 1",
                    &s, 0);
  if (err) return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, fingerprint, -1, SQLITE_STATIC);
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) *taken = 1;
  else if (r != SQLITE_DONE)
    err = fedc_error_set(FEDC_EIO, "store %s: look up a name: %s", st->path,
                         sqlite3_errmsg(st->db));
  sqlite3_finalize(s);
  return err;
}

/* ---- row lists ---------------------------------------------------------- */

/* Make room for one more element in a growing array; the old block stays
 * valid (and owned by the caller) on failure. */
static int grow(fedc_store *st, void **arr, int32_t *cap, int32_t n,
                size_t elem) {
  if (n < *cap) return 0;
  if (*cap > INT32_MAX / 2)
    return fedc_error_set(FEDC_ERANGE, "store %s: too many rows", st->path);
  int32_t ncap = *cap ? *cap * 2 : 16;
  if ((size_t)ncap > SIZE_MAX / elem) return nomem(st->path);
  void *p = fedc_realloc(*arr, (size_t)ncap * elem);
  if (p == NULL) return nomem(st->path);
  *arr = p;
  *cap = ncap;
  return 0;
}

typedef int (*row_reader)(fedc_store *st, sqlite3_stmt *s, void *dst);

/*
 * Step s to the end, reading each row with `read` into a fedc_malloc'd
 * array of elem-sized records. *out is NULL when there are no rows. On
 * error nothing is returned and nothing leaks. Finalizes s.
 */
static int read_rows(fedc_store *st, sqlite3_stmt *s, size_t elem,
                     row_reader read, const char *what, void **out,
                     int32_t *n) {
  void *arr = NULL;
  int32_t cnt = 0, cap = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if ((err = grow(st, &arr, &cap, cnt, elem)) != 0) break;
    if ((err = read(st, s, (char *)arr + (size_t)cnt * elem)) != 0) break;
    cnt++;
  }
  if (!err && rc != SQLITE_DONE) err = db_error(st, rc, what);
  sqlite3_finalize(s);
  if (err) {
    fedc_free(arr);
    return err;
  }
  *out = arr;
  *n = cnt;
  return 0;
}

static int read_client_row(fedc_store *st, sqlite3_stmt *s, void *dst) {
  return read_client(st, s, dst);
}

int fedc_store_client_list(fedc_store *st, fedc_store_client **out,
                           int32_t *n) {
  if (st == NULL || out == NULL || n == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: client_list without output");
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT " CLIENT_COLS " FROM clients ORDER BY id",
                    &s, 0);
  if (err) return err;
  return read_rows(st, s, sizeof **out, read_client_row, "list clients",
                   (void **)out, n);
}

/* ---- checkpoints and rounds -------------------------------------------- */

/*
 * Insert checkpoint `round` (inside the caller's transaction): one blob, or,
 * over the chunk bound, an empty blob and the model's chunk rows
 * (store_chunks.c), so that no blob nears sqlite's 10^9-byte limit.
 */
static int insert_ckpt(fedc_store *st, int32_t round, const uint8_t *model,
                       size_t len, const char *hex, const char *what) {
  int chunked = len > fedc__store_chunk_above();
  sqlite3_stmt *s = st->ins_ckpt;
  sqlite3_bind_int64(s, 1, round);
  int rc = chunked ? sqlite3_bind_zeroblob(s, 2, 0)
                   : sqlite3_bind_blob64(s, 2, model, len, SQLITE_STATIC);
  if (rc != SQLITE_OK) {
    int err = db_error(st, rc, what);
    stmt_done(s);
    return err;
  }
  sqlite3_bind_text(s, 3, hex, 64, SQLITE_STATIC);
  int err = step_done(st, s, what);
  if (!err && chunked) err = fedc__store_chunks_write(st, round, model, len, what);
  return err;
}

/* A checkpoint's length: its blob's, or its chunks' when the blob is empty. */
static int ckpt_len(fedc_store *st, int32_t round, int64_t blob_len, int64_t *len) {
  *len = blob_len;
  return blob_len == 0 ? fedc__store_chunks_len(st, round, len) : 0;
}

/*
 * Store the initial model as checkpoint 0. Comparing SHA-256 and length is
 * enough to tell "the same model again" (a restart) from "a different
 * model" (a misconfiguration that must not silently win).
 */
int fedc_store_put_initial(fedc_store *st, const uint8_t *model, size_t len) {
  if (st == NULL || model == NULL || len == 0)
    return fedc_error_set(FEDC_EINVAL, "store: put_initial without a model");
  char hex[65];
  sha256_hex(model, len, hex);
  sqlite3_stmt *s = NULL;
  int err = tx_begin(st);
  if (err) return err;
  if ((err = prepare(st, "SELECT sha256, length(model) FROM checkpoints "
                         "WHERE round = 0", &s, 0)) != 0)
    goto out;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    char stored[65];
    if ((err = col_text(st, s, 0, stored, sizeof stored, "checkpoint 0")))
      goto out;
    int64_t slen;
    if ((err = ckpt_len(st, 0, sqlite3_column_int64(s, 1), &slen))) goto out;
    if ((uint64_t)slen != (uint64_t)len || strcmp(stored, hex) != 0)
      err = fedc_error_set(FEDC_ESTATE,
                           "store %s: holds a different initial model "
                           "(%lld bytes, sha256 %.16s...; given %zu bytes, "
                           "sha256 %.16s...)",
                           st->path, (long long)slen, stored, len, hex);
    goto out; /* same bytes: nothing to write */
  }
  if (rc != SQLITE_DONE) {
    err = db_error(st, rc, "checkpoint 0");
    goto out;
  }
  sqlite3_finalize(s);
  s = NULL;
  err = insert_ckpt(st, 0, model, len, hex, "checkpoint 0");
out:
  sqlite3_finalize(s);
  if (!err) err = tx_commit(st, "checkpoint 0");
  if (err) tx_rollback(st);
  return err;
}

static int last_round(fedc_store *st, int32_t *round) {
  sqlite3_stmt *s = st->last_round;
  int rc = sqlite3_step(s);
  int err = 0;
  if (rc == SQLITE_ROW)
    *round = (int32_t)sqlite3_column_int64(s, 0);
  else
    err = db_error(st, rc, "last round");
  sqlite3_reset(s);
  return err;
}

int fedc_store_last_round(fedc_store *st, int32_t *round) {
  if (st == NULL || round == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: last_round without output");
  return last_round(st, round);
}

/* Validate what commit_round is given before any lock is taken. */
static int check_commit_args(fedc_store *st, const fedc_store_round *r,
                             const uint8_t *model, size_t len,
                             const fedc_store_update *updates,
                             int32_t n_updates) {
  if (r == NULL || model == NULL || len == 0 || n_updates < 0 ||
      (n_updates > 0 && updates == NULL))
    return fedc_error_set(FEDC_EINVAL,
                          "store %s: commit_round needs a round, a model and "
                          "its updates", st->path);
  if (r->round < 1)
    return fedc_error_set(FEDC_EINVAL,
                          "store %s: cannot commit round %d (rounds start at "
                          "1; round 0 is the initial model)",
                          st->path, (int)r->round);
  for (int32_t i = 0; i < n_updates; i++)
    if (!is_hex64(updates[i].sha256))
      return fedc_error_set(FEDC_EINVAL,
                            "store %s: round %d: update %d (client %d) has a "
                            "sha256 that is not 64 lowercase hex digits",
                            st->path, (int)r->round, (int)i,
                            (int)updates[i].client_id);
  return 0;
}

/* Insert round r's update rows and count them to their clients; inside the
 * commit's transaction. */
static int insert_updates(fedc_store *st, int32_t round, const char *what,
                          const fedc_store_update *u, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    sqlite3_stmt *b = st->bump_client;
    sqlite3_bind_int64(b, 1, u[i].client_id);
    int err = step_done(st, b, what);
    if (err) return err;
    if (sqlite3_changes(st->db) != 1)
      return fedc_error_set(FEDC_ENOTFOUND,
                            "store %s: %s: update from unknown client id %d",
                            st->path, what, (int)u[i].client_id);
    sqlite3_stmt *s = st->ins_update;
    sqlite3_bind_int64(s, 1, round);
    sqlite3_bind_int64(s, 2, u[i].client_id);
    sqlite3_bind_int64(s, 3, u[i].num_samples);
    bind_real(s, 4, u[i].train_loss);
    sqlite3_bind_text(s, 5, u[i].sha256, 64, SQLITE_STATIC);
    sqlite3_bind_double(s, 6, u[i].received_at);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
      err = fedc_error_set(FEDC_EINVAL,
                           "store %s: %s: client %d has two updates",
                           st->path, what, (int)u[i].client_id);
    else if (rc != SQLITE_DONE)
      err = db_error(st, rc, what);
    stmt_done(s);
    if (err) return err;
  }
  return 0;
}

/* One row per round of a job under differential privacy: the (epsilon,
 * delta) spent up to and including that round, and the clip norm used. */
static int insert_privacy(fedc_store *st, const fedc_store_round *r,
                          const char *what) {
  sqlite3_stmt *s;
  int err = prepare(st, "INSERT INTO privacy(round, epsilon, delta, clip_norm) "
                        "VALUES(?1, ?2, ?3, ?4)", &s, 0);
  if (err) return err;
  sqlite3_bind_int64(s, 1, r->round);
  sqlite3_bind_double(s, 2, r->epsilon);
  sqlite3_bind_double(s, 3, r->delta);
  bind_real(s, 4, r->clip_norm);
  int rc = sqlite3_step(s);
  err = rc == SQLITE_DONE ? 0 : db_error(st, rc, what);
  sqlite3_finalize(s);
  return err;
}

/* The server optimizer's state goes with the round it followed, so that a
 * restart resumes FedAdam or FedYogi with their moments, not from zero. */
static int insert_opt_state(fedc_store *st, const fedc_store_round *r,
                            const char *what) {
  sqlite3_stmt *s;
  int err = prepare(st, "INSERT INTO opt_state(round, state) VALUES(?1, ?2)", &s, 0);
  if (err) return err;
  sqlite3_bind_int64(s, 1, r->round);
  sqlite3_bind_blob64(s, 2, r->opt_state, r->opt_state_len * sizeof(float), SQLITE_STATIC);
  int rc = sqlite3_step(s);
  err = rc == SQLITE_DONE ? 0 : db_error(st, rc, what);
  sqlite3_finalize(s);
  return err;
}

/*
 * Commit round r in one transaction (see store.h). The checkpoint's hash is
 * computed before the write lock is taken; r->sha256 and r->committed_at
 * are filled only once COMMIT has returned. On any failure the transaction
 * is rolled back and the file is as it was.
 */
int fedc_store_commit_round(fedc_store *st, fedc_store_round *r,
                            const uint8_t *model, size_t len,
                            const fedc_store_update *updates,
                            int32_t n_updates) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  int err = check_commit_args(st, r, model, len, updates, n_updates);
  if (err) return err;
  char hex[65], what[48];
  sha256_hex(model, len, hex);
  double now = now_unix();
  snprintf(what, sizeof what, "commit round %d", (int)r->round);

  if ((err = tx_begin(st)) != 0) return err;
  int32_t last = 0;
  if ((err = last_round(st, &last)) != 0) goto fail;
  if (r->round <= last) {
    err = fedc_error_set(FEDC_EDUPLICATE,
                         "store %s: round %d is already committed",
                         st->path, (int)r->round);
    goto fail;
  }
  if (r->round != last + 1) {
    err = fedc_error_set(FEDC_ESTATE,
                         "store %s: cannot commit round %d: the last "
                         "committed round is %d (rounds commit in order)",
                         st->path, (int)r->round, (int)last);
    goto fail;
  }

  sqlite3_stmt *s = st->ins_round;
  sqlite3_bind_int64(s, 1, r->round);
  sqlite3_bind_int64(s, 2, r->selected);
  sqlite3_bind_int64(s, 3, r->clients);
  sqlite3_bind_int64(s, 4, r->samples);
  bind_real(s, 5, r->train_loss);
  bind_real(s, 6, r->test_loss);
  bind_real(s, 7, r->test_acc);
  bind_real(s, 8, r->secs);
  sqlite3_bind_double(s, 9, now);
  sqlite3_bind_text(s, 10, hex, 64, SQLITE_STATIC);
  if ((err = step_done(st, s, what)) != 0) goto fail;

  if ((err = insert_ckpt(st, r->round, model, len, hex, what)) != 0) goto fail;

  if ((err = insert_updates(st, r->round, what, updates, n_updates)) != 0)
    goto fail;
  if (r->epsilon > 0.0 && (err = insert_privacy(st, r, what)) != 0) goto fail;
  if (r->opt_state_len > 0 && (err = insert_opt_state(st, r, what)) != 0) goto fail;
  /* the round's audit record, chained to the last one (audit.c) */
  if ((err = fedc__audit_append(st, r, hex, updates, n_updates)) != 0) goto fail;
  if ((err = tx_commit(st, what)) != 0) goto fail;
  memcpy(r->sha256, hex, sizeof hex);
  r->committed_at = now;
  return 0;
fail:
  tx_rollback(st);
  return err;
}

/*
 * Copy checkpoint `round` out (a chunked one chunk by chunk), checking its
 * bytes against the SHA-256 that was stored with them: a file damaged behind sqlite's back is reported
 * (FEDC_ECHECKSUM) instead of resuming from a wrong model.
 */
int fedc_store_checkpoint(fedc_store *st, int32_t round, uint8_t **model,
                          size_t *len) {
  if (st == NULL || model == NULL || len == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: checkpoint without output");
  *model = NULL;
  *len = 0;
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT model, sha256 FROM checkpoints "
                        "WHERE round = ?1", &s, 0);
  if (err) return err;
  sqlite3_bind_int64(s, 1, round);
  char what[40];
  snprintf(what, sizeof what, "checkpoint %d", (int)round);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    err = fedc_error_set(FEDC_ENOTFOUND, "store %s: no checkpoint of round %d",
                         st->path, (int)round);
  } else if (rc != SQLITE_ROW) {
    err = db_error(st, rc, what);
  } else {
    const void *blob = sqlite3_column_blob(s, 0);
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    char stored[65], hex[65];
    if (blob == NULL && n > 0) err = db_error(st, SQLITE_NOMEM, what);
    if (!err) err = col_text(st, s, 1, stored, sizeof stored, what);
    uint8_t *copy = NULL;
    if (!err && n == 0) /* a chunked checkpoint (store_chunks.c) */
      err = fedc__store_chunks_read(st, round, &copy, &n);
    else if (!err && (copy = fedc_malloc(n)) == NULL)
      err = nomem(st->path);
    else if (!err)
      memcpy(copy, blob, n);
    if (!err) {
      sha256_hex(copy, n, hex);
      if (strcmp(hex, stored) != 0) {
        err = fedc_error_set(FEDC_ECHECKSUM,
                             "store %s: checkpoint of round %d has sha256 "
                             "%.16s..., %.16s... was stored with it",
                             st->path, (int)round, hex, stored);
        fedc_free(copy);
      } else {
        *model = copy;
        *len = n;
      }
    }
  }
  sqlite3_finalize(s);
  return err;
}

int fedc_store_round_set_eval(fedc_store *st, int32_t round, double test_loss,
                              double test_acc) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  sqlite3_stmt *s;
  int err = prepare(st, "UPDATE rounds SET test_loss = ?1, test_acc = ?2 "
                        "WHERE round = ?3", &s, 0);
  if (err) return err;
  bind_real(s, 1, test_loss);
  bind_real(s, 2, test_acc);
  sqlite3_bind_int64(s, 3, round);
  char missing[48];
  snprintf(missing, sizeof missing, "round %d is not committed", (int)round);
  err = update_one(st, s, "set eval", missing);
  sqlite3_finalize(s);
  return err;
}

static int read_round_row(fedc_store *st, sqlite3_stmt *s, void *dst) {
  fedc_store_round *r = dst;
  memset(r, 0, sizeof *r);
  r->round = (int32_t)sqlite3_column_int64(s, 0);
  r->selected = (int32_t)sqlite3_column_int64(s, 1);
  r->clients = (int32_t)sqlite3_column_int64(s, 2);
  r->samples = sqlite3_column_int64(s, 3);
  r->train_loss = col_real(s, 4);
  r->test_loss = col_real(s, 5);
  r->test_acc = col_real(s, 6);
  r->secs = col_real(s, 7);
  r->committed_at = col_real(s, 8);
  return col_text(st, s, 9, r->sha256, sizeof r->sha256, "rounds");
}

int fedc_store_rounds(fedc_store *st, fedc_store_round **out, int32_t *n) {
  if (st == NULL || out == NULL || n == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: rounds without output");
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT " ROUND_COLS " FROM rounds ORDER BY round",
                    &s, 0);
  if (err) return err;
  err = read_rows(st, s, sizeof **out, read_round_row, "rounds", (void **)out, n);
  if (err) return err;
  /* the privacy ledger, round by round (NAN where a round has none) */
  for (int32_t i = 0; i < *n; i++)
    (*out)[i].epsilon = (*out)[i].delta = (*out)[i].clip_norm = NAN;
  if ((err = prepare(st, "SELECT round, epsilon, delta, clip_norm FROM privacy "
                         "ORDER BY round", &s, 0)) != 0)
    return err;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t r = sqlite3_column_int64(s, 0);
    for (int32_t i = 0; i < *n; i++) {
      if ((*out)[i].round != r) continue;
      (*out)[i].epsilon = sqlite3_column_double(s, 1);
      (*out)[i].delta = sqlite3_column_double(s, 2);
      (*out)[i].clip_norm = sqlite3_column_type(s, 3) == SQLITE_NULL
                                ? NAN : sqlite3_column_double(s, 3);
    }
  }
  err = rc == SQLITE_DONE ? 0 : db_error(st, rc, "privacy ledger");
  sqlite3_finalize(s);
  return err;
}

static int read_update_row(fedc_store *st, sqlite3_stmt *s, void *dst) {
  fedc_store_update *u = dst;
  memset(u, 0, sizeof *u);
  u->client_id = (int32_t)sqlite3_column_int64(s, 0);
  u->num_samples = sqlite3_column_int64(s, 1);
  u->train_loss = col_real(s, 2);
  u->received_at = col_real(s, 4);
  return col_text(st, s, 3, u->sha256, sizeof u->sha256, "updates");
}

/* The updates of a committed round, by client id; FEDC_ENOTFOUND for a
 * round that is not committed (an empty list means a round without
 * updates). Both reads run in one read transaction. */
int fedc_store_round_updates(fedc_store *st, int32_t round,
                             fedc_store_update **out, int32_t *n) {
  if (st == NULL || out == NULL || n == NULL)
    return fedc_error_set(FEDC_EINVAL, "store: round_updates without output");
  *out = NULL;
  *n = 0;
  int err = exec(st, "BEGIN", "round updates");
  if (err) return err;
  int32_t last = 0;
  if ((err = last_round(st, &last)) != 0) goto out;
  if (round < 1 || round > last) {
    err = fedc_error_set(FEDC_ENOTFOUND, "store %s: round %d is not committed",
                         st->path, (int)round);
    goto out;
  }
  sqlite3_stmt *s;
  if ((err = prepare(st, "SELECT " UPDATE_COLS " FROM updates "
                         "WHERE round = ?1 ORDER BY client_id", &s, 0)))
    goto out;
  sqlite3_bind_int64(s, 1, round);
  err = read_rows(st, s, sizeof **out, read_update_row, "round updates",
                  (void **)out, n);
out:
  tx_rollback(st); /* a read transaction: nothing to keep */
  return err;
}

/* ---- checks ------------------------------------------------------------- */

/* Append the first column of every row of sql to rep; count the rows that
 * are not "ok". */
static int collect_report(fedc_store *st, const char *sql, char *rep,
                          size_t cap, int *bad) {
  sqlite3_stmt *s;
  int err = prepare(st, sql, &s, 0);
  if (err) return err;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *line = (const char *)sqlite3_column_text(s, 0);
    if (line && strcmp(line, "ok") == 0) continue;
    size_t used = strlen(rep);
    if (sqlite3_column_count(s) > 1) /* foreign_key_check: table, rowid.. */
      snprintf(rep + used, cap - used, "%sforeign key violation in %s",
               used ? "; " : "", line ? line : "?");
    else
      snprintf(rep + used, cap - used, "%s%s", used ? "; " : "",
               line ? line : "?");
    (*bad)++;
  }
  if (rc != SQLITE_DONE) err = db_error(st, rc, sql);
  sqlite3_finalize(s);
  return err;
}

int fedc_store_integrity_check(fedc_store *st) {
  if (st == NULL) return fedc_error_set(FEDC_EINVAL, "store: NULL store");
  char rep[384] = "";
  int bad = 0;
  int err = collect_report(st, "PRAGMA integrity_check", rep, sizeof rep,
                           &bad);
  if (!err)
    err = collect_report(st, "PRAGMA foreign_key_check", rep, sizeof rep,
                         &bad);
  if (err) return err;
  if (bad)
    return fedc_error_set(FEDC_EFORMAT, "store %s: integrity check: %s",
                          st->path, rep);
  return 0;
}

/* A named 64-bit secret (see store.h): read it, or draw and keep it. */
int fedc_store_secret(fedc_store *st, const char *name, uint64_t *value) {
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT value FROM secrets WHERE name = ?1", &s, 0);
  if (err) return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *value = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return 0;
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return db_error(st, rc, "read a secret");
  uint64_t v;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
    return fedc_error_set(FEDC_EIO, "store %s: no randomness from the system", st->path);
  if ((err = prepare(st, "INSERT INTO secrets(name, value) VALUES(?1, ?2)", &s, 0)) != 0)
    return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, (int64_t)v);
  rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return db_error(st, rc, "keep a secret");
  *value = v;
  return 0;
}

int fedc_store_opt_state(fedc_store *st, int32_t round, float **out, size_t *len) {
  *out = NULL;
  *len = 0;
  sqlite3_stmt *s;
  int err = prepare(st, "SELECT state FROM opt_state WHERE round = ?1", &s, 0);
  if (err) return err;
  sqlite3_bind_int64(s, 1, round);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    size_t bytes = (size_t)sqlite3_column_bytes(s, 0);
    if (bytes % sizeof(float) != 0) {
      err = fedc_error_set(FEDC_EFORMAT, "store %s: optimizer state of round %d "
                           "has %zu bytes", st->path, (int)round, bytes);
    } else if (bytes > 0) {
      *out = fedc_malloc(bytes);
      if (*out == NULL) err = fedc_error_set(FEDC_ENOMEM, "store: out of memory");
      else {
        memcpy(*out, sqlite3_column_blob(s, 0), bytes);
        *len = bytes / sizeof(float);
      }
    }
  } else if (rc != SQLITE_DONE) {
    err = db_error(st, rc, "read the optimizer state");
  }
  sqlite3_finalize(s);
  return err;
}

/* ---- named texts of the job (the federation's statistics) ----------------- */

#define TEXTS_SQL                                                            \
  "CREATE TABLE IF NOT EXISTS job_texts(name TEXT PRIMARY KEY NOT NULL, "    \
  "value TEXT NOT NULL)"

/* Keep a named text (see store.h), replacing an older one, in one
 * transaction: it is there after a crash or not at all. */
int fedc_store_put_text(fedc_store *st, const char *name, const char *value) {
  int err = exec(st, TEXTS_SQL, "create the job texts table");
  if (err) return err;
  sqlite3_stmt *s;
  if ((err = prepare(st, "INSERT OR REPLACE INTO job_texts(name, value) VALUES(?1, ?2)", &s,
                     0)) != 0)
    return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : db_error(st, rc, "keep a job text");
}

/* Read a named text into a fedc_malloc'd *value, or NULL when absent. */
int fedc_store_get_text(fedc_store *st, const char *name, char **value) {
  *value = NULL;
  int err = exec(st, TEXTS_SQL, "create the job texts table");
  if (err) return err;
  sqlite3_stmt *s;
  if ((err = prepare(st, "SELECT value FROM job_texts WHERE name = ?1", &s, 0)) != 0) return err;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(s, 0);
    *value = fedc_strdup(t ? t : "");
    sqlite3_finalize(s);
    return *value ? 0 : fedc_error_set(FEDC_ENOMEM, "store: out of memory");
  }
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : db_error(st, rc, "read a job text");
}

/* ---- federated evaluation (eval_rounds.c) -------------------------------- */

int fedc_store_eval_put(fedc_store *st, const fedc_store_eval *e) {
  sqlite3_stmt *s;
  int err = prepare(st,
                    "INSERT OR REPLACE INTO evals(round, asked, sites, samples, value, metrics, "
                    "report, per_site, score) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    &s, 0);
  if (err) return err;
  sqlite3_bind_int64(s, 1, e->round);
  sqlite3_bind_int64(s, 2, e->asked);
  sqlite3_bind_int64(s, 3, e->sites);
  sqlite3_bind_int64(s, 4, e->samples);
  bind_real(s, 5, e->value);
  sqlite3_bind_text(s, 6, e->metrics, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 7, e->report, -1, SQLITE_STATIC);
  if (e->per_site) sqlite3_bind_text(s, 8, e->per_site, -1, SQLITE_STATIC);
  bind_real(s, 9, e->sign * e->value);
  int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : db_error(st, rc, "store an evaluation");
}

/* A text column as fedc memory ("" for NULL); NULL when out of memory. */
static char *col_dup(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return fedc_strdup(t ? (const char *)t : "");
}

int fedc_store_evals(fedc_store *st, fedc_store_eval **out, int32_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s;
  int err = prepare(st,
                    "SELECT round, asked, sites, samples, value, metrics, report, per_site "
                    "FROM evals ORDER BY round",
                    &s, 0);
  if (err) return err;
  int32_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      int32_t nc = cap ? 2 * cap : 16;
      fedc_store_eval *g = fedc_realloc(*out, (size_t)nc * sizeof *g);
      if (g == NULL) {
        err = fedc_error_set(FEDC_ENOMEM, "store: out of memory");
        break;
      }
      *out = g;
      cap = nc;
    }
    fedc_store_eval *e = &(*out)[(*n)++];
    e->round = (int32_t)sqlite3_column_int64(s, 0);
    e->asked = (int32_t)sqlite3_column_int64(s, 1);
    e->sites = (int32_t)sqlite3_column_int64(s, 2);
    e->samples = sqlite3_column_int64(s, 3);
    e->value = col_real(s, 4);
    e->metrics = col_dup(s, 5);
    e->report = col_dup(s, 6);
    e->per_site = sqlite3_column_type(s, 7) == SQLITE_NULL ? NULL : col_dup(s, 7);
    if (e->metrics == NULL || e->report == NULL) {
      err = fedc_error_set(FEDC_ENOMEM, "store: out of memory");
      break;
    }
  }
  if (err == 0 && rc != SQLITE_DONE) err = db_error(st, rc, "read the evaluations");
  sqlite3_finalize(s);
  if (err) {
    fedc_store_evals_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return err;
}

int fedc_store_eval_best(fedc_store *st, int32_t *round) {
  *round = 0;
  sqlite3_stmt *s;
  int err = prepare(st,
                    "SELECT round FROM evals WHERE score IS NOT NULL "
                    "ORDER BY score DESC, round ASC LIMIT 1",
                    &s, 0);
  if (err) return err;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *round = (int32_t)sqlite3_column_int64(s, 0);
  else if (rc != SQLITE_DONE) err = db_error(st, rc, "find the best round");
  sqlite3_finalize(s);
  if (err == 0 && *round == 0)
    err = fedc_error_set(FEDC_ENOTFOUND, "store %s: no round has been evaluated ([eval] every)",
                         st->path);
  return err;
}

void fedc_store_evals_free(fedc_store_eval *e, int32_t n) {
  for (int32_t i = 0; e && i < n; i++) {
    fedc_free(e[i].metrics);
    fedc_free(e[i].report);
    fedc_free(e[i].per_site);
  }
  fedc_free(e);
}
