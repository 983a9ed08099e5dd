/*
 * store.h - the coordinator's durable state in one sqlite3 file.
 *
 * WAL mode with synchronous=FULL: a committed transaction survives kill -9
 * and power loss. The file holds the job's identity, the clients (by
 * certificate fingerprint, with allow/revoke status), every committed round
 * with its metrics, the metadata of the updates that went into it, and a
 * checkpoint of the global model after each round (safetensors bytes, with
 * their SHA-256). A round's commit is one transaction: after a crash the
 * coordinator finds either all of a round or none of it.
 *
 * sqlite errors are translated at this edge: FEDC_EIO with sqlite's message
 * (disk full, read-only file, I/O error, corrupt file) naming the store's
 * path. A store is used by one thread at a time (the coordinator serializes
 * its calls).
 */
#ifndef FEDC_STORE_H
#define FEDC_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_store fedc_store;

typedef enum { FEDC_CLIENT_ALLOWED = 0, FEDC_CLIENT_REVOKED = 1 } fedc_client_status;

typedef struct fedc_store_client {
  int32_t id;
  char fingerprint[65];
  char name[128];
  fedc_client_status status;
  double created_at; /* unix seconds */
  int64_t updates;   /* updates counted into committed rounds */
} fedc_store_client;

typedef struct fedc_store_round {
  int32_t round;
  int32_t selected, clients;
  int64_t samples;
  double train_loss;
  double test_loss, test_acc; /* NAN when not evaluated (stored as NULL) */
  double secs;
  double committed_at; /* unix seconds; set by the store */
  char sha256[65];     /* of the checkpoint's bytes */
  /* the privacy ledger: written when epsilon > 0, read back as NAN when the
   * round has no row (a job without differential privacy) */
  double epsilon, delta, clip_norm;
  /* the server optimizer's state after this round (written when
   * opt_state_len > 0; not read back by fedc_store_rounds) */
  const float *opt_state;
  size_t opt_state_len;
  /* the job's strategy and privacy parameters as a JSON object, for the
   * round's audit record (audit.h; NULL = none recorded) */
  const char *audit_params;
} fedc_store_round;

typedef struct fedc_store_update {
  int32_t client_id;
  int64_t num_samples;
  double train_loss;
  char sha256[65]; /* of the update's data section */
  double received_at;
} fedc_store_update;

/* Open or create (schema, WAL, synchronous=FULL). FEDC_EIO naming the path
 * and sqlite's reason; FEDC_EFORMAT if the file is not a fedc store of a
 * known schema version. */
int fedc_store_open(const char *path, fedc_store **out);
void fedc_store_close(fedc_store *st);
/*
 * The running daemon's hold on its store: an exclusive lock (flock on the
 * file, taken without waiting; the subcommands `allow`, `export`... do not
 * take it, so they still work beside the daemon), and from then on a check
 * before every write transaction that the write-ahead log <path>-wal is
 * still the file sqlite opened (same device and inode). A second
 * coordinator on the same file gets FEDC_EIO here, at start; a WAL
 * deleted or replaced under the daemon makes every later write fail with
 * FEDC_EIO (a round committed into an unlinked WAL would be lost at the
 * next kill -9), and the daemon stops on its store failure.
 */
int fedc_store_lock(fedc_store *st);

/*
 * Bind the store to a job. The first call on a new store records job_spec
 * (a JSON text describing the model shape and rounds) and a new random job
 * id; later calls must pass the same job_spec, else FEDC_ECONFIG ("store X
 * holds job Y with a different spec: ..."). job_id gets 32 hex digits.
 */
int fedc_store_job_bind(fedc_store *st, const char *job_spec, char job_id[33]);

/* Add or re-allow a fingerprint (64 lowercase hex; FEDC_EINVAL otherwise). */
int fedc_store_client_allow(fedc_store *st, const char *fingerprint,
                            const char *name, int32_t *id);
/* FEDC_ENOTFOUND if the fingerprint is unknown. */
int fedc_store_client_revoke(fedc_store *st, const char *fingerprint);
int fedc_store_client_find(fedc_store *st, const char *fingerprint,
                           fedc_store_client *out);
int fedc_store_client_set_name(fedc_store *st, int32_t id, const char *name);
/* Does a client other than the one with this fingerprint have this name?
 * *taken 1 or 0. */
int fedc_store_client_name_taken(fedc_store *st, const char *name, const char *fingerprint,
                                 int *taken);
/* All clients by id; *out freed with fedc_free. */
int fedc_store_client_list(fedc_store *st, fedc_store_client **out,
                           int32_t *n);

/* The initial model (round 0); a no-op if one is already stored with the
 * same bytes, FEDC_ESTATE if different bytes are stored. */
int fedc_store_put_initial(fedc_store *st, const uint8_t *model, size_t len);

