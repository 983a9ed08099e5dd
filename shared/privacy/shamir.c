/*
 * shamir.c - Shamir secret sharing (Shamir, "How to Share a Secret", CACM
 * 1979) of 32-byte secrets over the prime field GF(p), p = 2^61 - 1.
 *
 * A secret is cut into five little-endian chunks of 7 bytes (the last of
 * 4), each below 2^56 < p. For each chunk the dealer draws a random
 * polynomial of degree t - 1 whose constant term is the chunk; a share is
 * the five polynomials' values at the share's point x. Any t shares fix
 * the polynomials (Lagrange interpolation at 0 gives the chunks); t - 1
 * shares are consistent with every possible secret. A Mersenne prime keeps
 * the field arithmetic to a 128-bit product and two folds.
 *
 * Secure aggregation uses it for each client's self-mask seed b_u and its
 * mask key (secagg.h); the points are the holders' ids + 1.
 */
#include <string.h>

#include "base/error.h"
#include "privacy/secagg.h"
#include "privacy/secagg_internal.h"

#define P FEDC_SHAMIR_PRIME
#define CHUNK 7

static uint64_t fadd(uint64_t a, uint64_t b) {
  uint64_t s = a + b; /* < 2^62: no overflow */
  return s >= P ? s - P : s;
}

static uint64_t fsub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + P - b; }

/* a * b mod 2^61 - 1: 2^61 = 1 (mod p), so the high bits fold onto the low. */
static uint64_t fmul(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  uint64_t s = (uint64_t)(r & P) + (uint64_t)(r >> 61);
  s = (s & P) + (s >> 61);
  return s >= P ? s - P : s;
}

/* a^(p-2) = a^-1 (Fermat); a != 0. */
static uint64_t finv(uint64_t a) {
  uint64_t e = P - 2, r = 1;
  while (e) {
    if (e & 1) r = fmul(r, a);
    a = fmul(a, a);
    e >>= 1;
  }
  return r;
}

static void chunks_of(const uint8_t secret[FEDC_SECAGG_SEED_BYTES], uint64_t c[FEDC_SHAMIR_WORDS]) {
  for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) {
    c[k] = 0;
    for (int b = CHUNK - 1; b >= 0; b--) {
      int at = k * CHUNK + b;
      if (at < FEDC_SECAGG_SEED_BYTES) c[k] = (c[k] << 8) | secret[at];
    }
  }
}

/* 0, or -1 if a chunk is too large to have come from a secret. */
static int secret_of(const uint64_t c[FEDC_SHAMIR_WORDS], uint8_t secret[FEDC_SECAGG_SEED_BYTES]) {
  for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) {
    int bytes = FEDC_SECAGG_SEED_BYTES - k * CHUNK < CHUNK ? FEDC_SECAGG_SEED_BYTES - k * CHUNK
                                                           : CHUNK;
    if (c[k] >> (8 * bytes)) return -1;
  }
  for (int k = 0; k < FEDC_SHAMIR_WORDS; k++)
    for (int b = 0; b < CHUNK; b++) {
      int at = k * CHUNK + b;
      if (at < FEDC_SECAGG_SEED_BYTES) secret[at] = (uint8_t)(c[k] >> (8 * b));
    }
  return 0;
}

/* A uniform field element from the caller's random bytes (rejection). */
static int random_element(fedc_secagg_rand_fn rand, void *ctx, uint64_t *out) {
  for (;;) {
    uint8_t b[8];
    if (rand(ctx, b, sizeof b) != 0)
      return fedc_error_set(FEDC_EIO, "shamir: the random generator failed");
    uint64_t v = fedc__sa_load64(b) & P;
    fedc__sa_wipe(b, sizeof b);
    if (v != P) {
      *out = v;
      return 0;
    }
  }
}

