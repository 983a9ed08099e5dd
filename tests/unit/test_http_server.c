/*
 * test_http_server.c - the coordinator's HTTP server on real sockets.
 *
 * Each test starts a server on 127.0.0.1 port 0 with a real libuv loop
 * running in a background thread, and talks to it with libcurl (over mutual
 * TLS with certificates made by certs/make-certs.sh, or plain HTTP) or with
 * raw TCP sockets where a misbehaving peer is the point. Asserted: the
 * handler sees the method, path, query and the client certificate's
 * fingerprint; a 1 MB body arrives intact; keep-alive reuses one
 * connection; handshakes without a certificate or with one from another CA
 * are refused; 413, 411, 400 and 431 are answered by the server itself with
 * the protocol's JSON errors; pipelined requests are answered in order;
 * idle connections are closed but a slow answer is not; a long-poll's abort
 * callback runs when its client goes away; max_connections; start-up
 * errors; and no fedc block is leaked once the server is closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/error.h"
#include "http_server.h"
#include "base/log.h"

/* ---- fixtures: certificates ------------------------------------------- */

static char tmpdir[64];
static char pki[256];   /* the job's CA, server, client-1, client-2 */
static char other[256]; /* another CA and its client-1 */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *script_path(void) {
  static char p[512];
  if (access("certs/make-certs.sh", R_OK) == 0) return "certs/make-certs.sh";
  /* from the source file's place: tests/unit/ -> repository root */
  snprintf(p, sizeof p, "%s", __FILE__);
  char *s = strstr(p, "tests/unit/");
  if (s) {
    snprintf(s, sizeof p - (size_t)(s - p), "certs/make-certs.sh");
    if (access(p, R_OK) == 0) return p;
  }
  return NULL;
}

static int group_setup(void **state) {
  const char *script = script_path();
  if (script == NULL) {
    fprintf(stderr, "certs/make-certs.sh not found (run from the repo root)\n");
    return -1;
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fedc-http-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) return -1;
  snprintf(pki, sizeof pki, "%s/pki", tmpdir);
  snprintf(other, sizeof other, "%s/other", tmpdir);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "sh '%s' '%s' 2 2>/dev/null && sh '%s' '%s' 1 2>/dev/null", script,
           pki, script, other);
  if (system(cmd) != 0) {
    fprintf(stderr, "make-certs.sh failed\n");
    return -1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  /* the allocation-failure test warns on purpose; FEDC_LOG=info shows the
   * handshake refusals */
  if (getenv("FEDC_LOG") == NULL) fedc_log_set_level(FEDC_LOG_ERROR);
  return 0;
}

static int group_teardown(void **state) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (tmpdir[0] && system(cmd) != 0) return -1;
  curl_global_cleanup();
  return 0;
}

static void read_text(const char *path, char *out, size_t n) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t k = fread(out, 1, n - 1, f);
  fclose(f);
  out[k] = '\0';
  while (k > 0 && (out[k - 1] == '\n' || out[k - 1] == '\r')) out[--k] = '\0';
}

/* ---- what the handler saw (shared with the loop thread) ---------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct {
  int calls, aborts, pending;
  char method[16], path[256], query[256], fpr[80], cn[128], remote[64];
  char ctype[128];
  uint8_t *body;
  size_t body_len;
} seen;

static void seen_reset(void) {
  pthread_mutex_lock(&mu);
  free(seen.body);
  memset(&seen, 0, sizeof seen);
  pthread_mutex_unlock(&mu);
}

/* Wait until *field reaches want (up to secs); returns its value. */
static int wait_for(int *field, int want, double secs) {
  double end = now_s() + secs;
  pthread_mutex_lock(&mu);
  while (*field < want && now_s() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&cv, &mu, &ts);
  }
  int v = *field;
  pthread_mutex_unlock(&mu);
  return v;
}

static int seen_int(int *field) {
  pthread_mutex_lock(&mu);
  int v = *field;
  pthread_mutex_unlock(&mu);
  return v;
}

