/*
 * coded_update.c - the compressed update body of coded_update.h: a fixed
 * header, the codec's bytes (wire/compress.c) and a SHA-256 trailer. The
 * decoder trusts nothing it reads: sizes before offsets, the checksum
 * before the payload, every scale and value before the caller sees it.
 */
#include "wire/coded_update.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/update_meta.h"
#include "wire/le.h"

size_t fedc_coded_topk_k(size_t n, double fraction) {
  double k = ceil(fraction * (double)n);
  if (!(k >= 1)) return n ? 1 : 0;
  return k > (double)n ? n : (size_t)k;
}

int fedc_coded_is(const uint8_t *body, size_t len) {
  return len >= 8 && memcmp(body, FEDC_CODED_MAGIC, 8) == 0;
}

static int meta_ok(const fedc_coded_meta *m) {
  if (m->round < 0 || m->num_samples < 1 || m->num_samples > (uint64_t)FEDC_UPDATE_MAX_SAMPLES ||
      !isfinite(m->train_loss))
    return fedc_error_set(FEDC_EFORMAT,
                          "compressed update: round %d, %llu samples, loss %g (needs round >= 0, "
                          "1..2^40 samples, a finite loss)",
                          (int)m->round, (unsigned long long)m->num_samples, m->train_loss);
  if ((unsigned)m->codec > FEDC_CODEC_TOPK_BF16)
    return fedc_error_set(FEDC_EFORMAT, "compressed update: codec %u", (unsigned)m->codec);
  if (FEDC_CODEC_SPARSE(m->codec) ? (m->k < 1 || m->k > m->n) : m->k != 0)
    return fedc_error_set(FEDC_EFORMAT, "compressed update: %s with k = %llu of %llu weights",
                          fedc_codec_name(m->codec), (unsigned long long)m->k,
                          (unsigned long long)m->n);
  return 0;
}

/*
 * The delta is formed in float32 (w - x), as the receiver adds it back
 * (x + d). One allocation for the delta, one for the body; the residual
 * is the caller's and changes only for topk.
 */
int fedc_coded_encode(const fedc_coded_meta *m, const float *w, const float *x, float *residual,
                      fedc_rng *rng, uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (meta_ok(m) != 0) return fedc_error_set(FEDC_EINVAL, "%s", fedc_error_msg());
  if (FEDC_CODEC_SPARSE(m->codec) && residual == NULL)
    return fedc_error_set(FEDC_EINVAL, "compressed update: topk needs its residual");
  size_t n = (size_t)m->n, payload = fedc_codec_size(m->codec, n, (size_t)m->k);
  size_t len = FEDC_CODED_HEAD + payload + 32;
  float *d = fedc_malloc_array(n ? n : 1, sizeof *d);
  uint8_t *b = fedc_malloc(len);
  if (d == NULL || b == NULL) {
    fedc_free(d);
    fedc_free(b);
    return fedc_error_set(FEDC_ENOMEM, "compressed update: out of memory");
  }
  for (size_t i = 0; i < n; i++)
    d[i] = w[i] - x[i];
  memcpy(b, FEDC_CODED_MAGIC, 8);
  fedc_le_put64(b + 8, (uint32_t)m->round | (uint64_t)(uint32_t)m->codec << 32);
  fedc_le_put64(b + 16, m->num_samples);
  uint64_t bits;
  memcpy(&bits, &m->train_loss, 8);
  fedc_le_put64(b + 24, bits);
  fedc_le_put64(b + 32, m->n);
  fedc_le_put64(b + 40, m->k);
  int rc = fedc_codec_encode(m->codec, d, n, (size_t)m->k, residual, rng, b + FEDC_CODED_HEAD);
  fedc_free(d);
  if (rc != 0) {
    fedc_free(b);
    return rc;
  }
  uint8_t sha[32];
  fedc__sha256(b, len - 32, sha);
  memcpy(b + len - 32, sha, 32);
  *out = b;
  *out_len = len;
  return 0;
}

