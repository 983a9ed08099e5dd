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

#include "base/alloc.h"
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

/* ---- decoding despite wrong shares ------------------------------------------ */

/* Berlekamp-Welch is run on at most this many points: its linear system is
 * m x (m + 1) field elements, solved in O(m^3). */
#define BW_MAX_POINTS 256
/* Sets of t shares tried after it. */
#define MAX_SUBSETS 4096

/*
 * Berlekamp-Welch (Welch and Berlekamp 1986; Gemmell and Sudan 1992) for
 * one chunk: the points (xs[i], ys[i]), i < m, lie on a polynomial P of
 * degree < t except at e or fewer of them. Unknowns: Q of degree < t + e
 * and a monic error locator E of degree e with Q(x_i) = y_i E(x_i) for
 * every i; any solution has Q = P E when at most e points are wrong and
 * m >= t + 2e, so P = Q / E. The system is solved by Gauss-Jordan
 * elimination mod p with free unknowns set to 0. m_buf holds m * (t + 2e
 * + 1) elements. 0 with P's t coefficients in p (p[0] the constant), or
 * -1 (no solution: more than e points are wrong).
 */
static int bw_chunk(const uint64_t *xs, const uint64_t *ys, int32_t m, int32_t t, int32_t e,
                    uint64_t *a, uint64_t *p) {
  const int32_t nq = t + e, cols = t + 2 * e, w = cols + 1;
  for (int32_t i = 0; i < m; i++) {
    uint64_t *row = a + (size_t)i * w, pw = 1;
    for (int32_t j = 0; j < nq; j++) {
      row[j] = pw;
      if (j < e) row[nq + j] = fsub(0, fmul(ys[i], pw));
      if (j == e) row[cols] = fmul(ys[i], pw); /* y_i x_i^e: E's leading term */
      pw = fmul(pw, xs[i]);
    }
  }
  int32_t rank = 0, pivcol[BW_MAX_POINTS + 1];
  for (int32_t col = 0; col < cols && rank < m; col++) {
    int32_t piv = -1;
    for (int32_t i = rank; i < m; i++)
      if (a[(size_t)i * w + col]) {
        piv = i;
        break;
      }
    if (piv < 0) continue;
    if (piv != rank)
      for (int32_t j = 0; j < w; j++) {
        uint64_t tmp = a[(size_t)piv * w + j];
        a[(size_t)piv * w + j] = a[(size_t)rank * w + j];
        a[(size_t)rank * w + j] = tmp;
      }
    uint64_t *r = a + (size_t)rank * w, inv = finv(r[col]);
    for (int32_t j = col; j < w; j++) r[j] = fmul(r[j], inv);
    for (int32_t i = 0; i < m; i++) {
      uint64_t *o = a + (size_t)i * w, f = o[col];
      if (i == rank || f == 0) continue;
      for (int32_t j = col; j < w; j++) o[j] = fsub(o[j], fmul(f, r[j]));
    }
    pivcol[rank++] = col;
  }
  for (int32_t i = rank; i < m; i++)
    if (a[(size_t)i * w + cols]) return -1; /* inconsistent */
  uint64_t sol[2 * BW_MAX_POINTS + 2] = {0}; /* Q's nq then E's e low coefficients */
  for (int32_t r = 0; r < rank; r++) sol[pivcol[r]] = a[(size_t)r * w + cols];
  /* P = Q / E, E = x^e + sum_j sol[nq + j] x^j: long division from the top */
  uint64_t *rem = sol, *el = sol + nq;
  for (int32_t d = nq - 1; d >= e; d--) {
    uint64_t c = rem[d];
    p[d - e] = c;
    rem[d] = 0;
    for (int32_t j = 0; j < e; j++) rem[d - e + j] = fsub(rem[d - e + j], fmul(c, el[j]));
  }
  for (int32_t d = 0; d < e; d++)
    if (rem[d]) return -1; /* E does not divide Q */
  return 0;
}

/* P(x) for coefficients p[0..t). */
static uint64_t eval_poly(const uint64_t *p, int32_t t, uint64_t x) {
  uint64_t v = 0;
  for (int32_t j = t - 1; j >= 0; j--) v = fadd(fmul(v, x), p[j]);
  return v;
}

/* The secret whose polynomials are coefficient sets p[k], if check accepts
 * it: marks the shares off them in wrong. 0, or -1. */
static int accept(const fedc_shamir_share *shares, int32_t n, int32_t t,
                  uint64_t p[FEDC_SHAMIR_WORDS][BW_MAX_POINTS], fedc_shamir_check_fn check,
                  void *ctx, uint8_t secret[FEDC_SECAGG_SEED_BYTES], uint8_t *wrong) {
  uint64_t c[FEDC_SHAMIR_WORDS];
  for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) c[k] = p[k][0];
  int ok = secret_of(c, secret) == 0 && check(ctx, secret);
  fedc__sa_wipe(c, sizeof c);
  if (!ok) return -1;
  int32_t bad = 0;
  for (int32_t i = 0; i < n; i++) {
    wrong[i] = 0;
    for (int k = 0; k < FEDC_SHAMIR_WORDS; k++)
      if (eval_poly(p[k], t, shares[i].x) != shares[i].y[k]) wrong[i] = 1;
    bad += wrong[i];
  }
  /* at least t shares on the polynomials: otherwise P was not pinned down
   * by the shares (cannot happen when check is a binding commitment) */
  return n - bad >= t ? 0 : -1;
}

