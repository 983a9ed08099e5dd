/*
 * model_delta_stream.c - the model delta encoded and decoded in slices
 * (see model_delta_stream.h). The block coder is model_delta.c's own
 * (fedc__model_delta_put_block), so both forms write the same bytes; the
 * decoder reads the coded words through a 64-bit accumulator refilled
 * from a window of the delta, and checks what model_delta.c's decoder
 * checks, in the same order where it can: the fixed header and the sizes
 * first, the coded words as they come, the base's and the output's
 * SHA-256 last (a stream cannot hash its base before decoding without a
 * second pass over it).
 */
#include "wire/model_delta_stream.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/model_delta.h"
#include "wire/le.h"

#define BLOCK 8
#define ESCAPE 16
#define SLICE_DEFAULT ((size_t)1 << 20)

/* 32 bytes from 64 hex digits; -1 when hex is not that. */
static int unhex(const char *hex, uint8_t out[32]) {
  if (hex == NULL || strlen(hex) != 64) return -1;
  for (int i = 0; i < 64; i++) {
    char ch = hex[i];
    int d = ch >= '0' && ch <= '9'   ? ch - '0'
            : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                     : -1;
    if (d < 0) return -1;
    if (i % 2 == 0)
      out[i / 2] = (uint8_t)(d << 4);
    else
      out[i / 2] |= (uint8_t)d;
  }
  return 0;
}

/* The slice size: at least 64 bytes and a whole number of 8-word blocks. */
static size_t slice_of(const fedc_model_delta_io *io) {
  size_t s = io->slice ? io->slice : SLICE_DEFAULT;
  if (s < 64) s = 64;
  return s / (4 * BLOCK) * (4 * BLOCK);
}

/* The header bytes of a safetensors container (8 + its JSON length) read
 * from its first 8 bytes, or 0 when it is not one. */
static int st_head(int (*rd)(void *, uint64_t, uint8_t *, size_t), void *ud, uint64_t len,
                   uint64_t *head) {
  *head = 0;
  if (len < 8) return 0;
  uint8_t b[8];
  int rc = rd(ud, 0, b, 8);
  if (rc != 0) return rc;
  uint64_t n = fedc_le_get64(b);
  *head = n <= len - 8 ? n + 8 : 0;
  return 0;
}

/* Copy n bytes at from (read with rd) to the output at to, in slices of
 * buf, hashing them into h (when not NULL). */
static int copy(const fedc_model_delta_io *io, int (*rd)(void *, uint64_t, uint8_t *, size_t),
                uint64_t from, uint64_t to, uint64_t n, uint8_t *buf, size_t cap,
                fedc__sha256_ctx *h) {
  for (uint64_t done = 0; done < n;) {
    size_t m = n - done < cap ? (size_t)(n - done) : cap;
    int rc = rd(io->ud, from + done, buf, m);
    if (rc == 0 && h) rc = fedc__sha256_update(h, buf, m);
    if (rc == 0 && io->write) rc = io->write(io->ud, to + done, buf, m);
    if (rc != 0) return rc;
    done += m;
  }
  return 0;
}

/* Hash n bytes at from (read with rd) into h, in slices of buf. */
static int hash_range(const fedc_model_delta_io *io, int (*rd)(void *, uint64_t, uint8_t *, size_t),
                      uint64_t from, uint64_t n, uint8_t *buf, size_t cap, fedc__sha256_ctx *h) {
  for (uint64_t done = 0; done < n;) {
    size_t m = n - done < cap ? (size_t)(n - done) : cap;
    int rc = rd(io->ud, from + done, buf, m);
    if (rc == 0) rc = fedc__sha256_update(h, buf, m);
    if (rc != 0) return rc;
    done += m;
  }
  return 0;
}

/* ---- encode -------------------------------------------------------------- */

