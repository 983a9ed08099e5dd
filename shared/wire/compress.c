/*
 * compress.c - the update codecs of compress.h: half and bfloat16 with
 * round to nearest even, int8 blocks with stochastic rounding, top-k with
 * error feedback. Encodings are little-endian; decoding checks sizes and
 * indices, never trusts them.
 */
#include "wire/compress.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/le.h"

static const char *const names[] = {"none", "f16", "bf16", "int8", "topk", "topk_bf16"};
#define N_CODECS 6

int fedc_codec_parse(const char *name) {
  for (int i = 0; i < N_CODECS; i++)
    if (name && strcmp(name, names[i]) == 0) return i;
  return -1;
}

const char *fedc_codec_name(fedc_codec c) {
  return (unsigned)c < N_CODECS ? names[c] : "?";
}

size_t fedc_codec_size(fedc_codec c, size_t n, size_t k) {
  switch (c) {
  case FEDC_CODEC_F16:
  case FEDC_CODEC_BF16:
    return 2 * n;
  case FEDC_CODEC_INT8:
    return n + 4 * ((n + FEDC_CODEC_BLOCK - 1) / FEDC_CODEC_BLOCK);
  case FEDC_CODEC_TOPK:
    return 8 * k;
  case FEDC_CODEC_TOPK_BF16:
    return (n + 7) / 8 + 2 * k;
  default:
    return 4 * n;
  }
}

int fedc_codec_check(fedc_codec c, int secure_aggregation, double topk_fraction) {
  if (c != FEDC_CODEC_NONE && secure_aggregation)
    return fedc_error_set(FEDC_ECONFIG,
                          "compression = %s with [privacy] secure_aggregation: "
                          "masks act on the full fixed-point vector, so a "
                          "compressed update saves nothing; choose one",
                          fedc_codec_name(c));
  if (FEDC_CODEC_SPARSE(c) && !(topk_fraction > 0 && topk_fraction <= 1))
    return fedc_error_set(FEDC_ECONFIG, "compression = topk needs a fraction in (0, 1], not %g",
                          topk_fraction);
  return 0;
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Round to nearest even on the 16 bits dropped; NaN stays NaN. */
static uint16_t to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t h) {
  return float_of((uint32_t)h << 16);
}

/* IEEE binary16 with round to nearest even, subnormals and overflow to inf. */
static uint16_t to_f16(float f) {
  uint32_t u = bits_of(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;
  if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
  if (a < 0x38800000u) {                      /* below 2^-14: subnormal */
    float v = float_of(a) * 16777216.0f;      /* exact: times 2^24 */
    return sign | (uint16_t)nearbyintf(v);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1);
  return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

static float from_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    float v = (float)m / 16777216.0f;
    return sign ? -v : v;
  }
  if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
  return float_of(sign | ((e + 112) << 23) | (m << 13));
}

/* int8: per block, the scale then the levels; q = floor(d / s + u), u ~ U[0, 1). */
static void encode_int8(const float *d, size_t n, fedc_rng *rng, uint8_t *out) {
  for (size_t b = 0; b < n; b += FEDC_CODEC_BLOCK) {
    size_t m = n - b < FEDC_CODEC_BLOCK ? n - b : FEDC_CODEC_BLOCK;
    float mx = 0;
    for (size_t i = 0; i < m; i++)
      mx = fmaxf(mx, fabsf(d[b + i]));
    float s = mx / 127.0f;
    fedc_le_put32(out, bits_of(s));
    out += 4;
    for (size_t i = 0; i < m; i++) {
      double q = s > 0 ? floor((double)d[b + i] / s + fedc_rng_uniform(rng)) : 0;
      if (q > 127) q = 127;
      if (q < -127) q = -127;
      *out++ = (uint8_t)(int8_t)q;
    }
  }
}

