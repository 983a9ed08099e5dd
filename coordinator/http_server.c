/*
 * http_server.c - the coordinator's HTTP/1.1 server (see http_server.h).
 *
 * One libuv TCP listener; per accepted socket a connection with a transport
 * (plain or TLS, transport.h), an http-parser in request mode, an idle timer
 * and a buffer of plaintext not yet parsed. Bytes flow:
 *
 *   uv_read -> transport feed -> on_plain -> http-parser -> exchange -> handler
 *   fedc_http_respond -> transport write -> on_wire -> uv_write
 *
 * A connection hands the handler one exchange at a time: when a request is
 * complete the parser is paused and whatever follows (pipelined requests)
 * waits in the connection's buffer until the answer is written, so answers
 * leave in request order. Errors the server decides itself (400, 411, 413,
 * 431) are answered with "Connection: close": the write side is shut down
 * once the answer is out and the rest of the peer's bytes are read and
 * dropped for a moment (a lingering close), so that the peer reads the
 * answer instead of a reset.
 *
 * One timer per connection carries its nearest deadline (timer_arm): while
 * the server waits for the peer (a request to arrive or finish, a
 * handshake, or the peer to read an answer) the connection is closed after
 * idle_timeout_s without progress; on top of that, deadlines that no byte
 * moves: the headers within header_timeout_s of the request's first byte,
 * the whole request within request_timeout_s, and a body or an answer at
 * min_rate_bytes_s or faster, measured over each rate_window_s. A request
 * past its deadline is answered 408 and the connection closed; a peer that
 * does not read its answers fast enough is closed. No timer runs while the
 * handler holds an exchange, so long-polls may outlast them all.
 *
 * Output backpressure: a request is only parsed while less than
 * OUT_HIGH bytes of answers wait in the socket's write queue; above it the
 * connection stops parsing and reading (out_paused) until the queue drains
 * to OUT_LOW. So a peer pipelining requests without reading the answers
 * holds at most OUT_HIGH plus one answer plus PENDING_INPUT_CAP of input.
 *
 * Shared bodies (fedc_http_respond_body, http_body.h): the answer's headers
 * are written at once and its body is copied from the shared buffer in
 * slices as earlier ones complete (stream_fill from on_write), so a
 * connection holds at most STREAM_INFLIGHT + STREAM_SLICE of it; while
 * it streams, nothing else is parsed on the connection. A connection that
 * closes first drops its reference.
 *
 * Header-time admission: when a request's headers are complete the admit
 * callback decides whether it will be refused; one with a body is then
 * answered and closed before a byte of it is read.
 *
 * Handles are closed with uv_close and memory is freed in the close
 * callbacks; the server itself is freed when its listener and its last
 * connection are closed.
 *
 * Details the header leaves open: max_body 0 means 64 MiB; max_header 0
 * means 16 KiB (request line and headers, beyond it 431 with the error code
 * bad_request); idle_timeout_s <= 0 disables the idle timeout;
 * max_connections <= 0 means no limit, and connections turned away are not
 * counted in connections_total. "Expect: 100-continue" is answered with
 * 100 Continue once the headers pass. Paths are handed over as received
 * (not percent-decoded). While the handler holds an exchange at most 256
 * KiB of what the peer sends next is buffered, then reading pauses. The
 * handler must not close the server from inside its own call (defer it).
 */
#include "http_server.h"

#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mapped.h"
#include "http_body.h"
#include "transport.h"

#define READ_BUF_SIZE (64 * 1024)
#define DEFAULT_MAX_HEADER ((size_t)16 * 1024)
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
/* While the handler holds an exchange, buffer at most this much of what the
 * peer sends next before we stop reading the socket. */
#define PENDING_INPUT_CAP ((size_t)256 * 1024)
/* How long a closing connection keeps reading (and dropping) input. */
#define LINGER_MS 1000
/* Output backpressure: stop parsing and reading above OUT_HIGH bytes
 * queued for the socket, go on below OUT_LOW. */
#define OUT_HIGH ((size_t)256 * 1024)
#define OUT_LOW ((size_t)64 * 1024)
#define LISTEN_BACKLOG 511
/* A shared body is sent in slices of STREAM_SLICE bytes, each copied into
 * a buffer the transport owns, while less than STREAM_INFLIGHT bytes of
 * the connection's writes wait for their completion (written to the
 * kernel or not: a buffer is freed only in on_write). */
#define STREAM_SLICE ((size_t)128 * 1024)
#define STREAM_INFLIGHT ((size_t)512 * 1024)
/* First allocation for a request body; it doubles up to Content-Length. */
#define BODY_FIRST_CAP ((size_t)256 * 1024)

typedef struct conn conn;

struct fedc_http_exchange {
  conn *c; /* NULL once aborted */
  fedc_http_request req;
  uint8_t *url; /* request target as received (not NUL-terminated) */
  size_t url_len, url_cap;
  char *strs; /* "path\0query\0" */
  char content_type[256];
  size_t ct_len;
  char expect[32];
  size_t expect_len;
  char range[128], if_range[128]; /* Range and If-Range, "" if absent */
  size_t range_len, if_range_len;
  uint8_t *body;
  size_t body_len, body_cap, body_want; /* want: the Content-Length */
  int keep_alive;
  int head;
  /* refused by admit, to be answered in order (a request without body) */
  int rej_status;
  const char *rej_code;
  char rej_msg[160];
  fedc_http_abort_cb abort_cb;
  void *abort_ud;
};

