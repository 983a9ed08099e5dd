/*
 * faultproxy.c - a TCP proxy on loopback that injects network faults
 * between fedc clients and the coordinator, for the integration tests
 * (tests/integration/netfaults_tests.py).
 *
 * It listens on one address, connects each accepted socket to the upstream
 * (the coordinator's TLS port) and forwards bytes both ways, applying to
 * every connection a fault plan drawn from --seed and the connection's
 * number, so that a run can be replayed:
 *
 *   delay    any chunk read may be held back up to --delay-ms (chunks keep
 *            their order: a delayed chunk holds up those behind it);
 *   and at most one of
 *   cut      close both sockets (with a reset or a FIN) after a byte offset
 *            of one direction;
 *   stall    after a byte offset of one direction, forward nothing either
 *            way for --stall-ms (bytes are still read and held, up to a
 *            bound, so that the proxy sees the upstream close during the
 *            stall); then deliver what was held;
 *   corrupt  flip one bit of one client-to-coordinator TLS application-data
 *            record (by default only those: the record's MAC must fail;
 *            --corrupt-any flips a byte anywhere, handshake included).
 *
 * Besides the drawn plans, --cut-at N cuts (with a reset) the connection
 * that carries the N-th client-to-coordinator byte of the whole run, once:
 * a cut at a chosen point of a long upload. The summary line counts the
 * bytes forwarded each way (c2s_bytes, s2c_bytes).
 *
 * Every event is one line on stderr, "faultproxy t=SECONDS conn=N
 * event=NAME key=value...", which the tests read: the upstream socket's
 * local address in event=open is the "remote" the coordinator logs, and
 * event=upstream_closed says how long after a stall began, or after a
 * corruption, the coordinator dropped the connection.
 *
 * Only loopback addresses are accepted for --listen and --upstream. The
 * proxy stops by itself after --duration seconds, or on SIGTERM/SIGINT,
 * and prints a summary line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/rng.h"

#define READ_BUF (64 * 1024)
/* Bytes held in one direction (queued or being written) before the proxy
 * stops reading its source, and the level at which it reads again. */
#define HOLD_HIGH ((size_t)1 << 20)
#define HOLD_LOW ((size_t)256 << 10)
#define PLAN_TAG 0x70726f7879ULL /* "proxy" */

enum { C2S = 0, S2C = 1 };
enum { FAULT_NONE, FAULT_CUT, FAULT_CORRUPT, FAULT_STALL };
enum { CH_DATA, CH_EOF, CH_CUT, CH_STALL };

static const char *const dir_name[2] = {"c2s", "s2c"};
static const char *const fault_name[] = {"none", "cut", "corrupt", "stall"};

typedef struct opts {
  char listen[64], upstream[64];
  uint64_t seed;
  double p_delay, p_cut, p_corrupt, p_stall;
  uint64_t delay_ms, stall_ms, cut_bytes, stall_bytes, corrupt_records;
  int corrupt_any;
  uint64_t max_conns;
  uint64_t cut_at; /* --cut-at: the run's c2s byte offset of one cut; 0 = none */
  double duration_s;
  uint64_t print_plans; /* --plans N: print the plans of connections 1..N */
} opts;

struct flow;

typedef struct chunk {
  struct chunk *next;
  struct flow *f; /* the flow writing it (set when handed to uv_write) */
  uint64_t due;   /* loop time (ms) before which it is not forwarded */
  int kind;
  size_t len;
  uv_write_t req;
  uint8_t data[];
} chunk;

typedef struct conn conn;

/* One direction: bytes read from src, queued, written to dst. */
typedef struct flow {
  conn *c;
  int dir;
  uv_timer_t timer; /* releases the first delayed chunk */
  uv_shutdown_t shut_req;
  chunk *head, *tail;
  size_t held;     /* bytes queued, not yet handed to uv_write */
  size_t inflight; /* bytes in uv_write */
  uint64_t offset; /* bytes read from src so far */
  uint64_t last_due;
  unsigned src_eof : 1, shut : 1, paused : 1;
  /* TLS record framing (c2s), for --corrupt */
  uint8_t hdr[5];
  size_t hdr_len;
  size_t rec_left, rec_pos, target_pos;
  uint64_t appdata_seen;
  int armed;
} flow;