int fedc_model_delta_encode_stream(const fedc_model_delta_io *io, uint64_t base_len,
                                   int32_t base_round, const char *base_sha, uint64_t next_len,
                                   int32_t round, const char *next_sha, uint64_t *out_len) {
  *out_len = 0;
  uint64_t hb = 0, hn = 0;
  int rc = st_head(io->read_base, io->ud, base_len, &hb);
  if (rc == 0) rc = st_head(io->read_other, io->ud, next_len, &hn);
  if (rc != 0) return rc;
  if (hb == 0 || hn == 0 || base_len - hb != next_len - hn)
    return fedc_error_set(FEDC_EINVAL, "model delta: the two models' data sections differ");
  uint8_t head[FEDC_MODEL_DELTA_HEAD] = {0};
  int hash_b = unhex(base_sha, head + 24) != 0, hash_n = unhex(next_sha, head + 64) != 0;
  const size_t cap = slice_of(io);
  uint8_t *bb = fedc_malloc(cap), *nb = fedc_malloc(cap), *ob = fedc_malloc(cap + 64);
  fedc__sha256_ctx shb, shn;
  int sb = hash_b && fedc__sha256_begin(&shb) == 0, sn = hash_n && fedc__sha256_begin(&shn) == 0;
  if (bb == NULL || nb == NULL || ob == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "out of memory for a model delta's slices");
    goto out;
  }
  if ((hash_b && !sb) || (hash_n && !sn)) {
    rc = fedc_error_set(FEDC_EBACKEND, "model delta: SHA-256 unavailable");
    goto out;
  }
  const uint64_t data = next_len - hn, words = data / 4, tail = data % 4;
  /* the new header verbatim after the fixed one; the base's hashed */
  rc = copy(io, io->read_other, 0, FEDC_MODEL_DELTA_HEAD, hn, nb, cap, sn ? &shn : NULL);
  if (rc == 0 && sb) rc = hash_range(io, io->read_base, 0, hb, bb, cap, &shb);
  if (rc != 0) goto out;
  uint64_t at = FEDC_MODEL_DELTA_HEAD + hn, coded = 0;
  fedc__delta_bitw w = {.p = ob};
  uint32_t z[BLOCK];
  for (uint64_t i = 0; i < words;) {
    uint64_t m = words - i < cap / 4 ? words - i : cap / 4; /* words in this slice */
    rc = io->read_base(io->ud, hb + 4 * i, bb, (size_t)(4 * m));
    if (rc == 0) rc = io->read_other(io->ud, hn + 4 * i, nb, (size_t)(4 * m));
    if (rc == 0 && sb) rc = fedc__sha256_update(&shb, bb, (size_t)(4 * m));
    if (rc == 0 && sn) rc = fedc__sha256_update(&shn, nb, (size_t)(4 * m));
    if (rc != 0) goto out;
    for (uint64_t j = 0; j < m; j += BLOCK) {
      int k = m - j < BLOCK ? (int)(m - j) : BLOCK;
      for (int t = 0; t < k; t++)
        z[t] = fedc__model_delta_zigzag(fedc_le_get32(bb + 4 * (j + (uint64_t)t)),
                                        fedc_le_get32(nb + 4 * (j + (uint64_t)t)));
      fedc__model_delta_put_block(&w, z, k);
      if (w.n + 49 > cap) { /* room for the next block's at most 49 bytes */
        rc = io->write(io->ud, at + coded, ob, w.n);
        if (rc != 0) goto out;
        coded += w.n;
        w.n = 0;
      }
    }
    i += m;
  }
  fedc__model_delta_flush(&w);
  if (w.n > 0) rc = io->write(io->ud, at + coded, ob, w.n);
  if (rc != 0) goto out;
  coded += w.n;
  /* the last 0 to 3 bytes verbatim */
  rc = copy(io, io->read_other, hn + 4 * words, at + coded, tail, nb, cap, sn ? &shn : NULL);
  if (rc == 0 && sb) rc = hash_range(io, io->read_base, hb + 4 * words, tail, bb, cap, &shb);
  if (rc == 0 && sb) rc = fedc__sha256_finish(&shb, head + 24);
  if (rc == 0 && sn) rc = fedc__sha256_finish(&shn, head + 64);
  if (rc != 0) goto out;
  memcpy(head, FEDC_MODEL_DELTA_MAGIC, 8);
  fedc_le_put32(head + 8, (uint32_t)base_round);
  fedc_le_put32(head + 12, (uint32_t)round);
  fedc_le_put64(head + 16, base_len);
  fedc_le_put64(head + 56, next_len);
  fedc_le_put64(head + 96, hn);
  fedc_le_put64(head + 104, hb);
  fedc_le_put64(head + 112, data);
  fedc_le_put64(head + 120, coded);
  rc = io->write(io->ud, 0, head, FEDC_MODEL_DELTA_HEAD);
  if (rc == 0) *out_len = at + coded + tail;
out:
  if (sb) fedc__sha256_free(&shb);
  if (sn) fedc__sha256_free(&shn);
  fedc_free(bb);
  fedc_free(nb);
  fedc_free(ob);
  return rc;
}

