/*
 * secagg_crypto.c - the cryptography of secure aggregation, on mbedTLS
 * 2.28 (and 3.x): a DRBG per protocol object, X25519 key pairs and key
 * agreement (RFC 7748), HKDF-SHA256 key derivation (RFC 5869), SHA-256
 * commitments, ChaCha20-Poly1305 for the shares two clients exchange
 * through the server (RFC 8439), and the AES-128 counter-mode PRG that
 * expands a 32-byte seed into a mask. mbedTLS's error codes are translated
 * here, at the edge, into FEDC_E* codes with mbedTLS's number in the
 * message; nothing else in fedc's secure aggregation calls mbedTLS.
 */
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecp.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "privacy/secagg_internal.h"

#define SALT "fedc-secagg-v1"

void fedc__sa_wipe(void *p, size_t n) {
  if (p && n) mbedtls_platform_zeroize(p, n);
}

static int tls_fail(const char *what, int mrc) {
  return fedc_error_set(FEDC_EIO, "secagg: mbedTLS %s failed (-0x%04x)", what, (unsigned)-mrc);
}

/* ---- random numbers ------------------------------------------------------ */

int fedc__sa_rng_init(sa_rng *r, const char *personal) {
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->drbg);
  int mrc = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                                  (const unsigned char *)personal, strlen(personal));
  if (mrc != 0) {
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->entropy);
    return tls_fail("ctr_drbg_seed", mrc);
  }
  r->ready = 1;
  return 0;
}

void fedc__sa_rng_free(sa_rng *r) {
  if (!r->ready) return;
  mbedtls_ctr_drbg_free(&r->drbg);
  mbedtls_entropy_free(&r->entropy);
  r->ready = 0;
}

int fedc__sa_random(sa_rng *r, uint8_t *buf, size_t len) {
  /* ctr_drbg hands out at most 1024 bytes a call */
  while (len > 0) {
    size_t k = len > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : len;
    int mrc = mbedtls_ctr_drbg_random(&r->drbg, buf, k);
    if (mrc != 0) return tls_fail("ctr_drbg_random", mrc);
    buf += k;
    len -= k;
  }
  return 0;
}

/* ---- X25519 ---------------------------------------------------------------- */

/* The curve, the scalar and a point, set up and torn down together. */
typedef struct x25519 {
  mbedtls_ecp_group grp;
  mbedtls_mpi d, z;
  mbedtls_ecp_point q;
} x25519;

static int x_init(x25519 *x) {
  mbedtls_ecp_group_init(&x->grp);
  mbedtls_mpi_init(&x->d);
  mbedtls_mpi_init(&x->z);
  mbedtls_ecp_point_init(&x->q);
  int mrc = mbedtls_ecp_group_load(&x->grp, MBEDTLS_ECP_DP_CURVE25519);
  return mrc ? tls_fail("ecp_group_load(Curve25519)", mrc) : 0;
}

static void x_free(x25519 *x) {
  mbedtls_ecp_group_free(&x->grp);
  mbedtls_mpi_free(&x->d);
  mbedtls_mpi_free(&x->z);
  mbedtls_ecp_point_free(&x->q);
}

/* Load a public key (the u-coordinate) into x->q; the top bit must be 0. */
static int load_public(x25519 *x, const uint8_t pk[SA_KEY]) {
  if (pk[SA_KEY - 1] & 0x80)
    return fedc_error_set(FEDC_EFORMAT, "secagg: public key has its top bit set");
  /* a Montgomery point is its u-coordinate, little-endian (RFC 7748) */
  int mrc = mbedtls_ecp_point_read_binary(&x->grp, &x->q, pk, SA_KEY);
  if (mrc != 0) return tls_fail("ecp_point_read_binary", mrc);
  if (mbedtls_ecp_check_pubkey(&x->grp, &x->q) != 0)
    return fedc_error_set(FEDC_EFORMAT, "secagg: not a valid X25519 public key");
  return 0;
}