/* which header value the parser is collecting */
enum { HDR_NONE, HDR_CTYPE, HDR_EXPECT, HDR_RANGE, HDR_IF_RANGE };

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  fedc_http_server *s;
  conn *prev, *next;
  fedc_transport_conn *tc;
  http_parser parser;
  char remote[64];

  fedc_http_exchange *cur; /* the request being parsed */
  fedc_http_exchange *x;   /* the request the handler holds */
  int msg_done;            /* cur is complete (parser paused on it) */
  size_t hdr_bytes;
  char field[32];
  size_t field_len;
  int field_long, last_was_value, hdr_kind;
  /* a request the server refuses itself, decided in a parser callback */
  int rej_status;
  const char *rej_code;
  char rej_msg[160];

  /* an answer sent from a shared body (fedc_http_respond_body): the bytes
   * [s_off, s_end) of sb are still to go; nothing else is parsed or
   * answered on the connection until they have */
  fedc_http_body *sb;
  uint64_t s_off, s_end;
  int s_keep;

  uint8_t *in; /* plaintext not yet parsed: in[in_off .. in_len) */
  size_t in_off, in_len, in_cap;

  int writes_pending;
  size_t last_wq; /* write queue size when output progress was last seen */
  int handles;    /* uv handles still open: tcp, timer */
  /* deadlines (loop milliseconds, uv_now) */
  uint64_t last_progress; /* bytes last moved either way */
  uint64_t req_start;     /* first byte of the request being parsed */
  uint64_t rate_at;       /* start of the current rate window */
  uint64_t rate_bytes;    /* the phase's byte count at rate_at */
  uint64_t body_in;       /* body bytes of the request being parsed */
  uint64_t out_total;     /* bytes ever handed to uv_write */
  size_t out_inflight;    /* bytes handed to uv_write, not yet completed */
  int rate_phase;         /* the phase the rate window belongs to */
  unsigned tcp_inited : 1, timer_inited : 1, reading : 1, in_pump : 1,
      want_close : 1, draining : 1, closing : 1, counted : 1, hdr_done : 1,
      out_paused : 1;
};

struct fedc_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  fedc_transport *transport;
  fedc_http_handler handler;
  void *ctx;
  size_t max_body, max_header;
  uint64_t idle_ms, header_ms, request_ms, window_ms;
  double min_rate; /* bytes per second; 0: no minimum */
  fedc_http_admit_cb admit;
  int32_t max_conns;
  int port;
  int closing;
  int handles; /* listener + connections not yet freed */
  conn *conns;
  uint8_t *rbuf; /* one read buffer: every read is consumed in its callback */
  fedc_http_server_stats st;
};

typedef struct wreq {
  uv_write_t req;
  uint8_t *buf;
  size_t n;
} wreq;

