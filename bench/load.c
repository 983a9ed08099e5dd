/*
 * load.c - fedc-load: many mutual-TLS clients against one coordinator on
 * loopback, event-driven (libuv and mbedTLS, a few threads with one loop
 * each), for bench/load.sh.
 *
 *   fedc-load idle    holds --conns connections open and idle (any
 *                     certificate from the job's CA will do), and measures
 *                     GET /v1/status latency on a few other connections
 *                     before and after opening them, the coordinator's
 *                     resident memory (VmRSS of --pid) before, after and
 *                     while they idle, and /metrics fedc_connections.
 *   fedc-load rounds  runs --clients simulated clients that speak the real
 *                     protocol (POST /v1/join, GET /v1/task long-polls, GET
 *                     /v1/model/<r>, POST /v1/update) until the job is
 *                     finished; each has its own certificate, made here and
 *                     signed with the CA's key (the coordinator runs with
 *                     [server] enroll = open). Their "training" moves every
 *                     weight by a small seeded step; what is measured is the
 *                     coordinator, not the clients. Each client keeps its
 *                     TLS session (the coordinator's session ticket) and
 *                     resumes it when it reconnects, unless --no-resume;
 *                     a client whose connection drops and who later gets a
 *                     task again counts as reconnected (the first drop
 *                     only), and the wall-clock time when the last one got
 *                     its task is printed
 *                     ("reconnect: ..."), for bench/reconnect.sh, which
 *                     restarts the coordinator under it. With --sites, the
 *                     clients connect to relays (docs/relays.md) in equal
 *                     blocks instead, for bench/relays.sh; --port is then
 *                     the root, which only serves the final /v1/status.
 *
 * Each mode prints its figures as "key: value" lines, and with --json one
 * JSON object last. Traffic goes to 127.0.0.1 only. Every loop is bounded:
 * --timeout-s ends a run (exit 1) whatever state it is in, and clients give
 * up after a bounded number of reconnects.
 *
 * Exit codes: 0 done, 1 the run failed or timed out (the reason on
 * stderr), 2 usage.
 */
#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/mbedtls_compat.h"
#include "base/rng.h"
#include "wire/safetensors.h"

#define MAX_WORKERS 16
#define MAX_ROUNDS 1000
#define MAX_SITES 256
#define BODY_MAX ((size_t)64 << 20)
#define RECONNECTS_MAX 50
#define FAIL_STOP 200 /* idle mode: stop opening after this many failures */

enum { MODE_IDLE = 1, MODE_ROUNDS = 2 };
enum { CMD_NONE, CMD_OPEN, CMD_MEASURE, CMD_STATUS_DOC, CMD_CLOSE };

typedef struct opts {
  int mode;
  int port;
  char ca[512], cert[512], key[512], ca_key[512];
  int conns, status_reqs, status_conns, threads, concurrency, clients;
  long pid;
  double idle_s, timeout_s, wait_s;
  int verify, json, resume;
  int sites[MAX_SITES]; /* rounds: --sites, the relays' ports; n_sites 0: --port */
  int n_sites;
} opts;

static opts O;
static mbedtls_x509_crt g_ca; /* read-only once parsed: shared by the threads */
static double g_t0;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fedc-load: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fedc-load [%6.1fs] ", now_s() - g_t0);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- workers: one thread, one loop, one random generator ----------------- */

typedef struct lconn lconn;
typedef struct pclient pclient;

typedef struct worker {
  int idx;
  pthread_t th;
  uv_loop_t loop;
  uv_async_t wake;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_ssl_config conf; /* idle and measuring connections */
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
  lconn *conns; /* every open lconn of this loop */
  int stopping;
  /* idle: open `quota` connections, `concurrency` handshakes at a time */
  int quota, started, in_flight;
  /* measuring */
  int meas_total, meas_done, meas_sent, meas_active;
  uint64_t *lat_ns;
  long metrics_connections;
  char *status_doc;
  /* protocol clients */
  pclient *clients;
  int n_clients;
  uv_timer_t starter; /* rounds: connects the clients a few at a time */
  int has_starter;
  double first_train[MAX_ROUNDS + 2], last_ack[MAX_ROUNDS + 2];
  _Atomic int cmd;
  _Atomic long established, failed, peer_closed, busy, finished, updates, gave_up;
  long reconnected;  /* clients that lost their connection and got a task again */
  double last_back;  /* CLOCK_REALTIME when the last of them got it */
  _Atomic int done; /* the command asked for is complete */
  char first_error[256];
} worker;

static worker W[MAX_WORKERS + 1]; /* W[O.threads] measures */
static int n_workers;

static void worker_error(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void worker_error(worker *w, const char *fmt, ...) {
  if (w->first_error[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
  va_end(ap);
}

static const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                             MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0};

/* A client configuration with an own certificate and key. */
static int conf_client(worker *w, mbedtls_ssl_config *conf, mbedtls_x509_crt *cert,
                       mbedtls_pk_context *key) {
  mbedtls_ssl_config_init(conf);
  int rc = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc == 0) rc = mbedtls_ssl_conf_own_cert(conf, cert, key);
  if (rc != 0) return rc;
  mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &w->drbg);
  mbedtls_ssl_conf_ca_chain(conf, &g_ca, NULL);
  mbedtls_ssl_conf_authmode(conf, O.verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(conf, suites);
  return 0;
}

/* ---- one TLS connection with an HTTP/1.1 response parser ------------------ */

typedef struct lconn_ops {
  void (*ready)(lconn *c);    /* handshake done */
  void (*response)(lconn *c); /* c->status, c->body, c->body_len hold one */
  void (*closed)(lconn *c, int was_ready, const char *why); /* c is gone after */
} lconn_ops;

struct lconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  worker *w;
  const lconn_ops *ops;
  void *owner;
  lconn *prev, *next;
  mbedtls_ssl_context ssl;
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len, out_cap;
  http_parser parser;
  int status;
  uint8_t *body;
  size_t body_len, body_cap;
  double sent_at;
  unsigned established : 1, closing : 1, ssl_inited : 1;
};

typedef struct wbuf {
  uv_write_t req;
  uint8_t *buf;
} wbuf;

static int bio_send(void *p, const unsigned char *buf, size_t len) {
  lconn *c = p;
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len)
      cap *= 2;
    uint8_t *nb = fedc_realloc(c->out, cap);
    if (nb == NULL) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    c->out = nb;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, buf, len);
  c->out_len += len;
  return (int)len;
}

static int bio_recv(void *p, unsigned char *buf, size_t len) {
  lconn *c = p;
  if (c->in_len == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  size_t n = len < c->in_len ? len : c->in_len;
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  return (int)n;
}

static void lconn_close(lconn *c, const char *why);

static void on_written(uv_write_t *req, int status) {
  wbuf *b = (wbuf *)req;
  lconn *c = req->data;
  fedc_free(b->buf);
  fedc_free(b);
  if (status < 0 && !c->closing) lconn_close(c, uv_strerror(status));
}

/* Hand the ciphertext mbedTLS produced to the socket. */
static void flush(lconn *c) {
  if (c->out_len == 0 || c->closing) return;
  wbuf *b = fedc_malloc(sizeof *b);
  if (b == NULL) {
    lconn_close(c, "out of memory");
    return;
  }
  b->buf = c->out;
  uv_buf_t ub = uv_buf_init((char *)c->out, (unsigned)c->out_len);
  c->out = NULL;
  c->out_len = c->out_cap = 0;
  b->req.data = c;
  int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written);
  if (rc != 0) {
    fedc_free(b->buf);
    fedc_free(b);
    lconn_close(c, uv_strerror(rc));
  }
}