/*
 * Commit round r: its row, the checkpoint (model bytes, whose SHA-256 goes
 * in r->sha256), the update rows, and the clients' update counts, in one
 * transaction. FEDC_EDUPLICATE if round r is already committed, FEDC_ESTATE
 * if round r - 1 is not (rounds commit in order); nothing is written then.
 */
int fedc_store_commit_round(fedc_store *st, fedc_store_round *r,
                            const uint8_t *model, size_t len,
                            const fedc_store_update *updates,
                            int32_t n_updates);
/* The last committed round (0 if none). */
int fedc_store_last_round(fedc_store *st, int32_t *round);
/* Model bytes after round r (0 = initial); *model freed with fedc_free. */
int fedc_store_checkpoint(fedc_store *st, int32_t round, uint8_t **model,
                          size_t *len);
/* Attach test metrics to a committed round. */
int fedc_store_round_set_eval(fedc_store *st, int32_t round, double test_loss,
                              double test_acc);
/* Committed rounds in order; *out freed with fedc_free. */
int fedc_store_rounds(fedc_store *st, fedc_store_round **out, int32_t *n);
/* Updates of round r; *out freed with fedc_free. */
int fedc_store_round_updates(fedc_store *st, int32_t round,
                             fedc_store_update **out, int32_t *n);
/*
 * A 64-bit secret of the job, named (e.g. "dp_seed"): drawn from the
 * operating system's random source on first use and kept in the store, so
 * that it survives restarts. It never leaves the coordinator.
 */
int fedc_store_secret(fedc_store *st, const char *name, uint64_t *value);

/* Named texts kept with the job (the federation's statistics, "stats"):
 * put replaces, durably; get gives a fedc_malloc'd copy, or NULL when the
 * name was never put. Errors: FEDC_EIO (sqlite), FEDC_ENOMEM. */
int fedc_store_put_text(fedc_store *st, const char *name, const char *value);
int fedc_store_get_text(fedc_store *st, const char *name, char **value);

/* The server optimizer's state stored with round r (*out freed with
 * fedc_free; *len 0 and *out NULL when the round has none). */
int fedc_store_opt_state(fedc_store *st, int32_t round, float **out, size_t *len);

/* A committed round's federated evaluation: how many clients were asked
 * and reported, their samples, the selection metric's value (NAN when it
 * does not apply), the metrics and the merged report as JSON (eval_report.h)
 * and, when the job shows them, each site's metrics (else NULL). */
typedef struct fedc_store_eval {
  int32_t round, asked, sites;
  int64_t samples;
  double value;
  int sign; /* +1: higher value is better, -1: lower ([eval] select "-mse") */
  char *metrics, *report, *per_site;
} fedc_store_eval;

/* Write (or replace) round e->round's evaluation. FEDC_EIO, FEDC_ENOMEM. */
int fedc_store_eval_put(fedc_store *st, const fedc_store_eval *e);
/* Every stored evaluation by round; free with fedc_store_evals_free. */
int fedc_store_evals(fedc_store *st, fedc_store_eval **out, int32_t *n);
void fedc_store_evals_free(fedc_store_eval *e, int32_t n);
/* The best evaluated round by its selection metric (the earliest of
 * equals). FEDC_ENOTFOUND when no round has a value. */
int fedc_store_eval_best(fedc_store *st, int32_t *round);

/* PRAGMA integrity_check: 0 when "ok", FEDC_EFORMAT with the report else. */
int fedc_store_integrity_check(fedc_store *st);

/*
 * For the store's companion files (audit.c, certs.c), which keep their own
 * tables in the same file: the connection, the path, and the translation
 * of a sqlite failure (as every store function does it). Same thread rules.
 */
struct sqlite3 *fedc__store_db(fedc_store *st);
const char *fedc__store_path(const fedc_store *st);
int fedc__store_db_error(fedc_store *st, int rc, const char *what);
/* store_chunks.c: a checkpoint over fedc__store_chunk_above() bytes is kept
 * as numbered chunk rows (checkpoint_chunks) beside an empty blob in its
 * checkpoints row; written inside the caller's transaction, read whole. */
size_t fedc__store_chunk_above(void);
int fedc__store_chunks_write(fedc_store *st, int32_t round, const uint8_t *model,
                             size_t len, const char *what);
int fedc__store_chunks_len(fedc_store *st, int32_t round, int64_t *len);
int fedc__store_chunks_read(fedc_store *st, int32_t round, uint8_t **out, size_t *len);
/* audit.c: write round r's audit record inside the commit's transaction
 * (result_sha: the checkpoint's SHA-256, hex). */
int fedc__audit_append(fedc_store *st, const fedc_store_round *r, const char *result_sha,
                       const fedc_store_update *updates, int32_t n_updates);

#endif
