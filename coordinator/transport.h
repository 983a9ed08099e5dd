/*
 * transport.h - the byte pipe under the coordinator's HTTP server.
 *
 * A transport turns the bytes a socket delivers into the plaintext the HTTP
 * code parses, and the plaintext the HTTP code writes into the bytes that go
 * to the socket. It owns no socket and no event loop: the caller reads and
 * writes the socket (libuv), feeds what it read, and is handed what to
 * write through a callback. Two implementations:
 *
 *   fedc_transport_tcp_new   plaintext passes straight through (tests, or a
 *                            TLS-terminating proxy in front)
 *   fedc_transport_tls_new   TLS 1.2 on mbedTLS with memory BIOs, optional
 *                            or required client certificates
 *
 * The HTTP code never calls mbedTLS; everything it needs (the peer's
 * identity, whether the handshake is done) comes through this table.
 *
 * A minimal use, one connection:
 *
 *   fedc_transport *t;
 *   fedc_transport_tcp_new(&t);
 *   fedc_transport_io io = {on_plain, on_wire};
 *   fedc_transport_conn *c;
 *   fedc_transport_conn_new(t, &io, my_conn, "127.0.0.1:5000", &c);
 *   fedc_transport_feed(c, bytes_from_socket, n);   // -> on_plain(...)
 *   fedc_transport_write(c, owned_buf, len);        // -> on_wire(...)
 *   fedc_transport_conn_free(c);
 *   fedc_transport_free(t);
 *
 * Everything runs on one thread (the loop thread); a transport and its
 * connections are not thread-safe.
 */
#ifndef FEDC_TRANSPORT_H
#define FEDC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conn_guard.h"

typedef struct fedc_transport fedc_transport;
typedef struct fedc_transport_conn fedc_transport_conn;

/* fedc_transport_feed's answer when the peer closed the session cleanly
 * (TLS close_notify): treat it as end of stream. */
#define FEDC_TRANSPORT_EOF 1

/*
 * What a connection calls back into its owner (ud is the owner's pointer).
 *
 * on_plain: plaintext from the peer. Return 0 to be fed more, non-zero when
 *   the owner is closing the connection and wants no more (the rest of the
 *   bytes being fed are then dropped).
 * on_wire: bytes for the socket, in order. buf is a fedc_malloc'd block that
 *   the callee owns from then on, whatever it returns; 0 or a FEDC_E* code
 *   (the connection is then unusable).
 * on_expire: the transport gives up on the connection by itself (TLS: the
 *   handshake deadline passed): close the socket now, without a word. NULL
 *   where the owner does not care (the connection then only dies later).
 */
typedef struct fedc_transport_io {
  int (*on_plain)(void *ud, const uint8_t *p, size_t n);
  int (*on_wire)(void *ud, uint8_t *buf, size_t n);
  void (*on_expire)(void *ud);
} fedc_transport_io;

typedef struct fedc_transport_ops {
  const char *name; /* "tcp", "tls" */
  /* A connection for a socket just accepted; remote ("1.2.3.4:5") is copied
   * and used in messages. FEDC_ENOMEM, FEDC_EIO, or FEDC_EREFUSED when the
   * connection guard turns the source away (counted and logged there, once
   * per source and interval: the caller closes the socket quietly). */
  int (*conn_new)(fedc_transport *t, const fedc_transport_io *io, void *ud,
                  const char *remote, fedc_transport_conn **out);
  /* Bytes read from the socket. Calls on_plain for what they decode to and
   * on_wire for what must be answered (handshake). Returns 0,
   * FEDC_TRANSPORT_EOF, or a FEDC_E* code with fedc_error_set's message
   * (the reason, e.g. mbedTLS's text): the connection must then be closed,
   * after the bytes already given to on_wire (an alert) are sent. The
   * bytes are not kept: all of them are consumed before it returns. */
  int (*feed)(fedc_transport_conn *c, const uint8_t *p, size_t n);
  /* Plaintext to send; takes ownership of buf (fedc_malloc'd) in every
   * case. Output goes to on_wire before it returns. 0 or FEDC_E*. */
  int (*write)(fedc_transport_conn *c, uint8_t *buf, size_t n);
  /* Say goodbye (TLS close_notify) through on_wire; 0 or FEDC_E*. */
  int (*shutdown)(fedc_transport_conn *c);
  /* 1 once the peer is authenticated as far as it will be (handshake done;
   * always 1 for tcp). A feed error before that is a failed handshake. */
  int (*established)(const fedc_transport_conn *c);
  /* SHA-256 of the verified client certificate's DER as 64 lowercase hex,
   * and its subject CN; "" without a verified certificate. Valid until the
   * connection is freed. */
  const char *(*peer_fingerprint)(const fedc_transport_conn *c);
  const char *(*peer_cn)(const fedc_transport_conn *c);
  void (*conn_free)(fedc_transport_conn *c);
  void (*free)(fedc_transport *t);
  /* The connection guard's counters (conn_guard.h); zeros for tcp. */
  void (*stats)(const fedc_transport *t, fedc_conn_guard_stats *out);
} fedc_transport_ops;

