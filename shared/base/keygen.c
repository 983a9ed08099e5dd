/*
 * keygen.c - EC P-256 keys, private key files and PKCS#10 requests with
 * libmbedcrypto alone (see keygen.h). The request is assembled with the
 * ASN.1 writer, which writes backwards from the end of a buffer: each
 * structure is written content first, then its length and tag.
 */
#include "base/keygen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"

static int tls_error(int rc, const char *what) {
  return fedc_error_set(FEDC_EBACKEND, "%s: mbedTLS error -0x%04x", what, (unsigned)-rc);
}

int fedc__drbg_init(fedc__drbg *r, const char *personalization) {
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->ctr);
  const char *p = personalization ? personalization : "fedc";
  int rc = mbedtls_ctr_drbg_seed(&r->ctr, mbedtls_entropy_func, &r->entropy,
                                 (const unsigned char *)p, strlen(p));
  return rc ? tls_error(rc, "seeding the random generator") : 0;
}

void fedc__drbg_free(fedc__drbg *r) {
  mbedtls_ctr_drbg_free(&r->ctr);
  mbedtls_entropy_free(&r->entropy);
}

int fedc__keygen_p256(mbedtls_pk_context *pk, fedc__drbg *r) {
  mbedtls_pk_init(pk);
  int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc == 0)
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
                             mbedtls_ctr_drbg_random, &r->ctr);
  return rc ? tls_error(rc, "making an EC P-256 key") : 0;
}

int fedc__file_write_new(const char *path, const void *buf, size_t len, unsigned mode,
                         int exclusive) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  int fd = open(path, flags, (mode_t)mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return fedc_error_set(FEDC_EDUPLICATE, "%s exists: not replaced (move it away first)",
                            path);
    return fedc_error_set(FEDC_EIO, "%s: cannot create: %s", path, strerror(errno));
  }
  /* a file that existed keeps its mode under O_TRUNC: set ours */
  int ok = fchmod(fd, (mode_t)mode) == 0;
  const char *p = buf;
  size_t left = len;
  while (ok && left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) {
      p += n;
      left -= (size_t)n;
    }
  }
  if (ok) ok = fsync(fd) == 0;
  int err = errno;
  if (close(fd) != 0) ok = 0;
  if (!ok) {
    unlink(path);
    return fedc_error_set(FEDC_EIO, "%s: cannot write: %s", path, strerror(err));
  }
  return 0;
}

int fedc__key_write_pem(mbedtls_pk_context *pk, const char *path) {
  unsigned char buf[1024];
  int rc = mbedtls_pk_write_key_pem(pk, buf, sizeof buf);
  if (rc != 0) return tls_error(rc, "writing a private key");
  rc = fedc__file_write_new(path, buf, strlen((const char *)buf), 0600, 1);
  mbedtls_platform_zeroize(buf, sizeof buf);
  return rc;
}

int fedc__pki_name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n < 1 || n > 64 || name[0] == '.' || name[0] == '-') return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    if (!ok) return 0;
  }
  return 1;
}

/* ASN.1 writer steps: each adds to *len or returns its (negative) error. */
#define CHK(call)                                                                                \
  do {                                                                                           \
    int r_ = (call);                                                                             \
    if (r_ < 0) return r_;                                                                       \
    len += (size_t)r_;                                                                           \
  } while (0)

/* tag and length in front of the len bytes just written before *p */
static int wrap(unsigned char **p, unsigned char *start, size_t inner, unsigned char tag) {
  size_t len = 0;
  CHK(mbedtls_asn1_write_len(p, start, inner));
  CHK(mbedtls_asn1_write_tag(p, start, tag));
  return (int)len;
}

/*
 * CertificationRequestInfo ::= SEQUENCE { version INTEGER 0, subject Name,
 * subjectPKInfo, attributes [0] IMPLICIT SET OF Attribute (empty) },
 * written backwards ending at *p.
 */
