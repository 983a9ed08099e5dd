/*
 * http_range.h - byte ranges on a shared body: Range, If-Range, ETag.
 *
 * A model download cut in the middle resumes from the bytes the client
 * has: it asks again with "Range: bytes=<have>-" and "If-Range: <the
 * ETag it was sent>". The answer (docs/protocol.md, "Model downloads"):
 *
 *   200  the whole body: no Range, a Range in another unit or with several
 *        ranges (ignored), or an If-Range that is not the body's ETag (the
 *        model changed: start over)
 *   206  Partial Content, Content-Range: bytes a-b/size
 *   416  Range Not Satisfiable, Content-Range: bytes * /size (a malformed
 *        bytes range, a first byte at or past the end, last before first)
 *
 * Every answer carries ETag: "<sha256>" (strong; the body's SHA-256 in
 * hex), X-Fedc-SHA256: <sha256> and Accept-Ranges: bytes.
 */
#ifndef FEDC_HTTP_RANGE_H
#define FEDC_HTTP_RANGE_H

#include <stdint.h>

#include "http_body.h"
#include "http_server.h"

enum {
  FEDC_RANGE_BAD = -1,  /* answer 416 */
  FEDC_RANGE_WHOLE = 0, /* answer 200 with the whole body */
  FEDC_RANGE_PART = 1   /* answer 206 with bytes [*first, *last] */
};

/*
 * Read a Range header's value ("" or NULL: none) against a body of size
 * bytes: "bytes=a-", "bytes=a-b" (b past the end is cut to the end) and
 * "bytes=-n" (the last n bytes). Returns one of FEDC_RANGE_*; *first and
 * *last (inclusive) are set for FEDC_RANGE_PART only.
 */
int fedc_http_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last);

/*
 * Answer a GET (or HEAD) of a shared body with 200, 206 or 416 as above,
 * honouring req's Range and If-Range. The body is not copied: the
 * connection takes a reference and sends from it. Loop thread only.
 */
void fedc_http_respond_ranged(fedc_http_exchange *x, const fedc_http_request *req,
                              const char *content_type, fedc_http_body *body);
/* The same with extra header lines (each ending in "\r\n"; NULL: none). */
void fedc_http_respond_ranged_ex(fedc_http_exchange *x, const fedc_http_request *req,
                                 const char *content_type, fedc_http_body *body,
                                 const char *extra);

#endif