static int load_private(x25519 *x, const uint8_t sk[SA_KEY]) {
  int mrc = mbedtls_mpi_read_binary_le(&x->d, sk, SA_KEY);
  if (mrc != 0) return tls_fail("mpi_read", mrc);
  if (mbedtls_ecp_check_privkey(&x->grp, &x->d) != 0)
    return fedc_error_set(FEDC_EFORMAT, "secagg: not a valid X25519 private key");
  return 0;
}

int fedc__sa_public(sa_rng *r, const uint8_t sk[SA_KEY], uint8_t pk[SA_KEY]) {
  x25519 x;
  int rc = x_init(&x);
  if (rc == 0) rc = load_private(&x, sk);
  if (rc == 0) {
    int mrc = mbedtls_ecp_mul(&x.grp, &x.q, &x.d, &x.grp.G, mbedtls_ctr_drbg_random, &r->drbg);
    size_t olen = 0;
    if (mrc == 0)
      mrc = mbedtls_ecp_point_write_binary(&x.grp, &x.q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pk,
                                           SA_KEY);
    if (mrc == 0 && olen != SA_KEY) mrc = MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
    if (mrc != 0) rc = tls_fail("ecp_mul", mrc);
  }
  x_free(&x);
  return rc;
}

int fedc__sa_keypair(sa_rng *r, uint8_t sk[SA_KEY], uint8_t pk[SA_KEY]) {
  int rc = fedc__sa_random(r, sk, SA_KEY);
  if (rc != 0) return rc;
  /* RFC 7748 sec. 5: clear the low three bits, clear bit 255, set 254 */
  sk[0] &= 248;
  sk[SA_KEY - 1] &= 127;
  sk[SA_KEY - 1] |= 64;
  return fedc__sa_public(r, sk, pk);
}

int fedc__sa_check_public(const uint8_t pk[SA_KEY]) {
  x25519 x;
  int rc = x_init(&x);
  if (rc == 0) rc = load_public(&x, pk);
  x_free(&x);
  return rc;
}

int fedc__sa_agree(sa_rng *r, const uint8_t sk[SA_KEY], const uint8_t peer_pk[SA_KEY],
                   uint8_t shared[SA_KEY]) {
  x25519 x;
  int rc = x_init(&x);
  if (rc == 0) rc = load_private(&x, sk);
  if (rc == 0) rc = load_public(&x, peer_pk);
  if (rc == 0) {
    int mrc = mbedtls_ecdh_compute_shared(&x.grp, &x.z, &x.q, &x.d, mbedtls_ctr_drbg_random,
                                          &r->drbg);
    if (mrc == 0) mrc = mbedtls_mpi_write_binary_le(&x.z, shared, SA_KEY);
    if (mrc != 0) rc = tls_fail("ecdh_compute_shared", mrc);
  }
  if (rc == 0) {
    uint8_t any = 0;
    for (int i = 0; i < SA_KEY; i++) any |= shared[i];
    if (!any) rc = fedc_error_set(FEDC_EFORMAT, "secagg: X25519 gave an all-zero secret");
  }
  x_free(&x);
  return rc;
}

/* ---- derivation and commitments ------------------------------------------ */

int fedc__sa_derive(const uint8_t shared[SA_KEY], const char *purpose, int32_t round,
                    uint32_t a, uint32_t b, uint8_t out[SA_KEY]) {
  uint8_t info[64];
  size_t pl = strlen(purpose);
  if (pl > sizeof info - 12) return fedc_error_set(FEDC_EINVAL, "secagg: purpose too long");
  memcpy(info, purpose, pl);
  fedc__sa_store32(info + pl, (uint32_t)round);
  fedc__sa_store32(info + pl + 4, a < b ? a : b);
  fedc__sa_store32(info + pl + 8, a < b ? b : a);
  int mrc = mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                         (const unsigned char *)SALT, sizeof SALT - 1, shared, SA_KEY, info,
                         pl + 12, out, SA_KEY);
  return mrc ? tls_fail("hkdf", mrc) : 0;
}