struct conn {
  uint64_t id;
  uv_tcp_t tcp[2]; /* [0] the client, [1] the upstream */
  uv_connect_t connect_req;
  uv_timer_t stall_timer;
  flow f[2]; /* f[C2S] reads tcp[0] and writes tcp[1]; f[S2C] the reverse */
  conn *prev, *next;
  fedc_rng rng;
  int handles;
  unsigned connected : 1, closing : 1, stalled : 1, fired : 1, reset : 1;
  int fault, fault_dir;
  uint64_t fault_off, corrupt_rec;
  double stall_start, fault_time;
  char client_addr[64], up_local[64];
};

static struct {
  opts o;
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  uv_timer_t deadline;
  struct sockaddr_in up_addr;
  conn *conns;
  uint64_t n_conns, open_conns, n_cut, n_corrupt, n_stall, n_delayed;
  uint64_t c2s_read, fwd[2]; /* c2s bytes read, bytes forwarded each way */
  int cut_at_fired;
  uint64_t t0;
  int stopping;
  uint8_t rbuf[READ_BUF];
} g;

/* ---- helpers ------------------------------------------------------------ */

static double now_s(void) {
  return (double)(uv_hrtime() - g.t0) * 1e-9;
}

static void event(const conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(const conn *c, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (c)
    fprintf(stderr, "faultproxy t=%.3f conn=%" PRIu64 " %s\n", now_s(), c->id, line);
  else
    fprintf(stderr, "faultproxy t=%.3f %s\n", now_s(), line);
  fflush(stderr);
}

static void addr_name(const struct sockaddr_storage *ss, char *out, size_t n) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, host, sizeof host);
    snprintf(out, n, "%s:%d", host, ntohs(a->sin_port));
  } else {
    snprintf(out, n, "?");
  }
}

/* "127.x.y.z:port" into a socket address; loopback only. */
static int parse_loopback(const char *spec, struct sockaddr_in *out) {
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || colon == spec || (size_t)(colon - spec) >= 32) return -1;
  char host[32];
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || *end != '\0' || end == colon + 1 || port < 0 || port > 65535) return -1;
  if (uv_ip4_addr(host, (int)port, out) != 0) return -1;
  if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) return -1;
  return 0;
}

/* ---- closing ------------------------------------------------------------- */

static void free_chunks(flow *f) {
  while (f->head) {
    chunk *h = f->head;
    f->head = h->next;
    fedc_free(h);
  }
  f->tail = NULL;
  f->held = 0;
}

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->handles > 0) return;
  free_chunks(&c->f[C2S]);
  free_chunks(&c->f[S2C]);
  if (c->prev)
    c->prev->next = c->next;
  else
    g.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  g.open_conns--;
  fedc_free(c);
}

/* Close both sockets (with a reset when asked) and the timers; the
 * connection is freed once libuv has closed every handle. Writes in flight
 * are cancelled, and their callbacks free their chunks first. */
static void conn_close(conn *c, int reset, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  event(c, "event=close why=%s c2s=%" PRIu64 " s2c=%" PRIu64, why, c->f[C2S].offset,
        c->f[S2C].offset);
  for (int i = 0; i < 2; i++) {
    uv_timer_stop(&c->f[i].timer);
    c->f[i].timer.data = c; /* on_closed wants the connection */
    uv_close((uv_handle_t *)&c->f[i].timer, on_closed);
  }
  uv_timer_stop(&c->stall_timer);
  uv_close((uv_handle_t *)&c->stall_timer, on_closed);
  for (int i = 0; i < 2; i++) {
    uv_handle_t *h = (uv_handle_t *)&c->tcp[i];
    if (reset && uv_tcp_close_reset(&c->tcp[i], on_closed) == 0) continue;
    if (!uv_is_closing(h)) uv_close(h, on_closed);
  }
}