static void conn_close(conn *c);
static void conn_finish(conn *c);
static void stream_fill(conn *c);
static void resume(conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* ---- helpers ---------------------------------------------------------- */

static void srv_unref(fedc_http_server *s) {
  if (--s->handles > 0) return;
  fedc_transport_free(s->transport);
  fedc_free(s->rbuf);
  fedc_free(s);
}

static void exchange_free(fedc_http_exchange *x) {
  if (x == NULL) return;
  fedc_free(x->url);
  fedc_free(x->strs);
  fedc_free(x->body);
  fedc_free(x);
}

static const char *reason_of(int status) {
  const char *r = http_status_str((enum http_status)status);
  return (r == NULL || r[0] == '<') ? "Unknown" : r;
}

/* Append to a fedc_realloc'd buffer, doubling; -1 when out of memory. */
static int grow_append(uint8_t **buf, size_t *len, size_t *cap,
                       const void *p, size_t n) {
  if (*len + n > *cap) {
    size_t nc = *cap ? *cap : 256;
    while (nc < *len + n) nc *= 2;
    uint8_t *nb = fedc_realloc(*buf, nc);
    if (nb == NULL) return -1;
    *buf = nb;
    *cap = nc;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  return 0;
}

/* ---- timers ----------------------------------------------------------- */

/* Where a connection stands, for its deadlines. */
enum {
  PH_IDLE,    /* waiting for a request (or the handshake) */
  PH_HEADERS, /* a request's first bytes are in, its headers are not */
  PH_BODY,    /* reading a request's body */
  PH_HANDLER, /* the handler holds an exchange and nothing is being sent */
  PH_WRITING  /* answers are waiting for the peer to read them */
};

static size_t write_queue(const conn *c) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static int phase(const conn *c) {
  if (c->cur != NULL && c->x == NULL && !c->want_close)
    return c->hdr_done ? PH_BODY : PH_HEADERS;
  if (c->writes_pending > 0) return PH_WRITING;
  return c->x != NULL ? PH_HANDLER : PH_IDLE;
}

/* The byte count the minimum rate applies to in a phase: body bytes in,
 * or answer bytes the kernel has taken. */
static uint64_t rate_count(conn *c, int ph) {
  return ph == PH_BODY ? c->body_in : c->out_total - write_queue(c);
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static void on_timer(uv_timer_t *t);
static void refuse(conn *c, int status, const char *code, const char *msg);

/*
 * (Re)arm the connection's timer for its nearest deadline, given its phase:
 * the idle timeout from the last progress everywhere the server waits for
 * the peer, the header and request deadlines from the request's first
 * byte, and the end of the current rate window while a body comes in or an
 * answer goes out. No timer while the handler holds the exchange and
 * nothing is being written. Called whenever bytes move or the exchange
 * changes hands.
 */
static void timer_arm(conn *c) {
  if (c->closing || c->draining) return;
  fedc_http_server *s = c->s;
  int ph = phase(c);
  if (ph == PH_HANDLER) {
    uv_timer_stop(&c->timer);
    c->rate_phase = PH_HANDLER;
    return;
  }
  uint64_t now = uv_now(s->loop), due = UINT64_MAX;
  if (s->idle_ms) due = c->last_progress + s->idle_ms;
  if (ph == PH_HEADERS && s->header_ms)
    due = min_u64(due, c->req_start + s->header_ms);
  if ((ph == PH_HEADERS || ph == PH_BODY) && s->request_ms)
    due = min_u64(due, c->req_start + s->request_ms);
  if ((ph == PH_BODY || ph == PH_WRITING) && s->min_rate > 0) {
    if (c->rate_phase != ph) { /* a new window for a new phase */
      c->rate_phase = ph;
      c->rate_at = now;
      c->rate_bytes = rate_count(c, ph);
    }
    due = min_u64(due, c->rate_at + s->window_ms);
  } else {
    c->rate_phase = ph;
  }
  if (due == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/*
 * A deadline came (or the lingering close ended). Checked in order: the
 * header deadline and the request deadline (408, then close), the rate
 * window (408 for a slow body; a slow reader of answers is closed), the
 * idle timeout (closed silently). Otherwise re-arm for the next one.
 */
static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  fedc_http_server *s = c->s;
  if (c->closing) return;
  if (c->draining) {
    conn_close(c);
    return;
  }
  uint64_t now = uv_now(s->loop);
  int ph = phase(c);
  if (c->writes_pending > 0) {
    /* A long answer is still going out: bytes moving is progress, even if
     * libuv reports no completed write yet. */
    size_t q = write_queue(c);
    if (q < c->last_wq) c->last_progress = now;
    c->last_wq = q;
  }
  char msg[160];
  if (ph == PH_HEADERS && s->header_ms && now >= c->req_start + s->header_ms) {
    s->st.header_timeouts++;
    snprintf(msg, sizeof msg, "request headers not complete within %.3g s",
             (double)s->header_ms / 1000.0);
    fedc_log_info("http header deadline remote=%s", c->remote);
    refuse(c, 408, "timeout", msg);
    return;
  }
  if ((ph == PH_HEADERS || ph == PH_BODY) && s->request_ms &&
      now >= c->req_start + s->request_ms) {
    s->st.request_timeouts++;
    snprintf(msg, sizeof msg, "request not complete within %.3g s",
             (double)s->request_ms / 1000.0);
    fedc_log_info("http request deadline remote=%s", c->remote);
    refuse(c, 408, "timeout", msg);
    return;
  }
  if ((ph == PH_BODY || ph == PH_WRITING) && s->min_rate > 0 &&
      c->rate_phase == ph && now >= c->rate_at + s->window_ms) {
    uint64_t got = rate_count(c, ph) - c->rate_bytes;
    double secs = (double)(now - c->rate_at) / 1000.0;
    if ((double)got < s->min_rate * secs) {
      s->st.slow_closed++;
      snprintf(msg, sizeof msg,
               "%s at %.0f bytes/s, under the minimum of %.0f bytes/s",
               ph == PH_BODY ? "request body arriving" : "answer read",
               (double)got / secs, s->min_rate);
      fedc_log_info("http too slow remote=%s: %s", c->remote, msg);
      if (ph == PH_BODY) refuse(c, 408, "timeout", msg);
      else conn_close(c);
      return;
    }
    c->rate_at = now;
    c->rate_bytes = rate_count(c, ph);
  }
  if (ph != PH_HANDLER && s->idle_ms && now >= c->last_progress + s->idle_ms) {
    s->st.idle_closed++;
    fedc_log_debug("http idle timeout remote=%s", c->remote);
    conn_close(c);
    return;
  }
  timer_arm(c);
}

/* Bytes moved: the idle timeout starts again (the deadlines do not). */
static void progress(conn *c) {
  c->last_progress = uv_now(c->s->loop);
  timer_arm(c);
}

/* ---- closing ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->handles > 0) return;
  fedc_http_server *s = c->s;
  fedc_transport_conn_free(c->tc);
  exchange_free(c->cur);
  fedc_free(c->in);
  if (c->prev) c->prev->next = c->next;
  else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  fedc_free(c);
  srv_unref(s);
}

/*
 * Close at once: the exchange the handler holds is aborted (its abort
 * callback runs, then it is freed), queued writes are cancelled, and the
 * connection is freed when libuv has closed its handles. Safe to call more
 * than once and from any callback of the connection: nothing is freed
 * before the close callbacks run.
 */
static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  fedc_http_body_unref(c->sb); /* a download cut short: drop our reference */
  c->sb = NULL;
  if (c->counted) {
    c->s->st.connections--;
    c->counted = 0;
  }
  fedc_http_exchange *x = c->x;
  if (x != NULL) {
    c->x = NULL;
    x->c = NULL;
    if (x->abort_cb) x->abort_cb(x->abort_ud, x);
    exchange_free(x);
  }
  if (c->timer_inited) {
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  }
  if (c->tcp_inited) uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* Keep reading and dropping what the peer still sends, so that our
   * answer is not destroyed by a reset, but not for long. */
  c->draining = 1;
  uint64_t ms = c->s->idle_ms && c->s->idle_ms < LINGER_MS ? c->s->idle_ms
                                                           : LINGER_MS;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

/*
 * Close gracefully after what is queued: say goodbye at the transport
 * level, shut the write side down once the queued writes are out, then
 * linger (on_shutdown). Called when no exchange is held by the handler.
 */
static void conn_finish(conn *c) {
  if (c->closing || c->want_close) return;
  c->want_close = 1;
  if (fedc_transport_established(c->tc)) (void)fedc_transport_shutdown(c->tc);
  if (c->closing) return; /* on_wire failed */
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
    conn_close(c);
  else
    timer_arm(c);
}

/* ---- writing ---------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  conn *c = req->data;
  c->out_inflight -= w->n;
  fedc_free(w->buf);
  fedc_free(w);
  c->writes_pending--;
  if (c->closing) return;
  if (status < 0) {
    fedc_log_debug("http write failed remote=%s: %s", c->remote,
                   uv_strerror(status));
    conn_close(c);
    return;
  }
  c->last_wq = write_queue(c);
  if (c->sb != NULL) {
    progress(c);
    stream_fill(c);
    return;
  }
  if (c->out_paused && write_queue(c) <= OUT_LOW) {
    c->out_paused = 0; /* the peer has read: parse and read again */
    progress(c);
    resume(c);
    return;
  }
  progress(c);
}

/* The transport's output: queue it on the socket (we own buf). */
static int on_wire(void *ud, uint8_t *buf, size_t n) {
  conn *c = ud;
  if (c->closing || n > UINT32_MAX) {
    fedc_free(buf);
    return fedc_error_set(FEDC_EIO, "http: connection closed");
  }
  wreq *w = fedc_malloc(sizeof *w);
  if (w == NULL) {
    fedc_free(buf);
    conn_close(c);
    return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
  }
  w->buf = buf;
  w->n = n;
  w->req.data = c;
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned int)n);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc != 0) {
    fedc_free(buf);
    fedc_free(w);
    conn_close(c);
    return fedc_error_set(FEDC_EIO, "http write %s: %s", c->remote,
                          uv_strerror(rc));
  }
  c->writes_pending++;
  c->out_inflight += n;
  c->out_total += n;
  c->last_wq = write_queue(c);
  return 0;
}