void fedc__sa_commit(const uint8_t b[SA_KEY], int32_t round, uint32_t id, uint8_t out[SA_KEY]) {
  static const char tag[] = SALT " commit";
  uint8_t ri[8];
  fedc__sa_store32(ri, (uint32_t)round);
  fedc__sa_store32(ri + 4, id);
  fedc__sha256_ctx h;
  fedc__sha256_begin(&h);
  fedc__sha256_update(&h, tag, sizeof tag - 1);
  fedc__sha256_update(&h, ri, sizeof ri);
  fedc__sha256_update(&h, b, SA_KEY);
  fedc__sha256_finish(&h, out);
  fedc__sha256_free(&h);
}

/* ---- share encryption ------------------------------------------------------ */

static void nonce_of(uint32_t from, uint32_t to, int32_t round, uint8_t n[12]) {
  fedc__sa_store32(n, from);
  fedc__sa_store32(n + 4, to);
  fedc__sa_store32(n + 8, (uint32_t)round);
}

int fedc__sa_seal(const uint8_t key[SA_KEY], uint32_t from, uint32_t to, int32_t round,
                  const uint8_t pt[SA_PT_BYTES], uint8_t ct[FEDC_SECAGG_CT_BYTES]) {
  uint8_t nonce[12];
  nonce_of(from, to, round, nonce);
  mbedtls_chachapoly_context a;
  mbedtls_chachapoly_init(&a);
  int mrc = mbedtls_chachapoly_setkey(&a, key);
  if (mrc == 0)
    mrc = mbedtls_chachapoly_encrypt_and_tag(&a, SA_PT_BYTES, nonce, nonce, sizeof nonce, pt, ct,
                                             ct + SA_PT_BYTES);
  mbedtls_chachapoly_free(&a);
  return mrc ? tls_fail("chachapoly_encrypt", mrc) : 0;
}

int fedc__sa_open(const uint8_t key[SA_KEY], uint32_t from, uint32_t to, int32_t round,
                  const uint8_t ct[FEDC_SECAGG_CT_BYTES], uint8_t pt[SA_PT_BYTES]) {
  uint8_t nonce[12];
  nonce_of(from, to, round, nonce);
  mbedtls_chachapoly_context a;
  mbedtls_chachapoly_init(&a);
  int mrc = mbedtls_chachapoly_setkey(&a, key);
  if (mrc == 0)
    mrc = mbedtls_chachapoly_auth_decrypt(&a, SA_PT_BYTES, nonce, nonce, sizeof nonce,
                                          ct + SA_PT_BYTES, ct, pt);
  mbedtls_chachapoly_free(&a);
  if (mrc == MBEDTLS_ERR_CHACHAPOLY_AUTH_FAILED) {
    fedc__sa_wipe(pt, SA_PT_BYTES);
    return fedc_error_set(FEDC_ECHECKSUM,
                          "secagg: the shares from client %u to client %u fail authentication",
                          (unsigned)from, (unsigned)to);
  }
  return mrc ? tls_fail("chachapoly_decrypt", mrc) : 0;
}

/* ---- the PRG ----------------------------------------------------------------- */

/*
 * AES-128 on counter blocks (seed[16..24) | j), encrypted one block at a
 * time with mbedtls_aes_crypt_ecb: with AES-NI that runs about twice as
 * fast as mbedtls_aes_crypt_ctr's byte loop. Four words per block.
 */
void fedc_secagg_prg_add(const uint8_t seed[FEDC_SECAGG_SEED_BYTES], int sign, uint32_t *y,
                         size_t n) {
  mbedtls_aes_context aes;
  mbedtls_aes_init(&aes);
  mbedtls_aes_setkey_enc(&aes, seed, 128);
  uint8_t in[16], out[16];
  memcpy(in, seed + 16, 8);
  size_t i = 0;
  for (uint64_t j = 0; i < n; j++) {
    fedc__sa_store64(in + 8, j);
    mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, in, out);
    size_t k = n - i < 4 ? n - i : 4;
    if (sign > 0)
      for (size_t w = 0; w < k; w++) y[i + w] += fedc__sa_load32(out + 4 * w);
    else
      for (size_t w = 0; w < k; w++) y[i + w] -= fedc__sa_load32(out + 4 * w);
    i += k;
  }
  fedc__sa_wipe(out, sizeof out);
  mbedtls_aes_free(&aes);
}
