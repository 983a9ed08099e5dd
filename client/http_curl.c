/*
 * http_curl.c - the client's HTTPS transport on libcurl's easy interface
 * (see http_curl.h). One easy handle is kept for the client's lifetime so
 * that libcurl reuses the TLS connection (keep-alive) and, when it must
 * connect again, resumes the TLS session from the coordinator's session
 * ticket (on_ssl_ctx), also after a coordinator restart; every TLS option is
 * set once, when the handle is made, and only the per-request options
 * (URL, method, body, timeouts) change between requests. The response body
 * grows in a fedc_malloc buffer up to a cap. libcurl's result codes are
 * translated here, at the edge, into FEDC_E* codes and the kinds of
 * fedc_http_fail; libcurl's own message goes into fedc_error_msg().
 */
#include "http_curl.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/error.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10.0
#define DEFAULT_MAX_RESPONSE ((size_t)1 << 20)

struct fedc_http_client {
  CURL *curl;
  char *base_url;
  char *url; /* scratch for base_url + path */
  size_t url_cap;
  const volatile sig_atomic_t *cancel;
  char errbuf[CURL_ERROR_SIZE];
  /* the request in progress */
  fedc_http_response *resp;
  size_t body_cap; /* bytes allocated for resp->body */
  size_t max_len;  /* response cap */
  int too_big, nomem;
  int (*sink)(void *ud, const uint8_t *p, size_t n);
  void *sink_ud;
  int sink_mode; /* -1: not decided yet; 1: this answer's body goes to sink */
  int sink_failed;
  int peer_alert;    /* the last TLS alert the peer sent (its description), or -1 */
  int peer_finished; /* the peer's Finished message arrived: it passed verification */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

/* libcurl's global state is set up once per process and never torn down:
 * curl_global_cleanup is not thread-safe, and the process ends soon enough. */
static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- callbacks --------------------------------------------------------- */

/* Appends a chunk of the response body, doubling the buffer as needed and
 * refusing (which makes libcurl stop with CURLE_WRITE_ERROR) past the cap. */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  fedc_http_client *c = ud;
  fedc_http_response *r = c->resp;
  size_t add = size * n;
  if (c->sink != NULL && c->sink_mode < 0) {
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    r->status = status;
    c->sink_mode = status == 200 || status == 206;
  }
  if (c->sink_mode == 1) {
    int src = c->sink(c->sink_ud, (const uint8_t *)p, add);
    if (src != 0) {
      c->sink_failed = src < 0 ? src : FEDC_EIO;
      return 0;
    }
    return add;
  }
  if (add > c->max_len - r->len) {
    c->too_big = 1;
    return 0;
  }
  size_t need = r->len + add + 1;
  if (need > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 4096;
    while (cap < need)
      cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > c->max_len + 1) cap = c->max_len + 1;
    uint8_t *b = fedc_realloc(r->body, cap);
    if (b == NULL) {
      c->nomem = 1;
      return 0;
    }
    r->body = b;
    c->body_cap = cap;
  }
  memcpy(r->body + r->len, p, add);
  r->len += add;
  r->body[r->len] = '\0';
  return add;
}

/* The value of header line p (len bytes) if its name is name (with the
 * colon, lower case), trimmed, into out; 0 when it is, -1 when not. */
static int header_value(const char *p, size_t len, const char *name, char *out, size_t cap) {
  size_t k = strlen(name);
  if (len <= k || strncasecmp(p, name, k) != 0) return -1;
  p += k;
  len -= k;
  while (len > 0 && (*p == ' ' || *p == '\t')) p++, len--;
  while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' ')) len--;
  if (len >= cap) len = cap - 1;
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

/* "bytes a-b/total" into first and total; -1 each when not of that form. */
static void content_range(const char *v, int64_t *first, int64_t *total) {
  unsigned long long a, b, t;
  *first = *total = -1;
  if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 && a <= b && b < t) {
    *first = (int64_t)a;
    *total = (int64_t)t;
  } else if (sscanf(v, "bytes */%llu", &t) == 1) {
    *total = (int64_t)t;
  }
}