/* ---- the server under test, its loop on a thread ------------------------ */

typedef struct harness {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t th;
  fedc_http_server *srv;
  fedc_http_server_stats final;
  int port;
} harness;

static harness H;
static int64_t live_at_start;

typedef struct slow {
  uv_timer_t t;
  fedc_http_exchange *x;
} slow;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t) {
  slow *sl = t->data;
  if (sl->x) fedc_http_respond(sl->x, 200, "text/plain", "slow", 4, NULL);
  sl->x = NULL;
  uv_close((uv_handle_t *)&sl->t, slow_closed);
}

static void slow_abort(void *ud, fedc_http_exchange *x) {
  slow *sl = ud;
  sl->x = NULL;
  uv_timer_stop(&sl->t);
  uv_close((uv_handle_t *)&sl->t, slow_closed);
}

static void poll_abort(void *ud, fedc_http_exchange *x) {
  pthread_mutex_lock(&mu);
  seen.aborts++;
  seen.pending--;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/*
 * /echo: 200 with the body (POST) or "METHOD path?query" (GET);
 * /slow?ms=N: answered N ms later (600 by default) from a timer;
 * /poll: never answered (a long-poll), counts aborts;
 * anything else: 404 not_found.
 */
static void handler(void *ctx, fedc_http_exchange *x,
                    const fedc_http_request *r) {
  harness *h = ctx;
  pthread_mutex_lock(&mu);
  seen.calls++;
  snprintf(seen.method, sizeof seen.method, "%s", r->method);
  snprintf(seen.path, sizeof seen.path, "%s", r->path);
  snprintf(seen.query, sizeof seen.query, "%s", r->query);
  snprintf(seen.fpr, sizeof seen.fpr, "%s", r->peer_fingerprint);
  snprintf(seen.cn, sizeof seen.cn, "%s", r->peer_cn);
  snprintf(seen.remote, sizeof seen.remote, "%s", r->remote);
  snprintf(seen.ctype, sizeof seen.ctype, "%s", r->content_type);
  free(seen.body);
  seen.body = malloc(r->body_len + 1);
  memcpy(seen.body, r->body, r->body_len);
  seen.body_len = r->body_len;
  if (strcmp(r->path, "/poll") == 0) seen.pending++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);

  if (strcmp(r->path, "/echo") == 0) {
    if (r->body_len > 0) {
      fedc_http_respond(x, 200, "application/octet-stream", r->body,
                        r->body_len, NULL);
    } else {
      char b[600];
      int n = snprintf(b, sizeof b, "%s %s?%s", r->method, r->path, r->query);
      fedc_http_respond(x, 200, "text/plain", b, (size_t)n, "X-Test: 1\r\n");
    }
  } else if (strcmp(r->path, "/slow") == 0) {
    long ms = 600;
    if (strncmp(r->query, "ms=", 3) == 0) ms = strtol(r->query + 3, NULL, 10);
    slow *sl = calloc(1, sizeof *sl);
    sl->x = x;
    uv_timer_init(&h->loop, &sl->t);
    sl->t.data = sl;
    uv_timer_start(&sl->t, slow_fire, (uint64_t)ms, 0);
    fedc_http_exchange_on_abort(x, slow_abort, sl);
  } else if (strcmp(r->path, "/poll") == 0) {
    fedc_http_exchange_on_abort(x, poll_abort, NULL);
  } else {
    fedc_http_respond_error(x, 404, "not_found", "no such path: %s", r->path);
  }
}