/* ---- decode -------------------------------------------------------------- */

/* The coded words, read through an accumulator from a window of the delta. */
typedef struct sbits {
  const fedc_model_delta_io *io;
  uint8_t *buf;
  size_t cap, pos, n; /* the window: buf[pos..n) not yet taken */
  uint64_t off, end;  /* the delta's next byte to read, and its coded bytes' end */
  uint64_t acc;
  int nacc;
  uint64_t taken; /* bits consumed */
  int err;        /* a read callback's code, or 0 */
} sbits;

/* Fill the accumulator to at least 57 bits, or with all that is left. */
static void fill(sbits *r) {
  while (r->nacc <= 56) {
    if (r->pos == r->n) {
      if (r->off >= r->end || r->err) return;
      size_t m = r->end - r->off < r->cap ? (size_t)(r->end - r->off) : r->cap;
      int rc = r->io->read_other(r->io->ud, r->off, r->buf, m);
      if (rc != 0) {
        r->err = rc;
        return;
      }
      r->off += m;
      r->pos = 0;
      r->n = m;
    }
    r->acc |= (uint64_t)r->buf[r->pos++] << r->nacc;
    r->nacc += 8;
  }
}

static void drop(sbits *r, int n) {
  r->acc = n == 64 ? 0 : r->acc >> n;
  r->nacc -= n;
  r->taken += (uint64_t)n;
}

/* Take n <= 32 bits; -1 past the coded bytes. */
static int take(sbits *r, int n, uint32_t *v) {
  if (r->nacc < n) fill(r);
  if (r->nacc < n) return -1;
  *v = (uint32_t)(r->acc & ((1ull << n) - 1));
  drop(r, n);
  return 0;
}

/* One word of a block with Rice parameter k: the unary quotient (ESCAPE
 * ones: 32 raw bits follow), then k low bits; as model_delta.c's get_word. */
static int word(sbits *r, int k, uint32_t *z) {
  uint32_t q = 0;
  for (;;) {
    if (r->nacc == 0) fill(r);
    if (r->nacc == 0) return -1;
    uint64_t inv = ~r->acc;
    int t = inv ? __builtin_ctzll(inv) : 64;
    if (t > r->nacc) t = r->nacc;
    if ((uint32_t)t >= ESCAPE - q) {
      drop(r, (int)(ESCAPE - q));
      return take(r, 32, z);
    }
    q += (uint32_t)t;
    if (t < r->nacc) { /* the zero that ends the quotient */
      drop(r, t + 1);
      break;
    }
    drop(r, t);
  }
  uint32_t low = 0;
  if (take(r, k, &low) != 0) return -1;
  if (k > 0 && (uint64_t)q << k > UINT32_MAX) return -1;
  *z = (k == 32 ? 0 : q << k) | low;
  return 0;
}

