/*
 * http_body.h - a response body shared by every connection that sends it.
 *
 * A model of hundreds of megabytes must not be copied once per download:
 * the coordinator wraps the encoded model in one reference-counted,
 * read-only body, and each connection that answers GET /v1/model takes a
 * reference and sends slices of it as the peer reads (http_server.c's
 * fedc_http_respond_body). The body lives until its last reference is
 * dropped: a connection still sending round r's model when round r+1
 * commits keeps r's bytes alive, and they are freed when it ends.
 *
 * The body's SHA-256 (of all its bytes) is computed once, when it is made,
 * so that every answer can name it (ETag, X-Fedc-SHA256) without hashing
 * again; make bodies on a worker thread when they are large.
 *
 *     fedc_http_body *b;
 *     if (fedc_http_body_new(bytes, len, &b) == 0) {   // b owns bytes now
 *       ... fedc_http_respond_body(x, 200, "application/octet-stream", b,
 *                                  0, len, NULL);      // takes its own ref
 *       fedc_http_body_unref(b);
 *     }
 *
 * References may be taken and dropped on any thread (the count is atomic);
 * the bytes are never written after fedc_http_body_new.
 */
#ifndef FEDC_HTTP_BODY_H
#define FEDC_HTTP_BODY_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_http_body fedc_http_body;

/* Wrap bytes (fedc_malloc'd, len bytes; NULL only when len is 0) into a
 * body with one reference, hashing them. The body owns bytes from then on,
 * in every case: on failure (FEDC_ENOMEM, FEDC_EBACKEND) they are freed. */
int fedc_http_body_new(uint8_t *bytes, size_t len, fedc_http_body **out);
/* A body that is the file at path, mapped read-only (the file must not
 * be written again: replace it by renaming another over it); hashed in
 * slices through the page cache, never read whole into memory. Senders
 * drop the pages they have copied out (base/mapped.h), so serving it does
 * not keep it resident. FEDC_EIO, FEDC_ENOMEM. */
int fedc_http_body_map(const char *path, fedc_http_body **out);
/* Take one more reference; returns b (NULL stays NULL). */
fedc_http_body *fedc_http_body_ref(fedc_http_body *b);
/* Drop a reference; the last one frees the bytes. NULL is ignored. */
void fedc_http_body_unref(fedc_http_body *b);
const uint8_t *fedc_http_body_data(const fedc_http_body *b);
size_t fedc_http_body_len(const fedc_http_body *b);
/* SHA-256 of the bytes, 64 lowercase hex digits. */
const char *fedc_http_body_sha256(const fedc_http_body *b);
/* The references held now (for tests and /metrics). */
int32_t fedc_http_body_refs(const fedc_http_body *b);
/* Bodies alive in this process now (made and not yet freed). */
int64_t fedc_http_body_live(void);

#endif
