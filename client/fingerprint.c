/*
 * fingerprint.c - a certificate's identity on the wire: the SHA-256 of the
 * DER encoding of the first certificate in a PEM file, in lowercase hex
 * (<fedc/client.h>). mbedTLS reads the PEM; its SHA-256 function changed
 * name between 2.28 and 3.x.
 */
#include <errno.h>
#include <mbedtls/pem.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define client_sha256(buf, len, out) mbedtls_sha256((buf), (len), (out), 0)
#else
#define client_sha256(buf, len, out) mbedtls_sha256_ret((buf), (len), (out), 0)
#endif

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
  hex[0] = '\0';
  char *text;
  int rc = read_text(pem_path, 1u << 20, &text);
  if (rc != 0) return rc;
  mbedtls_pem_context pem;
  mbedtls_pem_init(&pem);
  size_t used = 0;
  int mrc =
      mbedtls_pem_read_buffer(&pem, "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----",
                              (const unsigned char *)text, NULL, 0, &used);
  fedc_free(text);
  if (mrc != 0 || pem.buflen == 0) {
    mbedtls_pem_free(&pem);
    return fedc_error_set(FEDC_EFORMAT, "%s: no PEM certificate in it (mbedTLS error -0x%04x)",
                          pem_path, (unsigned)-mrc);
  }
  unsigned char digest[32];
  client_sha256(pem.buf, pem.buflen, digest);
  mbedtls_pem_free(&pem);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  hex[FEDC_CLIENT_SHA_HEX] = '\0';
  return 0;
}
