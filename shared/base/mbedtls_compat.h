/*
 * mbedtls_compat.h - the one place that knows mbedTLS 2.28 from 3.x.
 *
 * mbedTLS 3.0 renamed the hash functions (mbedtls_sha256_ret became
 * mbedtls_sha256), gave mbedtls_pk_parse_keyfile and mbedtls_pk_check_pair
 * a random generator, and made struct fields private. fedc calls these
 * wrappers instead, so that the rest of the tree builds against Debian 12's
 * 2.28 and a current 3.x alike and carries no version #if of its own.
 */
#ifndef FEDC_BASE_MBEDTLS_COMPAT_H
#define FEDC_BASE_MBEDTLS_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#define FEDC__SHA256_LEN 32
#define FEDC__SHA256_HEX_LEN 64

/* SHA-256 of buf[0..len) into out. 0, or FEDC_EBACKEND (with a message)
 * if mbedTLS fails, which it does not for a software hash. */
int fedc__sha256(const void *buf, size_t len, uint8_t out[FEDC__SHA256_LEN]);
/* The same as 64 lower-case hex digits and a NUL. */
int fedc__sha256_hex(const void *buf, size_t len, char out[FEDC__SHA256_HEX_LEN + 1]);

/* Incremental SHA-256: begin, any number of updates, finish; free always
 * (also after a failure). Each returns 0 or FEDC_EBACKEND. */
typedef struct fedc__sha256_ctx {
  mbedtls_sha256_context c;
} fedc__sha256_ctx;
int fedc__sha256_begin(fedc__sha256_ctx *h);
int fedc__sha256_update(fedc__sha256_ctx *h, const void *buf, size_t len);
int fedc__sha256_finish(fedc__sha256_ctx *h, uint8_t out[FEDC__SHA256_LEN]);
void fedc__sha256_free(fedc__sha256_ctx *h);

/* mbedtls_pk_parse_keyfile and mbedtls_pk_check_pair; 3.x needs the random
 * generator (f_rng, p_rng: mbedtls_ctr_drbg_random and its context), 2.28
 * ignores it. They return mbedTLS's own error codes, for mbedtls_strerror. */
int fedc__pk_parse_keyfile(mbedtls_pk_context *pk, const char *path, const char *password,
                           int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
int fedc__pk_check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv,
                        int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
/* mbedtls_pk_sign: 3.x takes the signature buffer's size, 2.28 does not
 * (it writes at most MBEDTLS_PK_SIGNATURE_MAX_SIZE bytes). */
int fedc__pk_sign(mbedtls_pk_context *pk, mbedtls_md_type_t md, const unsigned char *hash,
                  size_t hash_len, unsigned char *sig, size_t sig_size, size_t *sig_len,
                  int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);

#endif
