/*
 * http_server.h - the coordinator's HTTP/1.1 server on a libuv loop.
 *
 * Connections arrive over a transport (plain TCP, or TLS on mbedTLS with
 * client certificates) chosen at start; the HTTP code never calls mbedTLS
 * itself. Requests are parsed with http-parser, bodies are bounded, keep-
 * alive is honoured, and a connection that makes no progress while the
 * server waits for the peer is closed after idle_timeout_s. Progress does
 * not buy time without end: a request's headers must be complete within
 * header_timeout_s of its first byte, the whole request within
 * request_timeout_s, and a body or an answer must move at min_rate_bytes_s
 * or more, averaged over rate_window_s (0 turns each off).
 *
 * A large answer (a model) is sent from a shared, reference-counted body
 * (http_body.h, fedc_http_respond_body) in slices as the peer reads, never
 * copied whole; the Range and If-Range headers reach the handler
 * (http_range.h answers them).
 *
 * Output is bounded per connection: while more than a few hundred KiB of
 * answers wait to be sent (beyond the one being written), pipelined
 * requests are not parsed and the socket is not read until the peer has
 * read most of it.
 *
 * Authorization comes before the body: when a request's headers are
 * complete, the admit callback (if set) may refuse it. A refused request
 * with a body is answered at once with "Connection: close" and its body is
 * never read into memory; one without a body is answered in order as the
 * handler would have.
 *
 * Each complete request becomes an exchange handed to the handler on the
 * loop thread. The handler answers it with fedc_http_respond, at once or
 * later (long-polls, work done on a worker thread): every exchange is
 * answered exactly once, unless the connection dies first, in which case
 * the abort callback (if set) runs and the exchange is gone. Responses go
 * out in request order on a connection.
 *
 * Errors the server answers by itself, with a JSON body as in
 * docs/protocol.md: 400 bad_request (unparsable), 408 timeout (headers or
 * request past their deadline, or a body under the minimum rate), 411
 * length_required, 413 too_large (decided from Content-Length, before the
 * body is read), 431 bad_request (headers over max_header).
 */
#ifndef FEDC_HTTP_SERVER_H
#define FEDC_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conn_guard.h"

typedef struct fedc_http_server fedc_http_server;
typedef struct fedc_http_exchange fedc_http_exchange;

typedef struct fedc_http_request {
  const char *method;           /* "GET", "POST", ... */
  const char *path;             /* "/v1/model/3" (no query) */
  const char *query;            /* "wait=20", or "" */
  const char *content_type;     /* or "" */
  const uint8_t *body;          /* valid until the exchange is answered */
  size_t body_len;
  const char *peer_fingerprint; /* SHA-256 of the client certificate's DER,
                                   64 lowercase hex; "" without one */
  const char *peer_cn;          /* subject CN of the client certificate, or "" */
  const char *remote;           /* "127.0.0.1:53422" */
  const char *range;            /* the Range header's value, or "" */
  const char *if_range;         /* the If-Range header's value, or "" */
} fedc_http_request;

typedef void (*fedc_http_handler)(void *ctx, fedc_http_exchange *x,
                                  const fedc_http_request *req);
typedef void (*fedc_http_abort_cb)(void *ud, fedc_http_exchange *x);
/*
 * Header-time admission, on the loop thread, when a request's headers are
 * complete and before any of its body is read. req has everything but the
 * body (body NULL, body_len the declared Content-Length, 0 without one).
 * Return 0 to read the body and hand the request to the handler, or an
 * HTTP status (403, 404, 405, ...) with *code set to a static error code
 * ("forbidden") and a message written to msg (cap bytes). The callback
 * must not keep req.
 */
typedef int (*fedc_http_admit_cb)(void *ctx, const fedc_http_request *req,
                                  const char **code, char *msg, size_t cap);

