/*
 * secagg_common.c - what the client and the server of secure aggregation
 * compute the same way: the SecAgg+ neighbour graph, the Shamir threshold,
 * the fixed-point quantization with its overflow bound, and the reader and
 * writer of the binary messages (formats in secagg.h). The reader never
 * reads past the buffer: a short read sets a flag that fedc__sa_read_end
 * turns into FEDC_EFORMAT naming the message.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "privacy/secagg_internal.h"

static const uint8_t MAGIC[4] = {'F', 'S', 'A', '1'};

/* ---- little-endian words ------------------------------------------------- */

void fedc__sa_store32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t fedc__sa_load32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void fedc__sa_store64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t fedc__sa_load64(const uint8_t *p) {
  return (uint64_t)fedc__sa_load32(p) | (uint64_t)fedc__sa_load32(p + 4) << 32;
}

/* ---- reading ---------------------------------------------------------------- */

int fedc__sa_read_header(sa_reader *r, const uint8_t *msg, size_t len, int type,
                         const char *what, int32_t *round, uint32_t *id) {
  r->p = msg;
  r->left = msg ? len : 0;
  r->what = what;
  r->bad = 0;
  if (msg == NULL || len < SA_HEADER)
    return fedc_error_set(FEDC_EFORMAT, "secagg %s: %zu bytes, shorter than the %d-byte header",
                          what, msg ? len : 0, SA_HEADER);
  if (memcmp(msg, MAGIC, 4) != 0)
    return fedc_error_set(FEDC_EFORMAT, "secagg %s: not a fedc secure-aggregation message", what);
  if (msg[4] != type)
    return fedc_error_set(FEDC_EFORMAT, "secagg %s: message type %d, expected %d", what,
                          (int)msg[4], type);
  if (msg[5] || msg[6] || msg[7])
    return fedc_error_set(FEDC_EFORMAT, "secagg %s: reserved header bytes are not zero", what);
  *round = (int32_t)fedc__sa_load32(msg + 8);
  *id = fedc__sa_load32(msg + 12);
  r->p += SA_HEADER;
  r->left -= SA_HEADER;
  return 0;
}

