/*
 * model_delta.c - the lossless model delta of model_delta.h: the word
 * difference of two safetensors data sections, zig-zag mapped and Rice
 * coded in blocks of 8 words. The decoder trusts nothing it reads: sizes
 * before offsets, its base's SHA-256 before decoding, every bit read
 * within the coded bytes, and the rebuilt body's SHA-256 at the end.
 *
 * Why Rice: on consecutive FedAvg models of the Fashion-MNIST MLP the
 * zig-zagged differences are spread over ~17-22 bits (most weights move
 * by 10^4 to 10^6 ULPs a round), so schemes that only drop zero bytes
 * (varints, byte planes with a bitmap) save less than one byte of four;
 * a per-block Rice parameter spends about the bits each difference has
 * (docs/compression.md gives the figures of each candidate).
 */
#include "wire/model_delta.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/le.h"

#define BLOCK 8
#define ESCAPE 16 /* unary bits that mean "32 raw bits follow" */

/* The header bytes of a safetensors container (8 + its JSON length), or 0
 * when the bytes are not one. */
static uint64_t st_head(const uint8_t *b, size_t len) {
  if (len < 8) return 0;
  uint64_t n = fedc_le_get64(b);
  return n <= len - 8 ? n + 8 : 0;
}

static int sha_hex(const uint8_t *b, size_t len, const char *given, uint8_t out[32]) {
  if (given == NULL || strlen(given) != 64) return fedc__sha256(b ? (const void *)b : "", len, out);
  for (int i = 0; i < 32; i++) {
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      char ch = given[2 * i + j];
      unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                   : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                   : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                            : 16u;
      if (d > 15) return fedc__sha256(b ? (const void *)b : "", len, out);
      v = v << 4 | d;
    }
    out[i] = (uint8_t)v;
  }
  return 0;
}

uint32_t fedc__model_delta_zigzag(uint32_t base, uint32_t next) {
  uint32_t d = next - base; /* wrapping */
  return (d << 1) ^ (uint32_t)(-(int32_t)(d >> 31));
}

static uint32_t unzigzag(uint32_t z) {
  return (z >> 1) ^ (uint32_t)(-(int32_t)(z & 1));
}

/* ---- bits ---------------------------------------------------------------- */

typedef fedc__delta_bitw bitw; /* model_delta.h */

static void bw_put(bitw *w, uint32_t bits, int n) { /* n <= 32 */
  if (n == 0) return;
  w->acc |= (uint64_t)(n == 32 ? bits : bits & ((1u << n) - 1)) << w->nacc;
  w->nacc += n;
  while (w->nacc >= 8) {
    w->p[w->n++] = (uint8_t)w->acc;
    w->acc >>= 8;
    w->nacc -= 8;
  }
}

void fedc__model_delta_flush(bitw *w) {
  if (w->nacc > 0) w->p[w->n++] = (uint8_t)w->acc;
  w->acc = 0;
  w->nacc = 0;
}

typedef struct bitr {
  const uint8_t *p;
  size_t n;   /* bytes */
  size_t pos; /* bits read */
} bitr;

/* Read n <= 32 bits; -1 past the end. */
static int br_get(bitr *r, int n, uint32_t *v) {
  if (r->pos + (size_t)n > 8 * r->n) return -1;
  uint32_t x = 0;
  for (int i = 0; i < n;) {
    size_t byte = r->pos >> 3;
    int off = (int)(r->pos & 7), take = 8 - off;
    if (take > n - i) take = n - i;
    x |= (uint32_t)((r->p[byte] >> off) & ((1u << take) - 1)) << i;
    i += take;
    r->pos += (size_t)take;
  }
  *v = x;
  return 0;
}

/* ---- blocks -------------------------------------------------------------- */

static int bitlen(uint32_t v) {
  return v ? 32 - __builtin_clz(v) : 0;
}

/* The Rice parameter that makes the block of m words shortest, searched
 * down from the widest word's bit length until the cost rises (any k
 * decodes; this only keeps the search short). */
static int best_k(const uint32_t *z, int m) {
  int lmax = 0;
  for (int i = 0; i < m; i++)
    if (bitlen(z[i]) > lmax) lmax = bitlen(z[i]);
  if (lmax > 31) lmax = 31;
  int best = lmax;
  uint64_t best_cost = UINT64_MAX;
  for (int k = lmax; k >= 0; k--) { /* a larger k never helps past lmax */
    uint64_t cost = 0;
    for (int i = 0; i < m; i++) {
      uint32_t q = z[i] >> k;
      cost += q < ESCAPE ? q + 1 + (uint64_t)k : ESCAPE + 32;
    }
    if (cost < best_cost) {
      best_cost = cost;
      best = k;
    } else if (cost > best_cost) {
      break; /* past the minimum: the cost is unimodal in k but for escapes */
    }
  }
  return best;
}