/* topk: the k largest |d + e| by a partial selection on a copy of the magnitudes. */
static int encode_topk(const float *d, size_t n, size_t k, float *e, uint8_t *out) {
  if (k == 0 || k > n) return fedc_error_set(FEDC_EINVAL, "topk: k = %zu of %zu", k, n);
  float *mag = fedc_malloc_array(n, sizeof *mag);
  if (mag == NULL) return fedc_error_set(FEDC_ENOMEM, "topk: out of memory");
  for (size_t i = 0; i < n; i++) {
    e[i] += d[i];
    mag[i] = fabsf(e[i]);
  }
  /* the k-th largest magnitude by quickselect */
  size_t lo = 0, hi = n - 1, want = n - k;
  while (lo < hi) {
    float pv = mag[(lo + hi) / 2];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (mag[i] < pv)
        i++;
      while (mag[j] > pv)
        j--;
      if (i <= j) {
        float t = mag[i];
        mag[i] = mag[j];
        mag[j] = t;
        i++;
        if (j == 0) break;
        j--;
      }
    }
    if (want <= j)
      hi = j;
    else if (want >= i)
      lo = i;
    else
      break;
  }
  float thr = mag[want];
  fedc_free(mag);
  size_t kept = 0;
  for (size_t i = 0; i < n && kept < k; i++) /* strictly above first, ties after */
    if (fabsf(e[i]) > thr) {
      fedc_le_put32(out + 8 * kept, (uint32_t)i);
      fedc_le_put32(out + 8 * kept + 4, bits_of(e[i]));
      e[i] = 0;
      kept++;
    }
  for (size_t i = 0; i < n && kept < k; i++)
    if (fabsf(e[i]) == thr && e[i] != 0) {
      fedc_le_put32(out + 8 * kept, (uint32_t)i);
      fedc_le_put32(out + 8 * kept + 4, bits_of(e[i]));
      e[i] = 0;
      kept++;
    }
  for (; kept < k; kept++) { /* fewer non-zeros than k: index n means none */
    fedc_le_put32(out + 8 * kept, (uint32_t)n);
    fedc_le_put32(out + 8 * kept + 4, 0);
  }
  return 0;
}

/*
 * topk_bf16: topk's selection (into a scratch of 8k bytes), then the
 * bitmap and the values in index order rounded to bfloat16; what the
 * rounding loses goes back into the residual, so error feedback covers
 * it too. Padding values (fewer non-zeros than k) are zero.
 */