const uint8_t *fedc__sa_bytes(sa_reader *r, size_t n) {
  if (r->bad || r->left < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}

uint32_t fedc__sa_u32(sa_reader *r) {
  const uint8_t *p = fedc__sa_bytes(r, 4);
  return p ? fedc__sa_load32(p) : 0;
}

uint64_t fedc__sa_u64(sa_reader *r) {
  const uint8_t *p = fedc__sa_bytes(r, 8);
  return p ? fedc__sa_load64(p) : 0;
}

uint8_t fedc__sa_u8(sa_reader *r) {
  const uint8_t *p = fedc__sa_bytes(r, 1);
  return p ? p[0] : 0;
}

int fedc__sa_read_end(sa_reader *r) {
  if (r->bad) return fedc_error_set(FEDC_EFORMAT, "secagg %s: truncated", r->what);
  if (r->left)
    return fedc_error_set(FEDC_EFORMAT, "secagg %s: %zu bytes after the end", r->what, r->left);
  return 0;
}

/* ---- writing ------------------------------------------------------------------ */

int fedc__sa_writer_init(sa_writer *w, size_t cap, int type, int32_t round, uint32_t id) {
  w->buf = fedc_malloc(cap);
  w->len = 0;
  w->cap = cap;
  if (w->buf == NULL) return fedc_error_set(FEDC_ENOMEM, "secagg: out of memory");
  fedc__sa_put_bytes(w, MAGIC, 4);
  fedc__sa_put_u8(w, (uint8_t)type);
  fedc__sa_put_u8(w, 0);
  fedc__sa_put_u8(w, 0);
  fedc__sa_put_u8(w, 0);
  fedc__sa_put_u32(w, (uint32_t)round);
  fedc__sa_put_u32(w, id);
  return 0;
}

void fedc__sa_put_bytes(sa_writer *w, const void *p, size_t n) {
  if (w->len + n > w->cap) return; /* sizes are computed exactly: cannot happen */
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

void fedc__sa_put_u32(sa_writer *w, uint32_t v) {
  uint8_t b[4];
  fedc__sa_store32(b, v);
  fedc__sa_put_bytes(w, b, 4);
}

void fedc__sa_put_u64(sa_writer *w, uint64_t v) {
  uint8_t b[8];
  fedc__sa_store64(b, v);
  fedc__sa_put_bytes(w, b, 8);
}

void fedc__sa_put_u8(sa_writer *w, uint8_t v) { fedc__sa_put_bytes(w, &v, 1); }

int32_t fedc__sa_find(const uint32_t *ids, int32_t n, uint32_t id) {
  int32_t lo = 0, hi = n;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (ids[mid] == id) return mid;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

int32_t fedc__sa_find_index(const int32_t *v, int32_t n, int32_t x) {
  int32_t lo = 0, hi = n;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (v[mid] == x) return mid;
    if (v[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

const char *fedc_secagg_phase_name(fedc_secagg_phase p) {
  switch (p) {
  case FEDC_SECAGG_ADVERTISE: return "advertise";
  case FEDC_SECAGG_SHARES: return "shares";
  case FEDC_SECAGG_MASKED: return "masked";
  case FEDC_SECAGG_UNMASK: return "unmask";
  case FEDC_SECAGG_DONE: return "done";
  case FEDC_SECAGG_FAILED: return "failed";
  }
  return "unknown";
}

/* ---- the graph ------------------------------------------------------------------ */

int32_t fedc_secagg_degree(int32_t n_parties, int32_t neighbors) {
  if (n_parties < 2) return 0;
  if (neighbors <= 0) return n_parties - 1;
  int64_t d = 2 * (((int64_t)neighbors + 1) / 2);
  return d >= n_parties - 1 ? n_parties - 1 : (int32_t)d;
}

int32_t fedc_secagg_threshold(int32_t degree, double fraction) {
  if (degree < 1) return 1;
  double want = ceil(fraction * degree - 1e-9);
  int32_t t = want < 1 ? 1 : want > degree ? degree : (int32_t)want;
  int32_t majority = degree / 2 + 1;
  if (t < majority) t = majority;
  return t > degree ? degree : t;
}

#define GRAPH_TAG 0x7361677261706855ULL /* "sagraphU" */

/* The ring order of Bell et al.'s random Harary graph: a seeded shuffle,
 * named by the party count as well, so that each set of parties gets its
 * own graph. */
void fedc__sa_ring(uint64_t seed, int32_t n, int32_t *perm, int32_t *pos) {
  for (int32_t i = 0; i < n; i++) perm[i] = i;
  fedc_rng r;
  fedc_rng_derive(&r, seed, GRAPH_TAG, (uint64_t)n, 0);
  fedc_rng_shuffle_i32(&r, perm, n);
  for (int32_t i = 0; i < n; i++) pos[perm[i]] = i;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

int32_t fedc__sa_neighbours(const int32_t *perm, const int32_t *pos, int32_t n,
                            int32_t neighbors, int32_t i, int32_t *nbr) {
  int32_t deg = fedc_secagg_degree(n, neighbors);
  if (deg == n - 1) {
    for (int32_t j = 0, k = 0; j < n; j++)
      if (j != i) nbr[k++] = j;
    return deg;
  }
  int32_t h = deg / 2, p = pos[i];
  for (int32_t d = 1; d <= h; d++) {
    nbr[2 * (d - 1)] = perm[(p + d) % n];
    nbr[2 * (d - 1) + 1] = perm[(p - d + n) % n];
  }
  qsort(nbr, (size_t)deg, sizeof *nbr, cmp_i32);
  return deg;
}

/* ---- quantization -------------------------------------------------------------- */

int fedc_secagg_frac_bits(uint64_t total_samples, double clip, int32_t *frac_bits) {
  if (total_samples == 0 || !(clip > 0) || !isfinite(clip))
    return fedc_error_set(FEDC_EINVAL, "secagg: quantization needs samples >= 1 and clip > 0");
  for (int32_t f = 30; f >= 0; f--) {
    if ((double)total_samples * (ldexp(clip, f) + 0.5) < 2147483648.0) {
      *frac_bits = f;
      return 0;
    }
  }
  return fedc_error_set(FEDC_ERANGE,
                        "secagg: %llu samples with clip %g overflow 32-bit fixed point",
                        (unsigned long long)total_samples, clip);
}

int fedc_secagg_quantize(const float *x, size_t n, double clip, int32_t frac_bits,
                         uint64_t n_samples, uint32_t *out, size_t *clipped) {
  if (frac_bits < 0 || frac_bits > 30 || !(clip > 0))
    return fedc_error_set(FEDC_EINVAL, "secagg: quantize: bad frac_bits or clip");
  size_t cut = 0;
  const double scale = ldexp(1.0, frac_bits);
  const uint32_t m = (uint32_t)n_samples; /* mod 2^32 is all that matters */
  for (size_t i = 0; i < n; i++) {
    double v = (double)x[i];
    if (isnan(v)) return fedc_error_set(FEDC_ENONFINITE, "secagg: coordinate %zu is NaN", i);
    if (v > clip) v = clip, cut++;
    else if (v < -clip) v = -clip, cut++;
    int64_t q = (int64_t)nearbyint(v * scale);
    out[i] = (uint32_t)q * m;
  }
  if (clipped) *clipped = cut;
  return 0;
}

void fedc_secagg_dequantize(const uint32_t *sum, size_t n, int32_t frac_bits, uint64_t total,
                            float *out) {
  const double scale = ldexp(1.0, -frac_bits) / (double)(total ? total : 1);
  for (size_t i = 0; i < n; i++) out[i] = (float)((double)(int32_t)sum[i] * scale);
}
