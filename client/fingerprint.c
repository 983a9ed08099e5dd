/*
 * fingerprint.c - a certificate's identity on the wire: the SHA-256 of the
 * DER encoding of the first certificate in a PEM file, in lowercase hex
 * (<fedc/client.h>). The PEM armour is taken off here (base64 between the
 * BEGIN and END lines), so nothing depends on mbedTLS's PEM context, whose
 * fields are private in 3.x; the hash is the one shim's (base/mbedtls_compat.h).
 */
#include <errno.h>
#include <mbedtls/base64.h>
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

int fedc_client_cert_fingerprint(const char *pem_path, char hex[FEDC_CLIENT_SHA_HEX + 1]) {
  static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
  hex[0] = '\0';
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
  rc = fedc__sha256_hex(der, der_len, hex);
  fedc_free(der);
  return rc;
}
