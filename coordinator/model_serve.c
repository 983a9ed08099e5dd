/*
 * model_serve.c - the model every download sends from.
 *
 * The encoded start model of the current round is one shared body
 * (http_body.h): made and hashed on the worker that encoded it, handed to
 * the loop thread, and sent by every connection that asks for it, each
 * with its own reference and cursor, with Range and If-Range honoured
 * (http_range.h). So N clients downloading a model of M bytes at once cost
 * the coordinator M, not N * M, plus a few hundred KiB per connection; a
 * download still running when the next round commits keeps its model
 * alive until it ends.
 *
 * Model deltas ([server] model_deltas, docs/compression.md): when the
 * commit worker encodes round r's start model it also encodes it as a
 * lossless delta from round r-1's (wire/model_delta.h), once, and hashes
 * it; a client that asks GET /v1/model/<r>?base=<r-1> is sent that delta
 * from the same kind of shared body, any other base the whole model. It
 * costs the delta's bytes (at most the model's) and one pass over both
 * models at commit; large-model mode ([server] spill_above_mb) makes its
 * deltas in slices into a file instead (large_delta.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "coord_internal.h"
#include "http_range.h"
#include "wire/model_delta.h"

int fedc__coord_model_wrap(uint8_t **bytes, size_t len, fedc_http_body **out) {
  int rc = fedc_http_body_new(*bytes, len, out);
  *bytes = rc == 0 ? (uint8_t *)fedc_http_body_data(*out) : NULL;
  return rc;
}

void fedc__coord_model_set(fedc_coord *c, fedc_http_body *body, const char sha[65]) {
  fedc_http_body_unref(c->model_body);
  fedc_http_body_unref(c->delta_body); /* made against the model replaced */
  c->delta_body = NULL;
  c->model_body = body;
  c->model_bytes = body ? (uint8_t *)fedc_http_body_data(body) : NULL;
  c->model_len = body ? fedc_http_body_len(body) : 0;
  if (sha) memcpy(c->model_sha, sha, sizeof c->model_sha);
}

fedc_http_body *fedc__coord_delta_base(fedc_coord *c) {
  if (!c->cfg.server_model_deltas || c->spill_path[0] != '\0') return NULL;
  return fedc_http_body_ref(c->model_body);
}

/* Commit worker: one encode and one hash of the delta; a delta that
 * cannot be made (another layout, out of memory) or is no smaller than
 * the model is simply not served. */
void fedc__coord_delta_make(fedc_http_body *base, const fedc_http_body *next, int32_t round,
                            fedc_http_body **delta) {
  if (base == NULL || next == NULL) return; /* *delta as it is (large_delta.c's) */
  *delta = NULL;
  double t0 = fedc__coord_now();
  uint8_t *d = NULL;
  size_t len = 0;
  int rc = fedc_model_delta_encode(fedc_http_body_data(base), fedc_http_body_len(base),
                                   round - 1, fedc_http_body_sha256(base),
                                   fedc_http_body_data(next), fedc_http_body_len(next), round,
                                   fedc_http_body_sha256(next), &d, &len);
  if (rc != 0 || len >= fedc_http_body_len(next)) {
    if (rc != 0)
      fedc_log_warn("round=%d msg=\"no model delta\" error=\"%s\"", (int)round,
                    fedc_error_msg());
    fedc_free(d);
    return;
  }
  /* test hook (tests/integration/delta_tests.py): a delta whose coded
   * words are wrong, which clients must refuse and follow by the whole
   * model */
  const char *corrupt = getenv("FEDC_TEST_CORRUPT_DELTA");
  if (corrupt && corrupt[0] == '1') d[len / 2] ^= 0x40; /* in the coded words */
  if (fedc_http_body_new(d, len, delta) != 0) {
    *delta = NULL;
    return;
  }
  fedc_log_debug("round=%d msg=\"model delta\" bytes=%zu model_bytes=%zu secs=%.4f", (int)round,
                 len, fedc_http_body_len(next), fedc__coord_now() - t0);
}

void fedc__coord_delta_set(fedc_coord *c, fedc_http_body *delta) {
  fedc_http_body_unref(c->delta_body);
  c->delta_body = fedc_http_body_ref(delta);
}

/* The delta for a download of the current model by a client that holds
 * base (?base=<b>), or NULL: the whole model. */
static fedc_http_body *delta_for(fedc_coord *c, const fedc_http_request *req) {
  double base = -1;
  if (c->delta_body == NULL || fedc__coord_query_double(req->query, "base", &base) != 1)
    return NULL;
  return base == (double)(c->round - 1) ? c->delta_body : NULL;
}

void fedc__coord_model_respond(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, int32_t round) {
  fedc_http_body *delta = round == c->round && c->model_body ? delta_for(c, req) : NULL;
  /* read before answering: the answer may end the exchange and its request */
  int whole = req->range == NULL || req->range[0] == '\0';
  if (delta) {
    char hdr[80];
    snprintf(hdr, sizeof hdr, "X-Fedc-Delta-Base: %d\r\n", (int)(round - 1));
    c->model_sent[1]++;
    if (whole) c->model_sent_bytes[1] += fedc_http_body_len(delta);
    fedc_http_respond_ranged_ex(x, req, "application/x-fedc-model-delta", delta, hdr);
  } else if (round == c->round && c->model_body) {
    c->model_sent[0]++;
    if (whole) c->model_sent_bytes[0] += fedc_http_body_len(c->model_body);
    fedc_http_respond_ranged(x, req, "application/octet-stream", c->model_body);
  } else if (round <= c->round) {
    /* a past round's model, or the current one when it could not be
     * encoded after its commit: the store holds them all */
    fedc__coord_serve_checkpoint(c, x, req, round - 1);
  } else {
    fedc_http_respond_error(x, 404, "not_found", "round %d has not started; round %d is next",
                            (int)round, (int)c->round);
  }
}