/* Picks "Retry-After: <seconds>" out of the response headers (the HTTP-date
 * form is not used by fedc's coordinator and is ignored), and the
 * validators and sizes of fedc_http_response. A new status line (a 100
 * Continue before the answer) starts them over. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  fedc_http_client *c = ud;
  size_t len = size * n;
  fedc_http_response *r = c->resp;
  char v[128];
  if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
    r->etag[0] = r->sha256[0] = '\0';
    r->content_length = r->range_first = r->range_total = -1;
  } else if (header_value(p, len, "etag:", v, sizeof v) == 0) {
    snprintf(r->etag, sizeof r->etag, "%s", v);
  } else if (header_value(p, len, "x-fedc-sha256:", v, sizeof v) == 0) {
    if (strlen(v) == 64) snprintf(r->sha256, sizeof r->sha256, "%s", v);
  } else if (header_value(p, len, "content-length:", v, sizeof v) == 0) {
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (end != v && *end == '\0') r->content_length = (int64_t)x;
  } else if (header_value(p, len, "content-range:", v, sizeof v) == 0) {
    content_range(v, &r->range_first, &r->range_total);
  }
  static const char name[] = "retry-after:";
  if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
    char ra[32];
    size_t k = len - (sizeof name - 1);
    if (k >= sizeof ra) k = sizeof ra - 1;
    memcpy(ra, p + sizeof name - 1, k);
    ra[k] = '\0';
    char *end;
    errno = 0;
    double s = strtod(ra, &end);
    if (end != ra && errno == 0 && s >= 0 && s < 86400) c->resp->retry_after_s = s;
  }
  return len;
}

/* libcurl calls this often during a transfer and about once a second while
 * waiting on a quiet connection (a long-poll): a non-zero return abandons
 * the transfer, which is how a signal stops a request promptly. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  fedc_http_client *c = ud;
  return c->cancel != NULL && *c->cancel != 0;
}

/* libcurl hands this callback, among its verbose text, the TLS protocol
 * messages OpenSSL reads (CURLINFO_SSL_DATA_IN), so that a failed
 * handshake is classified by what the peer said rather than by the
 * wording of an error message. A received alert is the only such message
 * two bytes long: its level (1 warning, 2 fatal), then its description
 * (RFC 8446, 6.2). A handshake message is a type byte and a 24-bit length:
 * the peer's Finished (type 20) is read only once OpenSSL has verified its
 * certificate chain. Everything else is dropped, so nothing is printed. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud) {
  fedc_http_client *c = ud;
  if (type != CURLINFO_SSL_DATA_IN) return 0;
  const unsigned char *b = (const unsigned char *)data;
  if (size == 2 && (b[0] == 1 || b[0] == 2)) c->peer_alert = b[1];
  if (size >= 4 && b[0] == 20 && ((size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3]) == size - 4)
    c->peer_finished = 1;
  return 0;
}

/*
 * Session tickets. libcurl's OpenSSL backend keeps each connection's TLS
 * session in the easy handle's cache and offers it on the next connection,
 * but sets SSL_OP_NO_TICKET, so the session it offers is a bare session
 * ID, which only the same coordinator process can resume. The coordinator
 * issues RFC 5077 tickets that survive its restarts (their key derives
 * from its private key): clearing the option here lets this client resume
 * after a restart too. The function is looked up in the process (libcurl
 * has loaded libssl), so fedc needs no OpenSSL headers or link of its own;
 * with another TLS backend the callback is not installed.
 */
#define FEDC_SSL_OP_NO_TICKET ((uint64_t)1 << 14) /* OpenSSL 1.1 and 3.x */

static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *ud) {
  (void)h;
  (void)ud;
  typedef uint64_t (*clear_options_fn)(void *, uint64_t);
  static clear_options_fn clear_options;
  static int looked_up;
  if (!looked_up) {
    *(void **)&clear_options = dlsym(RTLD_DEFAULT, "SSL_CTX_clear_options");
    looked_up = 1;
  }
  if (clear_options && ssl_ctx) clear_options(ssl_ctx, FEDC_SSL_OP_NO_TICKET);
  return CURLE_OK;
}