static void on_stop(uv_async_t *a) {
  harness *h = a->data;
  fedc_http_server_stats_get(h->srv, &h->final);
  fedc_http_server_close(h->srv);
  uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg) {
  harness *h = arg;
  uv_run(&h->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void opts_plain(fedc_http_server_opts *o) {
  memset(o, 0, sizeof *o);
  o->listen = "127.0.0.1:0";
  o->max_body = 4 << 20;
  o->idle_timeout_s = 5;
  o->handler = handler;
  o->ctx = &H;
}

static char ca_path[300], cert_path[300], key_path[300];

static void opts_tls(fedc_http_server_opts *o) {
  opts_plain(o);
  snprintf(ca_path, sizeof ca_path, "%s/ca.pem", pki);
  snprintf(cert_path, sizeof cert_path, "%s/server.pem", pki);
  snprintf(key_path, sizeof key_path, "%s/server.key", pki);
  o->tls = 1;
  o->ca_path = ca_path;
  o->cert_path = cert_path;
  o->key_path = key_path;
  o->require_client_cert = 1;
}

/* Start the server and its loop thread; fails the test on error. */
static void start(const fedc_http_server_opts *o) {
  seen_reset();
  memset(&H, 0, sizeof H);
  assert_int_equal(uv_loop_init(&H.loop), 0);
  int rc = fedc_http_server_start(&H.loop, o, &H.srv);
  if (rc != 0) fail_msg("start: %s", fedc_error_msg());
  H.port = fedc_http_server_port(H.srv);
  assert_true(H.port > 0);
  uv_async_init(&H.loop, &H.stop, on_stop);
  H.stop.data = &H;
  assert_int_equal(pthread_create(&H.th, NULL, loop_main, &H), 0);
}

/* Close the server from its loop, wait for every handle to close, and
 * check that nothing fedc allocated is left. */
static void stop(void) {
  uv_async_send(&H.stop);
  pthread_join(H.th, NULL);
  assert_int_equal(uv_loop_close(&H.loop), 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  assert_int_equal(fedc_alloc_live(), live_at_start);
  seen_reset();
  return 0;
}

/* ---- clients ---------------------------------------------------------- */

typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
  buf *b = ud;
  size_t n = sz * nm;
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
  return n;
}

/* An easy handle for https with client certificate `client` from `dir`
 * (NULL: none), trusting the job's CA; or for plain http if dir is NULL. */
static CURL *client(const char *dir, const char *name) {
  CURL *h = curl_easy_init();
  assert_non_null(h);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  if (dir) {
    char p[400];
    snprintf(p, sizeof p, "%s/ca.pem", pki);
    curl_easy_setopt(h, CURLOPT_CAINFO, p);
    if (name) {
      snprintf(p, sizeof p, "%s/%s.pem", dir, name);
      curl_easy_setopt(h, CURLOPT_SSLCERT, p);
      snprintf(p, sizeof p, "%s/%s.key", dir, name);
      curl_easy_setopt(h, CURLOPT_SSLKEY, p);
    }
  }
  return h;
}

static void url(char *out, size_t n, int tls, const char *path) {
  snprintf(out, n, "%s://127.0.0.1:%d%s", tls ? "https" : "http", H.port, path);
}

/* One request; returns curl's code, the status in *status, body in *out. */
static CURLcode perform(CURL *h, const char *u, const void *body, long len,
                        long *status, buf *out) {
  curl_easy_setopt(h, CURLOPT_URL, u);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, len);
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  CURLcode cc = curl_easy_perform(h);
  *status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  return cc;
}

static int raw_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)H.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void raw_send(int fd, const void *p, size_t n) {
  assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read until the server closes (returns 1) or 3 s pass (returns 0). */
static int raw_read_all(int fd, char *out, size_t cap, size_t *len) {
  *len = 0;
  for (;;) {
    ssize_t r = recv(fd, out + *len, cap - 1 - *len, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) {
      out[*len] = 0;
      return 1;
    }
    if (r < 0) {
      out[*len] = 0;
      return 0;
    }
    *len += (size_t)r;
    if (*len + 1 >= cap) {
      out[*len] = 0;
      return 0;
    }
  }
}

/* The JSON error body's "error" member equals code. */
static void assert_json_error(const buf *b, const char *code) {
  cJSON *j = cJSON_ParseWithLength((const char *)b->p, b->n);
  assert_non_null(j);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  assert_true(cJSON_IsString(e));
  assert_string_equal(e->valuestring, code);
  assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")));
  cJSON_Delete(j);
}

/* ---- tests ------------------------------------------------------------ */

/* GET over mutual TLS: the handler sees method, path, query, and the
 * client certificate's identity exactly as make-certs.sh computed it. */
static void test_mtls_get_identity(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  start(&o);
  char u[256], fpr[80], p[300];
  url(u, sizeof u, 1, "/echo?round=3&wait=20");
  buf b = {0};
  long status;
  CURL *h = client(pki, "client-1");
  CURLcode cc = perform(h, u, NULL, 0, &status, &b);
  if (cc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(cc));
  assert_int_equal(status, 200);
  assert_string_equal((char *)b.p, "GET /echo?round=3&wait=20");
  snprintf(p, sizeof p, "%s/client-1.fpr", pki);
  read_text(p, fpr, sizeof fpr);
  assert_int_equal(strlen(fpr), 64);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen.method, "GET");
  assert_string_equal(seen.path, "/echo");
  assert_string_equal(seen.query, "round=3&wait=20");
  assert_string_equal(seen.fpr, fpr);
  assert_string_equal(seen.cn, "client-1");
  assert_memory_equal(seen.remote, "127.0.0.1:", 10);
  pthread_mutex_unlock(&mu);
  curl_easy_cleanup(h);

  /* another client, another identity */
  h = client(pki, "client-2");
  b.n = 0;
  assert_int_equal(perform(h, u, NULL, 0, &status, &b), CURLE_OK);
  assert_int_equal(status, 200);
  snprintf(p, sizeof p, "%s/client-2.fpr", pki);
  read_text(p, fpr, sizeof fpr);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen.fpr, fpr);
  assert_string_equal(seen.cn, "client-2");
  pthread_mutex_unlock(&mu);
  curl_easy_cleanup(h);
  free(b.p);
  stop();
  assert_int_equal(H.final.connections_total, 2);
  assert_int_equal(H.final.handshakes_failed, 0);
}

