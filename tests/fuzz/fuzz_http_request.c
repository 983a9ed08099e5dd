/*
 * fuzz_http_request.c - fuzz target for the coordinator's HTTP request
 * handling: a real fedc_http_server (http-parser, the plain-TCP transport,
 * bounded headers and bodies, pipelining, Expect: 100-continue, the
 * server's own 400/411/413/431 answers, lingering close) on a libuv loop in
 * this process, fed by a loopback socket. Nothing in http_server.c is
 * reached around: the bytes take the path a peer's bytes take.
 *
 * The input is one byte of mode, then what the peer sends. The mode's low
 * three bits choose how the bytes are cut into writes (all at once, or
 * pieces of 1, 3, 7, 16, 61, 256 or 1021 bytes, with the loop run between
 * pieces, so that the parser meets every split); bit 3 makes the handler
 * answer later, from the loop, instead of inside its call (the pipelined
 * input then waits in the connection's buffer); bit 4 makes the answers
 * large (64 KiB), so that they queue. After the last byte the peer shuts
 * its side down and reads until the server closes.
 *
 * Checked: the handler sees a method, a path, a query, a body no larger
 * than the limit and a content type that fits; whatever the server sends
 * starts with "HTTP/1.1 "; the server closes the connection once the peer
 * has gone (no hang: 5 s at most); the connection count returns to zero;
 * and every fedc block the connection allocated is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "http_server.h"
#include "base/log.h"

#define MAX_BODY 4096
#define MAX_HEADER 2048
#define BIG_ANSWER (64 * 1024)
#define MAX_PENDING 64
#define DEADLINE_S 5.0

static uv_loop_t loop;
static fedc_http_server *server;
static int port;
static uv_idle_t later; /* answers deferred exchanges */
static fedc_http_exchange *pending[MAX_PENDING];
static int n_pending;
static int mode_defer, mode_big;
static uint8_t *big;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Answer one exchange: the body echoed (or a large answer), a status that
 * depends on the path, sometimes the JSON error with the path in it. */
static void answer(fedc_http_exchange *x, const fedc_http_request *req) {
  static const int statuses[] = {200, 204, 304, 404, 500, 101, 999};
  size_t h = 0;
  for (const char *p = req->path; *p; p++)
    h = h * 31 + (unsigned char)*p;
  int status = statuses[h % (sizeof statuses / sizeof *statuses)];
  if (h % 5 == 0) {
    fedc_http_respond_error(x, 404, "not_found", "no such path: %s", req->path);
  } else if (mode_big) {
    fedc_http_respond(x, status, "application/octet-stream", big, BIG_ANSWER, "Retry-After: 1\r\n");
  } else {
    fedc_http_respond(x, status, req->content_type, req->body, req->body_len, NULL);
  }
}

static void on_abort(void *ud, fedc_http_exchange *x) {
  (void)ud;
  for (int i = 0; i < n_pending; i++) {
    if (pending[i] == x) {
      pending[i] = pending[--n_pending];
      return;
    }
  }
  FUZZ_CHECK(!"abort of an exchange that is not pending");
}

static void on_later(uv_idle_t *h) {
  (void)h;
  while (n_pending > 0) {
    fedc_http_exchange *x = pending[--n_pending];
    fedc_http_exchange_on_abort(x, NULL, NULL);
    fedc_http_respond(x, 200, "text/plain", "later", 5, NULL);
  }
  uv_idle_stop(&later);
}

static void handler(void *ctx, fedc_http_exchange *x, const fedc_http_request *req) {
  (void)ctx;
  FUZZ_CHECK(req->method != NULL && req->method[0] != '\0');
  FUZZ_CHECK(req->path != NULL && req->query != NULL);
  FUZZ_CHECK(req->content_type != NULL && strlen(req->content_type) < 256);
  FUZZ_CHECK(req->body != NULL && req->body_len <= MAX_BODY);
  FUZZ_CHECK(req->peer_fingerprint != NULL && req->peer_fingerprint[0] == 0);
  FUZZ_CHECK(req->peer_cn != NULL && req->remote != NULL);
  if (mode_defer && n_pending < MAX_PENDING) {
    pending[n_pending++] = x;
    fedc_http_exchange_on_abort(x, on_abort, NULL);
    uv_idle_start(&later, on_later);
    return;
  }
  answer(x, req);
}