static int backend_is_openssl(void) {
  curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
  return vi && vi->ssl_version && strncmp(vi->ssl_version, "OpenSSL/", 8) == 0;
}

/* ---- making and freeing ------------------------------------------------- */

void fedc_http_client_free(fedc_http_client *c) {
  if (c == NULL) return;
  if (c->curl) curl_easy_cleanup(c->curl);
  fedc_free(c->base_url);
  fedc_free(c->url);
  fedc_free(c);
}

const char *fedc_http_client_url(const fedc_http_client *c) {
  return c->base_url;
}

#define SETOPT(opt, val)                                                                           \
  do {                                                                                             \
    CURLcode cc_ = curl_easy_setopt(c->curl, opt, val);                                            \
    if (cc_ != CURLE_OK) {                                                                         \
      rc = fedc_error_set(FEDC_EIO, "libcurl: cannot set %s: %s", #opt, curl_easy_strerror(cc_));  \
      goto fail;                                                                                   \
    }                                                                                              \
  } while (0)

/*
 * Makes the handle and sets everything that stays the same for every
 * request: the TLS files and checks, the protocol restriction, callbacks.
 * Verification of the peer (VERIFYPEER = 1, VERIFYHOST = 2) is set here
 * explicitly, although it is libcurl's default, so that the code says it;
 * CAPATH is cleared so that only ca_path is trusted, not the system store.
 */
int fedc_http_client_new(const fedc_http_client_opts *o, fedc_http_client **out) {
  if (out == NULL || o == NULL) return fedc_error_set(FEDC_EINVAL, "http: NULL argument");
  *out = NULL;
  if (o->base_url == NULL || o->ca_path == NULL || o->cert_path == NULL || o->key_path == NULL ||
      !o->ca_path[0] || !o->cert_path[0] || !o->key_path[0])
    return fedc_error_set(FEDC_EINVAL, "http: the URL, CA, certificate and key are all needed");
  if (strncasecmp(o->base_url, "https://", 8) != 0 || o->base_url[8] == '\0')
    return fedc_error_set(FEDC_EINVAL,
                          "http: '%s' is not an https:// URL (plain HTTP is "
                          "not supported)",
                          o->base_url);
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return fedc_error_set(FEDC_EIO, "libcurl: global init failed: %s",
                          curl_easy_strerror(global_rc));
  curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
  if (vi == NULL || !(vi->features & CURL_VERSION_SSL))
    return fedc_error_set(FEDC_EIO, "libcurl: built without TLS support");

  int rc = 0;
  fedc_http_client *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
  c->cancel = o->cancel;
  c->base_url = fedc_strdup(o->base_url);
  if (c->base_url == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "http: out of memory");
    goto fail;
  }
  size_t bl = strlen(c->base_url);
  while (bl > 8 && c->base_url[bl - 1] == '/')
    c->base_url[--bl] = '\0';
  c->curl = curl_easy_init();
  if (c->curl == NULL) {
    rc = fedc_error_set(FEDC_EIO, "libcurl: curl_easy_init failed");
    goto fail;
  }
  SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(CURLOPT_PROTOCOLS_STR, "https");
  SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
  SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(CURLOPT_CAINFO, o->ca_path);
  SETOPT(CURLOPT_CAPATH, (char *)NULL);
  SETOPT(CURLOPT_SSLCERT, o->cert_path);
  SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
  SETOPT(CURLOPT_SSLKEY, o->key_path);
  SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "fedc");
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, c);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, c);
  SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
  SETOPT(CURLOPT_XFERINFODATA, c);
  SETOPT(CURLOPT_NOPROGRESS, 0L);
  /* verbose, into on_debug only: it is how the peer's TLS alerts reach us */
  SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
  SETOPT(CURLOPT_DEBUGDATA, c);
  SETOPT(CURLOPT_VERBOSE, 1L);
  if (backend_is_openssl()) SETOPT(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
  *out = c;
  return 0;
fail:
  fedc_http_client_free(c);
  return rc;
}