static int encode_topk_bf16(const float *d, size_t n, size_t k, float *e, uint8_t *out) {
  uint8_t *tmp = fedc_malloc_array(k ? k : 1, 8);
  float *val = fedc_calloc(n ? n : 1, sizeof *val);
  int rc = tmp && val ? encode_topk(d, n, k, e, tmp)
                      : fedc_error_set(FEDC_ENOMEM, "topk_bf16: out of memory");
  if (rc == 0) {
    uint8_t *bits = out, *v = out + (n + 7) / 8;
    memset(out, 0, (n + 7) / 8 + 2 * k);
    for (size_t j = 0; j < k; j++) {
      uint32_t i = fedc_le_get32(tmp + 8 * j);
      if (i >= n) continue;
      bits[i / 8] |= (uint8_t)(1u << (i % 8));
      val[i] = float_of(fedc_le_get32(tmp + 8 * j + 4));
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (bits[i / 8] >> (i % 8) & 1) {
        uint16_t h = to_bf16(val[i]);
        e[i] += val[i] - from_bf16(h); /* e[i] was zeroed by the selection */
        v[2 * m] = (uint8_t)h;
        v[2 * m + 1] = (uint8_t)(h >> 8);
        m++;
      }
  }
  fedc_free(tmp);
  fedc_free(val);
  return rc;
}

/* topk_bf16's decoder: at most k bits, none past n, zero padding. */
static int decode_topk_bf16(const uint8_t *in, size_t len, float *d, size_t n) {
  size_t nb = (n + 7) / 8;
  if (len < nb || (len - nb) % 2 != 0)
    return fedc_error_set(FEDC_EFORMAT, "topk_bf16: %zu bytes for %zu weights", len, n);
  size_t k = (len - nb) / 2, m = 0;
  const uint8_t *v = in + nb;
  for (size_t i = 0; i < n; i++) {
    d[i] = 0;
    if (!(in[i / 8] >> (i % 8) & 1)) continue;
    if (m == k) return fedc_error_set(FEDC_EFORMAT, "topk_bf16: more than %zu weights set", k);
    d[i] = from_bf16((uint16_t)(v[2 * m] | v[2 * m + 1] << 8));
    m++;
  }
  if (n % 8 != 0 && in[nb - 1] >> (n % 8) != 0)
    return fedc_error_set(FEDC_EFORMAT, "topk_bf16: bits set past weight %zu", n);
  for (size_t j = 2 * m; j < 2 * k; j++)
    if (v[j] != 0) return fedc_error_set(FEDC_EFORMAT, "topk_bf16: padding not zero");
  return 0;
}

int fedc_codec_encode(fedc_codec c, const float *d, size_t n, size_t k, float *residual,
                      fedc_rng *rng, uint8_t *out) {
  switch (c) {
  case FEDC_CODEC_F16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = to_f16(d[i]);
      out[2 * i] = (uint8_t)h;
      out[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return 0;
  case FEDC_CODEC_BF16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = to_bf16(d[i]);
      out[2 * i] = (uint8_t)h;
      out[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return 0;
  case FEDC_CODEC_INT8:
    encode_int8(d, n, rng, out);
    return 0;
  case FEDC_CODEC_TOPK:
    return encode_topk(d, n, k, residual, out);
  case FEDC_CODEC_TOPK_BF16:
    if (k == 0 || k > n) return fedc_error_set(FEDC_EINVAL, "topk_bf16: k = %zu of %zu", k, n);
    return encode_topk_bf16(d, n, k, residual, out);
  case FEDC_CODEC_NONE:
    for (size_t i = 0; i < n; i++)
      fedc_le_put32(out + 4 * i, bits_of(d[i]));
    return 0;
  }
  return fedc_error_set(FEDC_EINVAL, "codec %d", (int)c);
}

int fedc_codec_decode(fedc_codec c, const uint8_t *in, size_t len, float *d, size_t n) {
  if (c == FEDC_CODEC_TOPK) {
    if (len % 8 != 0) return fedc_error_set(FEDC_EFORMAT, "topk: %zu bytes", len);
    memset(d, 0, n * sizeof *d);
    for (size_t j = 0; j < len / 8; j++) {
      uint32_t i = fedc_le_get32(in + 8 * j);
      if (i == n) continue;
      if (i > n || d[i] != 0)
        return fedc_error_set(FEDC_EFORMAT, "topk: index %u (of %zu) out of range or twice", i, n);
      d[i] = float_of(fedc_le_get32(in + 8 * j + 4));
    }
    return 0;
  }
  if (c == FEDC_CODEC_TOPK_BF16) return decode_topk_bf16(in, len, d, n);
  if (c == FEDC_CODEC_INT8 && len == fedc_codec_size(c, n, 0)) {
    /* block by block: the scale, then its levels (the loop vectorizes) */
    for (size_t b = 0; b < n; b += FEDC_CODEC_BLOCK, in += 4 + FEDC_CODEC_BLOCK) {
      size_t m = n - b < FEDC_CODEC_BLOCK ? n - b : FEDC_CODEC_BLOCK;
      float s = float_of(fedc_le_get32(in));
      const int8_t *q = (const int8_t *)(in + 4);
      for (size_t i = 0; i < m; i++)
        d[b + i] = s * (float)q[i];
    }
    return 0;
  }
  if ((unsigned)c > FEDC_CODEC_TOPK || len != fedc_codec_size(c, n, 0))
    return fedc_error_set(FEDC_EFORMAT, "%s: %zu bytes for %zu weights", fedc_codec_name(c), len,
                          n);
  for (size_t b = 0, i = 0; i < n; i++) {
    switch (c) {
    case FEDC_CODEC_F16:
      d[i] = from_f16((uint16_t)(in[2 * i] | in[2 * i + 1] << 8));
      break;
    case FEDC_CODEC_BF16:
      d[i] = from_bf16((uint16_t)(in[2 * i] | in[2 * i + 1] << 8));
      break;
    case FEDC_CODEC_NONE:
      d[i] = float_of(fedc_le_get32(in + 4 * i));
      break;
    default: { /* int8 */
      if (i % FEDC_CODEC_BLOCK == 0) b = (i / FEDC_CODEC_BLOCK) * (FEDC_CODEC_BLOCK + 4);
      float s = float_of(fedc_le_get32(in + b));
      d[i] = s * (float)(int8_t)in[b + 4 + i % FEDC_CODEC_BLOCK];
    }
    }
  }
  return 0;
}