/* Both directions delivered their end of stream and nothing is in flight:
 * the connection is over. */
static void check_done(conn *c) {
  if (c->closing) return;
  flow *a = &c->f[C2S], *b = &c->f[S2C];
  if (a->shut && b->shut && a->inflight == 0 && b->inflight == 0) conn_close(c, 0, "both_closed");
}

/* ---- forwarding --------------------------------------------------------- */

static void pump(flow *f);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init((char *)g.rbuf, READ_BUF);
}

/* The source of a flow reads again once the flow has drained enough. */
static void maybe_resume(flow *f) {
  conn *c = f->c;
  if (!f->paused || c->closing || f->src_eof) return;
  if (f->held + f->inflight > HOLD_LOW) return;
  if (uv_read_start((uv_stream_t *)&c->tcp[f->dir], on_alloc, on_read) == 0) f->paused = 0;
}

static void on_write(uv_write_t *req, int status) {
  chunk *h = req->data;
  flow *f = h->f;
  conn *c = f->c;
  f->inflight -= h->len;
  if (status >= 0) g.fwd[f->dir] += h->len;
  fedc_free(h);
  if (c->closing) return;
  if (status < 0) {
    event(c, "event=write_error dir=%s err=%s", dir_name[f->dir], uv_err_name(status));
    conn_close(c, 1, "write_error");
    return;
  }
  maybe_resume(f);
  check_done(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  flow *f = req->data;
  (void)status;
  check_done(f->c);
}

static void on_delay(uv_timer_t *t) {
  pump(t->data);
}

static void on_stall_end(uv_timer_t *t) {
  conn *c = t->data;
  c->stalled = 0;
  event(c, "event=stall_end upstream_open=%d", !c->f[S2C].src_eof);
  pump(&c->f[C2S]);
  if (!c->closing) pump(&c->f[S2C]);
}

static void start_stall(conn *c) {
  c->stalled = 1;
  c->stall_start = now_s();
  g.n_stall++;
  event(c, "event=stall dir=%s offset=%" PRIu64 " ms=%" PRIu64 " upstream=%s",
        dir_name[c->fault_dir], c->fault_off, g.o.stall_ms, c->up_local);
  uv_timer_start(&c->stall_timer, on_stall_end, g.o.stall_ms, 0);
}

/*
 * Forward what is due, in order: data to the destination socket, an end of
 * stream as a write-side shutdown, and the cut and stall markers that the
 * fault plan put in the queue at their byte offset. Nothing moves while the
 * connection is stalled.
 */
static void pump(flow *f) {
  conn *c = f->c;
  uv_stream_t *dst = (uv_stream_t *)&c->tcp[1 - f->dir];
  while (f->head && !c->closing && !c->stalled) {
    chunk *h = f->head;
    uint64_t now = uv_now(g.loop);
    if (h->due > now) {
      uv_timer_start(&f->timer, on_delay, h->due - now, 0);
      return;
    }
    f->head = h->next;
    if (f->head == NULL) f->tail = NULL;
    switch (h->kind) {
    case CH_DATA: {
      f->held -= h->len;
      f->inflight += h->len;
      h->f = f;
      h->req.data = h;
      uv_buf_t b = uv_buf_init((char *)h->data, (unsigned)h->len);
      int rc = uv_write(&h->req, dst, &b, 1, on_write);
      if (rc != 0) {
        f->inflight -= h->len;
        fedc_free(h);
        event(c, "event=write_error dir=%s err=%s", dir_name[f->dir], uv_err_name(rc));
        conn_close(c, 1, "write_error");
        return;
      }
      break;
    }
    case CH_EOF:
      fedc_free(h);
      if (!f->shut) {
        f->shut = 1;
        f->shut_req.data = f;
        if (uv_shutdown(&f->shut_req, dst, on_shutdown) != 0) {
          conn_close(c, 0, "shutdown_failed");
          return;
        }
      }
      break;
    case CH_CUT:
      fedc_free(h);
      g.n_cut++;
      event(c, "event=cut dir=%s offset=%" PRIu64 " reset=%d", dir_name[c->fault_dir], c->fault_off,
            (int)c->reset);
      conn_close(c, c->reset, "cut");
      return;
    case CH_STALL:
      fedc_free(h);
      start_stall(c);
      return;
    }
  }
  if (!c->closing) maybe_resume(f);
}

/* Queue a chunk (kind with len bytes of data) behind the others. */
static int enqueue(flow *f, int kind, const uint8_t *p, size_t len, uint64_t delay) {
  chunk *h = fedc_malloc(sizeof *h + len);
  if (h == NULL) return -1;
  h->next = NULL;
  h->kind = kind;
  h->len = len;
  if (len) memcpy(h->data, p, len);
  uint64_t due = uv_now(g.loop) + delay;
  if (due < f->last_due) due = f->last_due; /* order is kept */
  h->due = f->last_due = due;
  if (f->tail)
    f->tail->next = h;
  else
    f->head = h;
  f->tail = h;
  f->held += len;
  return 0;
}

/* Walk c2s bytes through the TLS record framing and flip the planned bit
 * of the planned application-data record (type 23) as it passes. */
static void corrupt_records(conn *c, flow *f, uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (f->rec_left == 0) {
      f->hdr[f->hdr_len++] = p[i++];
      if (f->hdr_len < 5) continue;
      f->hdr_len = 0;
      f->rec_left = ((size_t)f->hdr[3] << 8) | f->hdr[4];
      f->rec_pos = 0;
      if (f->hdr[0] == 23) {
        uint64_t idx = f->appdata_seen++;
        if (!c->fired && idx == c->corrupt_rec && f->rec_left > 0) {
          f->armed = 1;
          f->target_pos = (size_t)fedc_rng_below(&c->rng, f->rec_left);
        }
      }
      continue;
    }
    size_t take = n - i < f->rec_left ? n - i : f->rec_left;
    if (f->armed && f->target_pos >= f->rec_pos && f->target_pos < f->rec_pos + take) {
      int bit = (int)fedc_rng_below(&c->rng, 8);
      p[i + (f->target_pos - f->rec_pos)] ^= (uint8_t)(1u << bit);
      f->armed = 0;
      c->fired = 1;
      c->fault_time = now_s();
      g.n_corrupt++;
      event(c, "event=corrupt record=%" PRIu64 " byte=%zu bit=%d len=%zu", c->corrupt_rec,
            f->target_pos, bit, f->rec_pos + f->rec_left);
    }
    f->rec_pos += take;
    f->rec_left -= take;
    i += take;
  }
}

