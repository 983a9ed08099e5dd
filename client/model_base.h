/*
 * model_base.h - the model a client already holds, for downloads as
 * deltas (docs/protocol.md, "Model deltas"; wire/model_delta.h).
 *
 * After a round's model is downloaded and checked (its container's sha256
 * is the task's model_sha256), fedc-client keeps its body, as sent, with
 * the round it was served for and the job. The next download of the same
 * job asks GET /v1/model/<r>?base=<that round>; when the answer is a delta
 * (its magic, and it names that base and r), it is rebuilt here into the
 * whole body, whose SHA-256 the delta names and the decoder checks. Any
 * failure leaves the answer unusable and the caller fetches the whole
 * model without ?base=. Only bodies under FEDC_MODEL_BASE_MAX are kept
 * in memory; a larger one, downloaded into [client] state_dir
 * (model_download.h), stays the base as the file it is there
 * (model-<job id>.safetensors: no second copy in memory), and its deltas
 * are downloaded into a file and rebuilt from it in slices
 * (model_download.h, model_rebuild.h); without a state_dir a larger model
 * is fetched whole each time and never held twice.
 *
 *     fedc_model_base b = {0};
 *     fedc__model_base_query(&b, job, round, q, sizeof q);  // "?base=4" or ""
 *     ... GET; fedc__model_base_apply(&b, job, round, &body, &len, max);
 *     ... check it; fedc__model_base_keep(&b, job, round, body, len);
 *     fedc__model_base_clear(&b);
 *
 * One thread.
 */
#ifndef FEDC_CLIENT_MODEL_BASE_H
#define FEDC_CLIENT_MODEL_BASE_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_MODEL_BASE_MAX ((size_t)16 << 20)

typedef struct fedc_model_base {
  uint8_t *bytes; /* the body as sent, or NULL */
  size_t len;
  int32_t round; /* the round it was served for (GET /v1/model/<round>) */
  char job[128];
  uint64_t deltas, fulls; /* downloads rebuilt from a delta, sent whole */
  char file[512];         /* a base that is a model file in state_dir, or "" */
  uint64_t file_len;
  char pending[512]; /* the file the last download left its model in, or "" */
  uint64_t pending_len;
} fedc_model_base;

/* The file the last download wrote its model to (len bytes), for keep:
 * a checked model of FEDC_MODEL_BASE_MAX or more stays the base as that
 * file. rebuilt: it came from a delta (counted). */
void fedc__model_base_downloaded(fedc_model_base *b, const char *path, uint64_t len, int rebuilt);

/* "?base=<b>" into q when b holds a model of job from a round before
 * round, else "". */
void fedc__model_base_query(const fedc_model_base *b, const char *job, int32_t round, char *q,
                            size_t n);
/*
 * If *body is a delta: rebuild the model from it and the base, replacing
 * *body and *len (the delta is freed). 0: *body is now a whole model (it
 * was one, or was rebuilt); 1 when it was a delta that could not be used
 * (logged; *body unchanged: fetch the whole model); FEDC_ENOMEM.
 */
int fedc__model_base_apply(fedc_model_base *b, const char *job, int32_t round, uint8_t **body,
                           size_t *len, size_t max);
/* Keep a copy of a checked model's body (under FEDC_MODEL_BASE_MAX), or,
 * for a larger one, the file it was downloaded to (see
 * fedc__model_base_downloaded); else (or without memory) drop the base. */
void fedc__model_base_keep(fedc_model_base *b, const char *job, int32_t round, const uint8_t *body,
                           size_t len);
void fedc__model_base_clear(fedc_model_base *b);

#endif