static void on_lconn_closed(uv_handle_t *h) {
  lconn *c = h->data;
  if (c->ssl_inited) mbedtls_ssl_free(&c->ssl);
  fedc_free(c->out);
  fedc_free(c->body);
  fedc_free(c);
}

/* Close now; the owner hears of it through ops->closed (at once) and must
 * not use c afterwards. */
static void lconn_close(lconn *c, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  worker *w = c->w;
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->ops->closed(c, c->established, why);
  uv_close((uv_handle_t *)&c->tcp, on_lconn_closed);
}

/* Send one request (a copy of body is encrypted at once). */
static void lconn_request(lconn *c, const char *method, const char *path, const char *ctype,
                          const void *body, size_t len) {
  char head[512];
  int n;
  if (body)
    n = snprintf(head, sizeof head,
                 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 method, path, ctype, len);
  else
    n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, path);
  c->sent_at = now_s();
  const uint8_t *parts[2] = {(const uint8_t *)head, body};
  size_t lens[2] = {(size_t)n, body ? len : 0};
  for (int i = 0; i < 2; i++) {
    size_t off = 0;
    while (off < lens[i]) {
      int r = mbedtls_ssl_write(&c->ssl, parts[i] + off, lens[i] - off);
      if (r <= 0) {
        char why[128];
        mbedtls_strerror(r, why, sizeof why);
        lconn_close(c, why);
        return;
      }
      off += (size_t)r;
    }
  }
  flush(c);
}

static int on_msg_begin(http_parser *p) {
  lconn *c = p->data;
  c->body_len = 0;
  if (c->body) c->body[0] = '\0';
  c->status = 0;
  return 0;
}

static int on_headers(http_parser *p) {
  lconn *c = p->data;
  c->status = (int)p->status_code;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  lconn *c = p->data;
  if (c->body_len + n > BODY_MAX) return -1;
  if (c->body_len + n + 1 > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 1024;
    while (cap < c->body_len + n + 1)
      cap *= 2;
    uint8_t *nb = fedc_realloc(c->body, cap);
    if (nb == NULL) return -1;
    c->body = nb;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  return 0;
}

static int on_msg_complete(http_parser *p) {
  lconn *c = p->data;
  if (c->status == 100) return 0; /* 100 Continue: the real answer follows */
  if (c->body == NULL) on_body(p, "", 0);
  c->ops->response(c);
  return 0;
}

static const http_parser_settings psettings = {
    .on_message_begin = on_msg_begin,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_msg_complete,
};

static void lconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static _Thread_local char rbuf[64 * 1024];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void lconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lconn *c = s->data;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    lconn_close(c, nread == UV_EOF ? "closed by the coordinator" : uv_strerror((int)nread));
    return;
  }
  c->in = (const uint8_t *)buf->base;
  c->in_len = (size_t)nread;
  if (!c->established) {
    int r = mbedtls_ssl_handshake(&c->ssl);
    flush(c);
    if (c->closing) return;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) return;
    if (r != 0) {
      char why[160];
      mbedtls_strerror(r, why, sizeof why);
      lconn_close(c, why);
      return;
    }
    c->established = 1;
    c->ops->ready(c);
    if (c->closing) return;
  }
  unsigned char plain[16384];
  while (!c->closing) {
    int r = mbedtls_ssl_read(&c->ssl, plain, sizeof plain);
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) break;
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      lconn_close(c, "closed by the coordinator (close_notify)");
      break;
    }
    if (r < 0) {
      char why[160];
      mbedtls_strerror(r, why, sizeof why);
      lconn_close(c, why);
      break;
    }
    size_t k = http_parser_execute(&c->parser, &psettings, (const char *)plain, (size_t)r);
    if (!c->closing && (k != (size_t)r || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)) {
      lconn_close(c, http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
      break;
    }
  }
  c->in = NULL;
  c->in_len = 0;
  flush(c);
}

static void lconn_connected(uv_connect_t *req, int status) {
  lconn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    lconn_close(c, uv_strerror(status));
    return;
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, lconn_alloc, lconn_read) != 0) {
    lconn_close(c, "cannot read");
    return;
  }
  int r = mbedtls_ssl_handshake(&c->ssl); /* the ClientHello */
  if (r != MBEDTLS_ERR_SSL_WANT_READ && r != 0) {
    char why[160];
    mbedtls_strerror(r, why, sizeof why);
    lconn_close(c, why);
    return;
  }
  flush(c);
}

/* Open a connection to the coordinator; 0, or -1 with the reason in why
 * (nothing left behind, ops->closed not called). */
static int lconn_open(worker *w, mbedtls_ssl_config *conf, const lconn_ops *ops, void *owner,
                      int port, lconn **out, char *why, size_t why_len) {
  lconn *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  c->w = w;
  c->ops = ops;
  c->owner = owner;
  mbedtls_ssl_init(&c->ssl);
  c->ssl_inited = 1;
  int r = mbedtls_ssl_setup(&c->ssl, conf);
  if (r == 0) r = mbedtls_ssl_set_hostname(&c->ssl, "localhost");
  if (r != 0) {
    mbedtls_strerror(r, why, why_len);
    mbedtls_ssl_free(&c->ssl);
    fedc_free(c);
    return -1;
  }
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  http_parser_init(&c->parser, HTTP_RESPONSE);
  c->parser.data = c;
  uv_tcp_init(&w->loop, &c->tcp);
  c->tcp.data = c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  c->creq.data = c;
  int u = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&a, lconn_connected);
  if (u != 0) {
    snprintf(why, why_len, "connect: %s", uv_strerror(u));
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_lconn_closed);
    return -1;
  }
  c->next = w->conns;
  if (w->conns) w->conns->prev = c;
  w->conns = c;
  *out = c;
  return 0;
}

/* ---- idle connections ------------------------------------------------------ */

static void idle_fill(worker *w);

static void idle_ready(lconn *c) {
  worker *w = c->w;
  w->in_flight--;
  atomic_fetch_add(&w->established, 1);
  idle_fill(w);
}

static void idle_response(lconn *c) {
  (void)c;
}

static void idle_closed(lconn *c, int was_ready, const char *why) {
  worker *w = c->w;
  if (w->stopping) return;
  if (!was_ready) {
    w->in_flight--;
    atomic_fetch_add(&w->failed, 1);
    worker_error(w, "handshake: %s", why);
    idle_fill(w);
  } else {
    atomic_fetch_add(&w->peer_closed, 1);
    worker_error(w, "an idle connection was closed: %s", why);
  }
}

static const lconn_ops idle_ops = {idle_ready, idle_response, idle_closed};