int fedc_model_delta_decode_stream(const fedc_model_delta_io *io, uint64_t delta_len,
                                   uint64_t base_len, uint64_t max, uint64_t *out_len) {
  *out_len = 0;
  uint8_t head[FEDC_MODEL_DELTA_HEAD];
  if (delta_len < FEDC_MODEL_DELTA_HEAD)
    return fedc_error_set(FEDC_EFORMAT, "model delta: bad magic or too short");
  int rc = io->read_other(io->ud, 0, head, sizeof head);
  if (rc != 0) return rc;
  if (!fedc_model_delta_is(head, sizeof head))
    return fedc_error_set(FEDC_EFORMAT, "model delta: bad magic or too short");
  uint64_t blen = fedc_le_get64(head + 16), nlen = fedc_le_get64(head + 56), hn = fedc_le_get64(head + 96),
           hb = fedc_le_get64(head + 104), data = fedc_le_get64(head + 112), coded = fedc_le_get64(head + 120);
  if (blen != base_len)
    return fedc_error_set(FEDC_ECHECKSUM, "model delta: made from a base of %llu bytes, not %llu",
                          (unsigned long long)blen, (unsigned long long)base_len);
  if (nlen > max)
    return fedc_error_set(FEDC_ETOOBIG, "model delta: a model of %llu bytes, larger than %llu",
                          (unsigned long long)nlen, (unsigned long long)max);
  uint64_t tail = data % 4, words = data / 4, bh = 0;
  rc = st_head(io->read_base, io->ud, base_len, &bh);
  if (rc != 0) return rc;
  const uint64_t len = delta_len;
  if (hb > base_len || data != base_len - hb || hn > nlen || data != nlen - hn ||
      hn > len - FEDC_MODEL_DELTA_HEAD || coded > len - FEDC_MODEL_DELTA_HEAD - hn ||
      tail != len - FEDC_MODEL_DELTA_HEAD - hn - coded || bh != hb)
    return fedc_error_set(FEDC_EFORMAT, "model delta: inconsistent sizes");
  const size_t cap = slice_of(io);
  uint8_t *bb = fedc_malloc(cap), *ob = fedc_malloc(cap), *win = fedc_malloc(cap);
  fedc__sha256_ctx shb, sho;
  int sb = fedc__sha256_begin(&shb) == 0, so = fedc__sha256_begin(&sho) == 0;
  if (bb == NULL || ob == NULL || win == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "out of memory for a model delta's slices");
    goto out;
  }
  if (!sb || !so) {
    rc = fedc_error_set(FEDC_EBACKEND, "model delta: SHA-256 unavailable");
    goto out;
  }
  /* the new header verbatim; the base's hashed */
  rc = copy(io, io->read_other, FEDC_MODEL_DELTA_HEAD, 0, hn, ob, cap, &sho);
  if (rc == 0) rc = hash_range(io, io->read_base, 0, hb, bb, cap, &shb);
  if (rc != 0) goto out;
  sbits r = {.io = io, .buf = win, .cap = cap, .off = FEDC_MODEL_DELTA_HEAD + hn};
  r.end = r.off + coded;
  for (uint64_t i = 0; i < words;) {
    uint64_t m = words - i < cap / 4 ? words - i : cap / 4;
    rc = io->read_base(io->ud, hb + 4 * i, bb, (size_t)(4 * m));
    if (rc == 0) rc = fedc__sha256_update(&shb, bb, (size_t)(4 * m));
    if (rc != 0) goto out;
    for (uint64_t j = 0; j < m; j += BLOCK) {
      uint64_t e = m - j < BLOCK ? m : j + BLOCK;
      uint32_t k, z;
      if (take(&r, 5, &k) != 0) goto bad;
      for (uint64_t t = j; t < e; t++) {
        if (word(&r, (int)k, &z) != 0) goto bad;
        fedc_le_put32(ob + 4 * t, fedc_le_get32(bb + 4 * t) + ((z >> 1) ^ (uint32_t)(-(int32_t)(z & 1))));
      }
    }
    rc = fedc__sha256_update(&sho, ob, (size_t)(4 * m));
    if (rc == 0) rc = io->write(io->ud, hn + 4 * i, ob, (size_t)(4 * m));
    if (rc != 0) goto out;
    i += m;
  }
  /* every coded byte used, the last one padded with zero-bits */
  uint32_t pad = 0;
  if (r.err) {
    rc = r.err;
    goto out;
  }
  if ((r.taken + 7) / 8 != coded || take(&r, (int)((8 - r.taken % 8) % 8), &pad) != 0 || pad != 0 ||
      r.nacc != 0)
    goto bad;
  rc = copy(io, io->read_other, FEDC_MODEL_DELTA_HEAD + hn + coded, hn + 4 * words, tail, ob, cap,
            &sho);
  if (rc == 0) rc = hash_range(io, io->read_base, hb + 4 * words, tail, bb, cap, &shb);
  uint8_t hb_sha[32], ho_sha[32];
  if (rc == 0) rc = fedc__sha256_finish(&shb, hb_sha);
  if (rc == 0) rc = fedc__sha256_finish(&sho, ho_sha);
  if (rc != 0) goto out;
  if (memcmp(hb_sha, head + 24, 32) != 0)
    rc = fedc_error_set(FEDC_ECHECKSUM, "model delta: made from another base model");
  else if (memcmp(ho_sha, head + 64, 32) != 0)
    rc = fedc_error_set(FEDC_ECHECKSUM, "model delta: the rebuilt model's SHA-256 differs");
  else
    *out_len = nlen;
  goto out;
bad:
  rc = r.err ? r.err
             : fedc_error_set(FEDC_EFORMAT, "model delta: coded words cut short or "
                                            "malformed");
out:
  if (sb) fedc__sha256_free(&shb);
  if (so) fedc__sha256_free(&sho);
  fedc_free(bb);
  fedc_free(ob);
  fedc_free(win);
  return rc;
}
