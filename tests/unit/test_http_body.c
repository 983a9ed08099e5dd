/*
 * test_http_body.c - shared response bodies and byte ranges.
 *
 * The Range parser against a table of good, bad and ignored values; then a
 * real server on 127.0.0.1 (plain TCP, its loop on a thread) that answers
 * /model from one shared body with fedc_http_respond_ranged: 200 with ETag
 * and X-Fedc-SHA256, 206 with Content-Range, 416, and If-Range that no
 * longer matches (the whole body again). Lifetime: a download still being
 * read when the body is replaced (round r+1 commits) gets round r's bytes
 * intact, and r's body is freed when that download ends. Memory: 8
 * downloads of a 32 MiB body at once hold, beyond the body, far less than
 * one body (measured with a counting allocator, the peak of live bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "http_body.h"
#include "http_range.h"
#include "http_server.h"

/* ---- a counting allocator: live bytes and their peak -------------------- */

static int64_t live_bytes, peak_bytes;

static void count(void *p, int sign) {
  if (p == NULL) return;
  int64_t n = sign * (int64_t)malloc_usable_size(p);
  int64_t now = __atomic_add_fetch(&live_bytes, n, __ATOMIC_RELAXED);
  int64_t pk = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
  while (now > pk &&
         !__atomic_compare_exchange_n(&peak_bytes, &pk, now, 0, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
}
static void *c_malloc(size_t n) {
  void *p = malloc(n);
  count(p, 1);
  return p;
}
static void *c_calloc(size_t k, size_t n) {
  void *p = calloc(k, n);
  count(p, 1);
  return p;
}
static void *c_realloc(void *o, size_t n) {
  int64_t old = o ? (int64_t)malloc_usable_size(o) : 0;
  void *p = realloc(o, n);
  if (p == NULL) return NULL;
  __atomic_sub_fetch(&live_bytes, old, __ATOMIC_RELAXED);
  count(p, 1);
  return p;
}
static void c_free(void *p) {
  count(p, -1);
  free(p);
}
static const fedc_allocator counting = {c_malloc, c_calloc, c_realloc, c_free};

/* ---- the Range parser ------------------------------------------------------ */

static void test_range_parse(void **state) {
  (void)state;
  struct {
    const char *v;
    uint64_t size;
    int want;
    uint64_t first, last;
  } cases[] = {
      {NULL, 100, FEDC_RANGE_WHOLE, 0, 0},
      {"", 100, FEDC_RANGE_WHOLE, 0, 0},
      {"bytes=0-", 100, FEDC_RANGE_PART, 0, 99},
      {"bytes=40-", 100, FEDC_RANGE_PART, 40, 99},
      {"bytes=99-", 100, FEDC_RANGE_PART, 99, 99},
      {"bytes=10-19", 100, FEDC_RANGE_PART, 10, 19},
      {"bytes=10-1000", 100, FEDC_RANGE_PART, 10, 99},
      {"Bytes = 5 - 6 ", 100, FEDC_RANGE_PART, 5, 6},
      {"bytes=-10", 100, FEDC_RANGE_PART, 90, 99},
      {"bytes=-1000", 100, FEDC_RANGE_PART, 0, 99},
      {"bytes=100-", 100, FEDC_RANGE_BAD, 0, 0},   /* at the end */
      {"bytes=5000-", 100, FEDC_RANGE_BAD, 0, 0},  /* past it */
      {"bytes=20-10", 100, FEDC_RANGE_BAD, 0, 0},  /* last before first */
      {"bytes=-0", 100, FEDC_RANGE_BAD, 0, 0},     /* an empty suffix */
      {"bytes=0-", 0, FEDC_RANGE_BAD, 0, 0},       /* an empty body */
      {"bytes=x-", 100, FEDC_RANGE_BAD, 0, 0},
      {"bytes=1-2x", 100, FEDC_RANGE_BAD, 0, 0},
      {"bytes=--5", 100, FEDC_RANGE_BAD, 0, 0},
      {"bytes=+5-", 100, FEDC_RANGE_BAD, 0, 0},
      {"bytes=99999999999999999999-", 100, FEDC_RANGE_BAD, 0, 0}, /* overflow */
      {"bytes=0-1,5-6", 100, FEDC_RANGE_WHOLE, 0, 0},             /* several */
      {"items=0-1", 100, FEDC_RANGE_WHOLE, 0, 0},                 /* another unit */
      {"bytes 0-1", 100, FEDC_RANGE_WHOLE, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t a = 7777, b = 7777;
    int got = fedc_http_range_parse(cases[i].v, cases[i].size, &a, &b);
    if (got != cases[i].want)
      fail_msg("'%s' on %llu: %d, want %d", cases[i].v ? cases[i].v : "(null)",
               (unsigned long long)cases[i].size, got, cases[i].want);
    if (got == FEDC_RANGE_PART) {
      assert_int_equal(a, cases[i].first);
      assert_int_equal(b, cases[i].last);
    }
  }
}

/* ---- a server answering /model from one shared body ---------------------- */

typedef struct harness {
  uv_loop_t loop;
  uv_async_t stop, swap;
  pthread_t th;
  fedc_http_server *srv;
  int port;
  fedc_http_body *body; /* the one /model sends; loop thread */
  fedc_http_body *next; /* swap: becomes body, the old one dropped */
} harness;

static harness H;

static void handler(void *ctx, fedc_http_exchange *x, const fedc_http_request *r) {
  harness *h = ctx;
  if (strcmp(r->path, "/model") == 0)
    fedc_http_respond_ranged(x, r, "application/octet-stream", h->body);
  else
    fedc_http_respond_error(x, 404, "not_found", "no such path");
}

static void on_stop(uv_async_t *a) {
  harness *h = a->data;
  fedc_http_server_close(h->srv);
  uv_close((uv_handle_t *)&h->stop, NULL);
  uv_close((uv_handle_t *)&h->swap, NULL);
}

/* the coordinator's commit: the next round's body is served, the old
 * one's reference dropped */
static void on_swap(uv_async_t *a) {
  harness *h = a->data;
  fedc_http_body_unref(h->body);
  h->body = h->next;
  h->next = NULL;
}

static void *loop_main(void *arg) {
  uv_run(&((harness *)arg)->loop, UV_RUN_DEFAULT);
  return NULL;
}

static fedc_http_body *make_body(size_t n, uint32_t seed) {
  uint8_t *p = fedc_malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (uint8_t)(seed >> 24);
  }
  fedc_http_body *b;
  assert_int_equal(fedc_http_body_new(p, n, &b), 0);
  return b;
}

static void start(fedc_http_body *body) {
  memset(&H, 0, sizeof H);
  H.body = body;
  assert_int_equal(uv_loop_init(&H.loop), 0);
  fedc_http_server_opts o = {.listen = "127.0.0.1:0", .max_body = 1 << 20,
                             .idle_timeout_s = 20, .handler = handler, .ctx = &H};
  if (fedc_http_server_start(&H.loop, &o, &H.srv) != 0) fail_msg("%s", fedc_error_msg());
  H.port = fedc_http_server_port(H.srv);
  uv_async_init(&H.loop, &H.stop, on_stop);
  uv_async_init(&H.loop, &H.swap, on_swap);
  H.stop.data = H.swap.data = &H;
  assert_int_equal(pthread_create(&H.th, NULL, loop_main, &H), 0);
}

static void stop(void) {
  uv_async_send(&H.stop);
  pthread_join(H.th, NULL);
  assert_int_equal(uv_loop_close(&H.loop), 0);
  fedc_http_body_unref(H.body);
  H.body = NULL;
}

static int64_t live_at_start;

static int setup(void **state) {
  (void)state;
  live_at_start = fedc_alloc_live();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(fedc_http_body_live(), 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

/* ---- a raw HTTP client ------------------------------------------------------ */

static int raw_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int small = 64 * 1024; /* a small window: the server must hold what waits */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)H.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void raw_get(int fd, const char *extra) {
  char req[512];
  int n = snprintf(req, sizeof req, "GET /model HTTP/1.1\r\nHost: x\r\n%s\r\n", extra);
  assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

typedef struct answer {
  int status;
  char head[2048];
  uint8_t *body;
  size_t len, want;
} answer;

/* Read the status line and headers (and whatever body came with them). */
static void read_head(int fd, answer *a) {
  size_t n = 0;
  char buf[4096];
  char *end = NULL;
  while (end == NULL) {
    ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
    assert_true(r > 0);
    n += (size_t)r;
    buf[n] = '\0';
    end = strstr(buf, "\r\n\r\n");
    assert_true(end != NULL || n < sizeof buf - 1);
  }
  size_t hl = (size_t)(end + 4 - buf);
  memcpy(a->head, buf, hl < sizeof a->head ? hl : sizeof a->head - 1);
  a->head[hl < sizeof a->head ? hl : sizeof a->head - 1] = '\0';
  a->status = (int)strtol(buf + 9, NULL, 10);
  const char *cl = strcasestr(a->head, "\r\nContent-Length: ");
  assert_non_null(cl);
  a->want = strtoull(cl + 18, NULL, 10);
  a->body = malloc(a->want + 1);
  a->len = n - hl;
  memcpy(a->body, buf + hl, a->len);
}

static void read_body(int fd, answer *a, size_t upto) {
  if (upto > a->want) upto = a->want;
  while (a->len < upto) {
    ssize_t r = recv(fd, a->body + a->len, upto - a->len, 0);
    assert_true(r > 0);
    a->len += (size_t)r;
  }
}

static const char *header(const answer *a, const char *name, char *out, size_t cap) {
  char key[64];
  snprintf(key, sizeof key, "\r\n%s: ", name);
  const char *p = strcasestr(a->head, key);
  if (p == NULL) return NULL;
  p += strlen(key);
  size_t k = strcspn(p, "\r");
  if (k >= cap) k = cap - 1;
  memcpy(out, p, k);
  out[k] = '\0';
  return out;
}

static answer fetch(const char *extra) {
  int fd = raw_connect();
  raw_get(fd, extra);
  answer a = {0};
  read_head(fd, &a);
  read_body(fd, &a, a.want);
  close(fd);
  return a;
}

/* ---- tests ------------------------------------------------------------------ */

/* 200 with the validators, 206 for a range, 416 past the end, and an
 * If-Range that names another body: the whole body, 200. */
static void test_ranged_answers(void **state) {
  (void)state;
  size_t n = 1 << 20;
  fedc_http_body *b = make_body(n, 1);
  const uint8_t *d = fedc_http_body_data(b);
  char sha[65], etag[80], v[128];
  snprintf(sha, sizeof sha, "%s", fedc_http_body_sha256(b));
  snprintf(etag, sizeof etag, "\"%s\"", sha);
  start(b);

  answer a = fetch("");
  assert_int_equal(a.status, 200);
  assert_int_equal(a.len, n);
  assert_memory_equal(a.body, d, n);
  assert_string_equal(header(&a, "ETag", v, sizeof v), etag);
  assert_string_equal(header(&a, "X-Fedc-SHA256", v, sizeof v), sha);
  assert_string_equal(header(&a, "Accept-Ranges", v, sizeof v), "bytes");
  free(a.body);

  a = fetch("Range: bytes=1000-\r\n");
  assert_int_equal(a.status, 206);
  assert_int_equal(a.len, n - 1000);
  assert_memory_equal(a.body, d + 1000, n - 1000);
  assert_string_equal(header(&a, "Content-Range", v, sizeof v), "bytes 1000-1048575/1048576");
  free(a.body);

  a = fetch("Range: bytes=10-19\r\n");
  assert_int_equal(a.status, 206);
  assert_int_equal(a.len, 10);
  assert_memory_equal(a.body, d + 10, 10);
  free(a.body);

  a = fetch("Range: bytes=-5\r\n");
  assert_int_equal(a.status, 206);
  assert_memory_equal(a.body, d + n - 5, 5);
  free(a.body);

  a = fetch("Range: bytes=2000000-\r\n");
  assert_int_equal(a.status, 416);
  assert_string_equal(header(&a, "Content-Range", v, sizeof v), "bytes */1048576");
  assert_non_null(strstr((char *)a.body, "range_not_satisfiable"));
  free(a.body);

  char ir[200];
  snprintf(ir, sizeof ir, "Range: bytes=500-\r\nIf-Range: %s\r\n", etag);
  a = fetch(ir);
  assert_int_equal(a.status, 206);
  assert_int_equal(a.len, n - 500);
  free(a.body);

  /* the model changed since the client's first bytes: all of it again */
  a = fetch("Range: bytes=500-\r\nIf-Range: \"0123\"\r\n");
  assert_int_equal(a.status, 200);
  assert_int_equal(a.len, n);
  assert_memory_equal(a.body, d, n);
  free(a.body);
  stop();
}

/* A download still running when round r+1's body replaces round r's: it
 * gets r's bytes, all of them, and r's body is freed when it ends. */
static void test_body_outlives_swap(void **state) {
  (void)state;
  size_t n = 16 << 20;
  fedc_http_body *r1 = make_body(n, 2);
  char sha1[65];
  snprintf(sha1, sizeof sha1, "%s", fedc_http_body_sha256(r1));
  start(r1);
  int fd = raw_connect();
  raw_get(fd, "");
  answer a = {0};
  read_head(fd, &a);
  read_body(fd, &a, 100 * 1024); /* a little of it, then the commit */
  H.next = make_body(n / 2, 3);
  uv_async_send(&H.swap);
  for (int i = 0; i < 500 && H.next != NULL; i++) usleep(2000);
  assert_null(H.next);
  assert_int_equal(fedc_http_body_live(), 2); /* r1 lives on in the download */
  read_body(fd, &a, a.want);
  assert_int_equal(a.len, n);
  char got[65];
  assert_int_equal(fedc__sha256_hex(a.body, a.len, got), 0);
  assert_string_equal(got, sha1);
  free(a.body);
  for (int i = 0; i < 500 && fedc_http_body_live() != 1; i++) usleep(2000);
  assert_int_equal(fedc_http_body_live(), 1); /* r1 freed with its download */
  /* a download cut with a reset in the middle: the body is dropped, the
   * server goes on */
  int cut = raw_connect();
  raw_get(cut, "");
  answer c = {0};
  read_head(cut, &c);
  read_body(cut, &c, 200 * 1024);
  struct linger lg = {1, 0};
  setsockopt(cut, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(cut);
  free(c.body);
  /* and the next download gets r+1 */
  a = fetch("");
  assert_int_equal(a.len, n / 2);
  free(a.body);
  close(fd);
  stop();
}

/* 8 downloads of a 32 MiB body at once: the peak of the server's live
 * bytes, beyond the body, stays under a quarter of the body (each
 * connection holds under a MiB); a copy per download would be 8 bodies. */
static void test_concurrent_downloads_share(void **state) {
  (void)state;
  enum { N = 8 };
  size_t n = 32 << 20;
  int64_t pre = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&peak_bytes, pre, __ATOMIC_RELAXED);
  fedc_http_body *b = make_body(n, 4);
  const uint8_t *d = fedc_http_body_data(b);
  start(b);
  int fds[N];
  answer a[N];
  memset(a, 0, sizeof a);
  for (int i = 0; i < N; i++) {
    fds[i] = raw_connect();
    raw_get(fds[i], "");
  }
  for (int i = 0; i < N; i++) read_head(fds[i], &a[i]);
  usleep(200 * 1000); /* every connection has queued what it may */
  /* read them in turns, a slice each, so all stay open to the end */
  for (size_t upto = 1 << 20;; upto += 1 << 20) {
    int more = 0;
    for (int i = 0; i < N; i++) {
      read_body(fds[i], &a[i], upto);
      more |= a[i].len < a[i].want;
    }
    if (!more) break;
  }
  int64_t extra = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED) - pre - (int64_t)n;
  printf("8 downloads of a %zu MiB body at once: the server's peak beyond the body "
         "%.2f MiB\n", n >> 20, (double)extra / 1048576.0);
  assert_true(extra < (int64_t)(n / 4));
  for (int i = 0; i < N; i++) {
    assert_int_equal(a[i].len, n);
    assert_memory_equal(a[i].body, d, n);
    free(a[i].body);
    close(fds[i]);
  }
  stop();
}

int main(void) {
  /* as fedc-coordinator: a peer's reset costs the connection, not us */
  signal(SIGPIPE, SIG_IGN);
  fedc_alloc_set(&counting);
  if (getenv("FEDC_LOG") == NULL) fedc_log_set_level(FEDC_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_range_parse),
      cmocka_unit_test_setup_teardown(test_ranged_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_body_outlives_swap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_downloads_share, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
