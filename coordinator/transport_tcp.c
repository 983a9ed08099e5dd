/*
 * transport_tcp.c - the plain transport: bytes from the socket are the
 * plaintext, and the plaintext is what goes to the socket. Used by the
 * tests and behind a TLS-terminating proxy; a connection has no peer
 * identity (fingerprint and CN are "").
 */
#include "transport.h"

#include "base/alloc.h"
#include "base/error.h"

typedef struct tcp_conn {
  fedc_transport_conn base;
  fedc_transport_io io;
  void *ud;
} tcp_conn;

static const fedc_transport_ops tcp_ops;

static int tcp_conn_new(fedc_transport *t, const fedc_transport_io *io,
                        void *ud, const char *remote,
                        fedc_transport_conn **out) {
  (void)t;
  (void)remote;
  tcp_conn *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "tcp: out of memory");
  c->base.ops = &tcp_ops;
  c->io = *io;
  c->ud = ud;
  *out = &c->base;
  return 0;
}

static int tcp_feed(fedc_transport_conn *tc, const uint8_t *p, size_t n) {
  tcp_conn *c = (tcp_conn *)tc;
  (void)c->io.on_plain(c->ud, p, n);
  return 0;
}

static int tcp_write(fedc_transport_conn *tc, uint8_t *buf, size_t n) {
  tcp_conn *c = (tcp_conn *)tc;
  return c->io.on_wire(c->ud, buf, n);
}

static int tcp_shutdown(fedc_transport_conn *tc) {
  (void)tc;
  return 0;
}

static int tcp_established(const fedc_transport_conn *tc) {
  (void)tc;
  return 1;
}

static const char *tcp_empty(const fedc_transport_conn *tc) {
  (void)tc;
  return "";
}

static void tcp_conn_free(fedc_transport_conn *tc) { fedc_free(tc); }

static void tcp_free(fedc_transport *t) { fedc_free(t); }

static void tcp_stats(const fedc_transport *t, fedc_conn_guard_stats *out) {
  (void)t;
  *out = (fedc_conn_guard_stats){0};
}

static const fedc_transport_ops tcp_ops = {
    "tcp",          tcp_conn_new, tcp_feed,  tcp_write,     tcp_shutdown,
    tcp_established, tcp_empty,   tcp_empty, tcp_conn_free, tcp_free,
    tcp_stats,
};

int fedc_transport_tcp_new(fedc_transport **out) {
  fedc_transport *t = fedc_calloc(1, sizeof *t);
  if (t == NULL) return fedc_error_set(FEDC_ENOMEM, "tcp: out of memory");
  t->ops = &tcp_ops;
  *out = t;
  return 0;
}