/*
 * Serialize one response and give it to the transport. The body is copied;
 * HEAD answers carry the length but no body; 204 and 304 carry neither.
 * On failure the connection is closed.
 */
static int write_response(conn *c, int status, const char *ctype,
                          const void *body, uint64_t len, const char *extra,
                          int keep_alive, int head) {
  const char *reason = reason_of(status);
  if (ctype == NULL) ctype = "";
  if (extra == NULL) extra = "";
  int no_len =
      status == 204 || status == 304 || (status >= 100 && status < 200);
  /* body NULL: the body follows from a shared buffer (stream_fill) */
  size_t blen = (head || no_len || body == NULL) ? 0 : (size_t)len;
  size_t cap = 160 + strlen(reason) + strlen(ctype) + strlen(extra);
  uint8_t *buf = fedc_malloc(cap + blen);
  if (buf == NULL) {
    fedc_log_warn("http: out of memory answering %s", c->remote);
    conn_close(c);
    return FEDC_ENOMEM;
  }
  char clen[48] = "";
  if (!no_len)
    snprintf(clen, sizeof clen, "Content-Length: %llu\r\n", (unsigned long long)len);
  int n = snprintf((char *)buf, cap,
                   "HTTP/1.1 %d %s\r\n%s%s%s%sConnection: %s\r\n%s\r\n",
                   status, reason, ctype[0] ? "Content-Type: " : "", ctype,
                   ctype[0] ? "\r\n" : "", clen,
                   keep_alive ? "keep-alive" : "close", extra);
  if (n < 0 || (size_t)n >= cap) {
    fedc_free(buf);
    conn_close(c);
    return FEDC_EINVAL;
  }
  if (blen) memcpy(buf + n, body, blen);
  c->s->st.bytes_out += (uint64_t)n + blen;
  int rc = fedc_transport_write(c->tc, buf, (size_t)n + blen);
  if (rc != 0 && !c->closing) {
    fedc_log_debug("http write %s: %s", c->remote, fedc_error_msg());
    conn_close(c);
  }
  return rc;
}

/* Build {"error":code,"message":msg} with msg escaped for JSON. */
static size_t json_error(char *out, size_t cap, const char *code,
                         const char *msg) {
  size_t k =
      (size_t)snprintf(out, cap, "{\"error\":\"%s\",\"message\":\"", code);
  if (k >= cap) k = cap - 1;
  for (const unsigned char *p = (const unsigned char *)msg; *p && k + 8 < cap;
       p++) {
    if (*p == '"' || *p == '\\') {
      out[k++] = '\\';
      out[k++] = (char)*p;
    } else if (*p < 0x20) {
      k += (size_t)snprintf(out + k, cap - k, "\\u%04x", *p);
    } else {
      out[k++] = (char)*p;
    }
  }
  k += (size_t)snprintf(out + k, cap - k, "\"}");
  return k < cap ? k : cap - 1;
}

/* Answer a request the server refuses itself, then close. */
static void refuse(conn *c, int status, const char *code, const char *msg) {
  char body[512];
  size_t n = json_error(body, sizeof body, code, msg);
  fedc_log_debug("http refused remote=%s status=%d msg=\"%s\"", c->remote,
                 status, msg);
  if (write_response(c, status, "application/json", body, n, NULL, 0, 0) == 0)
    conn_finish(c);
}

/* ---- parsing ---------------------------------------------------------- */

static conn *pconn(http_parser *p) { return p->data; }

static int reject(conn *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reject(conn *c, int status, const char *code, const char *fmt, ...) {
  c->rej_status = status;
  c->rej_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->rej_msg, sizeof c->rej_msg, fmt, ap);
  va_end(ap);
  return -1; /* stops http-parser with a callback error */
}

static int count_header(conn *c, size_t n) {
  c->hdr_bytes += n;
  if (c->hdr_bytes > c->s->max_header)
    return reject(c, 431, "bad_request", "request headers over %zu bytes",
                  c->s->max_header);
  return 0;
}

static int on_message_begin(http_parser *p) {
  conn *c = pconn(p);
  exchange_free(c->cur);
  c->cur = fedc_calloc(1, sizeof *c->cur);
  if (c->cur == NULL)
    return reject(c, 503, "unavailable", "out of memory");
  c->hdr_bytes = 0;
  c->field_len = 0;
  c->field_long = 0;
  c->last_was_value = 0;
  c->hdr_kind = HDR_NONE;
  c->hdr_done = 0;
  c->body_in = 0;
  c->req_start = uv_now(c->s->loop); /* the header and request deadlines */
  timer_arm(c);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  conn *c = pconn(p);
  fedc_http_exchange *x = c->cur;
  if (count_header(c, n)) return -1;
  if (grow_append(&x->url, &x->url_len, &x->url_cap, at, n))
    return reject(c, 503, "unavailable", "out of memory");
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  conn *c = pconn(p);
  if (count_header(c, n + 4)) return -1; /* ": " and CRLF */
  if (c->last_was_value) {
    c->field_len = 0;
    c->field_long = 0;
    c->last_was_value = 0;
  }
  if (c->field_len + n >= sizeof c->field) {
    c->field_long = 1; /* no header we look at has a long name */
    return 0;
  }
  memcpy(c->field + c->field_len, at, n);
  c->field_len += n;
  return 0;
}