/* ---- requests ----------------------------------------------------------- */

void fedc_http_response_free(fedc_http_response *r) {
  if (r == NULL) return;
  fedc_free(r->body);
  r->body = NULL;
  r->len = 0;
}

/* TLS alert descriptions by which a peer refuses our certificate (RFC
 * 5246 7.2.2, RFC 8446 6.2): no_certificate, bad_certificate,
 * unsupported_certificate, certificate_revoked, certificate_expired,
 * certificate_unknown, unknown_ca, access_denied, certificate_required. */
static int refused_alert(int alert) {
  switch (alert) {
  case 41: case 42: case 43: case 44: case 45: case 46: case 48: case 49: case 116:
    return 1;
  default:
    return 0;
  }
}

/* The name of a TLS alert description (RFC 5246 7.2, RFC 8446 6.2). */
static const char *alert_name(int alert) {
  switch (alert) {
  case 10: return "unexpected_message";
  case 20: return "bad_record_mac";
  case 40: return "handshake_failure";
  case 41: return "no_certificate";
  case 42: return "bad_certificate";
  case 43: return "unsupported_certificate";
  case 44: return "certificate_revoked";
  case 45: return "certificate_expired";
  case 46: return "certificate_unknown";
  case 47: return "illegal_parameter";
  case 48: return "unknown_ca";
  case 49: return "access_denied";
  case 50: return "decode_error";
  case 51: return "decrypt_error";
  case 70: return "protocol_version";
  case 71: return "insufficient_security";
  case 80: return "internal_error";
  case 116: return "certificate_required";
  default: return "alert";
  }
}

/* What the peer's alert says about our certificate, in words. */
static const char *alert_meaning(int alert) {
  switch (alert) {
  case 41: case 116: return "the coordinator requires a client certificate";
  case 42: return "the coordinator finds this client's certificate bad (not signed by its CA, or damaged)";
  case 43: return "the coordinator does not support this client's certificate type";
  case 44: return "the coordinator says this client's certificate is revoked";
  case 45: return "the coordinator says this client's certificate has expired";
  case 46: return "the coordinator could not verify this client's certificate";
  case 48: return "the coordinator does not know the CA that signed this client's certificate";
  case 49: return "the coordinator denies access to this client's certificate";
  default: return "the coordinator refused the handshake";
  }
}

/* OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
 * (when the host check is left to OpenSSL) */
#define X509_HOSTNAME_MISMATCH 62L
#define X509_IP_ADDRESS_MISMATCH 64L

/*
 * Sorts a libcurl result into a failure kind, a FEDC_E* code and a
 * sub-code. A certificate that fails verification is told apart by where
 * it failed: OpenSSL verifies the chain during the handshake, so a failure
 * after the peer's Finished, or with the chain found good
 * (CURLINFO_SSL_VERIFYRESULT X509_V_OK), is libcurl's own host name check;
 * OpenSSL's own name checks have their verification results.
 */
