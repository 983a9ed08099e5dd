/*
 * upload_client.h - the client's chunked, resumable upload of a large
 * update (docs/protocol.md, "Chunked uploads"), and the copy of the update
 * kept in [client] state_dir until the coordinator has answered it, so
 * that a restarted client resumes instead of training again. client.c
 * calls it for updates of FEDC_UPLOAD_CHUNKED_MIN bytes or more; the
 * transport comes in as a callback (client.c's call(), which retries a
 * cut connection and 5xx answers), as for secagg_client.h.
 */
#ifndef FEDC_CLIENT_UPLOAD_CLIENT_H
#define FEDC_CLIENT_UPLOAD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "http_curl.h"

/* Updates this large or larger go in chunks (smaller ones in one POST
 * /v1/update); FEDC_UPLOAD_CHUNKED_MIN in the environment (bytes) lowers
 * or raises it, for the tests. */
#define FEDC_UPLOAD_CHUNKED_MIN ((size_t)8 << 20)

typedef struct fedc_upload_io {
  void *ctx;
  /* one request, retried by the callee across cuts and 5xx; body "" and
   * len 0 for an empty POST, NULL for a GET */
  int (*call)(void *ctx, const char *what, const char *path, const char *ctype, const void *body,
              size_t len, double timeout_s, fedc_http_response *resp);
} fedc_upload_io;

/* The threshold in force (FEDC_UPLOAD_CHUNKED_MIN or the environment's). */
size_t fedc__client_upload_threshold(void);

/*
 * Send buf (len bytes, round's encoded update) in chunks: announce it,
 * learn how many bytes the coordinator holds already, send the rest chunk
 * by chunk (each with its SHA-256), re-learning the offset when the
 * coordinator says a chunk does not follow. Progress goes through
 * transfer_progress.h. *resp gets the answer to hand on as POST
 * /v1/update's: the update's acknowledgement, or a refusal (any status).
 * Returns the transport's error (resp then empty), else 0. *sent (if not
 * NULL) gets the bytes of chunk bodies this call sent.
 */
int fedc__client_upload_chunked(const fedc_upload_io *io, int32_t round, const uint8_t *buf,
                                size_t len, fedc_http_response *resp, uint64_t *sent);

/* Keep buf as job's pending update of round (trained from the model with
 * SHA-256 model_sha) in state_dir; nothing when state_dir is empty. 0, or
 * an error (logged by the caller; the upload goes on without it). */
int fedc__client_pending_keep(const char *state_dir, const char *job, int32_t round,
                              const char *model_sha, const uint8_t *buf, size_t len);
/* The pending update of job for round and model_sha, if state_dir has
 * one: 1 with *buf (fedc_free it) and *len, else 0. */
int fedc__client_pending_load(const char *state_dir, const char *job, int32_t round,
                              const char *model_sha, uint8_t **buf, size_t *len);
/* Forget job's pending update (answered, or another round's). */
void fedc__client_pending_drop(const char *state_dir, const char *job);

#endif