static void append_value(char *dst, size_t cap, size_t *len, const char *at,
                         size_t n) {
  size_t k = cap - 1 - *len;
  if (n > k) n = k;
  memcpy(dst + *len, at, n);
  *len += n;
  dst[*len] = '\0';
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  conn *c = pconn(p);
  fedc_http_exchange *x = c->cur;
  if (count_header(c, n)) return -1;
  if (!c->last_was_value) {
    c->last_was_value = 1;
    c->field[c->field_len] = '\0';
    c->hdr_kind = HDR_NONE;
    if (!c->field_long && strcasecmp(c->field, "content-type") == 0) {
      c->hdr_kind = HDR_CTYPE;
      x->ct_len = 0;
    } else if (!c->field_long && strcasecmp(c->field, "expect") == 0) {
      c->hdr_kind = HDR_EXPECT;
      x->expect_len = 0;
    } else if (!c->field_long && strcasecmp(c->field, "range") == 0) {
      c->hdr_kind = HDR_RANGE;
      x->range_len = 0;
    } else if (!c->field_long && strcasecmp(c->field, "if-range") == 0) {
      c->hdr_kind = HDR_IF_RANGE;
      x->if_range_len = 0;
    }
  }
  if (c->hdr_kind == HDR_CTYPE)
    append_value(x->content_type, sizeof x->content_type, &x->ct_len, at, n);
  else if (c->hdr_kind == HDR_EXPECT)
    append_value(x->expect, sizeof x->expect, &x->expect_len, at, n);
  else if (c->hdr_kind == HDR_RANGE)
    append_value(x->range, sizeof x->range, &x->range_len, at, n);
  else if (c->hdr_kind == HDR_IF_RANGE)
    append_value(x->if_range, sizeof x->if_range, &x->if_range_len, at, n);
  return 0;
}

/* Split the request target into path and query (origin or absolute form). */
static int split_target(fedc_http_exchange *x) {
  struct http_parser_url u;
  http_parser_url_init(&u);
  const char *url = (const char *)x->url;
  if (x->url_len == 0 || http_parser_parse_url(url, x->url_len, 0, &u) != 0)
    return -1;
  size_t pl = 0, ql = 0;
  const char *pp = "/", *qp = "";
  if (u.field_set & (1 << UF_PATH)) {
    pp = url + u.field_data[UF_PATH].off;
    pl = u.field_data[UF_PATH].len;
  } else {
    pl = 1;
  }
  if (u.field_set & (1 << UF_QUERY)) {
    qp = url + u.field_data[UF_QUERY].off;
    ql = u.field_data[UF_QUERY].len;
  }
  x->strs = fedc_malloc(pl + ql + 2);
  if (x->strs == NULL) return -2;
  memcpy(x->strs, pp, pl);
  x->strs[pl] = '\0';
  memcpy(x->strs + pl + 1, qp, ql);
  x->strs[pl + 1 + ql] = '\0';
  x->req.path = x->strs;
  x->req.query = x->strs + pl + 1;
  return 0;
}

/*
 * The headers are in: decide everything that does not need the body.
 * Refusals (bad target 400, chunked or other transfer codings 411, the
 * admit callback's, a declared body over max_body 413) stop the parser;
 * the refusal is sent by pump() and the connection closed without reading
 * the body. An admit refusal of a request without a body is kept in the
 * exchange and answered in order instead (dispatch), the connection kept.
 */
static int on_headers_complete(http_parser *p) {
  conn *c = pconn(p);
  fedc_http_exchange *x = c->cur;
  fedc_http_server *s = c->s;
  int rc = split_target(x);
  if (rc == -2) return reject(c, 503, "unavailable", "out of memory");
  if (rc != 0)
    return reject(c, 400, "bad_request", "malformed request target");
  if ((p->flags & F_CHUNKED) || p->uses_transfer_encoding)
    return reject(c, 411, "length_required",
                  "a request body needs Content-Length (no transfer coding)");
  int has_len = (p->flags & F_CONTENTLENGTH) != 0;
  x->req.method = http_method_str((enum http_method)p->method);
  x->req.content_type = x->content_type;
  x->req.range = x->range;
  x->req.if_range = x->if_range;
  x->req.peer_fingerprint = fedc_transport_peer_fingerprint(c->tc);
  x->req.peer_cn = fedc_transport_peer_cn(c->tc);
  x->req.remote = c->remote;
  if (s->admit) {
    const char *code = NULL;
    char msg[sizeof x->rej_msg];
    msg[0] = '\0';
    x->req.body = NULL;
    x->req.body_len = has_len ? (size_t)p->content_length : 0;
    int st = s->admit(s->ctx, &x->req, &code, msg, sizeof msg);
    if (st != 0) {
      s->st.refused_early++;
      if (code == NULL) code = "forbidden";
      if (has_len && p->content_length > 0)
        return reject(c, st, code, "%s", msg);
      x->rej_status = st;
      x->rej_code = code;
      snprintf(x->rej_msg, sizeof x->rej_msg, "%s", msg);
    }
  }
  c->hdr_done = 1;
  if (has_len && p->content_length > s->max_body)
    return reject(c, 413, "too_large",
                  "request body of %llu bytes is over the limit of %zu bytes",
                  (unsigned long long)p->content_length, s->max_body);
  x->keep_alive = http_should_keep_alive(p) && p->http_major == 1 &&
                  p->http_minor >= 1 && !p->upgrade;
  x->head = p->method == HTTP_HEAD;
  if (has_len && p->content_length > 0) {
    /* The body buffer grows as bytes arrive, so that a peer that announces
     * a large body and sends nothing holds little memory. */
    x->body_want = (size_t)p->content_length;
    x->body_cap = x->body_want < BODY_FIRST_CAP ? x->body_want : BODY_FIRST_CAP;
    x->body = fedc_malloc(x->body_cap);
    if (x->body == NULL)
      return reject(c, 503, "unavailable", "out of memory for a %zu-byte body",
                    x->body_want);
    if (x->expect_len && strcasecmp(x->expect, "100-continue") == 0) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uint8_t *b = fedc_malloc(sizeof cont - 1);
      if (b == NULL) return reject(c, 503, "unavailable", "out of memory");
      memcpy(b, cont, sizeof cont - 1);
      s->st.bytes_out += sizeof cont - 1;
      if (fedc_transport_write(c->tc, b, sizeof cont - 1) != 0) {
        conn_close(c);
        return -1;
      }
    }
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  conn *c = pconn(p);
  fedc_http_exchange *x = c->cur;
  if (x->body_len + n > x->body_want) return -1; /* cannot happen */
  if (x->body_len + n > x->body_cap) {
    size_t nc = x->body_cap * 2;
    if (nc < x->body_len + n) nc = x->body_len + n;
    if (nc > x->body_want) nc = x->body_want;
    uint8_t *nb = fedc_realloc(x->body, nc);
    if (nb == NULL)
      return reject(c, 503, "unavailable",
                    "out of memory for a %zu-byte body", x->body_want);
    x->body = nb;
    x->body_cap = nc;
  }
  memcpy(x->body + x->body_len, at, n);
  x->body_len += n;
  c->body_in += n;
  return 0;
}

