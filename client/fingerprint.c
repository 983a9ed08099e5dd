/*
 * fingerprint.c - a certificate's identity on the wire: the SHA-256 of the
 * DER encoding of the first certificate in a PEM file, in lowercase hex
 * (<fedc/client.h>). The PEM armour is taken off here (base64 between the
 * BEGIN and END lines), so nothing depends on mbedTLS's PEM context, whose
 * fields are private in 3.x; the hash is the one shim's (base/mbedtls_compat.h).
 */
#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/asn1.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "client.h"

/* Reads a whole small text file into a NUL-terminated fedc_malloc buffer. */
static int read_text(const char *path, size_t max, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = fedc_malloc(max + 1);
  if (buf == NULL) {
    fclose(f);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  size_t n = fread(buf, 1, max + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fedc_free(buf);
    return fedc_error_set(FEDC_EIO, "%s: cannot read", path);
  }
  if (n > max) {
    fedc_free(buf);
    return fedc_error_set(FEDC_EFORMAT, "%s: larger than %zu bytes", path, max);
  }
  buf[n] = '\0';
  *out = buf;
  return 0;
}

/* The DER of the first certificate in a PEM file, fedc_malloc'd. */
static int pem_der(const char *pem_path, unsigned char **der_out, size_t *len_out) {
  static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
  char *text;
  int rc = read_text(pem_path, 1u << 20, &text);
  if (rc != 0) return rc;
  char *b = strstr(text, begin);
  char *e = b ? strstr(b, end) : NULL;
  if (b == NULL || e == NULL) {
    fedc_free(text);
    return fedc_error_set(FEDC_EFORMAT, "%s: no PEM certificate in it", pem_path);
  }
  /* the base64 body without its line breaks, in place */
  char *body = b + sizeof begin - 1, *w = body;
  for (char *r = body; r < e; r++)
    if (*r != '\n' && *r != '\r' && *r != ' ' && *r != '\t') *w++ = *r;
  size_t der_len = 0;
  unsigned char *der = fedc_malloc((size_t)(w - body) + 1);
  if (der == NULL) {
    fedc_free(text);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  int mrc = mbedtls_base64_decode(der, (size_t)(w - body) + 1, &der_len,
                                  (const unsigned char *)body, (size_t)(w - body));
  fedc_free(text);
  if (mrc != 0 || der_len == 0) {
    fedc_free(der);
    return fedc_error_set(FEDC_EFORMAT, "%s: no PEM certificate in it (bad base64, mbedTLS error -0x%04x)",
                          pem_path, (unsigned)-mrc);
  }
  *der_out = der;
  *len_out = der_len;
  return 0;
}

int fedc_client_cert_fingerprint(const char *pem_path, char hex[FEDC_CLIENT_SHA_HEX + 1]) {
  hex[0] = '\0';
  unsigned char *der;
  size_t der_len;
  int rc = pem_der(pem_path, &der, &der_len);
  if (rc != 0) return rc;
  rc = fedc__sha256_hex(der, der_len, hex);
  fedc_free(der);
  return rc;
}

/* An X.509 Time (UTCTime or GeneralizedTime, "...Z") as Unix seconds and
 * as text "YYYY-MM-DD HH:MM:SS UTC"; -1 if it does not parse. */
static int64_t x509_time(unsigned char **p, const unsigned char *end, char *text, size_t n) {
  if (end - *p < 2) return -1;
  int tag = **p;
  size_t len;
  if (tag != 0x17 && tag != 0x18) return -1;
  (*p)++;
  if (mbedtls_asn1_get_len(p, end, &len) != 0) return -1;
  const unsigned char *s = *p;
  *p += len;
  size_t yd = tag == 0x17 ? 2 : 4;
  if (len != yd + 11 || s[len - 1] != 'Z') return -1;
  int v[6] = {0};
  for (size_t i = 0; i < len - 1; i++)
    if (s[i] < '0' || s[i] > '9') return -1;
  for (size_t i = 0; i < yd; i++) v[0] = v[0] * 10 + (s[i] - '0');
  for (int k = 1; k < 6; k++) v[k] = (s[yd + 2 * (k - 1)] - '0') * 10 + (s[yd + 2 * (k - 1) + 1] - '0');
  if (tag == 0x17) v[0] += v[0] < 50 ? 2000 : 1900; /* RFC 5280 4.1.2.5.1 */
  struct tm tm = {0};
  tm.tm_year = v[0] - 1900;
  tm.tm_mon = v[1] - 1;
  tm.tm_mday = v[2];
  tm.tm_hour = v[3];
  tm.tm_min = v[4];
  tm.tm_sec = v[5];
  snprintf(text, n, "%04d-%02d-%02d %02d:%02d:%02d UTC", v[0], v[1], v[2], v[3], v[4], v[5]);
  return (int64_t)timegm(&tm);
}

/*
 * The certificate's validity dates against the clock: a client whose own
 * certificate has expired (or is not valid yet) is told so at start, in
 * its own words, instead of learning it from the coordinator's refusal.
 * The dates are read from the DER (Certificate, tbsCertificate, optional
 * [0] version, serial, signature algorithm, issuer, validity).
 */
int fedc__client_cert_check_dates(const char *pem_path) {
  unsigned char *der;
  size_t der_len, len;
  if (pem_der(pem_path, &der, &der_len) != 0) return 0; /* the fingerprint said why */
  unsigned char *p = der, *end = der + der_len;
  const int SEQ = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
  int ok = mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0 &&
           mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0;
  if (ok && mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                                                     MBEDTLS_ASN1_CONSTRUCTED | 0) == 0)
    p += len;
  ok = ok && mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_INTEGER) == 0 && (p += len, 1) &&
       mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0 && (p += len, 1) &&
       mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0 && (p += len, 1) &&
       mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0;
  int rc = 0;
  if (ok) {
    char from_s[40], to_s[40];
    const unsigned char *vend = p + len;
    int64_t from = x509_time(&p, vend, from_s, sizeof from_s);
    int64_t to = from < 0 ? -1 : x509_time(&p, vend, to_s, sizeof to_s);
    int64_t now = (int64_t)time(NULL);
    if (to >= 0 && now > to)
      rc = fedc_error_set(FEDC_ECONFIG,
                          "[tls] cert: expired on %s (%s); ask the job's CA for a new certificate",
                          to_s, pem_path);
    else if (from >= 0 && now < from)
      rc = fedc_error_set(FEDC_ECONFIG,
                          "[tls] cert: not valid before %s (%s); is this machine's clock right?",
                          from_s, pem_path);
  }
  fedc_free(der);
  return rc;
}