/* int8's per-block scales: finite and >= 0 (a NaN or negative scale is no
 * encoder's output), and no level -128 (the encoder clamps to +-127). */
static int check_int8(const uint8_t *p, size_t n) {
  for (size_t b = 0; b < n; b += FEDC_CODEC_BLOCK) {
    size_t m = n - b < FEDC_CODEC_BLOCK ? n - b : FEDC_CODEC_BLOCK;
    float s;
    memcpy(&s, p, 4); /* little-endian hosts only, as the rest of the wire */
    if (!isfinite(s * 127.0f) || s < 0)
      return fedc_error_set(FEDC_ENONFINITE, "int8: block %zu has scale %g", b / FEDC_CODEC_BLOCK,
                            (double)s);
    for (size_t i = 0; i < m; i++)
      if (p[4 + i] == 0x80)
        return fedc_error_set(FEDC_EFORMAT, "int8: level -128 at weight %zu", b + i);
    p += 4 + m;
  }
  return 0;
}

int fedc_coded_decode(const uint8_t *body, size_t len, fedc_codec want, const float *x, size_t n,
                      fedc_coded_meta *m, float *w) {
  memset(m, 0, sizeof *m);
  if (len < FEDC_CODED_HEAD + 32 || !fedc_coded_is(body, len))
    return fedc_error_set(FEDC_EFORMAT, "compressed update: %zu bytes, not a compressed update",
                          len);
  uint64_t rc64 = fedc_le_get64(body + 8);
  m->round = (int32_t)(uint32_t)rc64;
  m->codec = (fedc_codec)(uint32_t)(rc64 >> 32);
  m->num_samples = fedc_le_get64(body + 16);
  uint64_t bits = fedc_le_get64(body + 24);
  memcpy(&m->train_loss, &bits, 8);
  m->n = fedc_le_get64(body + 32);
  m->k = fedc_le_get64(body + 40);
  int rc = meta_ok(m);
  if (rc != 0) return rc;
  if (m->codec != want)
    return fedc_error_set(FEDC_EUNSUPPORTED, "compressed update: codec %s, the job's is %s",
                          fedc_codec_name(m->codec), fedc_codec_name(want));
  if (m->n != n)
    return fedc_error_set(FEDC_ESHAPE, "compressed update: %llu weights, the model has %zu",
                          (unsigned long long)m->n, n);
  size_t payload = fedc_codec_size(m->codec, n, (size_t)m->k);
  if (m->k > n || len != FEDC_CODED_HEAD + payload + 32)
    return fedc_error_set(FEDC_EFORMAT, "compressed update: %zu bytes, %s of %zu weights needs %zu",
                          len, fedc_codec_name(m->codec), n, FEDC_CODED_HEAD + payload + 32);
  uint8_t sha[32];
  fedc__sha256(body, len - 32, sha);
  if (memcmp(sha, body + len - 32, 32) != 0)
    return fedc_error_set(FEDC_ECHECKSUM, "compressed update: SHA-256 does not match the body");
  const uint8_t *p = body + FEDC_CODED_HEAD;
  if (m->codec == FEDC_CODEC_INT8 && (rc = check_int8(p, n)) != 0) return rc;
  if ((rc = fedc_codec_decode(m->codec, p, payload, w, n)) != 0) return rc;
  int ok = 1;
#pragma omp simd reduction(& : ok)
  for (size_t i = 0; i < n; i++) {
    ok &= fabsf(w[i]) <= 3.4028234663852886e38f; /* false for NaN and inf */
    w[i] = x[i] + w[i];
  }
  if (!ok)
    for (size_t i = 0; i < n; i++)
      if (!isfinite(w[i] - x[i]) || !isfinite(w[i]))
        return fedc_error_set(FEDC_ENONFINITE, "compressed update: delta %zu is not finite", i);
  return 0;
}