/* A 1 MB random body reaches the handler byte for byte (and comes back). */
static void test_mtls_post_1mb(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  start(&o);
  size_t n = 1 << 20;
  uint8_t *body = malloc(n);
  unsigned seed = 12345;
  for (size_t i = 0; i < n; i++) body[i] = (uint8_t)rand_r(&seed);
  char u[256];
  url(u, sizeof u, 1, "/echo");
  buf b = {0};
  long status;
  CURL *h = client(pki, "client-1");
  CURLcode cc = perform(h, u, body, (long)n, &status, &b);
  if (cc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(cc));
  assert_int_equal(status, 200);
  assert_int_equal(b.n, n);
  assert_memory_equal(b.p, body, n);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen.method, "POST");
  assert_string_equal(seen.ctype, "application/x-www-form-urlencoded");
  assert_int_equal(seen.body_len, n);
  assert_memory_equal(seen.body, body, n);
  pthread_mutex_unlock(&mu);
  curl_easy_cleanup(h);
  free(b.p);
  free(body);
  stop();
  assert_true(H.final.bytes_in > n);
  assert_true(H.final.bytes_out > n);
}

/* Three requests on one handle travel on one TLS connection. */
static void test_keepalive(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  start(&o);
  char u[256];
  CURL *h = client(pki, "client-1");
  long total = 0;
  for (int i = 0; i < 3; i++) {
    char path[32];
    snprintf(path, sizeof path, "/echo?i=%d", i);
    url(u, sizeof u, 1, path);
    buf b = {0};
    long status, nc = 0;
    assert_int_equal(perform(h, u, NULL, 0, &status, &b), CURLE_OK);
    assert_int_equal(status, 200);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nc);
    total += nc;
    free(b.p);
  }
  assert_int_equal(total, 1);
  assert_int_equal(seen_int(&seen.calls), 3);
  curl_easy_cleanup(h);
  stop();
  assert_int_equal(H.final.connections_total, 1);

  /* over TLS too, a long-poll whose client gives up is aborted */
  start(&o);
  h = client(pki, "client-1");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 300L);
  url(u, sizeof u, 1, "/poll");
  buf b = {0};
  long status;
  assert_int_equal(perform(h, u, NULL, 0, &status, &b),
                   CURLE_OPERATION_TIMEDOUT);
  curl_easy_cleanup(h);
  assert_int_equal(wait_for(&seen.aborts, 1, 3.0), 1);
  free(b.p);
  stop();
}