/* Bytes read from a flow's source: apply the plan and queue them. */
static void take(conn *c, flow *f, uint8_t *p, size_t n) {
  if (f->dir == C2S && c->fault == FAULT_CORRUPT && !c->fired) {
    if (!g.o.corrupt_any) {
      corrupt_records(c, f, p, n);
    } else if (c->fault_off >= f->offset && c->fault_off < f->offset + n) {
      int bit = (int)fedc_rng_below(&c->rng, 8);
      p[c->fault_off - f->offset] ^= (uint8_t)(1u << bit);
      c->fired = 1;
      c->fault_time = now_s();
      g.n_corrupt++;
      event(c, "event=corrupt offset=%" PRIu64 " bit=%d", c->fault_off, bit);
    }
  }
  uint64_t delay = 0;
  if (g.o.p_delay > 0 && fedc_rng_uniform(&c->rng) < g.o.p_delay) {
    delay = 1 + fedc_rng_below(&c->rng, g.o.delay_ms);
    g.n_delayed++;
  }
  size_t split = n;
  int marker = -1;
  if (f->dir == C2S && g.o.cut_at && !g.cut_at_fired && g.c2s_read + n >= g.o.cut_at) {
    /* --cut-at: this run's one cut at a chosen c2s byte */
    g.cut_at_fired = 1;
    c->fault = FAULT_CUT;
    c->fault_dir = C2S;
    c->fault_off = f->offset + (g.o.cut_at - g.c2s_read);
    c->reset = 1;
    c->fired = 0;
  }
  if (f->dir == C2S) g.c2s_read += n;
  if ((c->fault == FAULT_CUT || c->fault == FAULT_STALL) && !c->fired && c->fault_dir == f->dir &&
      c->fault_off < f->offset + n) {
    split = (size_t)(c->fault_off - f->offset);
    marker = c->fault == FAULT_CUT ? CH_CUT : CH_STALL;
    c->fired = 1;
  }
  f->offset += n;
  int rc = 0;
  if (split > 0) rc = enqueue(f, CH_DATA, p, split, delay);
  if (rc == 0 && marker >= 0) rc = enqueue(f, marker, NULL, 0, delay);
  if (rc == 0 && split < n) rc = enqueue(f, CH_DATA, p + split, n - split, delay);
  if (rc != 0) {
    conn_close(c, 1, "out_of_memory");
    return;
  }
  if (f->held + f->inflight > HOLD_HIGH && !f->paused) {
    uv_read_stop((uv_stream_t *)&c->tcp[f->dir]);
    f->paused = 1;
  }
  pump(f);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  int dir = s == (uv_stream_t *)&c->tcp[0] ? C2S : S2C;
  flow *f = &c->f[dir];
  if (c->closing || nread == 0) return;
  if (nread > 0) {
    take(c, f, (uint8_t *)buf->base, (size_t)nread);
    return;
  }
  /* end of stream or an error from this side */
  f->src_eof = 1;
  uv_read_stop(s);
  if (dir == S2C) {
    double since = c->stalled                              ? now_s() - c->stall_start
                   : c->fired && c->fault == FAULT_CORRUPT ? now_s() - c->fault_time
                                                           : -1.0;
    event(c, "event=upstream_closed err=%s in_stall=%d fault=%s fired=%d after_ms=%.0f",
          uv_err_name((int)nread), (int)c->stalled, fault_name[c->fault], (int)c->fired,
          since >= 0 ? since * 1000.0 : -1.0);
  } else {
    event(c, "event=client_closed err=%s", uv_err_name((int)nread));
  }
  if (enqueue(f, CH_EOF, NULL, 0, 0) != 0) {
    conn_close(c, 1, "out_of_memory");
    return;
  }
  pump(f);
}