/* Start handshakes until the quota is reached, `concurrency` at a time. */
static void idle_fill(worker *w) {
  int per = O.concurrency / (n_workers > 0 ? n_workers : 1);
  if (per < 1) per = 1;
  while (!w->stopping && w->started < w->quota && w->in_flight < per &&
         atomic_load(&w->failed) < FAIL_STOP) {
    lconn *c;
    char why[160];
    if (lconn_open(w, &w->conf, &idle_ops, NULL, O.port, &c, why, sizeof why) != 0) {
      atomic_fetch_add(&w->failed, 1);
      worker_error(w, "%s", why);
      w->started++;
      continue;
    }
    w->started++;
    w->in_flight++;
  }
  if (w->started >= w->quota && w->in_flight == 0) atomic_store(&w->done, 1);
}

/* ---- measuring /v1/status --------------------------------------------------- */

static void meas_next(lconn *c) {
  worker *w = c->w;
  if (w->meas_sent >= w->meas_total) return;
  w->meas_sent++;
  lconn_request(c, "GET", "/v1/status", NULL, NULL, 0);
}

static void meas_ready(lconn *c) {
  if (c->owner == (void *)2)
    lconn_request(c, "GET", "/v1/status", NULL, NULL, 0);
  else
    meas_next(c);
}

static void meas_response(lconn *c) {
  worker *w = c->w;
  if (c->owner == (void *)1) { /* the one GET /metrics */
    const char *p = strstr((const char *)c->body, "\nfedc_connections ");
    w->metrics_connections = p ? strtol(p + 18, NULL, 10) : -1;
    c->owner = NULL;
    w->meas_active = 0;
    atomic_store(&w->done, 1);
    return;
  }
  if (c->owner == (void *)2) { /* the one status document */
    fedc_free(w->status_doc);
    w->status_doc = fedc_malloc(c->body_len + 1);
    if (w->status_doc) {
      memcpy(w->status_doc, c->body, c->body_len);
      w->status_doc[c->body_len] = '\0';
    }
    c->owner = NULL;
    atomic_store(&w->done, 1);
    return;
  }
  if (c->status != 200) worker_error(w, "GET /v1/status answered %d", c->status);
  w->lat_ns[w->meas_done++] = (uint64_t)((now_s() - c->sent_at) * 1e9);
  if (w->meas_done == w->meas_total) {
    /* then the connection count the coordinator reports */
    c->owner = (void *)1;
    lconn_request(c, "GET", "/metrics", NULL, NULL, 0);
    return;
  }
  meas_next(c);
}

static void meas_closed(lconn *c, int was_ready, const char *why) {
  worker *w = c->w;
  /* between measurements the coordinator may close a measuring connection
   * (its idle timeout): the next measurement opens another */
  if (w->stopping || (!w->meas_active && c->owner == NULL)) return;
  worker_error(w, "measuring connection %s: %s", was_ready ? "lost" : "refused", why);
  atomic_fetch_add(&w->failed, 1);
  atomic_store(&w->done, 1);
}

static const lconn_ops meas_ops = {meas_ready, meas_response, meas_closed};

/* Run `total` GET /v1/status, status_conns of them at a time (each on its
 * own keep-alive connection, one after another). */
static void meas_start(worker *w, int total) {
  fedc_free(w->lat_ns);
  w->lat_ns = fedc_calloc((size_t)total, sizeof *w->lat_ns);
  if (w->lat_ns == NULL) die("out of memory");
  w->meas_total = total;
  w->meas_done = w->meas_sent = 0;
  w->meas_active = 1;
  int open = 0;
  for (lconn *c = w->conns; c; c = c->next) {
    open++;
    meas_next(c);
  }
  for (; open < O.status_conns; open++) { /* the new ones ask when ready */
    lconn *c;
    char why[160];
    if (lconn_open(w, &w->conf, &meas_ops, NULL, O.port, &c, why, sizeof why) != 0)
      die("a measuring connection: %s", why);
  }
}

static void status_doc_start(worker *w) {
  lconn *c = w->conns;
  if (c == NULL) {
    char why[160];
    if (lconn_open(w, &w->conf, &meas_ops, (void *)2, O.port, &c, why, sizeof why) != 0)
      die("a measuring connection: %s", why);
    return; /* meas_ready asks */
  }
  c->owner = (void *)2;
  lconn_request(c, "GET", "/v1/status", NULL, NULL, 0);
}

/* ---- protocol clients ------------------------------------------------------- */

enum { P_JOIN, P_POLL, P_MODEL, P_UPDATE, P_DONE };

struct pclient {
  int idx;
  int port; /* where it connects: --port, or its block's port of --sites */
  worker *w;
  lconn *c;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
  uv_timer_t timer;
  fedc_rng rng;
  int state, round, trained_round, reconnects;
  mbedtls_ssl_session sess; /* the last session, resumed on reconnect */
  int has_sess;
  double lost_at; /* CLOCK_REALTIME when the connection first dropped, or 0 */
  int came_back;  /* got a task after that */
  char model_sha[65];
  uint8_t *update;
  size_t update_len;
  double polled_at;
};

static void pc_send(pclient *pc);
static void pc_connect(pclient *pc);

static void pc_retry_timer(uv_timer_t *t) {
  pclient *pc = t->data;
  if (pc->c)
    pc_send(pc);
  else
    pc_connect(pc);
}

static void pc_later(pclient *pc, double secs) {
  uv_timer_start(&pc->timer, pc_retry_timer, (uint64_t)(secs * 1000.0) + 1, 0);
}

static void pc_send(pclient *pc) {
  lconn *c = pc->c;
  char path[64];
  switch (pc->state) {
  case P_JOIN: {
    char body[64];
    int n = snprintf(body, sizeof body, "{\"name\":\"load-%d\"}", pc->idx);
    lconn_request(c, "POST", "/v1/join", "application/json", body, (size_t)n);
    break;
  }
  case P_POLL:
    snprintf(path, sizeof path, "/v1/task?wait=%g", O.wait_s);
    pc->polled_at = now_s();
    lconn_request(c, "GET", path, NULL, NULL, 0);
    break;
  case P_MODEL:
    snprintf(path, sizeof path, "/v1/model/%d", pc->round);
    lconn_request(c, "GET", path, NULL, NULL, 0);
    break;
  case P_UPDATE:
    lconn_request(c, "POST", "/v1/update", "application/octet-stream", pc->update, pc->update_len);
    break;
  default:
    break;
  }
}

/*
 * The "training": the downloaded model, every weight moved by a seeded
 * step in [-0.01, 0.01], as a safetensors update with the metadata the
 * protocol asks for. 0, or -1 when the model is not usable.
 */