/* Every implementation's structs begin with these, so that the inline
 * dispatchers below can find the table. */
struct fedc_transport {
  const fedc_transport_ops *ops;
};
struct fedc_transport_conn {
  const fedc_transport_ops *ops;
};

typedef struct fedc_transport_tls_opts {
  const char *ca_path;     /* PEM CA(s) that client certificates chain to */
  const char *cert_path;   /* PEM server certificate (chain) */
  const char *key_path;    /* PEM server private key, unencrypted */
  int require_client_cert; /* 1: refuse the handshake without a valid one;
                              0: ask for one, accept its absence (an invalid
                              one is then ignored: no identity) */
  uv_loop_t *loop;               /* for the handshake deadline; NULL: none */
  const fedc_conn_limits *limits; /* NULL: only the descriptor budget */
} fedc_transport_tls_opts;

/* Plain TCP. FEDC_ENOMEM. */
int fedc_transport_tcp_new(fedc_transport **out);
/*
 * TLS 1.2 (mbedTLS 2.28 has no production TLS 1.3), ECDHE with
 * ChaCha20-Poly1305 or AES-GCM only, session tickets (resumption survives a
 * restart: the ticket key derives from the server key). The CA, certificate
 * and key are read once, here. Every connection is admitted by a
 * connection guard (conn_guard.h) built from limits.
 * Errors: FEDC_ECONFIG when a file cannot be read or parsed, or the key does
 * not match the certificate (the message names the file and gives
 * mbedTLS's reason), FEDC_EINVAL (a path missing), FEDC_ENOMEM, FEDC_EIO
 * (the random generator could not be seeded).
 */
int fedc_transport_tls_new(const fedc_transport_tls_opts *o,
                           fedc_transport **out);

static inline int fedc_transport_conn_new(fedc_transport *t,
                                          const fedc_transport_io *io,
                                          void *ud, const char *remote,
                                          fedc_transport_conn **out) {
  return t->ops->conn_new(t, io, ud, remote, out);
}
static inline int fedc_transport_feed(fedc_transport_conn *c,
                                      const uint8_t *p, size_t n) {
  return c->ops->feed(c, p, n);
}
static inline int fedc_transport_write(fedc_transport_conn *c, uint8_t *buf,
                                       size_t n) {
  return c->ops->write(c, buf, n);
}
static inline int fedc_transport_shutdown(fedc_transport_conn *c) {
  return c->ops->shutdown(c);
}
static inline int fedc_transport_established(const fedc_transport_conn *c) {
  return c->ops->established(c);
}
static inline const char *
fedc_transport_peer_fingerprint(const fedc_transport_conn *c) {
  return c->ops->peer_fingerprint(c);
}
static inline const char *fedc_transport_peer_cn(const fedc_transport_conn *c) {
  return c->ops->peer_cn(c);
}
static inline void fedc_transport_conn_free(fedc_transport_conn *c) {
  if (c) c->ops->conn_free(c);
}
static inline void fedc_transport_stats(const fedc_transport *t,
                                        fedc_conn_guard_stats *out) {
  t->ops->stats(t, out);
}
static inline void fedc_transport_free(fedc_transport *t) {
  if (t) t->ops->free(t);
}

#endif
