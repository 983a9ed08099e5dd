/*
 * mbedtls_compat.c - wrappers over the mbedTLS calls whose names or
 * arguments differ between 2.28 and 3.x (mbedtls_compat.h). Every
 * MBEDTLS_VERSION test of the tree is in this file.
 */
#include "base/mbedtls_compat.h"

#include "base/error.h"

#include <mbedtls/version.h>

#if MBEDTLS_VERSION_MAJOR >= 3
#define SHA_STARTS(c) mbedtls_sha256_starts((c), 0)
#define SHA_UPDATE mbedtls_sha256_update
#define SHA_FINISH mbedtls_sha256_finish
#else
#define SHA_STARTS(c) mbedtls_sha256_starts_ret((c), 0)
#define SHA_UPDATE mbedtls_sha256_update_ret
#define SHA_FINISH mbedtls_sha256_finish_ret
#endif

static int sha_fail(int mrc) {
  return fedc_error_set(FEDC_EBACKEND, "sha256: mbedTLS error -0x%04x", (unsigned)-mrc);
}

int fedc__sha256_begin(fedc__sha256_ctx *h) {
  mbedtls_sha256_init(&h->c);
  int mrc = SHA_STARTS(&h->c);
  return mrc ? sha_fail(mrc) : 0;
}

int fedc__sha256_update(fedc__sha256_ctx *h, const void *buf, size_t len) {
  int mrc = SHA_UPDATE(&h->c, (const unsigned char *)buf, len);
  return mrc ? sha_fail(mrc) : 0;
}

int fedc__sha256_finish(fedc__sha256_ctx *h, uint8_t out[FEDC__SHA256_LEN]) {
  int mrc = SHA_FINISH(&h->c, out);
  return mrc ? sha_fail(mrc) : 0;
}

void fedc__sha256_free(fedc__sha256_ctx *h) { mbedtls_sha256_free(&h->c); }

int fedc__sha256(const void *buf, size_t len, uint8_t out[FEDC__SHA256_LEN]) {
#if MBEDTLS_VERSION_MAJOR >= 3
  int mrc = mbedtls_sha256((const unsigned char *)buf, len, out, 0);
#else
  int mrc = mbedtls_sha256_ret((const unsigned char *)buf, len, out, 0);
#endif
  return mrc ? sha_fail(mrc) : 0;
}

int fedc__sha256_hex(const void *buf, size_t len, char out[FEDC__SHA256_HEX_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  uint8_t h[FEDC__SHA256_LEN];
  out[0] = '\0';
  int rc = fedc__sha256(buf, len, h);
  if (rc != 0) return rc;
  for (int i = 0; i < FEDC__SHA256_LEN; i++) {
    out[2 * i] = digits[h[i] >> 4];
    out[2 * i + 1] = digits[h[i] & 15];
  }
  out[FEDC__SHA256_HEX_LEN] = '\0';
  return 0;
}

int fedc__pk_parse_keyfile(mbedtls_pk_context *pk, const char *path, const char *password,
                           int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_parse_keyfile(pk, path, password, f_rng, p_rng);
#else
  (void)f_rng;
  (void)p_rng;
  return mbedtls_pk_parse_keyfile(pk, path, password);
#endif
}

int fedc__pk_check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv,
                        int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_check_pair(pub, prv, f_rng, p_rng);
#else
  (void)f_rng;
  (void)p_rng;
  return mbedtls_pk_check_pair(pub, prv);
#endif
}

int fedc__pk_sign(mbedtls_pk_context *pk, mbedtls_md_type_t md, const unsigned char *hash,
                  size_t hash_len, unsigned char *sig, size_t sig_size, size_t *sig_len,
                  int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_sign(pk, md, hash, hash_len, sig, sig_size, sig_len, f_rng, p_rng);
#else
  if (sig_size < MBEDTLS_PK_SIGNATURE_MAX_SIZE) return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
  return mbedtls_pk_sign(pk, md, hash, hash_len, sig, sig_len, f_rng, p_rng);
#endif
}