/* ---- connections --------------------------------------------------------- */

/* Draw the connection's plan: at most one of cut, corrupt, stall. */
static void plan(conn *c) {
  const opts *o = &g.o;
  double u = fedc_rng_uniform(&c->rng);
  c->fault = FAULT_NONE;
  if (u < o->p_cut) {
    c->fault = FAULT_CUT;
    c->fault_dir = (int)fedc_rng_below(&c->rng, 2);
    c->fault_off = 1 + fedc_rng_below(&c->rng, o->cut_bytes);
    c->reset = (unsigned)fedc_rng_below(&c->rng, 2);
  } else if (u < o->p_cut + o->p_corrupt) {
    c->fault = FAULT_CORRUPT;
    c->fault_dir = C2S;
    c->corrupt_rec = fedc_rng_below(&c->rng, o->corrupt_records);
    c->fault_off = fedc_rng_below(&c->rng, o->cut_bytes);
  } else if (u < o->p_cut + o->p_corrupt + o->p_stall) {
    c->fault = FAULT_STALL;
    c->fault_dir = (int)fedc_rng_below(&c->rng, 2);
    c->fault_off = fedc_rng_below(&c->rng, o->stall_bytes);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    event(c, "event=upstream_refused err=%s", uv_err_name(status));
    conn_close(c, 1, "upstream_refused");
    return;
  }
  c->connected = 1;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&c->tcp[1], (struct sockaddr *)&ss, &len) == 0)
    addr_name(&ss, c->up_local, sizeof c->up_local);
  event(c,
        "event=open client=%s upstream=%s fault=%s dir=%s offset=%" PRIu64 " record=%" PRIu64
        " reset=%d",
        c->client_addr, c->up_local, fault_name[c->fault], dir_name[c->fault_dir], c->fault_off,
        c->corrupt_rec, (int)c->reset);
  uv_tcp_nodelay(&c->tcp[0], 1);
  uv_tcp_nodelay(&c->tcp[1], 1);
  if (uv_read_start((uv_stream_t *)&c->tcp[0], on_alloc, on_read) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp[1], on_alloc, on_read) != 0)
    conn_close(c, 1, "read_failed");
}