int fedc_shamir_split(const uint8_t secret[FEDC_SECAGG_SEED_BYTES], int32_t t,
                      const uint64_t *xs, int32_t n, fedc_secagg_rand_fn rand,
                      void *rand_ctx, fedc_shamir_share *out) {
  if (secret == NULL || xs == NULL || out == NULL || rand == NULL || n < 1 || t < 1 || t > n)
    return fedc_error_set(FEDC_EINVAL, "shamir: threshold %d of %d shares", (int)t, (int)n);
  for (int32_t i = 0; i < n; i++) {
    if (xs[i] == 0 || xs[i] >= P)
      return fedc_error_set(FEDC_EINVAL, "shamir: share point %llu is 0 or not below 2^61-1",
                            (unsigned long long)xs[i]);
    for (int32_t j = 0; j < i; j++)
      if (xs[j] == xs[i])
        return fedc_error_set(FEDC_EINVAL, "shamir: share point %llu repeated",
                              (unsigned long long)xs[i]);
  }
  uint64_t c[FEDC_SHAMIR_WORDS];
  chunks_of(secret, c);
  for (int32_t i = 0; i < n; i++) {
    out[i].x = xs[i];
    memset(out[i].y, 0, sizeof out[i].y);
  }
  int rc = 0;
  for (int k = 0; k < FEDC_SHAMIR_WORDS && rc == 0; k++) {
    /* Horner from the top coefficient down, one coefficient at a time, so
     * that no array of coefficients needs wiping: y_i = y_i * x_i + a_j */
    for (int32_t j = t - 1; j >= 1 && rc == 0; j--) {
      uint64_t a = 0;
      rc = random_element(rand, rand_ctx, &a);
      for (int32_t i = 0; rc == 0 && i < n; i++)
        out[i].y[k] = fadd(fmul(out[i].y[k], xs[i]), a);
      a = 0;
    }
    for (int32_t i = 0; rc == 0 && i < n; i++) out[i].y[k] = fadd(fmul(out[i].y[k], xs[i]), c[k]);
  }
  fedc__sa_wipe(c, sizeof c);
  if (rc != 0) fedc__sa_wipe(out, (size_t)n * sizeof *out);
  return rc;
}

/* Lagrange basis of share j among the first t at the point x. */
static uint64_t basis(const fedc_shamir_share *s, int32_t t, int32_t j, uint64_t x) {
  uint64_t num = 1, den = 1;
  for (int32_t m = 0; m < t; m++) {
    if (m == j) continue;
    num = fmul(num, fsub(x, s[m].x));
    den = fmul(den, fsub(s[j].x, s[m].x));
  }
  return fmul(num, finv(den));
}

int fedc_shamir_combine(const fedc_shamir_share *shares, int32_t n, int32_t t,
                        uint8_t secret[FEDC_SECAGG_SEED_BYTES]) {
  if (shares == NULL || secret == NULL || t < 1)
    return fedc_error_set(FEDC_EINVAL, "shamir: combine: bad arguments");
  if (n < t)
    return fedc_error_set(FEDC_EQUORUM, "shamir: %d shares, the threshold is %d", (int)n, (int)t);
  for (int32_t i = 0; i < n; i++) {
    if (shares[i].x == 0 || shares[i].x >= P)
      return fedc_error_set(FEDC_EINVAL, "shamir: share point %llu is 0 or not below 2^61-1",
                            (unsigned long long)shares[i].x);
    for (int k = 0; k < FEDC_SHAMIR_WORDS; k++)
      if (shares[i].y[k] >= P)
        return fedc_error_set(FEDC_EINVAL, "shamir: share value not below 2^61-1");
    for (int32_t j = 0; j < i; j++)
      if (shares[j].x == shares[i].x)
        return fedc_error_set(FEDC_EINVAL, "shamir: share point %llu repeated",
                              (unsigned long long)shares[i].x);
  }
  uint64_t c[FEDC_SHAMIR_WORDS] = {0};
  for (int32_t j = 0; j < t; j++) {
    uint64_t l = basis(shares, t, j, 0);
    for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) c[k] = fadd(c[k], fmul(shares[j].y[k], l));
  }
  int rc = 0;
  /* shares beyond the first t must lie on the same polynomials */
  for (int32_t e = t; e < n && rc == 0; e++) {
    uint64_t v[FEDC_SHAMIR_WORDS] = {0};
    for (int32_t j = 0; j < t; j++) {
      uint64_t l = basis(shares, t, j, shares[e].x);
      for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) v[k] = fadd(v[k], fmul(shares[j].y[k], l));
    }
    if (memcmp(v, shares[e].y, sizeof v) != 0)
      rc = fedc_error_set(FEDC_ECHECKSUM, "shamir: share at point %llu disagrees with the others",
                          (unsigned long long)shares[e].x);
    fedc__sa_wipe(v, sizeof v);
  }
  if (rc == 0 && secret_of(c, secret) != 0)
    rc = fedc_error_set(FEDC_ECHECKSUM,
                        "shamir: the shares do not give a secret (too few, or wrong)");
  fedc__sa_wipe(c, sizeof c);
  return rc;
}
