/*
 * model_download.h - a model downloaded into a file that survives a cut.
 *
 * With [client] state_dir set, GET /v1/model/<round> writes its body to
 * STATE_DIR/model-<job id>.part as it arrives (docs/protocol.md, "Model
 * downloads"). The answer's ETag is kept beside it (.part.etag). When an
 * attempt is cut, the next one asks for "Range: bytes=<bytes on disk>-"
 * with "If-Range: <ETag>": a 206 continues the file; a 200 (the model
 * changed, or the server ignored the range) starts it over. Once all of
 * it is there, its SHA-256 is checked against X-Fedc-SHA256 (the
 * coordinator hashes the body once per round), the file is renamed to
 * model-<job id>.safetensors and read into memory for the trainer. The
 * transfer's progress is logged (transfer_progress.h). A whole answer
 * under FEDC_MODEL_FILE_MIN_BYTES is kept in memory instead, as without a
 * state_dir (a small model is quicker fetched again than resumed), and
 * leaves nothing in state_dir.
 *
 *     fedc_model_dl d;
 *     fedc__model_dl_open(&d, state_dir, job_id, round);
 *     for each attempt: fedc__model_dl_attempt(&d, &call, &resp); GET ...
 *     fedc__model_dl_finish(&d, &resp, &bytes, &len);
 *     fedc__model_dl_close(&d);
 *
 * One thread; errors are FEDC_E* codes with fedc_error_set's message.
 */
#ifndef FEDC_CLIENT_MODEL_DOWNLOAD_H
#define FEDC_CLIENT_MODEL_DOWNLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "http_curl.h"
#include "transfer_progress.h"

#define FEDC_MODEL_FILE_MIN_BYTES ((uint64_t)16 << 20)

typedef struct fedc_model_dl {
  char part[512], tag[520], final[512];
  int fd;
  uint64_t have;     /* bytes in the part file */
  uint64_t total;    /* the body's size once an answer said it, else 0 */
  uint64_t received; /* body bytes received by every attempt together */
  uint64_t max;      /* refuse a body larger than this */
  char etag[80];     /* the ETag the part file's bytes belong to, or "" */
  char range[64], if_range[100];
  const char *headers[3];
  int first;    /* the next sink call is the attempt's first */
  int prog_on;  /* progress started and not ended */
  int resumes;  /* attempts that asked for a range */
  uint8_t *mem; /* a small model's body, in memory (no file), or NULL */
  int32_t round;
  /* a download asked for as a delta (fedc__model_dl_open_delta): */
  int delta;         /* 1: the part file is model-<job id>.delta.part */
  char base[512];    /* the model file the client holds (the delta's base) */
  char scratch[512]; /* model-<job id>.part: the model rebuilt from the delta */
  int32_t base_round;
  int rebuilt;                    /* finish rebuilt the model from a delta */
  int in_file;                    /* finish returned a model that is in `final` */
  const fedc_http_response *resp; /* the attempt's answer, as it arrives */
  fedc_progress prog;
} fedc_model_dl;

/* Open (or create) the part file, keeping its bytes only if their ETag was
 * kept too. FEDC_EIO (the folder or file cannot be made, named). */
int fedc__model_dl_open(fedc_model_dl *d, const char *state_dir, const char *job_id, int32_t round,
                        uint64_t max);
/*
 * The same for a download asked for as a delta from the model file `base`
 * (round base_round, docs/protocol.md "Model deltas"): the answer goes to
 * STATE_DIR/model-<job id>.delta.part (whatever its size, resumable as a
 * model's), and finish rebuilds the model from it and the base, in slices
 * (model_rebuild.h), into model-<job id>.part, renamed over the base once
 * its SHA-256 checks. An answer that is the whole model (the coordinator
 * had no delta for that base) is taken as it is.
 */
int fedc__model_dl_open_delta(fedc_model_dl *d, const char *state_dir, const char *job_id,
                              int32_t round, uint64_t max, const char *base, int32_t base_round);
/* Before each attempt: the Range and If-Range headers for the bytes on
 * disk, and the sink that writes the answer's body into the file. */
void fedc__model_dl_attempt(fedc_model_dl *d, fedc_http_call *call, const fedc_http_response *resp);
/* Drop the bytes on disk (after a 416, or a body that failed its check). */
void fedc__model_dl_restart(fedc_model_dl *d);
/*
 * After a 200 or 206 that completed: check that the file holds the whole
 * body and that its SHA-256 is resp->sha256 (when the answer named one),
 * rename it, and read it into *bytes (fedc_malloc'd, *len bytes).
 * FEDC_ECHECKSUM (the bytes are dropped: start over), FEDC_EIO, FEDC_ENOMEM;
 * FEDC_MODEL_DL_DELTA_BAD after a delta that could not be used (logged;
 * its file dropped): download the whole model.
 */
#define FEDC_MODEL_DL_DELTA_BAD 1
int fedc__model_dl_finish(fedc_model_dl *d, const fedc_http_response *resp, uint8_t **bytes,
                          size_t *len);
void fedc__model_dl_close(fedc_model_dl *d);

#endif