static void on_turned_away(uv_handle_t *h) {
  fedc_free(h);
}

static void on_connection(uv_stream_t *ls, int status) {
  if (status < 0 || g.stopping) return;
  if (g.open_conns >= g.o.max_conns) {
    uv_tcp_t *t = fedc_malloc(sizeof *t);
    if (t == NULL) return;
    uv_tcp_init(g.loop, t);
    (void)uv_accept(ls, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_turned_away);
    event(NULL, "event=turned_away open=%" PRIu64, g.open_conns);
    return;
  }
  conn *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return;
  c->id = ++g.n_conns;
  g.open_conns++;
  c->next = g.conns;
  if (g.conns) g.conns->prev = c;
  g.conns = c;
  fedc_rng_derive(&c->rng, g.o.seed, c->id, PLAN_TAG, 0);
  plan(c);
  snprintf(c->up_local, sizeof c->up_local, "?");
  for (int i = 0; i < 2; i++) {
    uv_tcp_init(g.loop, &c->tcp[i]);
    c->tcp[i].data = c;
    c->f[i].c = c;
    c->f[i].dir = i;
    uv_timer_init(g.loop, &c->f[i].timer);
    c->f[i].timer.data = &c->f[i];
  }
  uv_timer_init(g.loop, &c->stall_timer);
  c->stall_timer.data = c;
  c->handles = 5; /* two sockets, three timers */
  if (uv_accept(ls, (uv_stream_t *)&c->tcp[0]) != 0) {
    conn_close(c, 0, "accept_failed");
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp[0], (struct sockaddr *)&ss, &len) == 0)
    addr_name(&ss, c->client_addr, sizeof c->client_addr);
  c->connect_req.data = c;
  if (uv_tcp_connect(&c->connect_req, &c->tcp[1], (const struct sockaddr *)&g.up_addr,
                     on_connect) != 0)
    conn_close(c, 1, "connect_failed");
}

/* ---- start and stop ------------------------------------------------------ */

static void on_plain_closed(uv_handle_t *h) {
  (void)h;
}

static void stop(const char *why) {
  if (g.stopping) return;
  g.stopping = 1;
  event(NULL,
        "event=summary why=%s conns=%" PRIu64 " cut=%" PRIu64 " corrupt=%" PRIu64 " stall=%" PRIu64
        " delayed_chunks=%" PRIu64 " c2s_bytes=%" PRIu64 " s2c_bytes=%" PRIu64,
        why, g.n_conns, g.n_cut, g.n_corrupt, g.n_stall, g.n_delayed, g.fwd[C2S], g.fwd[S2C]);
  uv_close((uv_handle_t *)&g.listener, on_plain_closed);
  uv_close((uv_handle_t *)&g.sigterm, on_plain_closed);
  uv_close((uv_handle_t *)&g.sigint, on_plain_closed);
  uv_close((uv_handle_t *)&g.deadline, on_plain_closed);
  for (conn *c = g.conns; c; c = c->next)
    conn_close(c, 0, "proxy_stopping");
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  stop(signum == SIGTERM ? "sigterm" : "sigint");
}

