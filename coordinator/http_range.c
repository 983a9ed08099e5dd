/*
 * http_range.c - Range and If-Range answers on a shared body (see
 * http_range.h). The parser reads bytes from the network, so it is strict:
 * digits only, no sign, no overflow, no trailing bytes.
 */
#include "http_range.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Digits at *p into *v (no overflow); 0 when at least one was read. */
static int read_u64(const char **p, uint64_t *v) {
  const char *s = *p;
  uint64_t x = 0;
  if (*s < '0' || *s > '9') return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
    x = x * 10 + (uint64_t)(*s - '0');
  }
  *p = s;
  *v = x;
  return 0;
}

static const char *skip_ows(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

int fedc_http_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last) {
  if (value == NULL) return FEDC_RANGE_WHOLE;
  const char *p = skip_ows(value);
  if (*p == '\0') return FEDC_RANGE_WHOLE;
  if (strncasecmp(p, "bytes", 5) != 0) return FEDC_RANGE_WHOLE; /* another unit */
  p = skip_ows(p + 5);
  if (*p != '=') return FEDC_RANGE_WHOLE;
  p = skip_ows(p + 1);
  if (strchr(p, ',') != NULL) return FEDC_RANGE_WHOLE; /* several ranges: the whole body */
  uint64_t a = 0, b = 0;
  int suffix = *p == '-';
  if (suffix) {
    p++;
    if (read_u64(&p, &b) != 0) return FEDC_RANGE_BAD;
  } else {
    if (read_u64(&p, &a) != 0) return FEDC_RANGE_BAD;
    p = skip_ows(p);
    if (*p != '-') return FEDC_RANGE_BAD;
    p = skip_ows(p + 1);
    b = UINT64_MAX;
    if (*p >= '0' && *p <= '9' && read_u64(&p, &b) != 0) return FEDC_RANGE_BAD;
  }
  if (*skip_ows(p) != '\0') return FEDC_RANGE_BAD;
  if (suffix) { /* the last b bytes */
    if (b == 0 || size == 0) return FEDC_RANGE_BAD;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return FEDC_RANGE_PART;
  }
  if (b < a || a >= size) return FEDC_RANGE_BAD;
  *first = a;
  *last = b >= size ? size - 1 : b;
  return FEDC_RANGE_PART;
}

/* If-Range holds an entity tag (we never send Last-Modified, so a date
 * never matches): strong comparison with ours, the quotes included. */
static int if_range_matches(const char *v, const char *etag) {
  if (v == NULL || v[0] == '\0') return 1;
  const char *p = skip_ows(v);
  size_t n = strlen(p);
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return n == strlen(etag) && strncmp(p, etag, n) == 0;
}

void fedc_http_respond_ranged(fedc_http_exchange *x, const fedc_http_request *req,
                              const char *content_type, fedc_http_body *body) {
  fedc_http_respond_ranged_ex(x, req, content_type, body, NULL);
}

void fedc_http_respond_ranged_ex(fedc_http_exchange *x, const fedc_http_request *req,
                                 const char *content_type, fedc_http_body *body,
                                 const char *extra) {
  const char *sha = fedc_http_body_sha256(body);
  uint64_t size = fedc_http_body_len(body);
  char etag[72], hdr[600];
  if (extra == NULL) extra = "";
  snprintf(etag, sizeof etag, "\"%s\"", sha);
  int kind = FEDC_RANGE_WHOLE;
  uint64_t first = 0, last = 0;
  if (req->range && req->range[0] && if_range_matches(req->if_range, etag))
    kind = fedc_http_range_parse(req->range, size, &first, &last);
  if (kind == FEDC_RANGE_BAD) {
    snprintf(hdr, sizeof hdr,
             "ETag: %s\r\nX-Fedc-SHA256: %s\r\nAccept-Ranges: bytes\r\n"
             "Content-Range: bytes */%llu\r\n%s",
             etag, sha, (unsigned long long)size, extra);
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "{\"error\":\"range_not_satisfiable\",\"message\":\"the body has %llu "
                     "bytes; ask for bytes=<first>- with first below that\"}",
                     (unsigned long long)size);
    fedc_http_respond(x, 416, "application/json", msg, (size_t)n, hdr);
    return;
  }
  if (kind == FEDC_RANGE_PART) {
    snprintf(hdr, sizeof hdr,
             "ETag: %s\r\nX-Fedc-SHA256: %s\r\nAccept-Ranges: bytes\r\n"
             "Content-Range: bytes %llu-%llu/%llu\r\n%s",
             etag, sha, (unsigned long long)first, (unsigned long long)last,
             (unsigned long long)size, extra);
    fedc_http_respond_body(x, 206, content_type, body, first, last - first + 1, hdr);
    return;
  }
  snprintf(hdr, sizeof hdr, "ETag: %s\r\nX-Fedc-SHA256: %s\r\nAccept-Ranges: bytes\r\n%s",
           etag, sha, extra);
  fedc_http_respond_body(x, 200, content_type, body, 0, size, hdr);
}
