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
 */
#include <string.h>

#include "coord_internal.h"
#include "http_range.h"

int fedc__coord_model_wrap(uint8_t **bytes, size_t len, fedc_http_body **out) {
  int rc = fedc_http_body_new(*bytes, len, out);
  *bytes = rc == 0 ? (uint8_t *)fedc_http_body_data(*out) : NULL;
  return rc;
}

void fedc__coord_model_set(fedc_coord *c, fedc_http_body *body, const char sha[65]) {
  fedc_http_body_unref(c->model_body);
  c->model_body = body;
  c->model_bytes = body ? (uint8_t *)fedc_http_body_data(body) : NULL;
  c->model_len = body ? fedc_http_body_len(body) : 0;
  if (sha) memcpy(c->model_sha, sha, sizeof c->model_sha);
}

void fedc__coord_model_respond(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, int32_t round) {
  if (round == c->round && c->model_body) {
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