/* The coefficients of the polynomials through the t shares idx[0..t). */
static void interpolate(const fedc_shamir_share *shares, const int32_t *idx, int32_t t,
                        uint64_t p[FEDC_SHAMIR_WORDS][BW_MAX_POINTS]) {
  /* Lagrange: P = sum_j y_j L_j, L_j = prod_{m != j} (x - x_m) / (x_j - x_m) */
  uint64_t num[BW_MAX_POINTS + 1], tmp[BW_MAX_POINTS + 1];
  for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) memset(p[k], 0, (size_t)t * sizeof p[k][0]);
  for (int32_t j = 0; j < t; j++) {
    uint64_t xj = shares[idx[j]].x, den = 1;
    int32_t deg = 0;
    num[0] = 1;
    for (int32_t m = 0; m < t; m++) {
      if (m == j) continue;
      uint64_t xm = shares[idx[m]].x;
      /* num *= (x - xm) */
      tmp[0] = 0;
      for (int32_t d = 0; d <= deg; d++) tmp[d + 1] = num[d];
      for (int32_t d = 0; d <= deg; d++) tmp[d] = fsub(tmp[d], fmul(xm, num[d]));
      deg++;
      memcpy(num, tmp, (size_t)(deg + 1) * sizeof *num);
      den = fmul(den, fsub(xj, xm));
    }
    uint64_t inv = finv(den);
    for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) {
      uint64_t s = fmul(shares[idx[j]].y[k], inv);
      for (int32_t d = 0; d < t; d++) p[k][d] = fadd(p[k][d], fmul(s, num[d]));
    }
  }
}

int fedc_shamir_decode(const fedc_shamir_share *shares, int32_t n, int32_t t,
                       fedc_shamir_check_fn check, void *ctx,
                       uint8_t secret[FEDC_SECAGG_SEED_BYTES], uint8_t *wrong) {
  if (shares == NULL || secret == NULL || wrong == NULL || check == NULL || t < 1)
    return fedc_error_set(FEDC_EINVAL, "shamir: decode: bad arguments");
  /* every share consistent and the secret the right one: the usual case */
  int rc = fedc_shamir_combine(shares, n, t, secret);
  if (rc == FEDC_EQUORUM || rc == FEDC_EINVAL) return rc;
  if (rc == 0 && check(ctx, secret)) {
    memset(wrong, 0, (size_t)n);
    return 0;
  }
  fedc__sa_wipe(secret, FEDC_SECAGG_SEED_BYTES);
  if (t > BW_MAX_POINTS)
    return fedc_error_set(FEDC_ECHECKSUM,
                          "shamir: shares disagree, and a threshold of %d is above the %d "
                          "points the decoder takes",
                          (int)t, BW_MAX_POINTS);
  uint64_t(*p)[BW_MAX_POINTS] = fedc_calloc(FEDC_SHAMIR_WORDS, sizeof *p);
  int32_t m = n < BW_MAX_POINTS ? n : BW_MAX_POINTS, e = (m - t) / 2;
  uint64_t *a = e > 0 ? fedc_malloc_array((size_t)m * (size_t)(t + 2 * e + 1), sizeof *a)
                      : NULL;
  uint64_t *xs = fedc_malloc_array((size_t)m, sizeof *xs);
  uint64_t *ys = fedc_malloc_array((size_t)m, sizeof *ys);
  int32_t *idx = fedc_malloc_array((size_t)t + 1, sizeof *idx);
  int found = 0;
  if (p == NULL || xs == NULL || ys == NULL || idx == NULL || (e > 0 && a == NULL)) {
    rc = fedc_error_set(FEDC_ENOMEM, "shamir: out of memory to decode %d shares", (int)n);
    goto done;
  }
  /* Berlekamp-Welch on the first m shares: up to (m - t) / 2 wrong ones */
  if (e > 0) {
    int solved = 1;
    for (int32_t i = 0; i < m; i++) xs[i] = shares[i].x;
    for (int k = 0; k < FEDC_SHAMIR_WORDS && solved; k++) {
      for (int32_t i = 0; i < m; i++) ys[i] = shares[i].y[k];
      solved = bw_chunk(xs, ys, m, t, e, a, p[k]) == 0;
    }
    found = solved && accept(shares, n, t, p, check, ctx, secret, wrong) == 0;
  }
  /* beyond what Berlekamp-Welch corrects (or no room for it, n < t + 2):
   * sets of t shares in turn, at most MAX_SUBSETS of them; the check tells
   * the right one, so this finds the secret whenever t shares are right and
   * the sets are few (C(n, t): 9 for n = 9, t = 8; 28 for n = 8, t = 6) */
  for (int32_t i = 0; i < t; i++) idx[i] = i;
  for (long tries = 0; !found && n > t && tries < MAX_SUBSETS; tries++) {
    interpolate(shares, idx, t, p);
    found = accept(shares, n, t, p, check, ctx, secret, wrong) == 0;
    int32_t i = t - 1;
    while (i >= 0 && idx[i] == n - t + i) i--;
    if (i < 0) break; /* every set tried */
    idx[i]++;
    for (int32_t j = i + 1; j < t; j++) idx[j] = idx[j - 1] + 1;
  }
  rc = found ? 0
             : fedc_error_set(FEDC_ECHECKSUM,
                              "shamir: %d shares with threshold %d disagree beyond what "
                              "they can correct",
                              (int)n, (int)t);
  if (!found) fedc__sa_wipe(secret, FEDC_SECAGG_SEED_BYTES);
done:
  if (p) fedc__sa_wipe(p, FEDC_SHAMIR_WORDS * sizeof *p);
  if (a) fedc__sa_wipe(a, (size_t)m * (size_t)(t + 2 * e + 1) * sizeof *a);
  fedc_free(p);
  fedc_free(a);
  fedc_free(xs);
  fedc_free(ys);
  fedc_free(idx);
  return rc;
}