static int pc_train(pclient *pc, const uint8_t *body, size_t len) {
  fedc_st_file *f = NULL;
  if (fedc_st_decode(body, len, &f) != 0) return -1;
  const char *sha = fedc_st_meta_get(f, "sha256");
  size_t n = fedc_st_count(f);
  if (sha == NULL || strcmp(sha, pc->model_sha) != 0 || n == 0 || n > 16) {
    fedc_st_free(f);
    return -1;
  }
  fedc_st_tensor t[16];
  float *bufs[16] = {0};
  int rc = 0;
  fedc_rng_derive(&pc->rng, 0x6c6f6164ULL, (uint64_t)pc->idx, (uint64_t)pc->round, 0);
  for (size_t i = 0; i < n && rc == 0; i++) {
    fedc_st_get(f, i, &t[i]);
    size_t k = 1;
    for (int32_t d = 0; d < t[i].ndim; d++)
      k *= (size_t)t[i].shape[d];
    bufs[i] = fedc_malloc_array(k ? k : 1, sizeof(float));
    if (bufs[i] == NULL) {
      rc = -1;
      break;
    }
    for (size_t j = 0; j < k; j++)
      bufs[i][j] = t[i].data[j] + (float)(0.02 * fedc_rng_uniform(&pc->rng) - 0.01);
    t[i].data = bufs[i];
  }
  char round[16], samples[16], loss[32];
  snprintf(round, sizeof round, "%d", pc->round);
  snprintf(samples, sizeof samples, "%d", 10 + pc->idx % 50);
  snprintf(loss, sizeof loss, "%.4f", 0.5 + 0.1 * fedc_rng_uniform(&pc->rng));
  fedc_st_meta meta[] = {{"round", round}, {"num_samples", samples}, {"train_loss", loss}};
  fedc_free(pc->update);
  pc->update = NULL;
  if (rc == 0 && fedc_st_encode(t, n, meta, 3, &pc->update, &pc->update_len) != 0) rc = -1;
  for (size_t i = 0; i < n; i++)
    fedc_free(bufs[i]);
  fedc_st_free(f);
  if (rc == 0) pc->trained_round = pc->round;
  return rc;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keep the session (with its ticket) for the next connection. */
static void pc_ready(lconn *c) {
  pclient *pc = c->owner;
  if (O.resume) {
    if (pc->has_sess) mbedtls_ssl_session_free(&pc->sess);
    mbedtls_ssl_session_init(&pc->sess);
    pc->has_sess = mbedtls_ssl_get_session(&c->ssl, &pc->sess) == 0;
  }
  pc_send(pc);
}

static void pc_response(lconn *c) {
  pclient *pc = c->owner;
  worker *w = pc->w;
  double now = now_s();
  if (c->status >= 500) { /* the coordinator asks for a retry (Retry-After: 1) */
    pc_later(pc, 0.2 + 0.8 * fedc_rng_uniform(&pc->rng));
    return;
  }
  switch (pc->state) {
  case P_JOIN:
    if (c->status != 200) {
      worker_error(w, "client %d: join answered %d: %.200s", pc->idx, c->status,
                   (const char *)c->body);
      pc->state = P_DONE;
      atomic_fetch_add(&w->gave_up, 1);
      lconn_close(c, "refused");
      return;
    }
    pc->state = P_POLL;
    break;
  case P_POLL: {
    cJSON *o = cJSON_ParseWithLength((const char *)c->body, c->body_len);
    const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "action") : NULL;
    const cJSON *r = o ? cJSON_GetObjectItemCaseSensitive(o, "round") : NULL;
    if (c->status != 200 || !cJSON_IsString(a) || !cJSON_IsNumber(r)) {
      worker_error(w, "client %d: task answered %d: %.200s", pc->idx, c->status,
                   (const char *)c->body);
      cJSON_Delete(o);
      pc_later(pc, 0.5);
      return;
    }
    if (strcmp(a->valuestring, "finished") == 0) {
      cJSON_Delete(o);
      pc->state = P_DONE;
      atomic_fetch_add(&w->finished, 1);
      lconn_close(c, "finished");
      return;
    }
    if (strcmp(a->valuestring, "train") == 0) {
      const cJSON *sha = cJSON_GetObjectItemCaseSensitive(o, "model_sha256");
      pc->round = (int)r->valuedouble;
      snprintf(pc->model_sha, sizeof pc->model_sha, "%s",
               cJSON_IsString(sha) ? sha->valuestring : "");
      cJSON_Delete(o);
      if (pc->lost_at > 0 && !pc->came_back) { /* the first time only */
        double t = wall_now();
        pc->came_back = 1;
        w->reconnected++;
        if (t > w->last_back) w->last_back = t;
      }
      if (pc->round >= 1 && pc->round <= MAX_ROUNDS &&
          (w->first_train[pc->round] == 0 || now < w->first_train[pc->round]))
        w->first_train[pc->round] = now;
      /* a resend of an update already made keeps its bytes */
      pc->state = pc->trained_round == pc->round && pc->update ? P_UPDATE : P_MODEL;
      break;
    }
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(o, "retry_after_ms");
    double d = cJSON_IsNumber(ra) ? ra->valuedouble / 1000.0 : 0.0;
    cJSON_Delete(o);
    if (d < 0.05 && now - pc->polled_at < 0.05) d = 0.05; /* as fedc-client does */
    if (d > 0) {
      pc_later(pc, d);
      return;
    }
    break;
  }
  case P_MODEL:
    if (c->status != 200) { /* the round moved on */
      pc->state = P_POLL;
      break;
    }
    if (pc_train(pc, c->body, c->body_len) != 0) {
      worker_error(w, "client %d: model of round %d not usable", pc->idx, pc->round);
      pc->state = P_POLL;
      pc_later(pc, 0.5);
      return;
    }
    pc->state = P_UPDATE;
    break;
  case P_UPDATE:
    if (c->status == 200) {
      atomic_fetch_add(&w->updates, 1);
      if (pc->round >= 1 && pc->round <= MAX_ROUNDS && now > w->last_ack[pc->round])
        w->last_ack[pc->round] = now;
    } else if (c->status != 409 && c->status != 403) {
      worker_error(w, "client %d: update of round %d answered %d: %.200s", pc->idx, pc->round,
                   c->status, (const char *)c->body);
    }
    pc->state = P_POLL;
    break;
  default:
    return;
  }
  pc_send(pc);
}

static void pc_closed(lconn *c, int was_ready, const char *why) {
  pclient *pc = c->owner;
  worker *w = pc->w;
  pc->c = NULL;
  if (w->stopping || pc->state == P_DONE) return;
  if (++pc->reconnects > RECONNECTS_MAX) {
    worker_error(w, "client %d gave up after %d reconnects: %s", pc->idx, RECONNECTS_MAX, why);
    pc->state = P_DONE;
    atomic_fetch_add(&w->gave_up, 1);
    return;
  }
  (void)was_ready;
  if (pc->lost_at == 0) pc->lost_at = wall_now();
  /* the coordinator's idle timeout or a restart: connect again, soon */
  pc_later(pc, 0.05 + 0.45 * fedc_rng_uniform(&pc->rng));
}

static const lconn_ops pc_ops = {pc_ready, pc_response, pc_closed};

static void pc_connect(pclient *pc) {
  char why[160];
  int rc = lconn_open(pc->w, &pc->conf, &pc_ops, pc, pc->port, &pc->c, why, sizeof why);
  /* the handshake starts once the socket connects: offer the session */
  if (rc == 0 && pc->has_sess) (void)mbedtls_ssl_set_session(&pc->c->ssl, &pc->sess);
  if (rc != 0) {
    pc->c = NULL;
    if (++pc->reconnects > RECONNECTS_MAX) {
      worker_error(pc->w, "client %d: %s", pc->idx, why);
      pc->state = P_DONE;
      atomic_fetch_add(&pc->w->gave_up, 1);
      return;
    }
    pc_later(pc, 0.2);
  }
}