/* Without a client certificate the handshake is refused (required), or
 * the request goes through with no identity (optional). */
static void test_no_client_cert(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  start(&o);
  char u[256];
  url(u, sizeof u, 1, "/echo");
  buf b = {0};
  long status;
  CURL *h = client(pki, NULL);
  CURLcode cc = perform(h, u, NULL, 0, &status, &b);
  assert_int_not_equal(cc, CURLE_OK);
  curl_easy_cleanup(h);
  assert_int_equal(seen_int(&seen.calls), 0);
  stop();
  assert_true(H.final.handshakes_failed >= 1);

  opts_tls(&o);
  o.require_client_cert = 0;
  start(&o);
  url(u, sizeof u, 1, "/echo");
  h = client(pki, NULL);
  assert_int_equal(perform(h, u, NULL, 0, &status, &b), CURLE_OK);
  assert_int_equal(status, 200);
  pthread_mutex_lock(&mu);
  assert_string_equal(seen.fpr, "");
  assert_string_equal(seen.cn, "");
  pthread_mutex_unlock(&mu);
  curl_easy_cleanup(h);
  free(b.p);
  stop();
  assert_int_equal(H.final.handshakes_failed, 0);
}

/* A certificate from another CA is refused. */
static void test_wrong_ca(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  start(&o);
  char u[256];
  url(u, sizeof u, 1, "/echo");
  buf b = {0};
  long status;
  CURL *h = client(other, "client-1");
  CURLcode cc = perform(h, u, NULL, 0, &status, &b);
  assert_int_not_equal(cc, CURLE_OK);
  curl_easy_cleanup(h);
  free(b.p);
  assert_int_equal(seen_int(&seen.calls), 0);
  stop();
  assert_int_equal(H.final.handshakes_failed, 1);
}

/* A declared body over max_body: 413 too_large, the handler never runs. */
static void test_too_large(void **state) {
  fedc_http_server_opts o;
  opts_tls(&o);
  o.max_body = 1000;
  start(&o);
  char u[256], body[5000];
  memset(body, 'x', sizeof body);
  url(u, sizeof u, 1, "/echo");
  buf b = {0};
  long status;
  CURL *h = client(pki, "client-1");
  CURLcode cc = perform(h, u, body, (long)sizeof body, &status, &b);
  if (cc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(cc));
  assert_int_equal(status, 413);
  assert_json_error(&b, "too_large");
  assert_int_equal(seen_int(&seen.calls), 0);
  /* at the limit it is fine */
  b.n = 0;
  assert_int_equal(perform(h, u, body, 1000, &status, &b), CURLE_OK);
  assert_int_equal(status, 200);
  assert_int_equal(b.n, 1000);
  curl_easy_cleanup(h);
  free(b.p);
  stop();
}

static size_t read_chunks(char *p, size_t sz, size_t nm, void *ud) {
  int *left = ud;
  if (*left == 0) return 0;
  (*left)--;
  memcpy(p, "hello", 5);
  return 5;
}

/* A chunked upload: 411 length_required. */
static void test_chunked(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  start(&o);
  char u[256];
  url(u, sizeof u, 0, "/echo");
  buf b = {0};
  CURL *h = client(NULL, NULL);
  int left = 3;
  struct curl_slist *hd = curl_slist_append(NULL, "Transfer-Encoding: chunked");
  curl_easy_setopt(h, CURLOPT_URL, u);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, read_chunks);
  curl_easy_setopt(h, CURLOPT_READDATA, &left);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  CURLcode cc = curl_easy_perform(h);
  if (cc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(cc));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  assert_int_equal(status, 411);
  assert_json_error(&b, "length_required");
  assert_int_equal(seen_int(&seen.calls), 0);
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  free(b.p);
  stop();
}