static void start(void) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("FEDC_LOG") == NULL) fedc_log_set_level(FEDC_LOG_ERROR);
  FUZZ_CHECK(uv_loop_init(&loop) == 0);
  uv_idle_init(&loop, &later);
  big = malloc(BIG_ANSWER);
  FUZZ_CHECK(big != NULL);
  memset(big, 'b', BIG_ANSWER);
  fedc_http_server_opts o = {0};
  o.listen = "127.0.0.1:0";
  o.max_body = MAX_BODY;
  o.max_header = MAX_HEADER;
  o.idle_timeout_s = 2;
  o.handler = handler;
  FUZZ_CHECK(fedc_http_server_start(&loop, &o, &server) == 0);
  port = fedc_http_server_port(server);
}

/* Run the loop for what is ready now, waiting up to ms for the peer's
 * socket or the loop's own events. */
static void step(int fd, int ms) {
  struct pollfd p[2] = {{fd, POLLIN, 0}, {uv_backend_fd(&loop), POLLIN, 0}};
  int t = uv_backend_timeout(&loop);
  if (t < 0 || t > ms) t = ms;
  (void)poll(p, 2, t);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* The peer's side: read what the server sent. Returns 1 at end of stream
 * (or a reset), 0 while it is open. *first collects the first 9 bytes. */
static int drain(int fd, char *first, size_t *got) {
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return 1;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    for (ssize_t i = 0; i < n && *got < 9; i++)
      first[(*got)++] = buf[i];
  }
}

/*
 * A new loopback connection to the server. Each comes from its own source
 * address in 127/8 (the port picked at connect time): at a thousand
 * connections a second, one source address runs out of ephemeral ports
 * while the closed ones sit in TIME_WAIT.
 */
static int peer_connect(void) {
  static uint32_t k;
  for (int attempt = 0; attempt < 16; attempt++, k++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    uint32_t d = 1 + k % 254, c = (k / 254) % 256, b = (k / 65024) % 256;
    src.sin_addr.s_addr = htonl(0x7f000000u | b << 16 | c << 8 | d);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) == 0 &&
        connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
      k++;
      return fd;
    }
    close(fd);
  }
  perror("fuzz_http_request: cannot connect to the server on loopback");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int started;
  if (!started) {
    start();
    started = 1;
  }
  if (size == 0) return 0;
  int64_t live = fedc_alloc_live();
  static const size_t pieces[8] = {0, 1, 3, 7, 16, 61, 256, 1021};
  size_t piece = pieces[data[0] & 7];
  mode_defer = (data[0] >> 3) & 1;
  mode_big = (data[0] >> 4) & 1;
  data++;
  size--;
  if (piece == 0) piece = size ? size : 1;

  int fd = peer_connect();

  char first[9];
  size_t got = 0;
  int closed = 0;
  double deadline = now_s() + DEADLINE_S;
  /* send, a piece at a time, while the server keeps the connection */
  for (size_t off = 0; off < size && !closed;) {
    size_t n = size - off < piece ? size - off : piece;
    ssize_t k = send(fd, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
    if (k > 0) off += (size_t)k;
    step(fd, 0);
    closed = drain(fd, first, &got);
    FUZZ_CHECK(now_s() < deadline);
  }
  /* a few turns so that deferred answers and pipelined requests settle */
  for (int i = 0; i < 4 && !closed; i++) {
    step(fd, 0);
    closed = drain(fd, first, &got);
  }
  shutdown(fd, SHUT_WR);
  while (!closed) {
    step(fd, 10);
    closed = drain(fd, first, &got);
    if (now_s() >= deadline) {
      fprintf(stderr,
              "the server kept the connection %.0f s after the peer "
              "left\n",
              DEADLINE_S);
      abort();
    }
  }
  close(fd);
  if (got > 0) FUZZ_CHECK(memcmp(first, "HTTP/1.1 ", got) == 0);

  /* the connection's handles close on the next turns of the loop */
  fedc_http_server_stats st;
  for (;;) {
    fedc_http_server_stats_get(server, &st);
    if (st.connections == 0 && n_pending == 0 && fedc_alloc_live() == live) break;
    if (now_s() >= deadline) break;
    step(-1, 10);
  }
  fedc_http_server_stats_get(server, &st);
  FUZZ_CHECK(st.connections == 0);
  FUZZ_CHECK(n_pending == 0);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
