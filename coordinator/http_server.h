/*
 * http_server.h - the coordinator's HTTP/1.1 server on a libuv loop.
 *
 * Connections arrive over a transport (plain TCP, or TLS on mbedTLS with
 * client certificates) chosen at start; the HTTP code never calls mbedTLS
 * itself. Requests are parsed with http-parser, bodies are bounded, keep-
 * alive is honoured, and a connection that makes no progress while the
 * server waits for the peer is closed after idle_timeout_s.
 *
 * Each complete request becomes an exchange handed to the handler on the
 * loop thread. The handler answers it with fedc_http_respond, at once or
 * later (long-polls, work done on a worker thread): every exchange is
 * answered exactly once, unless the connection dies first, in which case
 * the abort callback (if set) runs and the exchange is gone. Responses go
 * out in request order on a connection.
 *
 * Errors the server answers by itself, with a JSON body as in
 * docs/protocol.md: 400 bad_request (unparsable), 411 length_required,
 * 413 too_large (decided from Content-Length, before the body is read).
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
} fedc_http_request;

typedef void (*fedc_http_handler)(void *ctx, fedc_http_exchange *x,
                                  const fedc_http_request *req);
typedef void (*fedc_http_abort_cb)(void *ud, fedc_http_exchange *x);

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
/* JSON error as in docs/protocol.md: {"error":code,"message":message}. */
void fedc_http_respond_error(fedc_http_exchange *x, int status,
                             const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Called (on the loop thread) if the connection closes before the answer. */
void fedc_http_exchange_on_abort(fedc_http_exchange *x, fedc_http_abort_cb cb,
                                 void *ud);

#endif