/* Garbage: 400 bad_request, then the server closes; headers over the
 * limit: 431. */
static void test_garbage_and_big_headers(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  start(&o);
  char resp[4096];
  size_t n;
  int fd = raw_connect();
  raw_send(fd, "\x16\x03\x01 garbage\r\n\r\n", 15);
  assert_int_equal(raw_read_all(fd, resp, sizeof resp, &n), 1);
  assert_memory_equal(resp, "HTTP/1.1 400 ", 13);
  assert_non_null(strstr(resp, "Connection: close\r\n"));
  assert_non_null(strstr(resp, "\"error\":\"bad_request\""));
  close(fd);

  size_t big = 20000;
  char *req = malloc(big + 100);
  int k = snprintf(req, big + 100, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(req + k, 'a', big);
  memcpy(req + k + big, "\r\n\r\n", 4);
  fd = raw_connect();
  raw_send(fd, req, (size_t)k + big + 4);
  assert_int_equal(raw_read_all(fd, resp, sizeof resp, &n), 1);
  assert_memory_equal(resp, "HTTP/1.1 431 ", 13);
  close(fd);
  free(req);
  assert_int_equal(seen_int(&seen.calls), 0);
  stop();
}

/* Pipelined requests are answered in order, even when the first answer
 * comes later; HTTP/1.0 and "Connection: close" close after the answer. */
static void test_pipelining(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  start(&o);
  static const char two[] =
      "GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  char resp[4096];
  size_t n;
  int fd = raw_connect();
  raw_send(fd, two, sizeof two - 1);
  assert_int_equal(raw_read_all(fd, resp, sizeof resp, &n), 1);
  char *a = strstr(resp, "slow"), *b2 = strstr(resp, "GET /echo?n=2");
  assert_non_null(a);
  assert_non_null(b2);
  assert_true(a < b2);
  assert_non_null(strstr(resp, "Connection: keep-alive\r\n"));
  assert_non_null(strstr(resp, "Connection: close\r\n"));
  assert_non_null(strstr(resp, "X-Test: 1\r\n"));
  close(fd);

  fd = raw_connect();
  raw_send(fd, "GET /echo HTTP/1.0\r\n\r\n", 22);
  assert_int_equal(raw_read_all(fd, resp, sizeof resp, &n), 1);
  assert_memory_equal(resp, "HTTP/1.1 200 OK\r\n", 17);
  assert_non_null(strstr(resp, "Connection: close\r\n"));
  close(fd);
  assert_int_equal(seen_int(&seen.calls), 3);

  /* 100 requests in one write: 100 answers, in order */
  size_t cap = 100 * 64, len = 0;
  char *many = malloc(cap), *all = malloc(1 << 16);
  for (int i = 0; i < 100; i++)
    len += (size_t)snprintf(many + len, cap - len,
                            "GET /echo?n=%03d HTTP/1.1\r\nHost: x\r\n%s\r\n", i,
                            i == 99 ? "Connection: close\r\n" : "");
  fd = raw_connect();
  raw_send(fd, many, len);
  assert_int_equal(raw_read_all(fd, all, 1 << 16, &n), 1);
  close(fd);
  const char *at = all;
  for (int i = 0; i < 100; i++) {
    char want[32];
    snprintf(want, sizeof want, "GET /echo?n=%03d", i);
    at = strstr(at, want);
    if (at == NULL) fail_msg("answer %d missing or out of order", i);
  }
  free(many);
  free(all);
  stop();
  assert_int_equal(H.final.connections_total, 3);
}

/* A peer that sends half a request is dropped after idle_timeout_s, but a
 * handler that takes longer than that still gets its answer through. */
static void test_idle_timeout(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  o.idle_timeout_s = 0.3;
  start(&o);
  int fd = raw_connect();
  raw_send(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n", 29);
  double t0 = now_s();
  char resp[256];
  size_t n;
  assert_int_equal(raw_read_all(fd, resp, sizeof resp, &n), 1);
  double dt = now_s() - t0;
  assert_int_equal(n, 0);
  assert_true(dt > 0.25 && dt < 2.0);
  close(fd);

  char u[256];
  url(u, sizeof u, 0, "/slow");
  buf b = {0};
  long status;
  CURL *h = client(NULL, NULL);
  t0 = now_s();
  CURLcode cc = perform(h, u, NULL, 0, &status, &b);
  if (cc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(cc));
  assert_true(now_s() - t0 >= 0.55);
  assert_int_equal(status, 200);
  assert_string_equal((char *)b.p, "slow");
  curl_easy_cleanup(h);
  free(b.p);
  stop();
}

/* A pending long-poll outlives the idle timeout; when its client goes
 * away, the abort callback runs. */
static void test_abort_on_disconnect(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  o.idle_timeout_s = 0.3;
  start(&o);
  int fd = raw_connect();
  raw_send(fd, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", 31);
  assert_int_equal(wait_for(&seen.pending, 1, 3.0), 1);
  usleep(600 * 1000);
  assert_int_equal(seen_int(&seen.aborts), 0);
  close(fd);
  assert_int_equal(wait_for(&seen.aborts, 1, 3.0), 1);
  assert_int_equal(seen_int(&seen.pending), 0);

  /* a long-poll still pending at shutdown is aborted too */
  fd = raw_connect();
  raw_send(fd, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", 31);
  assert_int_equal(wait_for(&seen.pending, 1, 3.0), 1);
  stop();
  assert_int_equal(seen_int(&seen.aborts), 2);
  close(fd);
}

/* Beyond max_connections new connections are closed at once; when one
 * goes away there is room again. */
static void test_max_connections(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  o.max_connections = 2;
  start(&o);
  int a = raw_connect(), b = raw_connect();
  raw_send(a, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", 31);
  raw_send(b, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n", 31);
  assert_int_equal(wait_for(&seen.pending, 2, 3.0), 2);
  int c = raw_connect();
  char resp[4096];
  size_t n;
  assert_int_equal(raw_read_all(c, resp, sizeof resp, &n), 1);
  assert_int_equal(n, 0);
  close(c);
  close(a);
  assert_int_equal(wait_for(&seen.aborts, 1, 3.0), 1);
  int d = raw_connect();
  raw_send(d, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 51);
  assert_int_equal(raw_read_all(d, resp, sizeof resp, &n), 1);
  assert_memory_equal(resp, "HTTP/1.1 200 ", 13);
  close(d);
  stop();
  close(b);
  assert_int_equal(H.final.connections_total, 3);
}

/* Port 0 picks a port; a taken port, a bad address, and unreadable or
 * invalid TLS files fail with the right code, a message naming the
 * culprit, and nothing left behind. */
static void test_start_errors(void **state) {
  fedc_http_server_opts o;
  opts_plain(&o);
  start(&o);
  char u[256];
  url(u, sizeof u, 0, "/nowhere");
  buf b = {0};
  long status;
  CURL *h = client(NULL, NULL);
  assert_int_equal(perform(h, u, NULL, 0, &status, &b), CURLE_OK);
  assert_int_equal(status, 404);
  assert_json_error(&b, "not_found");
  curl_easy_cleanup(h);
  stop();

  /* IPv6, where the machine has a loopback for it */
  uv_loop_t loop;
  uv_loop_init(&loop);
  fedc_http_server *s = NULL;
  opts_plain(&o);
  o.listen = "[::1]:0";
  int v6 = fedc_http_server_start(&loop, &o, &s) == 0;
  if (v6) {
    fedc_http_server_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    start(&o);
    snprintf(u, sizeof u, "http://[::1]:%d/echo?v=6", H.port);
    h = client(NULL, NULL);
    b.n = 0;
    assert_int_equal(perform(h, u, NULL, 0, &status, &b), CURLE_OK);
    assert_int_equal(status, 200);
    pthread_mutex_lock(&mu);
    assert_memory_equal(seen.remote, "[::1]:", 6);
    assert_string_equal(seen.query, "v=6");
    pthread_mutex_unlock(&mu);
    curl_easy_cleanup(h);
    stop();
  } else {
    fprintf(stderr, "no IPv6 loopback (%s): IPv6 part skipped\n",
            fedc_error_msg());
  }
  free(b.p);

  /* the port of a server that is listening */
  opts_plain(&o);
  assert_int_equal(fedc_http_server_start(&loop, &o, &s), 0);
  char taken[64];
  snprintf(taken, sizeof taken, "127.0.0.1:%d", fedc_http_server_port(s));
  fedc_http_server *s2 = NULL;
  o.listen = taken;
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_EIO);
  assert_non_null(strstr(fedc_error_msg(), taken));
  fedc_http_server_close(s);
  uv_run(&loop, UV_RUN_DEFAULT);

  o.listen = "127.0.0.1";
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_EINVAL);
  o.listen = "127.0.0.1:70000";
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_EINVAL);

  opts_tls(&o);
  o.cert_path = "/nonexistent/server.pem";
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "/nonexistent/server.pem"));

  char bad[300];
  snprintf(bad, sizeof bad, "%s/garbage.key", tmpdir);
  FILE *f = fopen(bad, "w");
  fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n"
        "-----END PRIVATE KEY-----\n", f);
  fclose(f);
  opts_tls(&o);
  o.key_path = bad;
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), bad));

  /* a key that is not the certificate's */
  char other_key[300];
  snprintf(other_key, sizeof other_key, "%s/client-1.key", pki);
  opts_tls(&o);
  o.key_path = other_key;
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), other_key));

  opts_tls(&o);
  o.ca_path = bad;
  assert_int_equal(fedc_http_server_start(&loop, &o, &s2), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), bad));

  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Out of memory at each allocation in turn, at start and while serving a
 * request: start fails with FEDC_ENOMEM, a request gets its answer, a 503,
 * or a closed connection; never a crash, never a leak. */