void fedc__model_delta_put_block(bitw *w, const uint32_t *z, int m) {
  int k = best_k(z, m);
  bw_put(w, (uint32_t)k, 5);
  for (int i = 0; i < m; i++) {
    uint32_t q = z[i] >> k;
    if (q < ESCAPE) {
      bw_put(w, (1u << q) - 1, (int)q + 1); /* q ones, then a zero */
      bw_put(w, z[i], k);
    } else {
      bw_put(w, (1u << ESCAPE) - 1, ESCAPE);
      bw_put(w, z[i], 32);
    }
  }
}

static int get_word(bitr *r, int k, uint32_t *z) {
  uint32_t q = 0, bit;
  for (;;) {
    if (br_get(r, 1, &bit) != 0) return -1;
    if (!bit) break;
    if (++q == ESCAPE) return br_get(r, 32, z);
  }
  uint32_t low = 0;
  if (br_get(r, k, &low) != 0) return -1;
  if (k > 0 && (uint64_t)q << k > UINT32_MAX) return -1;
  *z = (k == 32 ? 0 : q << k) | low;
  return 0;
}

/* ---- encode -------------------------------------------------------------- */

int fedc_model_delta_encode(const uint8_t *base, size_t base_len, int32_t base_round,
                            const char *base_sha, const uint8_t *next, size_t next_len,
                            int32_t round, const char *next_sha, uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  uint64_t hb = st_head(base, base_len), hn = st_head(next, next_len);
  if (hb == 0 || hn == 0 || base_len - hb != next_len - hn)
    return fedc_error_set(FEDC_EINVAL, "model delta: the two models' data sections differ");
  uint64_t data = next_len - hn, words = data / 4, tail = data % 4;
  uint64_t blocks = (words + BLOCK - 1) / BLOCK;
  /* each block at most 5 bits + 8 words of 48 bits: 49 bytes */
  uint64_t cap = FEDC_MODEL_DELTA_HEAD + hn + blocks * 49 + 8 + tail;
  uint8_t *o = fedc_malloc((size_t)cap);
  if (o == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory for a model delta");
  memset(o, 0, FEDC_MODEL_DELTA_HEAD);
  memcpy(o, FEDC_MODEL_DELTA_MAGIC, 8);
  fedc_le_put32(o + 8, (uint32_t)base_round);
  fedc_le_put32(o + 12, (uint32_t)round);
  fedc_le_put64(o + 16, base_len);
  fedc_le_put64(o + 56, next_len);
  int rc = sha_hex(base, base_len, base_sha, o + 24);
  if (rc == 0) rc = sha_hex(next, next_len, next_sha, o + 64);
  if (rc != 0) {
    fedc_free(o);
    return rc;
  }
  fedc_le_put64(o + 96, hn);
  fedc_le_put64(o + 104, hb);
  fedc_le_put64(o + 112, data);
  memcpy(o + FEDC_MODEL_DELTA_HEAD, next, (size_t)hn);
  bitw w = {.p = o + FEDC_MODEL_DELTA_HEAD + hn};
  const uint8_t *bd = base + hb, *nd = next + hn;
  uint32_t z[BLOCK];
  for (uint64_t i = 0; i < words; i += BLOCK) {
    int m = words - i < BLOCK ? (int)(words - i) : BLOCK;
    for (int j = 0; j < m; j++)
      z[j] = fedc__model_delta_zigzag(fedc_le_get32(bd + 4 * (i + (uint64_t)j)),
                                      fedc_le_get32(nd + 4 * (i + (uint64_t)j)));
    fedc__model_delta_put_block(&w, z, m);
  }
  fedc__model_delta_flush(&w);
  fedc_le_put64(o + 120, w.n);
  uint64_t len = FEDC_MODEL_DELTA_HEAD + hn + w.n;
  memcpy(o + len, nd + 4 * words, (size_t)tail);
  *out = o;
  *out_len = (size_t)(len + tail);
  return 0;
}

/* ---- decode -------------------------------------------------------------- */

int fedc_model_delta_is(const uint8_t *body, size_t len) {
  return body != NULL && len >= FEDC_MODEL_DELTA_HEAD &&
         memcmp(body, FEDC_MODEL_DELTA_MAGIC, 8) == 0;
}

int fedc_model_delta_rounds(const uint8_t *body, size_t len, int32_t *base_round, int32_t *round) {
  if (!fedc_model_delta_is(body, len)) return fedc_error_set(FEDC_EFORMAT, "not a model delta");
  *base_round = (int32_t)fedc_le_get32(body + 8);
  *round = (int32_t)fedc_le_get32(body + 12);
  return 0;
}

int fedc_model_delta_decode(const uint8_t *delta, size_t len, const uint8_t *base, size_t base_len,
                            const char *base_sha, size_t max, uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (!fedc_model_delta_is(delta, len))
    return fedc_error_set(FEDC_EFORMAT, "model delta: bad magic or too short");
  uint64_t blen = fedc_le_get64(delta + 16), nlen = fedc_le_get64(delta + 56), hn = fedc_le_get64(delta + 96),
           hb = fedc_le_get64(delta + 104), data = fedc_le_get64(delta + 112), coded = fedc_le_get64(delta + 120);
  if (blen != base_len)
    return fedc_error_set(FEDC_ECHECKSUM, "model delta: made from a base of %llu bytes, not %llu",
                          (unsigned long long)blen, (unsigned long long)base_len);
  uint8_t sha[32];
  int rc = sha_hex(base, base_len, base_sha, sha);
  if (rc != 0) return rc;
  if (memcmp(sha, delta + 24, 32) != 0)
    return fedc_error_set(FEDC_ECHECKSUM, "model delta: made from another base model");
  if (nlen > max)
    return fedc_error_set(FEDC_ETOOBIG, "model delta: a model of %llu bytes, larger than %llu",
                          (unsigned long long)nlen, (unsigned long long)max);
  uint64_t tail = data % 4, words = data / 4;
  /* sizes before offsets: each is bounded by a length already checked */
  if (hb > base_len || data != base_len - hb || hn > nlen || data != nlen - hn ||
      hn > len - FEDC_MODEL_DELTA_HEAD || coded > len - FEDC_MODEL_DELTA_HEAD - hn ||
      tail != len - FEDC_MODEL_DELTA_HEAD - hn - coded || st_head(base, base_len) != hb)
    return fedc_error_set(FEDC_EFORMAT, "model delta: inconsistent sizes");
  uint8_t *o = fedc_malloc((size_t)nlen + 1);
  if (o == NULL)
    return fedc_error_set(FEDC_ENOMEM, "out of memory for a %llu-byte model",
                          (unsigned long long)nlen);
  const uint8_t *src = delta + FEDC_MODEL_DELTA_HEAD;
  memcpy(o, src, (size_t)hn);
  bitr r = {.p = src + hn, .n = (size_t)coded};
  const uint8_t *bd = base + hb;
  uint8_t *nd = o + hn;
  for (uint64_t i = 0; i < words; i += BLOCK) {
    uint64_t m = words - i < BLOCK ? words - i : BLOCK;
    uint32_t k;
    if (br_get(&r, 5, &k) != 0) goto bad;
    for (uint64_t j = 0; j < m; j++) {
      uint32_t z;
      if (get_word(&r, (int)k, &z) != 0) goto bad;
      fedc_le_put32(nd + 4 * (i + j), fedc_le_get32(bd + 4 * (i + j)) + unzigzag(z));
    }
  }
  uint32_t pad = 0;
  if ((r.pos + 7) / 8 != r.n || br_get(&r, (int)((8 - r.pos % 8) % 8), &pad) != 0 || pad != 0)
    goto bad; /* every coded byte used, the last one padded with zero-bits */
  memcpy(nd + 4 * words, src + hn + coded, (size_t)tail);
  o[nlen] = 0;
  rc = fedc__sha256(o, (size_t)nlen, sha);
  if (rc != 0) {
    fedc_free(o);
    return rc;
  }
  if (memcmp(sha, delta + 64, 32) != 0) {
    fedc_free(o);
    return fedc_error_set(FEDC_ECHECKSUM, "model delta: the rebuilt model's SHA-256 differs");
  }
  *out = o;
  *out_len = (size_t)nlen;
  return 0;
bad:
  fedc_free(o);
  return fedc_error_set(FEDC_EFORMAT, "model delta: coded words cut short or malformed");
}