static void on_deadline(uv_timer_t *t) {
  (void)t;
  stop("duration");
}

static void usage(FILE *f) {
  fputs("usage: faultproxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [options]\n"
        "\n"
        "Forward TCP between clients and an upstream on loopback, injecting\n"
        "faults drawn per connection from a seeded plan.\n"
        "\n"
        "  --seed N            plan seed (1)\n"
        "  --delay P           probability that a chunk read is delayed (0)\n"
        "  --delay-ms MS       longest delay of a chunk (50)\n"
        "  --cut P             probability that a connection is cut (0)\n"
        "  --cut-bytes N       the cut (and --corrupt-any) offset is drawn in [1, N] (65536)\n"
        "  --corrupt P         probability that a connection gets one flipped bit\n"
        "                      client->upstream (0)\n"
        "  --corrupt-records N the flipped bit is in one of the first N TLS\n"
        "                      application-data records (4)\n"
        "  --corrupt-any       flip a byte anywhere (handshake included), not only\n"
        "                      in application-data records\n"
        "  --stall P           probability that a connection stalls once (0)\n"
        "  --stall-ms MS       how long a stall lasts (3000)\n"
        "  --stall-bytes N     the stall offset is drawn in [0, N) (65536)\n"
        "  --cut-at N          cut (reset) the connection carrying the run's N-th\n"
        "                      client-to-coordinator byte, once (0: none)\n"
        "  --max-conns N       connections open at once (1024)\n"
        "  --duration S        exit after S seconds (600)\n"
        "  --plans N           print the fault plans of connections 1..N and exit\n"
        "\n"
        "Cut, corrupt and stall exclude one another: their probabilities add\n"
        "up to at most 1. Events go to stderr, one line each.\n",
        f);
}