static void test_alloc_failures(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  fedc_http_server_opts o;
  int started = 0;
  for (int64_t n = 1; n <= 20 && !started; n++) {
    opts_tls(&o);
    fedc_http_server *s = NULL;
    fedc_alloc_fail_after(n, 0);
    int rc = fedc_http_server_start(&loop, &o, &s);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      started = 1;
      fedc_http_server_close(s);
      uv_run(&loop, UV_RUN_DEFAULT);
    } else {
      assert_int_equal(rc, FEDC_ENOMEM);
    }
    assert_int_equal(fedc_alloc_live(), live_at_start);
  }
  assert_true(started);
  assert_int_equal(uv_loop_close(&loop), 0);

  opts_plain(&o);
  start(&o);
  static const char req[] =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\n"
      "Content-Length: 10\r\nConnection: close\r\n\r\n0123456789";
  int ok = 0;
  for (int64_t n = 1; n <= 14; n++) {
    fedc_alloc_fail_after(n, 0);
    int fd = raw_connect();
    raw_send(fd, req, sizeof req - 1);
    char resp[4096];
    size_t len;
    assert_int_equal(raw_read_all(fd, resp, sizeof resp, &len), 1);
    fedc_alloc_fail_after(0, 0);
    close(fd);
    if (len == 0) continue;
    if (memcmp(resp, "HTTP/1.1 200 ", 13) == 0) {
      assert_non_null(strstr(resp, "\r\n\r\n0123456789"));
      ok++;
    } else {
      assert_memory_equal(resp, "HTTP/1.1 503 ", 13);
    }
  }
  assert_true(ok >= 1);
  stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_mtls_get_identity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mtls_post_1mb, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_client_cert, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_and_big_headers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_on_disconnect, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