static fedc_http_fail classify(fedc_http_client *c, CURLcode cc, int *err, int *sub) {
  *err = FEDC_EIO;
  *sub = FEDC_SUB_NONE;
  switch (cc) {
  case CURLE_PEER_FAILED_VERIFICATION: {
    /* libcurl reports the peer's certificate_expired alert as its own
     * verification failure (it maps OpenSSL's SSLV3_ALERT_CERTIFICATE_EXPIRED
     * there): an alert received means the peer refused us, not the reverse */
    if (refused_alert(c->peer_alert)) {
      *sub = c->peer_alert == 45 ? FEDC_SUB_TLS_OWN_CERT_EXPIRED : FEDC_SUB_TLS_REFUSED_BY_PEER;
      return FEDC_HTTP_FAIL_TLS_REFUSED;
    }
    long vr = -1;
    if (curl_easy_getinfo(c->curl, CURLINFO_SSL_VERIFYRESULT, &vr) != CURLE_OK) vr = -1;
    *sub = c->peer_finished || vr == 0 || vr == X509_HOSTNAME_MISMATCH || vr == X509_IP_ADDRESS_MISMATCH
               ? FEDC_SUB_TLS_PEER_NAME
               : FEDC_SUB_TLS_PEER_UNTRUSTED;
    return FEDC_HTTP_FAIL_TLS_VERIFY;
  }
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_NOT_BUILT_IN:
  case CURLE_BAD_FUNCTION_ARGUMENT:
  case CURLE_SSL_CIPHER:
    *err = FEDC_ECONFIG;
    return FEDC_HTTP_FAIL_LOCAL;
  case CURLE_OUT_OF_MEMORY:
    *err = FEDC_ENOMEM;
    return FEDC_HTTP_FAIL_LOCAL;
  case CURLE_WRITE_ERROR:
    if (c->too_big) {
      *err = FEDC_ETOOBIG;
      return FEDC_HTTP_FAIL_TOOBIG;
    }
    if (c->nomem) {
      *err = FEDC_ENOMEM;
      return FEDC_HTTP_FAIL_LOCAL;
    }
    return FEDC_HTTP_FAIL_NETWORK;
  case CURLE_ABORTED_BY_CALLBACK:
    return FEDC_HTTP_FAIL_CANCELLED;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
    /* with TLS 1.3 the peer's verdict on our certificate comes after our
     * side of the handshake is done: the alert then ends the first read */
    if (refused_alert(c->peer_alert)) {
      *sub = c->peer_alert == 45 ? FEDC_SUB_TLS_OWN_CERT_EXPIRED : FEDC_SUB_TLS_REFUSED_BY_PEER;
      return FEDC_HTTP_FAIL_TLS_REFUSED;
    }
    return FEDC_HTTP_FAIL_NETWORK;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
    *sub = FEDC_SUB_CONNECT;
    return FEDC_HTTP_FAIL_NETWORK;
  case CURLE_OPERATION_TIMEDOUT:
    *sub = FEDC_SUB_TIMEOUT;
    return FEDC_HTTP_FAIL_NETWORK;
  default:
    return FEDC_HTTP_FAIL_NETWORK;
  }
}

static long ms(double s) {
  if (!(s > 0)) return 0;
  if (s > 1e6) return 1000000000L;
  long v = (long)(s * 1000.0 + 0.5);
  return v < 1 ? 1 : v;
}

/* The request's headers could not be built: nothing was sent. */
static int headers_oom(fedc_http_client *c, fedc_http_response *resp, struct curl_slist *h) {
  curl_slist_free_all(h);
  c->resp = NULL;
  resp->fail = FEDC_HTTP_FAIL_LOCAL;
  return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
}

/*
 * Runs one request on the shared handle. body == NULL means GET. The
 * method-specific options are set on every call, so that a GET after a POST
 * does not inherit its body. On failure the body collected so far is freed.
 */
