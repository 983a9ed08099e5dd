/*
 * keygen.h - making keys and certificate requests with mbedTLS alone, for
 * the provisioning commands (`fedc-coordinator pki`, `fedc-client
 * enroll`): an EC P-256 private key, written once, mode 0600, by the party
 * that will use it; a PKCS#10 certificate signing request carrying only the
 * public half and a name; and the random generator both need.
 *
 * Only libmbedcrypto is used (the CSR is written with its ASN.1 writer), so
 * that the client, which does not link libmbedx509, can enroll.
 */
#ifndef FEDC_BASE_KEYGEN_H
#define FEDC_BASE_KEYGEN_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

/* A CTR-DRBG seeded from the operating system's entropy. */
typedef struct fedc__drbg {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context ctr;
} fedc__drbg;

/* 0 or FEDC_EBACKEND; free always. */
int fedc__drbg_init(fedc__drbg *r, const char *personalization);
void fedc__drbg_free(fedc__drbg *r);

/* A new EC P-256 key pair in pk (initialised here; mbedtls_pk_free it). */
int fedc__keygen_p256(mbedtls_pk_context *pk, fedc__drbg *r);

/*
 * Write len bytes to path with the given mode: the file is created with
 * that mode (never readable by others in between), written, fsync-ed and
 * closed. With exclusive set, a file that exists is not replaced
 * (FEDC_EDUPLICATE). FEDC_EIO naming the path otherwise.
 */
int fedc__file_write_new(const char *path, const void *buf, size_t len, unsigned mode,
                         int exclusive);

/* pk's private key as PEM into path, mode 0600, never over an existing file. */
int fedc__key_write_pem(mbedtls_pk_context *pk, const char *path);

/*
 * A PKCS#10 request (ECDSA with SHA-256) for pk's public key with subject
 * CN=cn, as PEM into path (mode 0644; never over an existing file). cn must
 * pass fedc__pki_name_ok (FEDC_EINVAL otherwise).
 */
int fedc__csr_write_pem(mbedtls_pk_context *pk, const char *cn, fedc__drbg *r,
                        const char *path);

/* 1 when name is 1..64 bytes of [A-Za-z0-9._-], not starting with '.' or '-'. */
int fedc__pki_name_ok(const char *name);

#endif