/*
 * A key and a certificate for client idx, signed by the CA's key: EC P-256,
 * CN=load-<idx>, digitalSignature, valid 2024-2034.
 */
static int make_identity(worker *w, mbedtls_pk_context *ca_key, const char *issuer, int idx,
                         mbedtls_pk_context *key, mbedtls_x509_crt *cert) {
  mbedtls_pk_init(key);
  mbedtls_x509_crt_init(cert);
  int rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc == 0)
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), mbedtls_ctr_drbg_random,
                             &w->drbg);
  if (rc != 0) return rc;
  mbedtls_x509write_cert crt;
  mbedtls_x509write_crt_init(&crt);
  mbedtls_mpi serial;
  mbedtls_mpi_init(&serial);
  char subject[64];
  snprintf(subject, sizeof subject, "CN=load-%d", idx);
  mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&crt, key);
  mbedtls_x509write_crt_set_issuer_key(&crt, ca_key);
  rc = mbedtls_mpi_lset(&serial, 100000 + idx);
  if (rc == 0) rc = mbedtls_x509write_crt_set_serial(&crt, &serial);
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_name(&crt, subject);
  if (rc == 0) rc = mbedtls_x509write_crt_set_issuer_name(&crt, issuer);
  if (rc == 0) rc = mbedtls_x509write_crt_set_validity(&crt, "20240101000000", "20340101000000");
  if (rc == 0) rc = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1);
  if (rc == 0) rc = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  unsigned char der[2048];
  int n = rc == 0
              ? mbedtls_x509write_crt_der(&crt, der, sizeof der, mbedtls_ctr_drbg_random, &w->drbg)
              : rc;
  if (n > 0)
    rc = mbedtls_x509_crt_parse_der(cert, der + sizeof der - n, (size_t)n);
  else
    rc = n ? n : -1;
  mbedtls_mpi_free(&serial);
  mbedtls_x509write_crt_free(&crt);
  return rc;
}

/* Make this worker's clients (identities and configurations). */
static void clients_setup(worker *w, int first, int count) {
  mbedtls_pk_context ca_key;
  mbedtls_pk_init(&ca_key);
  int rc = fedc__pk_parse_keyfile(&ca_key, O.ca_key, NULL, NULL, NULL);
  if (rc != 0) {
    char why[160];
    mbedtls_strerror(rc, why, sizeof why);
    die("--ca-key %s: %s", O.ca_key, why);
  }
  char issuer[256];
  if (mbedtls_x509_dn_gets(issuer, sizeof issuer, &g_ca.subject) < 0) die("CA subject");
  w->clients = fedc_calloc((size_t)count, sizeof *w->clients);
  if (w->clients == NULL) die("out of memory");
  w->n_clients = count;
  for (int i = 0; i < count; i++) {
    pclient *pc = &w->clients[i];
    pc->idx = first + i;
    pc->w = w;
    pc->port = O.port;
    if (O.n_sites > 0) { /* contiguous blocks: clients 1..b to the first port, ... */
      int block = (O.clients + O.n_sites - 1) / O.n_sites;
      pc->port = O.sites[(pc->idx - 1) / block];
    }
    if ((rc = make_identity(w, &ca_key, issuer, pc->idx, &pc->key, &pc->cert)) != 0 ||
        (rc = conf_client(w, &pc->conf, &pc->cert, &pc->key)) != 0) {
      char why[160];
      mbedtls_strerror(rc, why, sizeof why);
      die("client %d: certificate: %s", pc->idx, why);
    }
    fedc_rng_derive(&pc->rng, 0x6c6f6164ULL, (uint64_t)pc->idx, 0, 1);
    uv_timer_init(&w->loop, &pc->timer);
    pc->timer.data = pc;
  }
  mbedtls_pk_free(&ca_key);
}

/* Connect the clients a few at a time, so that the listen backlog and the
 * coordinator's single loop are not flooded by handshakes. */
static void clients_start_tick(uv_timer_t *t) {
  worker *w = t->data;
  int per = O.concurrency / (n_workers > 0 ? n_workers : 1);
  if (per < 1) per = 1;
  int started = 0;
  while (w->started < w->n_clients && started < per) {
    pc_connect(&w->clients[w->started++]);
    started++;
  }
  if (w->started >= w->n_clients) uv_timer_stop(t);
}

/* ---- the threads ------------------------------------------------------------ */

