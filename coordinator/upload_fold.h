/*
 * upload_fold.h - a chunked upload folded as its bytes arrive (docs/
 * protocol.md, "Chunked uploads"; upload_fold.c). Once an upload's header
 * is in and passes its checks, each accepted chunk's complete float values
 * are checked and folded into the open round's FedAvg sums; the completed
 * update is then checked whole as before and only counted (its samples),
 * or, refused or abandoned for any reason, its folded part is read again
 * from its spool file and taken out, exactly. Loop thread, chunk workers,
 * update workers and the commit share c->mu for every touch of the sums.
 */
#ifndef FEDC_COORD_UPLOAD_FOLD_H
#define FEDC_COORD_UPLOAD_FOLD_H

#include <stddef.h>
#include <stdint.h>

#include "coord_internal.h"
#include "wire/safetensors.h"
#include "upload_ledger.h"

/* One upload's early folds. */
typedef struct fedc_upload_fold {
  struct fedc_upload_fold *prev, *next; /* the context's list, under c->mu */
  int32_t client_id, round;
  uint64_t gen;       /* the engine's round generation folded into */
  uint64_t n_samples; /* the header's num_samples: the folds' weight */
  uint64_t data_off;  /* the spool file's offset of float value 0 */
  size_t n;           /* float values (the model's) */
  size_t folded;      /* values [0, folded) are in the sums */
  int fd;             /* the spool file's own descriptor (read after the upload is gone;
                       * -1 once the engine keeps it: fedc__fold_take) */
  uint64_t data_at;   /* the spool file's offset of the data section */
  uint64_t hashed;    /* the data section's SHA-256 runs over [data_at, hashed) */
  fedc__sha256_ctx h;
  int hash_on;        /* h begun (and not ended) */
  int voided;         /* no more folds: the update is folded whole at completion */
  int counted;        /* the update is counted in its round: its folds are its own */
} fedc_upload_fold;

/* The early folds of a coordinator (in upload_api.c's uploads): the list
 * of live ones and one slice of scratch, all under c->mu. */
typedef struct fedc_fold_ctx {
  fedc_upload_fold *head;
  float *w, *y; /* FOLD_SLICE floats each, made on first use */
  int off;      /* FEDC_UPLOAD_EARLY_FOLD=0 in the environment: fold at completion */
  uint64_t folded_bytes, undone_bytes; /* for the log and the tests */
} fedc_fold_ctx;

/* Set the context up (loop thread, once): whether early folds are on. */
void fedc__fold_init(fedc_fold_ctx *fx);

/*
 * After chunk bytes were appended to u (a chunk worker, u busy, without
 * c->mu): the first time the header is all in, check it (container,
 * names, shapes, F32 values back to back, round and num_samples, a job and
 * round that fold weight by weight) and begin u->fold, or give up early
 * folds for u (u->fold_state -1: the update is folded at completion as
 * before); then fold every complete value the spool holds that is not
 * folded yet. A bad value or a failed read takes the folds out and voids
 * u->fold. Never fails: early folds are only ever an optimisation.
 */
void fedc__fold_chunk(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload *u);

/*
 * The completed update (update worker, without c->mu), body its len bytes:
 * 1 with *f its decoded header when every value is folded and the data
 * section's SHA-256, hashed as the chunks came, is its "sha256" metadata's
 * (then the values need not be decoded: each was checked as it was
 * folded); else 0 (*f NULL) and the update is decoded and checked whole.
 * r may be NULL (0).
 */
int fedc__fold_whole(fedc_coord *c, fedc_upload_fold *r, const uint8_t *body, size_t len,
                     fedc_st_file **f);

/*
 * The completed update is checked (update worker, under c->mu): 1 with *rc
 * the engine's answer when r's folds are the whole update (round, client
 * and sample count as checked) and it was counted, or, after whole
 * (fedc__fold_whole said 1), when the engine refused it (its folds taken
 * out); 0 after taking r's folds out, for the caller's usual fold. r may
 * be NULL (0). Once counted, the engine may keep r's spool descriptor
 * (r->fd then -1): under the share cap the prepare reads the values of an
 * update it cuts again (fedc__engine_submit_folded).
 */
int fedc__fold_take(fedc_coord *c, fedc_upload_fold *r, int whole, int32_t round, int32_t client,
                    uint64_t n_samples, double loss, int *rc);

/* Before a prepare reads the sums (commit worker, under c->mu): every
 * upload's folds that are not counted are taken out and the uploads
 * voided, so the round's sums are its counted updates'. */
void fedc__fold_settle(fedc_coord *c, fedc_fold_ctx *fx);

/* The upload is gone (loop thread): its folds are taken out (on a worker
 * when there are any) and r freed. With stopping set, r is only freed. */
void fedc__fold_release(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload_fold *r, int stopping);

/* Free the scratch (the list is empty by then). */
void fedc__fold_free(fedc_fold_ctx *fx);

#endif