static int on_message_complete(http_parser *p) {
  pconn(p)->msg_done = 1;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Give the complete request to the handler. It may answer before it
 * returns (then parsing goes on) or later. */
static void dispatch(conn *c) {
  fedc_http_exchange *x = c->cur;
  c->cur = NULL;
  c->msg_done = 0;
  x->c = c;
  x->req.body = x->body ? x->body : (const uint8_t *)"";
  x->req.body_len = x->body_len;
  c->x = x;
  timer_arm(c);
  if (x->rej_status) { /* admit refused it: answered as the handler would */
    fedc_http_respond_error(x, x->rej_status, x->rej_code, "%s", x->rej_msg);
    return;
  }
  c->s->handler(c->s->ctx, x, &x->req);
}

/*
 * Run the parser over plaintext until it is used up, a request goes to the
 * handler and stays there, or the connection starts closing. Returns the
 * bytes consumed; the caller keeps the rest for later. Not reentrant:
 * in_pump tells fedc_http_respond not to resume from inside.
 */
static size_t pump(conn *c, const uint8_t *p, size_t n) {
  size_t used = 0;
  c->in_pump = 1;
  while (used < n && c->x == NULL && c->sb == NULL && !c->closing && !c->want_close) {
    if (c->cur == NULL && write_queue(c) >= OUT_HIGH) {
      /* between requests with answers piling up: parse no more until the
       * peer reads (on_write resumes) */
      if (!c->out_paused) c->s->st.output_pauses++;
      c->out_paused = 1;
      break;
    }
    size_t k = http_parser_execute(&c->parser, &settings,
                                   (const char *)p + used, n - used);
    used += k;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      if (c->msg_done) dispatch(c);
      continue;
    }
    if (c->closing) break;
    if (e != HPE_OK || (k == 0 && used < n)) {
      if (c->rej_status)
        refuse(c, c->rej_status, c->rej_code, c->rej_msg);
      else if (e == HPE_HEADER_OVERFLOW)
        refuse(c, 431, "bad_request", "request headers too large");
      else
        refuse(c, 400, "bad_request",
               e != HPE_OK ? http_errno_description(e) : "unexpected bytes");
      break;
    }
  }
  c->in_pump = 0;
  return used;
}

static int keep_input(conn *c, const uint8_t *p, size_t n) {
  if (c->in_off > 0 && c->in_off == c->in_len) c->in_off = c->in_len = 0;
  return grow_append(&c->in, &c->in_len, &c->in_cap, p, n);
}

/* Plaintext from the transport: parse it directly when nothing is queued,
 * keep what cannot be parsed yet. */
static int on_plain(void *ud, const uint8_t *p, size_t n) {
  conn *c = ud;
  c->s->st.bytes_in += n;
  if (c->closing || c->want_close) return 1;
  if (c->in_off == c->in_len && c->x == NULL) {
    size_t used = pump(c, p, n);
    p += used;
    n -= used;
  }
  if (c->closing || c->want_close) return 1;
  if (n > 0 && keep_input(c, p, n) != 0) {
    fedc_log_warn("http: out of memory buffering input from %s", c->remote);
    conn_close(c);
    return 1;
  }
  if (c->x == NULL && c->sb == NULL && c->in_off < c->in_len && !c->in_pump) resume(c);
  return (c->closing || c->want_close) ? 1 : 0;
}

/* Parse what was kept while the handler held an exchange; read again if we
 * had stopped. */
static void resume(conn *c) {
  if (c->closing || c->want_close || c->in_pump || c->sb != NULL) return;
  if (c->in_off < c->in_len) {
    size_t used = pump(c, c->in + c->in_off, c->in_len - c->in_off);
    c->in_off += used;
    if (c->in_off == c->in_len) {
      c->in_off = c->in_len = 0;
    } else if (c->in_off > 0) { /* keep the unparsed rest at the front */
      memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
      c->in_len -= c->in_off;
      c->in_off = 0;
    }
  }
  if (c->closing || c->want_close) return;
  if (!c->reading && !c->out_paused &&
      c->in_len - c->in_off < PENDING_INPUT_CAP) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = 1;
  }
}

/* ---- reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)c->s->rbuf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn *c = st->data;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    if (nread != UV_EOF && !c->draining)
      fedc_log_debug("http read remote=%s: %s", c->remote,
                     uv_strerror((int)nread));
    conn_close(c);
    return;
  }
  if (c->draining || c->want_close) return; /* dropped */
  c->last_progress = uv_now(c->s->loop);
  int rc = fedc_transport_feed(c->tc, (const uint8_t *)buf->base,
                               (size_t)nread);
  if (c->closing) return;
  if (rc == FEDC_TRANSPORT_EOF) {
    conn_close(c);
    return;
  }
  if (rc < 0) {
    if (!fedc_transport_established(c->tc)) {
      c->s->st.handshakes_failed++;
      /* debug: the transport's guard logs failures once per source */
      fedc_log_debug("tls handshake failed remote=%s reason=\"%s\"", c->remote,
                     fedc_error_msg());
      conn_finish(c); /* the alert goes out first */
    } else {
      c->s->st.tls_errors++;
      fedc_log_info("tls error remote=%s reason=\"%s\"", c->remote,
                    fedc_error_msg());
      conn_close(c);
    }
    return;
  }
  if (c->reading && !c->want_close &&
      (c->out_paused || c->in_len - c->in_off >= PENDING_INPUT_CAP)) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  timer_arm(c);
}

/* ---- accepting -------------------------------------------------------- */

/* The transport gave up on the connection (handshake deadline). */
static void on_expire(void *ud) { conn_close(ud); }

static void on_reject_closed(uv_handle_t *h) {
  fedc_http_server *s = h->data;
  fedc_free(h);
  srv_unref(s);
}