typedef struct fedc_http_server_opts {
  const char *listen;      /* "host:port"; port 0 picks a free one */
  int tls;                 /* 0: plain TCP (tests), 1: TLS */
  const char *ca_path;     /* PEM CA that client certificates must chain to */
  const char *cert_path;   /* PEM server certificate */
  const char *key_path;    /* PEM server key */
  int require_client_cert; /* refuse the handshake without a valid one */
  size_t max_body;         /* bytes */
  size_t max_header;       /* bytes, all headers together (16 KiB if 0) */
  double idle_timeout_s;   /* no progress from the peer for this long: close */
  int32_t max_connections; /* beyond this, new connections are closed at once */
  const fedc_conn_limits *limits; /* TLS: per-source limits, handshake
                                     deadline (conn_guard.h); NULL: defaults
                                     off but the descriptor budget */
  fedc_http_handler handler;
  void *ctx;
  /* Deadlines and rates; 0 turns each off. header_timeout_s: from a
   * request's first byte to the end of its headers; request_timeout_s:
   * from its first byte to the end of its body; min_rate_bytes_s over
   * rate_window_s (1 s if 0): a body arriving, or an answer being read,
   * slower than this closes the connection. */
  double header_timeout_s;
  double request_timeout_s;
  double min_rate_bytes_s;
  double rate_window_s;
  fedc_http_admit_cb admit; /* optional: refuse before the body is read */
} fedc_http_server_opts;

typedef struct fedc_http_server_stats {
  uint64_t bytes_in, bytes_out; /* application bytes (HTTP, after TLS) */
  uint64_t connections_total;
  uint64_t handshakes_failed;   /* TLS handshakes refused or failed */
  uint64_t tls_errors;          /* TLS failures after the handshake (a record
                                   that fails its MAC, a bad record): the
                                   connection is dropped, nothing is parsed */
  uint64_t idle_closed;         /* connections closed for making no progress
                                   for idle_timeout_s */
  uint64_t header_timeouts;     /* 408: headers past header_timeout_s */
  uint64_t request_timeouts;    /* 408: a request past request_timeout_s */
  uint64_t slow_closed;         /* a body or an answer under min_rate */
  uint64_t refused_early;       /* refused by admit before the body */
  uint64_t output_pauses;       /* reading paused: too much output queued */
  int32_t connections;          /* open now */
} fedc_http_server_stats;

/*
 * Listen on the loop. Errors (nothing started): FEDC_EINVAL (bad listen
 * address), FEDC_EIO (bind/listen failed, message names the address and the
 * reason), FEDC_ECONFIG (a TLS file unreadable or invalid: the message names
 * the file and mbedTLS's reason), FEDC_ENOMEM.
 */
int fedc_http_server_start(uv_loop_t *loop, const fedc_http_server_opts *o,
                           fedc_http_server **out);
/* The port actually bound (useful with port 0). */
int fedc_http_server_port(const fedc_http_server *s);
void fedc_http_server_stats_get(const fedc_http_server *s,
                                fedc_http_server_stats *out);
/* The transport's connection guard counters (zeros without TLS). */
void fedc_http_server_guard_stats(const fedc_http_server *s,
                                  fedc_conn_guard_stats *out);
/* Close every open connection whose client certificate has this
 * fingerprint (a revoked client), aborting its pending exchanges; the
 * number closed. Loop thread only. */
int fedc_http_server_close_peer(fedc_http_server *s, const char *fingerprint);
/* Stop accepting, close every connection (aborting pending exchanges) and
 * free the server once libuv has closed its handles. */
void fedc_http_server_close(fedc_http_server *s);

/*
 * Answer an exchange: status, content type, body (copied) and optional
 * extra header lines (each ending in "\r\n", e.g. "Retry-After: 1\r\n").
 * Loop thread only. The exchange is invalid afterwards.
 */
void fedc_http_respond(fedc_http_exchange *x, int status,
                       const char *content_type, const void *body, size_t len,
                       const char *extra_headers);
/*
 * Answer an exchange with bytes [off, off + len) of a shared body
 * (http_body.h), without copying it: the connection takes a reference and
 * sends slices as the peer reads, so N downloads of one model cost one
 * model. Content-Length is len; extra_headers as above. Nothing else is
 * parsed or answered on the connection until the last slice is queued;
 * a connection that dies first drops its reference. Loop thread only.
 */
struct fedc_http_body;
void fedc_http_respond_body(fedc_http_exchange *x, int status, const char *content_type,
                            struct fedc_http_body *body, uint64_t off, uint64_t len,
                            const char *extra_headers);
/* JSON error as in docs/protocol.md: {"error":code,"message":message}. */
void fedc_http_respond_error(fedc_http_exchange *x, int status,
                             const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Called (on the loop thread) if the connection closes before the answer. */
void fedc_http_exchange_on_abort(fedc_http_exchange *x, fedc_http_abort_cb cb,
                                 void *ud);

#endif
