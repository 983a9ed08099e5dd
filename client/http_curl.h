/*
 * http_curl.h - the client's HTTPS transport: a small client on libcurl's
 * easy interface.
 *
 * One handle serves every request of a client, so that libcurl keeps the
 * connection alive between them. TLS is always verified: the peer must
 * present a certificate that chains to the given CA file (and only that
 * CA: the system's store is not consulted) and that names the URL's host;
 * TLS 1.2 is the oldest version spoken; the client presents its own
 * certificate and key (mutual TLS). There is no switch to turn any of this
 * off, and plain http:// URLs are refused.
 *
 *     fedc_http_client_opts o = {.base_url = "https://127.0.0.1:8443",
 *                                .ca_path = "ca.pem", .cert_path = "c.pem",
 *                                .key_path = "c.key"};
 *     fedc_http_client *h;
 *     if (fedc_http_client_new(&o, &h) != 0) ... fedc_error_msg() ...
 *     fedc_http_call call = {.timeout_s = 30, .max_response = 1 << 20};
 *     fedc_http_response r;
 *     int rc = fedc_http_get(h, "/v1/status", &call, &r);
 *     if (rc == 0) ... r.status, r.body, r.len ...
 *     else if (r.fail == FEDC_HTTP_FAIL_TLS_VERIFY) ... not our coordinator ...
 *     fedc_http_response_free(&r);
 *     fedc_http_client_free(h);
 *
 * libcurl's errors are translated here into FEDC_E* codes, with libcurl's
 * own text kept in fedc_error_msg(), and sorted into the kinds of
 * fedc_http_fail so that a caller can tell "retry later" from "this will
 * never work"; fedc_error_sub() says more (FEDC_SUB_TLS_PEER_UNTRUSTED or
 * FEDC_SUB_TLS_PEER_NAME for FEDC_HTTP_FAIL_TLS_VERIFY,
 * FEDC_SUB_TLS_REFUSED_BY_PEER for FEDC_HTTP_FAIL_TLS_REFUSED,
 * FEDC_SUB_CONNECT, FEDC_SUB_TIMEOUT), read from libcurl's result code,
 * its verification result and the TLS messages of the handshake, never
 * from message text.
 *
 * The handle is used by one thread at a time. libcurl is told not to use
 * signals (CURLOPT_NOSIGNAL), so a program using this must ignore SIGPIPE
 * itself (a peer closing a TLS connection could otherwise kill it).
 */
#ifndef FEDC_HTTP_CURL_H
#define FEDC_HTTP_CURL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fedc_http_client fedc_http_client;

typedef struct fedc_http_client_opts {
  const char *base_url;   /* "https://host:port"; paths are appended to it */
  const char *ca_path;    /* PEM CA the peer's certificate must chain to */
  const char *cert_path;  /* PEM certificate presented to the peer */
  const char *key_path;   /* PEM private key of cert_path */
  const char *user_agent; /* or NULL for "fedc" */
  /* When not NULL and non-zero, a transfer in progress is abandoned
   * (FEDC_HTTP_FAIL_CANCELLED) within about a second. Set from a signal
   * handler. */
  const volatile sig_atomic_t *cancel;
} fedc_http_client_opts;

/* Per-request limits. */
typedef struct fedc_http_call {
  double timeout_s;         /* whole request, connect to last byte; > 0 */
  double connect_timeout_s; /* TCP and TLS handshake; 0 = 10 s */
  size_t max_response;      /* response body cap in bytes; 0 = 1 MiB */
  /* Optional (GET): extra request header lines without CRLF, e.g.
   * "Range: bytes=5-", NULL-terminated; NULL for none. */
  const char *const *headers;
  /* Optional: where the body of a 200 or 206 answer goes instead of
   * memory (max_response does not apply then; other statuses' bodies are
   * kept in resp->body as usual). Called with resp->status and the
   * validators below already set; return 0 to go on, or a FEDC_E* code
   * (with fedc_error_set's message) to abandon the transfer: the call then
   * returns that code with FEDC_HTTP_FAIL_LOCAL. */
  int (*sink)(void *ud, const uint8_t *p, size_t n);
  void *sink_ud;
} fedc_http_call;

/* Why a request got no HTTP response. */
typedef enum {
  FEDC_HTTP_FAIL_NONE = 0,        /* a response arrived (any status) */
  FEDC_HTTP_FAIL_NETWORK = 1,     /* refused, reset, timed out, DNS, EOF:
                                     worth retrying (FEDC_EIO) */
  FEDC_HTTP_FAIL_TLS_VERIFY = 2,  /* the peer's certificate does not chain to
                                     the CA or does not name the host
                                     (FEDC_EIO) */
  FEDC_HTTP_FAIL_TLS_REFUSED = 3, /* the peer refused our certificate with a
                                     TLS alert (FEDC_EIO) */
  FEDC_HTTP_FAIL_LOCAL = 4,       /* our side: CA, certificate or key file
                                     unusable, bad URL (FEDC_ECONFIG), or out
                                     of memory (FEDC_ENOMEM) */
  FEDC_HTTP_FAIL_TOOBIG = 5,      /* the body exceeded max_response
                                     (FEDC_ETOOBIG) */
  FEDC_HTTP_FAIL_CANCELLED = 6    /* the cancel flag was raised (FEDC_EIO) */
} fedc_http_fail;

typedef struct fedc_http_response {
  long status;   /* HTTP status; 0 when no response arrived */
  uint8_t *body; /* fedc_malloc'd, NUL-terminated (the NUL is not
                    counted in len); NULL when no response */
  size_t len;
  double retry_after_s; /* the Retry-After header in seconds, or -1 */
  fedc_http_fail fail;
  /* validators and sizes of the answer (docs/protocol.md, "Model
   * downloads"), set as its headers arrive: */
  char etag[80];           /* ETag, or "" */
  char sha256[65];         /* X-Fedc-SHA256 (lowercase hex), or "" */
  int64_t content_length;  /* Content-Length, or -1 */
  int64_t range_first;     /* 206: Content-Range's first byte, else -1 */
  int64_t range_total;     /* Content-Range's total size, else -1 */
} fedc_http_response;

/*
 * Make a client. Checks that base_url is https:// and that the three files
 * are named; it does not read them (libcurl does, at the first request,
 * and a problem then is FEDC_HTTP_FAIL_LOCAL). Errors: FEDC_EINVAL (a
 * missing argument or a URL that is not https://), FEDC_ENOMEM, FEDC_EIO
 * (libcurl could not start or lacks TLS support).
 */
int fedc_http_client_new(const fedc_http_client_opts *o, fedc_http_client **out);
void fedc_http_client_free(fedc_http_client *c);

/*
 * GET base_url + path, or POST body (len bytes, may be 0) with the given
 * content type. path starts with '/' and may carry a query. Returns 0 when
 * an HTTP response of any status arrived (resp->status, body, len), else a
 * negative FEDC_E* code with resp->fail saying why and fedc_error_msg()
 * naming the method, URL and libcurl's text. *resp is always initialised;
 * free it with fedc_http_response_free either way.
 */
int fedc_http_get(fedc_http_client *c, const char *path, const fedc_http_call *call,
                  fedc_http_response *resp);
int fedc_http_post(fedc_http_client *c, const char *path, const char *content_type,
                   const void *body, size_t len, const fedc_http_call *call,
                   fedc_http_response *resp);
void fedc_http_response_free(fedc_http_response *resp);

/* The base URL the client was made with (no trailing '/'). */
const char *fedc_http_client_url(const fedc_http_client *c);

#endif