/* Accept and close at once (over max_connections, or out of memory). */
static void turn_away(fedc_http_server *s) {
  uv_tcp_t *t = fedc_malloc(sizeof *t);
  if (t == NULL) {
    fedc_log_error("http: out of memory turning a connection away");
    return;
  }
  uv_tcp_init(s->loop, t);
  t->data = s;
  s->handles++;
  (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_reject_closed);
}

static void format_addr(const struct sockaddr_storage *ss, char *out,
                        size_t n) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
    snprintf(out, n, "%s:%d", host, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
    snprintf(out, n, "[%s]:%d", host, port);
  } else {
    snprintf(out, n, "?");
  }
}

static void on_connection(uv_stream_t *ls, int status) {
  fedc_http_server *s = ls->data;
  if (status < 0) {
    fedc_log_warn("http accept: %s", uv_strerror(status));
    return;
  }
  if (s->closing) return;
  if (s->max_conns > 0 && s->st.connections >= s->max_conns) {
    fedc_log_info("http: %d connections open, turning one away",
                  (int)s->st.connections);
    turn_away(s);
    return;
  }
  conn *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) {
    turn_away(s);
    return;
  }
  c->s = s;
  s->handles++;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  c->tcp_inited = 1;
  c->handles++;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->timer_inited = 1;
  c->handles++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    format_addr(&ss, c->remote, sizeof c->remote);
  else
    snprintf(c->remote, sizeof c->remote, "?");
  static const fedc_transport_io io = {on_plain, on_wire, on_expire};
  int trc = fedc_transport_conn_new(s->transport, &io, c, c->remote, &c->tc);
  if (trc != 0) {
    /* a guard's refusal is counted and logged by the guard */
    if (trc != FEDC_EREFUSED) fedc_log_warn("http: %s", fedc_error_msg());
    conn_close(c);
    return;
  }
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
  c->counted = 1;
  s->st.connections++;
  s->st.connections_total++;
  progress(c);
}

/* ---- starting and stopping -------------------------------------------- */

/* "host:port", "[v6]:port", ":port" -> a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss,
                        socklen_t *sslen) {
  if (spec == NULL)
    return fedc_error_set(FEDC_EINVAL, "http: no listen address");
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || colon[1] == '\0')
    return fedc_error_set(FEDC_EINVAL,
                          "http listen \"%s\": expected host:port", spec);
  char host[256];
  size_t hl = (size_t)(colon - spec);
  const char *h = spec;
  if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
    h = spec + 1;
    hl -= 2;
  }
  if (hl >= sizeof host)
    return fedc_error_set(FEDC_EINVAL, "http listen \"%s\": host too long",
                          spec);
  memcpy(host, h, hl);
  host[hl] = '\0';
  long port = 0;
  for (const char *p = colon + 1; *p; p++) {
    if (*p < '0' || *p > '9' || port > 65535)
      return fedc_error_set(FEDC_EINVAL, "http listen \"%s\": bad port", spec);
    port = port * 10 + (*p - '0');
  }
  if (port > 65535)
    return fedc_error_set(FEDC_EINVAL, "http listen \"%s\": bad port", spec);
  char ports[8];
  snprintf(ports, sizeof ports, "%ld", port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int g = getaddrinfo(hl ? host : NULL, ports, &hints, &res);
  if (g != 0 || res == NULL)
    return fedc_error_set(FEDC_EINVAL, "http listen \"%s\": %s", spec,
                          gai_strerror(g));
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *sslen = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* Bind and listen on our own socket first, so that a failure leaves no uv
 * handle behind (nothing to close, nothing started). */
static int open_socket(const char *spec, int *fd_out, int *port_out) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = parse_listen(spec, &ss, &sl);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fedc_error_set(FEDC_EIO, "http listen %s: socket: %s", spec,
                          strerror(errno));
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
      listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    return fedc_error_set(FEDC_EIO, "http listen %s: %s", spec, strerror(e));
  }
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    *port_out = ss.ss_family == AF_INET6
                    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return 0;
}

static void on_listener_closed(uv_handle_t *h) { srv_unref(h->data); }

/* Seconds to loop milliseconds; 0 (off) for <= 0, at least 1 otherwise. */
static uint64_t ms_of(double sec) {
  if (!(sec > 0)) return 0;
  uint64_t ms = (uint64_t)(sec * 1000.0 + 0.5);
  return ms ? ms : 1;
}

/*
 * Start: load the transport (TLS files are read here), bind, listen. On
 * error nothing is left allocated or registered on the loop.
 */
int fedc_http_server_start(uv_loop_t *loop, const fedc_http_server_opts *o,
                           fedc_http_server **out) {
  if (loop == NULL || o == NULL || out == NULL || o->handler == NULL)
    return fedc_error_set(FEDC_EINVAL, "http: loop, options and handler are "
                                       "required");
  fedc_http_server *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
  s->loop = loop;
  s->handler = o->handler;
  s->ctx = o->ctx;
  s->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
  s->max_header = o->max_header ? o->max_header : DEFAULT_MAX_HEADER;
  s->idle_ms = o->idle_timeout_s > 0
                   ? (uint64_t)(o->idle_timeout_s * 1000.0 + 0.5)
                   : 0;
  if (o->idle_timeout_s > 0 && s->idle_ms == 0) s->idle_ms = 1;
  s->header_ms = ms_of(o->header_timeout_s);
  s->request_ms = ms_of(o->request_timeout_s);
  s->min_rate = o->min_rate_bytes_s > 0 ? o->min_rate_bytes_s : 0;
  s->window_ms = o->rate_window_s > 0 ? ms_of(o->rate_window_s) : 1000;
  s->admit = o->admit;
  s->max_conns = o->max_connections;
  s->rbuf = fedc_malloc(READ_BUF_SIZE);
  int rc;
  if (s->rbuf == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "http: out of memory");
    goto fail;
  }
  if (o->tls) {
    fedc_transport_tls_opts t = {o->ca_path, o->cert_path, o->key_path,
                                 o->require_client_cert, loop, o->limits};
    rc = fedc_transport_tls_new(&t, &s->transport);
  } else {
    rc = fedc_transport_tcp_new(&s->transport);
  }
  if (rc) goto fail;
  int fd = -1;
  if ((rc = open_socket(o->listen, &fd, &s->port)) != 0) goto fail;

  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->handles = 1;
  int u = uv_tcp_open(&s->listener, fd);
  if (u != 0)
    close(fd); /* else the handle owns it */
  else
    u = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
  if (u != 0) {
    /* rare: the socket was fine a moment ago; the handle is closed and the
     * server freed by the loop's next run */
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return fedc_error_set(FEDC_EIO, "http listen %s: %s", o->listen,
                          uv_strerror(u));
  }
  fedc_log_info("http listening on %s port=%d transport=%s", o->listen,
                s->port, s->transport->ops->name);
  *out = s;
  return 0;