static int write_info(unsigned char **p, unsigned char *start, mbedtls_pk_context *pk,
                      const char *cn) {
  size_t len = 0;
  CHK(wrap(p, start, 0, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0));
  /* mbedtls_pk_write_pubkey_der writes at the end of [start, *p) */
  int k = mbedtls_pk_write_pubkey_der(pk, start, (size_t)(*p - start));
  if (k < 0) return k;
  *p -= k;
  len += (size_t)k;
  /* Name ::= SEQUENCE { SET { SEQUENCE { OID CN, UTF8String cn } } } */
  size_t name_from = len;
  CHK(mbedtls_asn1_write_raw_buffer(p, start, (const unsigned char *)cn, strlen(cn)));
  CHK(wrap(p, start, strlen(cn), MBEDTLS_ASN1_UTF8_STRING));
  CHK(mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN)));
  CHK(wrap(p, start, len - name_from, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  CHK(wrap(p, start, len - name_from, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET));
  CHK(wrap(p, start, len - name_from, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  CHK(mbedtls_asn1_write_int(p, start, 0));
  CHK(wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  return (int)len;
}

/* AlgorithmIdentifier ecdsa-with-SHA256 (no parameters, RFC 5758). */
static int write_alg(unsigned char **p, unsigned char *start) {
  size_t len = 0;
  CHK(mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_ECDSA_SHA256,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256)));
  CHK(wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  return (int)len;
}

/* CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature } */
static int assemble(unsigned char **p, unsigned char *start, const unsigned char *info,
                    size_t info_len, const unsigned char *sig, size_t sig_len) {
  size_t len = 0;
  CHK(mbedtls_asn1_write_bitstring(p, start, sig, sig_len * 8));
  CHK(write_alg(p, start));
  CHK(mbedtls_asn1_write_raw_buffer(p, start, info, info_len));
  CHK(wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  return (int)len;
}

#undef CHK

/*
 * Build the DER request at the end of buf: the info, its ECDSA signature
 * over SHA-256 of the info's DER, the whole wrapped in a SEQUENCE. *der
 * points at its first byte.
 */
static int csr_der(mbedtls_pk_context *pk, const char *cn, fedc__drbg *r, unsigned char *buf,
                   size_t size, unsigned char **der, size_t *der_len) {
  unsigned char *p = buf + size;
  unsigned char *info_end = p;
  int n = write_info(&p, buf, pk, cn);
  if (n < 0) return tls_error(n, "writing a certificate request");
  /* the info is [p, info_end); sign it, then move it to make room */
  uint8_t hash[FEDC__SHA256_LEN];
  int rc = fedc__sha256(p, (size_t)(info_end - p), hash);
  if (rc != 0) return rc;
  unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t sig_len = 0;
  rc = fedc__pk_sign(pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &sig_len,
                     mbedtls_ctr_drbg_random, &r->ctr);
  if (rc != 0) return tls_error(rc, "signing a certificate request");
  size_t info_len = (size_t)(info_end - p);
  unsigned char *info = fedc_malloc(info_len);
  if (info == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  memcpy(info, p, info_len);
  p = buf + size;
  int k = assemble(&p, buf, info, info_len, sig, sig_len);
  fedc_free(info);
  if (k < 0) return tls_error(k, "writing a certificate request");
  *der = p;
  *der_len = (size_t)k;
  return 0;
}

int fedc__csr_write_pem(mbedtls_pk_context *pk, const char *cn, fedc__drbg *r,
                        const char *path) {
  if (!fedc__pki_name_ok(cn))
    return fedc_error_set(FEDC_EINVAL,
                          "name '%s': want 1..64 of A-Z a-z 0-9 . _ - (not starting with . or -)",
                          cn ? cn : "");
  unsigned char buf[1024];
  unsigned char *der = NULL;
  size_t der_len = 0;
  int rc = csr_der(pk, cn, r, buf, sizeof buf, &der, &der_len);
  if (rc != 0) return rc;
  /* PEM: base64 in lines of 64 between the armour lines */
  unsigned char b64[2048];
  size_t b64_len = 0;
  rc = mbedtls_base64_encode(b64, sizeof b64, &b64_len, der, der_len);
  if (rc != 0) return tls_error(rc, "encoding a certificate request");
  char pem[2400];
  size_t o = (size_t)snprintf(pem, sizeof pem, "-----BEGIN CERTIFICATE REQUEST-----\n");
  for (size_t i = 0; i < b64_len; i += 64) {
    size_t n = b64_len - i < 64 ? b64_len - i : 64;
    memcpy(pem + o, b64 + i, n);
    o += n;
    pem[o++] = '\n';
  }
  o += (size_t)snprintf(pem + o, sizeof pem - o, "-----END CERTIFICATE REQUEST-----\n");
  return fedc__file_write_new(path, pem, o, 0644, 1);
}