static int perform(fedc_http_client *c, const char *path, const char *ctype, const void *body,
                   size_t len, const fedc_http_call *call, fedc_http_response *resp) {
  memset(resp, 0, sizeof *resp);
  resp->retry_after_s = -1;
  resp->content_length = resp->range_first = resp->range_total = -1;
  const char *method = body ? "POST" : "GET";
  if (c == NULL || path == NULL || path[0] != '/' || call == NULL || !(call->timeout_s > 0)) {
    resp->fail = FEDC_HTTP_FAIL_LOCAL;
    return fedc_error_set(FEDC_EINVAL, "http: bad request arguments");
  }
  size_t need = strlen(c->base_url) + strlen(path) + 1;
  if (need > c->url_cap) {
    char *u = fedc_realloc(c->url, need);
    if (u == NULL) {
      resp->fail = FEDC_HTTP_FAIL_LOCAL;
      return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
    }
    c->url = u;
    c->url_cap = need;
  }
  snprintf(c->url, c->url_cap, "%s%s", c->base_url, path);

  c->resp = resp;
  c->body_cap = 0;
  c->max_len = call->max_response ? call->max_response : DEFAULT_MAX_RESPONSE;
  c->too_big = c->nomem = 0;
  c->sink = call->sink;
  c->sink_ud = call->sink_ud;
  c->sink_mode = -1;
  c->sink_failed = 0;
  c->peer_alert = -1;
  c->peer_finished = 0;
  c->errbuf[0] = '\0';

  struct curl_slist *post_headers = NULL;
  CURLcode cc = curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
  double ct = call->connect_timeout_s > 0 ? call->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
  if (ct > call->timeout_s) ct = call->timeout_s;
  if (cc == CURLE_OK) cc = curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, ms(call->timeout_s));
  if (cc == CURLE_OK) cc = curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, ms(ct));
  if (cc == CURLE_OK && body) {
    char ct_line[160];
    snprintf(ct_line, sizeof ct_line, "Content-Type: %s",
             ctype ? ctype : "application/octet-stream");
    /* "Expect:" switches off 100-continue, which would add a round trip (or
     * a one-second stall) before every update body */
    post_headers = curl_slist_append(NULL, "Expect:");
    struct curl_slist *t = post_headers ? curl_slist_append(post_headers, ct_line) : NULL;
    if (t == NULL) return headers_oom(c, resp, post_headers);
    post_headers = t;
    cc = curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
    if (cc == CURLE_OK)
      cc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (cc == CURLE_OK) cc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    if (cc == CURLE_OK) cc = curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, post_headers);
  } else if (cc == CURLE_OK) {
    for (const char *const *h = call->headers; h && *h; h++) {
      struct curl_slist *t = curl_slist_append(post_headers, *h);
      if (t == NULL) return headers_oom(c, resp, post_headers);
      post_headers = t;
    }
    cc = curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    if (cc == CURLE_OK) cc = curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, post_headers);
  }
  if (cc == CURLE_OK) cc = curl_easy_perform(c->curl);
  /* the handle must not keep pointers to the body or the header list */
  if (body || post_headers) {
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, (char *)NULL);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  }
  curl_slist_free_all(post_headers);
  c->resp = NULL;

  if (cc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    if (resp->body == NULL) {
      /* an empty body still reads as a NUL-terminated string */
      resp->body = fedc_malloc(1);
      if (resp->body == NULL) {
        resp->fail = FEDC_HTTP_FAIL_LOCAL;
        return fedc_error_set(FEDC_ENOMEM, "http: out of memory");
      }
      resp->body[0] = '\0';
    }
    return 0;
  }
  fedc_http_response_free(resp);
  resp->status = 0;
  if (c->sink_failed) { /* the sink's own error (a disk full, a bad range) */
    resp->fail = FEDC_HTTP_FAIL_LOCAL;
    return c->sink_failed; /* with the sink's message */
  }
  const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
  int err, sub;
  resp->fail = classify(c, cc, &err, &sub);
  if (resp->fail == FEDC_HTTP_FAIL_TOOBIG)
    return fedc_error_set(err, "%s %s: response larger than %zu bytes", method, c->url, c->max_len);
  if (resp->fail == FEDC_HTTP_FAIL_CANCELLED)
    return fedc_error_set(err, "%s %s: cancelled", method, c->url);
  if (c->nomem) return fedc_error_set(err, "%s %s: out of memory", method, c->url);
  if (resp->fail == FEDC_HTTP_FAIL_TLS_REFUSED)
    return fedc_error_set_sub(err, sub, "%s %s: %s (TLS alert %s, %d): %s (curl error %d)",
                              method, c->url, alert_meaning(c->peer_alert),
                              alert_name(c->peer_alert), c->peer_alert, msg, (int)cc);
  return fedc_error_set_sub(err, sub, "%s %s: %s (curl error %d)", method, c->url, msg, (int)cc);
}

int fedc_http_get(fedc_http_client *c, const char *path, const fedc_http_call *call,
                  fedc_http_response *resp) {
  return perform(c, path, NULL, NULL, 0, call, resp);
}

int fedc_http_post(fedc_http_client *c, const char *path, const char *content_type,
                   const void *body, size_t len, const fedc_http_call *call,
                   fedc_http_response *resp) {
  /* an empty POST still needs a non-NULL body to be sent as a POST */
  return perform(c, path, content_type, body ? body : "", body ? len : 0, call, resp);
}