fail:
  fedc_transport_free(s->transport);
  fedc_free(s->rbuf);
  fedc_free(s);
  return rc;
}

int fedc_http_server_port(const fedc_http_server *s) { return s->port; }

void fedc_http_server_guard_stats(const fedc_http_server *s,
                                  fedc_conn_guard_stats *out) {
  fedc_transport_stats(s->transport, out);
}

void fedc_http_server_stats_get(const fedc_http_server *s,
                                fedc_http_server_stats *out) {
  *out = s->st;
}

int fedc_http_server_close_peer(fedc_http_server *s, const char *fingerprint) {
  int n = 0;
  if (s == NULL || fingerprint == NULL || fingerprint[0] == '\0') return 0;
  for (conn *c = s->conns; c != NULL; c = c->next) {
    if (c->closing || c->tc == NULL) continue;
    const char *f = fedc_transport_peer_fingerprint(c->tc);
    if (f != NULL && strcmp(f, fingerprint) == 0) {
      conn_close(c);
      n++;
    }
  }
  return n;
}

void fedc_http_server_close(fedc_http_server *s) {
  if (s == NULL || s->closing) return;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  for (conn *c = s->conns; c != NULL; c = c->next) conn_close(c);
}

/* ---- answering -------------------------------------------------------- */

/*
 * Write the answer, free the exchange, and go on with the connection: close
 * it if the request asked for that, else parse what the peer pipelined
 * (unless we are inside the parser already, which then carries on).
 */
/* An answer is all queued: close if the request asked for that, else go on
 * with what the peer pipelined. */
static void answered(conn *c, int keep) {
  if (c->closing) return;
  if (!keep) {
    conn_finish(c);
    return;
  }
  progress(c);
  resume(c);
}

void fedc_http_respond(fedc_http_exchange *x, int status,
                       const char *content_type, const void *body, size_t len,
                       const char *extra_headers) {
  conn *c = x->c;
  if (c == NULL || c->x != x) { /* misuse: not the connection's exchange */
    fedc_log_error("http: answer for an exchange that is not pending");
    return;
  }
  c->x = NULL;
  int keep = x->keep_alive;
  int rc = write_response(c, status, content_type, body ? body : "", len, extra_headers,
                          keep, x->head);
  exchange_free(x);
  if (rc != 0 || c->closing) return;
  answered(c, keep);
}

/*
 * Queue slices of the shared body while less than STREAM_INFLIGHT bytes of
 * writes are outstanding; on_write calls again as they complete (as the
 * peer reads). Each slice is copied into a buffer the transport owns (TLS
 * encrypts it into one of its own and frees it), so a connection holds
 * about STREAM_INFLIGHT + STREAM_SLICE of the body, whatever its size. The
 * last slice drops the connection's reference.
 */
static void stream_fill(conn *c) {
  while (c->sb != NULL && !c->closing && c->s_off < c->s_end &&
         c->out_inflight < STREAM_INFLIGHT) {
    uint64_t left = c->s_end - c->s_off;
    size_t n = left < STREAM_SLICE ? (size_t)left : STREAM_SLICE;
    uint8_t *buf = fedc_malloc(n);
    if (buf == NULL) {
      fedc_log_warn("http: out of memory sending to %s", c->remote);
      conn_close(c);
      return;
    }
    memcpy(buf, fedc_http_body_data(c->sb) + c->s_off, n);
    /* a mapped body (a large model's delta file) is not kept resident */
    fedc__mapped_drop(fedc_http_body_data(c->sb) + c->s_off, n);
    c->s_off += n;
    c->s->st.bytes_out += n;
    int rc = fedc_transport_write(c->tc, buf, n);
    if (rc != 0) {
      if (!c->closing) {
        fedc_log_debug("http write %s: %s", c->remote, fedc_error_msg());
        conn_close(c);
      }
      return;
    }
  }
  if (c->closing || c->sb == NULL || c->s_off < c->s_end) return;
  fedc_http_body_unref(c->sb); /* all queued: the socket holds the rest */
  c->sb = NULL;
  answered(c, c->s_keep);
}

void fedc_http_respond_body(fedc_http_exchange *x, int status, const char *content_type,
                            fedc_http_body *body, uint64_t off, uint64_t len,
                            const char *extra_headers) {
  conn *c = x->c;
  if (c == NULL || c->x != x) {
    fedc_log_error("http: answer for an exchange that is not pending");
    return;
  }
  if (off > fedc_http_body_len(body) || len > fedc_http_body_len(body) - off) {
    fedc_log_error("http: answer past the end of its body");
    fedc_http_respond_error(x, 500, "internal", "answer past the end of its body");
    return;
  }
  c->x = NULL;
  int keep = x->keep_alive, head = x->head;
  int rc = write_response(c, status, content_type, NULL, len, extra_headers, keep, head);
  exchange_free(x);
  if (rc != 0 || c->closing) return;
  if (head || len == 0) {
    answered(c, keep);
    return;
  }
  c->sb = fedc_http_body_ref(body);
  c->s_off = off;
  c->s_end = off + len;
  c->s_keep = keep;
  stream_fill(c);
}

void fedc_http_respond_error(fedc_http_exchange *x, int status,
                             const char *code, const char *fmt, ...) {
  char msg[384], body[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t n = json_error(body, sizeof body, code, msg);
  fedc_http_respond(x, status, "application/json", body, n, NULL);
}

void fedc_http_exchange_on_abort(fedc_http_exchange *x, fedc_http_abort_cb cb,
                                 void *ud) {
  x->abort_cb = cb;
  x->abort_ud = ud;
}