static void on_wake(uv_async_t *a) {
  worker *w = a->data;
  int cmd = atomic_exchange(&w->cmd, CMD_NONE);
  switch (cmd) {
  case CMD_OPEN:
    idle_fill(w);
    break;
  case CMD_MEASURE:
    meas_start(w, O.status_reqs);
    break;
  case CMD_STATUS_DOC:
    status_doc_start(w);
    break;
  case CMD_CLOSE:
    w->stopping = 1;
    while (w->conns)
      lconn_close(w->conns, "stopping");
    for (int i = 0; i < w->n_clients; i++)
      uv_close((uv_handle_t *)&w->clients[i].timer, NULL);
    if (w->has_starter) uv_close((uv_handle_t *)&w->starter, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
    break;
  default:
    break;
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void worker_init(worker *w, int idx) {
  w->idx = idx;
  if (uv_loop_init(&w->loop) != 0) die("uv_loop_init");
  uv_async_init(&w->loop, &w->wake, on_wake);
  w->wake.data = w;
  mbedtls_entropy_init(&w->entropy);
  mbedtls_ctr_drbg_init(&w->drbg);
  char pers[32];
  snprintf(pers, sizeof pers, "fedc-load-%d", idx);
  if (mbedtls_ctr_drbg_seed(&w->drbg, mbedtls_entropy_func, &w->entropy,
                            (const unsigned char *)pers, strlen(pers)) != 0)
    die("cannot seed the random generator");
  if (O.cert[0]) {
    mbedtls_x509_crt_init(&w->cert);
    mbedtls_pk_init(&w->key);
    int rc = mbedtls_x509_crt_parse_file(&w->cert, O.cert);
    if (rc == 0) rc = fedc__pk_parse_keyfile(&w->key, O.key, NULL, mbedtls_ctr_drbg_random, &w->drbg);
    if (rc == 0) rc = conf_client(w, &w->conf, &w->cert, &w->key);
    if (rc != 0) {
      char why[160];
      mbedtls_strerror(rc, why, sizeof why);
      die("--cert %s / --key %s: %s", O.cert, O.key, why);
    }
  }
}

static void send_cmd(worker *w, int cmd) {
  atomic_store(&w->done, 0);
  atomic_store(&w->cmd, cmd);
  uv_async_send(&w->wake);
}

/* Wait until the worker says done, at most until the run's deadline. */
static void wait_done(worker *w, const char *what) {
  while (!atomic_load(&w->done)) {
    if (now_s() - g_t0 > O.timeout_s) die("timed out (--timeout-s %.0f) %s", O.timeout_s, what);
    usleep(10000);
  }
}

/* ---- measurements -------------------------------------------------------- */

static long rss_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

/* CPU seconds (user + system) the process has used, from /proc/PID/stat;
 * -1 when it cannot be read. */
static double cpu_secs(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (p == NULL) return -1;
  /* after ") ": state, then fields 4..; utime and stime are fields 14, 15 */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A JSON number, or null for what is not finite (JSON has no NaN). */
static const char *jnum(char *buf, size_t n, double v, int decimals) {
  if (!isfinite(v)) return "null";
  snprintf(buf, n, "%.*f", decimals, v);
  return buf;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

typedef struct lat {
  double p50_ms, p99_ms, max_ms;
} lat;

static lat measure_status(void) {
  worker *m = &W[n_workers];
  send_cmd(m, CMD_MEASURE);
  wait_done(m, "measuring /v1/status");
  if (m->first_error[0]) die("%s", m->first_error);
  qsort(m->lat_ns, (size_t)m->meas_total, sizeof *m->lat_ns, cmp_u64);
  lat l;
  size_t n = (size_t)m->meas_total;
  l.p50_ms = (double)m->lat_ns[(n - 1) / 2] / 1e6;
  l.p99_ms = (double)m->lat_ns[(size_t)ceil(0.99 * (double)n) - 1] / 1e6;
  l.max_ms = (double)m->lat_ns[n - 1] / 1e6;
  return l;
}

static long sum_counter(_Atomic long *(*get)(worker *)) {
  long s = 0;
  for (int i = 0; i < n_workers; i++)
    s += atomic_load(get(&W[i]));
  return s;
}
static _Atomic long *get_established(worker *w) {
  return &w->established;
}
static _Atomic long *get_failed(worker *w) {
  return &w->failed;
}
static _Atomic long *get_peer_closed(worker *w) {
  return &w->peer_closed;
}
static _Atomic long *get_finished(worker *w) {
  return &w->finished;
}
static _Atomic long *get_updates(worker *w) {
  return &w->updates;
}
static _Atomic long *get_gave_up(worker *w) {
  return &w->gave_up;
}

static const char *first_error(void) {
  for (int i = 0; i <= n_workers; i++)
    if (W[i].first_error[0]) return W[i].first_error;
  return "";
}

/* Raise the soft file limit to the hard one (and the hard one, when
 * allowed) so that `need` sockets fit. Returns the soft limit in force. */
static long raise_nofile(long need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if ((long)rl.rlim_max < need) {
    struct rlimit up = {(rlim_t)need, (rlim_t)need};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) return need;
    note("cannot raise the file limit to %ld: %s (hard limit %ld)", need, strerror(errno),
         (long)rl.rlim_max);
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return (long)rl.rlim_cur;
}

static void start_threads(int measuring) {
  for (int i = 0; i < n_workers + measuring; i++)
    if (pthread_create(&W[i].th, NULL, worker_main, &W[i]) != 0) die("pthread_create");
}

static void stop_threads(int measuring) {
  for (int i = 0; i < n_workers + measuring; i++)
    send_cmd(&W[i], CMD_CLOSE);
  for (int i = 0; i < n_workers + measuring; i++)
    pthread_join(W[i].th, NULL);
}

static int run_idle(void) {
  long limit = raise_nofile(O.conns + O.status_conns + 64);
  worker *m = &W[n_workers];
  for (int i = 0; i <= n_workers; i++)
    worker_init(&W[i], i);
  start_threads(1);
  long rss0 = O.pid ? rss_kb(O.pid) : -1;
  note("coordinator pid %ld: VmRSS %ld kB before; file limit here %ld", O.pid, rss0, limit);
  lat before = measure_status();
  long conns_before = m->metrics_connections;
  note("GET /v1/status x%d with %ld connections open: p50 %.3f ms, p99 %.3f ms", O.status_reqs,
       conns_before, before.p50_ms, before.p99_ms);
  long rss1 = O.pid ? rss_kb(O.pid) : -1;
  double cpu0 = O.pid ? cpu_secs(O.pid) : -1, self0 = cpu_secs((long)getpid());
  double t_open = now_s();
  for (int i = 0; i < n_workers; i++) {
    W[i].quota = O.conns / n_workers + (i < O.conns % n_workers);
    send_cmd(&W[i], CMD_OPEN);
  }
  double last_note = 0;
  for (;;) {
    int all = 1;
    for (int i = 0; i < n_workers; i++)
      all &= atomic_load(&W[i].done);
    long est = sum_counter(get_established), fail = sum_counter(get_failed);
    if (all || fail >= FAIL_STOP) break;
    if (now_s() - g_t0 > O.timeout_s) die("timed out opening connections (%ld open)", est);
    if (now_s() - last_note > 5) {
      note("%ld connections open, %ld failed", est, fail);
      last_note = now_s();
    }
    usleep(20000);
  }
  double open_secs = now_s() - t_open;
  double cpu1 = O.pid ? cpu_secs(O.pid) : -1, self1 = cpu_secs((long)getpid());
  long est = sum_counter(get_established), fail = sum_counter(get_failed);
  double hs_ms = est > 0 && cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) * 1000.0 / (double)est : NAN;
  double self_ms = est > 0 ? (self1 - self0) * 1000.0 / (double)est : NAN;
  note("%ld connections open in %.1f s (%.0f handshakes/s), %ld failed%s%s", est, open_secs,
       (double)est / open_secs, fail, fail ? ": " : "", fail ? first_error() : "");
  sleep(2); /* let the coordinator settle */
  long rss2 = O.pid ? rss_kb(O.pid) : -1;
  lat after = measure_status();
  long conns_after = m->metrics_connections;
  note("GET /v1/status x%d with %ld connections open: p50 %.3f ms, p99 %.3f ms", O.status_reqs,
       conns_after, after.p50_ms, after.p99_ms);
  /* idle: memory should stay flat, and no connection should be dropped */
  long rss_idle[64];
  int n_idle = 0;
  double t_idle = now_s();
  while (now_s() - t_idle < O.idle_s && n_idle < 64) {
    double step = O.idle_s / 4 < 5 ? O.idle_s / 4 : 5;
    usleep((useconds_t)(step * 1e6));
    rss_idle[n_idle++] = O.pid ? rss_kb(O.pid) : -1;
    if (now_s() - g_t0 > O.timeout_s) break;
  }
  long rss3 = n_idle ? rss_idle[n_idle - 1] : rss2;
  long closed = sum_counter(get_peer_closed);
  double per_conn = est > 0 && rss2 > 0 ? (double)(rss2 - rss1) * 1024.0 / (double)est : NAN;
  stop_threads(1);
  printf("connections held: %ld of %d asked (%ld failed%s%s)\n", est, O.conns, fail,
         fail ? ": " : "", fail ? first_error() : "");
  printf("coordinator fedc_connections: %ld before, %ld while held\n", conns_before, conns_after);
  printf("handshakes: %.1f s for %ld (%.0f/s); CPU per handshake: coordinator %.2f ms, "
         "fedc-load %.2f ms\n",
         open_secs, est, (double)est / open_secs, hs_ms, self_ms);
  printf("/v1/status latency, %d requests on %d connections: idle coordinator p50 %.3f ms "
         "p99 %.3f ms; with %ld connections held p50 %.3f ms p99 %.3f ms (max %.3f ms)\n",
         O.status_reqs, O.status_conns, before.p50_ms, before.p99_ms, est, after.p50_ms,
         after.p99_ms, after.max_ms);
  printf("coordinator VmRSS: %ld kB before, %ld kB with the connections open: %.0f bytes per "
         "connection\n",
         rss1, rss2, per_conn);
  printf("coordinator VmRSS while idle (%.0f s):", O.idle_s);
  for (int i = 0; i < n_idle; i++)
    printf(" %ld", rss_idle[i]);
  printf(" kB; connections dropped while idle: %ld\n", closed);
  char jb[32], jb2[32];
  if (O.json)
    printf("{\"mode\":\"idle\",\"asked\":%d,\"held\":%ld,\"failed\":%ld,\"handshake_secs\":%.3f,"
           "\"status_p50_ms_before\":%.4f,\"status_p99_ms_before\":%.4f,"
           "\"status_p50_ms\":%.4f,\"status_p99_ms\":%.4f,\"status_max_ms\":%.4f,"
           "\"rss_kb_start\":%ld,\"rss_kb_before\":%ld,\"rss_kb_held\":%ld,\"rss_kb_idle_end\":%ld,"
           "\"bytes_per_conn\":%s,\"coordinator_connections\":%ld,\"dropped_while_idle\":%ld,"
           "\"coordinator_cpu_ms_per_handshake\":%s}\n",
           O.conns, est, fail, open_secs, before.p50_ms, before.p99_ms, after.p50_ms, after.p99_ms,
           after.max_ms, rss0, rss1, rss2, rss3, jnum(jb, sizeof jb, per_conn, 0), conns_after,
           closed, jnum(jb2, sizeof jb2, hs_ms, 3));
  return est == O.conns && closed == 0 ? 0 : 1;
}

static int run_rounds(void) {
  raise_nofile(O.clients + 64);
  for (int i = 0; i <= n_workers; i++)
    worker_init(&W[i], i);
  double t_certs = now_s();
  /* identities are made by the threads' own generators, before the loops run */
  int first = 1;
  for (int i = 0; i < n_workers; i++) {
    int count = O.clients / n_workers + (i < O.clients % n_workers);
    clients_setup(&W[i], first, count);
    first += count;
  }
  note("%d client certificates made in %.1f s", O.clients, now_s() - t_certs);
  for (int i = 0; i < n_workers; i++) {
    uv_timer_init(&W[i].loop, &W[i].starter);
    W[i].starter.data = &W[i];
    W[i].has_starter = 1;
    uv_timer_start(&W[i].starter, clients_start_tick, 0, 20);
  }
  double t_start = now_s();
  start_threads(1);
  double last_note = 0;
  long fin = 0, gave = 0;
  for (;;) {
    fin = sum_counter(get_finished);
    gave = sum_counter(get_gave_up);
    if (fin + gave >= O.clients) break;
    if (now_s() - g_t0 > O.timeout_s) {
      note("timed out: %ld of %d clients finished; %s", fin, O.clients, first_error());
      break;
    }
    if (now_s() - last_note > 5) {
      note("%ld updates accepted, %ld clients finished, %ld gave up", sum_counter(get_updates), fin,
           gave);
      last_note = now_s();
    }
    usleep(20000);
  }
  double t_end = now_s();
  /* the coordinator's own account of each round */
  send_cmd(&W[n_workers], CMD_STATUS_DOC);
  wait_done(&W[n_workers], "reading /v1/status");
  long updates = sum_counter(get_updates);
  stop_threads(1);
  double first_train[MAX_ROUNDS + 2] = {0}, last_ack[MAX_ROUNDS + 2] = {0};
  int rounds = 0;
  for (int i = 0; i < n_workers; i++)
    for (int r = 1; r <= MAX_ROUNDS; r++) {
      if (W[i].first_train[r] > 0 && (first_train[r] == 0 || W[i].first_train[r] < first_train[r]))
        first_train[r] = W[i].first_train[r];
      if (W[i].last_ack[r] > last_ack[r]) last_ack[r] = W[i].last_ack[r];
      if (W[i].first_train[r] > 0 && r > rounds) rounds = r;
    }
  cJSON *st = W[n_workers].status_doc ? cJSON_Parse(W[n_workers].status_doc) : NULL;
  const cJSON *rr = st ? cJSON_GetObjectItemCaseSensitive(st, "rounds") : NULL;
  const cJSON *e;
  double coord_secs = 0;
  int coord_rounds = 0, min_clients = -1;
  printf("round  clients  coordinator s  first task -> last ack s\n");
  cJSON_ArrayForEach(e, rr) {
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(e, "round");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(e, "clients");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(e, "secs");
    if (!cJSON_IsNumber(rn) || !cJSON_IsNumber(cl) || !cJSON_IsNumber(se)) continue;
    int r = (int)rn->valuedouble;
    coord_secs += se->valuedouble;
    coord_rounds++;
    if (min_clients < 0 || cl->valuedouble < min_clients) min_clients = (int)cl->valuedouble;
    double span = r <= MAX_ROUNDS && last_ack[r] > 0 ? last_ack[r] - first_train[r] : NAN;
    printf("%5d  %7d  %13.3f  %24.3f\n", r, (int)cl->valuedouble, se->valuedouble, span);
  }
  cJSON_Delete(st);
  double period = rounds > 1 ? (first_train[rounds] - first_train[1]) / (rounds - 1) : NAN;
  double wall = rounds > 0 ? (t_end - first_train[1]) / rounds : NAN;
  printf("clients: %d (%ld finished, %ld gave up%s%s), updates acknowledged: %ld\n", O.clients, fin,
         gave, gave ? ": " : "", gave ? first_error() : "", updates);
  printf("rounds: %d committed, at least %d clients each\n", coord_rounds, min_clients);
  printf("seconds per round: %.3f (coordinator, open to commit, mean); %.3f (round start to next "
         "round start); %.3f (wall, first task to the last client finished, per round)\n",
         coord_rounds ? coord_secs / coord_rounds : NAN, period, wall);
  printf("setup: %.1f s from the first connection to the first task (handshakes and joins)\n",
         first_train[1] > 0 ? first_train[1] - t_start : NAN);
  long reconnected = 0;
  double last_back = 0;
  for (int i = 0; i < n_workers; i++) {
    reconnected += W[i].reconnected;
    if (W[i].last_back > last_back) last_back = W[i].last_back;
  }
  printf("reconnect: %ld clients lost their connection and got a task again, the last at unix "
         "time %.3f; session resumption %s\n",
         reconnected, last_back, O.resume ? "on" : "off");
  char j1[32], j2[32], j3[32];
  if (O.json)
    printf("{\"mode\":\"rounds\",\"clients\":%d,\"finished\":%ld,\"gave_up\":%ld,\"rounds\":%d,"
           "\"min_clients\":%d,\"updates\":%ld,\"sec_per_round_coordinator\":%s,"
           "\"sec_per_round_period\":%s,\"sec_per_round_wall\":%s}\n",
           O.clients, fin, gave, coord_rounds, min_clients, updates,
           jnum(j1, sizeof j1, coord_rounds ? coord_secs / coord_rounds : NAN, 4),
           jnum(j2, sizeof j2, period, 4), jnum(j3, sizeof j3, wall, 4));
  return fin == O.clients && coord_rounds > 0 ? 0 : 1;
}

/* ---- command line ----------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: fedc-load idle   --port P --ca CA.pem --cert C.pem --key C.key [options]\n"
        "       fedc-load rounds --port P --ca CA.pem --ca-key CA.key --cert C.pem --key C.key\n"
        "                        [options]\n"
        "\n"
        "Mutual-TLS load on a fedc coordinator at 127.0.0.1:P.\n"
        "\n"
        "  --conns N          idle: connections to open and hold (10000)\n"
        "  --pid PID          idle: the coordinator's pid, for its VmRSS\n"
        "  --status-reqs N    idle: GET /v1/status requests per measurement (2000)\n"
        "  --status-conns N   idle: connections that measure, one request at a time (4)\n"
        "  --idle-s S         idle: how long to hold the connections idle (20)\n"
        "  --clients N        rounds: simulated clients (1000)\n"
        "  --wait-s S         rounds: the wait= of GET /v1/task (10)\n"
        "  --sites P1,P2,...  rounds: the clients connect to these ports (relays) in\n"
        "                     equal contiguous blocks; --port still serves /v1/status\n"
        "  --threads T        threads with their own loop (2)\n"
        "  --concurrency N    handshakes in flight at once (64)\n"
        "  --no-verify        do not verify the coordinator's certificate\n"
        "  --no-resume        rounds: full handshakes on reconnect (no session resumption)\n"
        "  --timeout-s S      end the run after S seconds (600)\n"
        "  --json             a JSON line last\n"
        "\n"
        "--cert/--key: a client certificate of the job's CA (idle connections and\n"
        "the measuring ones). --ca-key: the CA's key, to make one certificate per\n"
        "simulated client. Exit codes: 0 done, 1 failed or timed out, 2 usage.\n",
        f);
}

static int arg_num(const char *flag, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end != '\0' || !(x >= lo && x <= hi)) {
    fprintf(stderr, "fedc-load: %s: '%s' is not a number in [%g, %g]\n", flag, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

/* --sites P1,P2,...: 0, or -1 (said on stderr). */
static int parse_sites(const char *v) {
  O.n_sites = 0;
  const char *p = v;
  while (*p) {
    char *end;
    errno = 0;
    long x = strtol(p, &end, 10);
    if (errno || end == p || x < 1 || x > 65535 || (*end != ',' && *end != '\0') ||
        O.n_sites == MAX_SITES) {
      fprintf(stderr, "fedc-load: --sites: '%s' is not a list of at most %d ports\n", v, MAX_SITES);
      return -1;
    }
    O.sites[O.n_sites++] = (int)x;
    p = *end == ',' ? end + 1 : end;
  }
  return O.n_sites > 0 ? 0 : -1;
}

static int parse_args(int argc, char **argv) {
  O = (opts){.conns = 10000,
             .status_reqs = 2000,
             .status_conns = 4,
             .threads = 2,
             .concurrency = 64,
             .clients = 1000,
             .idle_s = 20,
             .timeout_s = 600,
             .wait_s = 10,
             .verify = 1,
             .resume = 1};
  if (argc < 2) return -1;
  if (strcmp(argv[1], "idle") == 0)
    O.mode = MODE_IDLE;
  else if (strcmp(argv[1], "rounds") == 0)
    O.mode = MODE_ROUNDS;
  else if (strcmp(argv[1], "--help") == 0) {
    usage(stdout);
    exit(0);
  } else
    return -1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0) {
      O.json = 1;
      continue;
    }
    if (strcmp(a, "--no-verify") == 0) {
      O.verify = 0;
      continue;
    }
    if (strcmp(a, "--no-resume") == 0) {
      O.resume = 0;
      continue;
    }
    if (strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "fedc-load: %s needs a value\n", a);
      return -1;
    }
    const char *v = argv[++i];
    double x;
    if (strcmp(a, "--sites") == 0) {
      if (parse_sites(v) != 0) return -1;
      continue;
    }
    char *dst = strcmp(a, "--ca") == 0       ? O.ca
                : strcmp(a, "--cert") == 0   ? O.cert
                : strcmp(a, "--key") == 0    ? O.key
                : strcmp(a, "--ca-key") == 0 ? O.ca_key
                                             : NULL;
    if (dst) {
      if (strlen(v) >= sizeof O.ca) return -1;
      snprintf(dst, sizeof O.ca, "%s", v);
      continue;
    }
    struct {
      const char *flag;
      double lo, hi;
    } const nums[] = {
        {"--port", 1, 65535},      {"--conns", 1, 1e6},           {"--status-reqs", 1, 1e7},
        {"--status-conns", 1, 64}, {"--threads", 1, MAX_WORKERS}, {"--concurrency", 1, 100000},
        {"--clients", 1, 100000},  {"--pid", 1, 4194304},         {"--idle-s", 0, 3600},
        {"--timeout-s", 1, 86400}, {"--wait-s", 0, 300}};
    size_t k;
    for (k = 0; k < sizeof nums / sizeof nums[0]; k++)
      if (strcmp(a, nums[k].flag) == 0) break;
    if (k == sizeof nums / sizeof nums[0]) {
      fprintf(stderr, "fedc-load: unknown option %s\n", a);
      return -1;
    }
    if (arg_num(a, v, nums[k].lo, nums[k].hi, &x) != 0) return -1;
    switch (k) {
    case 0:
      O.port = (int)x;
      break;
    case 1:
      O.conns = (int)x;
      break;
    case 2:
      O.status_reqs = (int)x;
      break;
    case 3:
      O.status_conns = (int)x;
      break;
    case 4:
      O.threads = (int)x;
      break;
    case 5:
      O.concurrency = (int)x;
      break;
    case 6:
      O.clients = (int)x;
      break;
    case 7:
      O.pid = (long)x;
      break;
    case 8:
      O.idle_s = x;
      break;
    case 9:
      O.timeout_s = x;
      break;
    case 10:
      O.wait_s = x;
      break;
    }
  }
  if (!O.port || !O.ca[0] || !O.cert[0] || !O.key[0]) {
    fprintf(stderr, "fedc-load: --port, --ca, --cert and --key are required\n");
    return -1;
  }
  if (O.mode == MODE_ROUNDS && !O.ca_key[0]) {
    fprintf(stderr, "fedc-load rounds: --ca-key is required\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_t0 = now_s();
  mbedtls_x509_crt_init(&g_ca);
  int rc = mbedtls_x509_crt_parse_file(&g_ca, O.ca);
  if (rc != 0) {
    char why[160];
    mbedtls_strerror(rc, why, sizeof why);
    die("--ca %s: %s", O.ca, why);
  }
  n_workers = O.threads;
  rc = O.mode == MODE_IDLE ? run_idle() : run_rounds();
  fflush(stdout);
  /* the threads' memory goes with the process */
  return rc;
}