static int num(const char *flag, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end != '\0' || !(x >= lo && x <= hi)) {
    fprintf(stderr, "faultproxy: %s: '%s' is not a number in [%g, %g]\n", flag, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

static int parse_args(int argc, char **argv, opts *o) {
  *o = (opts){.seed = 1,
              .delay_ms = 50,
              .stall_ms = 3000,
              .cut_bytes = 65536,
              .stall_bytes = 65536,
              .corrupt_records = 4,
              .max_conns = 1024,
              .duration_s = 600};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(a, "--corrupt-any") == 0) {
      o->corrupt_any = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "faultproxy: %s needs a value\n", a);
      return -1;
    }
    const char *v = argv[++i];
    double x = 0;
    int rc = 0;
    if (strcmp(a, "--listen") == 0 || strcmp(a, "--upstream") == 0) {
      char *dst = a[2] == 'l' ? o->listen : o->upstream;
      if (strlen(v) >= sizeof o->listen) {
        fprintf(stderr, "faultproxy: %s: address too long\n", a);
        return -1;
      }
      snprintf(dst, sizeof o->listen, "%s", v);
    } else if (strcmp(a, "--seed") == 0) {
      rc = num(a, v, 0, 9007199254740992.0, &x);
      o->seed = (uint64_t)x;
    } else if (strcmp(a, "--delay") == 0) {
      rc = num(a, v, 0, 1, &o->p_delay);
    } else if (strcmp(a, "--cut") == 0) {
      rc = num(a, v, 0, 1, &o->p_cut);
    } else if (strcmp(a, "--corrupt") == 0) {
      rc = num(a, v, 0, 1, &o->p_corrupt);
    } else if (strcmp(a, "--stall") == 0) {
      rc = num(a, v, 0, 1, &o->p_stall);
    } else if (strcmp(a, "--delay-ms") == 0) {
      rc = num(a, v, 1, 600000, &x);
      o->delay_ms = (uint64_t)x;
    } else if (strcmp(a, "--stall-ms") == 0) {
      rc = num(a, v, 1, 600000, &x);
      o->stall_ms = (uint64_t)x;
    } else if (strcmp(a, "--cut-bytes") == 0) {
      rc = num(a, v, 1, 1e12, &x);
      o->cut_bytes = (uint64_t)x;
    } else if (strcmp(a, "--stall-bytes") == 0) {
      rc = num(a, v, 1, 1e12, &x);
      o->stall_bytes = (uint64_t)x;
    } else if (strcmp(a, "--corrupt-records") == 0) {
      rc = num(a, v, 1, 1e9, &x);
      o->corrupt_records = (uint64_t)x;
    } else if (strcmp(a, "--cut-at") == 0) {
      rc = num(a, v, 1, 1e15, &x);
      o->cut_at = (uint64_t)x;
    } else if (strcmp(a, "--max-conns") == 0) {
      rc = num(a, v, 1, 1e6, &x);
      o->max_conns = (uint64_t)x;
    } else if (strcmp(a, "--duration") == 0) {
      rc = num(a, v, 0.001, 86400, &o->duration_s);
    } else if (strcmp(a, "--plans") == 0) {
      rc = num(a, v, 1, 1e6, &x);
      o->print_plans = (uint64_t)x;
    } else {
      fprintf(stderr, "faultproxy: unknown option %s (--help)\n", a);
      return -1;
    }
    if (rc) return -1;
  }
  if (!o->listen[0] || !o->upstream[0]) {
    fprintf(stderr, "faultproxy: --listen and --upstream are required (--help)\n");
    return -1;
  }
  if (o->p_cut + o->p_corrupt + o->p_stall > 1.0 + 1e-12) {
    fprintf(stderr, "faultproxy: --cut + --corrupt + --stall must be at most 1\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv, &g.o) != 0) return 2;
  struct sockaddr_in la;
  if (parse_loopback(g.o.listen, &la) != 0 || parse_loopback(g.o.upstream, &g.up_addr) != 0) {
    fprintf(stderr, "faultproxy: --listen and --upstream must be 127.x.y.z:PORT (loopback only)\n");
    return 2;
  }
  if (g.o.print_plans) {
    /* the same draws as on_connection, for a test to choose its seed */
    for (uint64_t id = 1; id <= g.o.print_plans; id++) {
      conn c;
      memset(&c, 0, sizeof c);
      c.id = id;
      fedc_rng_derive(&c.rng, g.o.seed, id, PLAN_TAG, 0);
      plan(&c);
      printf("conn=%" PRIu64 " fault=%s dir=%s offset=%" PRIu64 " record=%" PRIu64 " reset=%d\n",
             id, fault_name[c.fault], dir_name[c.fault_dir], c.fault_off, c.corrupt_rec,
             (int)c.reset);
    }
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  g.loop = uv_default_loop();
  g.t0 = uv_hrtime();
  uv_tcp_init(g.loop, &g.listener);
  int rc = uv_tcp_bind(&g.listener, (const struct sockaddr *)&la, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&g.listener, 511, on_connection);
  if (rc != 0) {
    fprintf(stderr, "faultproxy: listen %s: %s\n", g.o.listen, uv_strerror(rc));
    return 3;
  }
  uv_signal_init(g.loop, &g.sigterm);
  uv_signal_init(g.loop, &g.sigint);
  uv_signal_start(&g.sigterm, on_signal, SIGTERM);
  uv_signal_start(&g.sigint, on_signal, SIGINT);
  uv_timer_init(g.loop, &g.deadline);
  uv_timer_start(&g.deadline, on_deadline, (uint64_t)(g.o.duration_s * 1000.0), 0);
  event(NULL,
        "event=listening listen=%s upstream=%s seed=%" PRIu64 " delay=%g cut=%g "
        "corrupt=%g stall=%g stall_ms=%" PRIu64,
        g.o.listen, g.o.upstream, g.o.seed, g.o.p_delay, g.o.p_cut, g.o.p_corrupt, g.o.p_stall,
        g.o.stall_ms);
  uv_run(g.loop, UV_RUN_DEFAULT);
  uv_loop_close(g.loop);
  return 0;
}
