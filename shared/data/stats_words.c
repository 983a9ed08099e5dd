/*
 * stats_words.c - a site's statistics as a vector of 32-bit words, the form
 * secure aggregation sums (privacy/secagg.h masks words mod 2^32). Every
 * integer of the statistics (rows, counts, missing counts, the 128-bit
 * fixed-point sums and sums of squares, label counts) is split, as a
 * 128-bit two's complement integer, into eight 16-bit limbs, one per word.
 * A word of one site is below 2^16, so the sum of up to 65,535 sites'
 * words is below 2^32 and never wraps; recombining the summed limbs with
 * their carries gives the sum of the integers mod 2^128, which is the
 * exact sum (the 128-bit sums never overflow, schema.h). Minima and maxima
 * cannot be summed and are not encoded (docs/data.md says what the
 * federation gets instead).
 */
#include <string.h>

#include "base/error.h"
#include "data/schema.h"

#define LIMB_MASK 0xffffu
#define MAX_COUNT ((__int128)1 << 53)

size_t fedc_stats_n_words(int32_t d, int32_t n_classes) {
  return (size_t)FEDC_STATS_LIMBS * (1 + 4 * (size_t)d + (size_t)n_classes);
}

void fedc_i128_to_limbs(__int128 v, uint32_t *w) {
  unsigned __int128 u = (unsigned __int128)v;
  for (int k = 0; k < FEDC_STATS_LIMBS; k++) w[k] = (uint32_t)(u >> (16 * k)) & LIMB_MASK;
}

__int128 fedc_i128_from_limbs(const uint32_t *w) {
  unsigned __int128 u = 0;
  for (int k = 0; k < FEDC_STATS_LIMBS; k++) u += (unsigned __int128)w[k] << (16 * k);
  return (__int128)u;
}

void fedc_stats_to_words(const fedc_stats *st, uint32_t *w) {
  fedc_i128_to_limbs(st->rows, w);
  w += FEDC_STATS_LIMBS;
  for (int32_t j = 0; j < st->d; j++) {
    fedc_i128_to_limbs(st->count[j], w);
    fedc_i128_to_limbs(st->missing[j], w + FEDC_STATS_LIMBS);
    fedc_i128_to_limbs(st->sum[j], w + 2 * FEDC_STATS_LIMBS);
    fedc_i128_to_limbs(st->sumsq[j], w + 3 * FEDC_STATS_LIMBS);
    w += 4 * FEDC_STATS_LIMBS;
  }
  for (int32_t k = 0; k < st->n_classes; k++, w += FEDC_STATS_LIMBS)
    fedc_i128_to_limbs(st->label_count[k], w);
}

/* A count read back: 0 .. 2^53 (what JSON carries exactly), else -1;
 * with clamp a negative count (a sum of noised counts) reads as 0. */
static int count_of(const uint32_t *w, int64_t *out, int clamp) {
  __int128 v = fedc_i128_from_limbs(w);
  if (clamp && v < 0) v = 0;
  if (v < 0 || v > MAX_COUNT) return -1;
  *out = (int64_t)v;
  return 0;
}

static int from_words(const uint32_t *w, int32_t d, int32_t n_classes, fedc_stats *out,
                      int clamp) {
  int rc = fedc_stats_init(out, d, n_classes);
  if (rc != 0) return rc;
  int bad = count_of(w, &out->rows, clamp);
  w += FEDC_STATS_LIMBS;
  for (int32_t j = 0; !bad && j < d; j++) {
    bad = count_of(w, &out->count[j], clamp) ||
          count_of(w + FEDC_STATS_LIMBS, &out->missing[j], clamp);
    out->sum[j] = fedc_i128_from_limbs(w + 2 * FEDC_STATS_LIMBS);
    out->sumsq[j] = fedc_i128_from_limbs(w + 3 * FEDC_STATS_LIMBS);
    if (clamp && out->sumsq[j] < 0) out->sumsq[j] = 0;
    bad = bad || out->sumsq[j] < 0;
    w += 4 * FEDC_STATS_LIMBS;
  }
  for (int32_t k = 0; !bad && k < n_classes; k++, w += FEDC_STATS_LIMBS)
    bad = count_of(w, &out->label_count[k], clamp);
  if (bad) {
    fedc_stats_free(out);
    return fedc_error_set(FEDC_EFORMAT, "statistics from words: a count or a sum of squares "
                          "out of range (not a sum of sites' statistics)");
  }
  return 0;
}

int fedc_stats_from_words(const uint32_t *w, int32_t d, int32_t n_classes, fedc_stats *out) {
  return from_words(w, d, n_classes, out, 0);
}

/* Noised statistics (DP, docs/data.md): a sum of noised counts or sums of
 * squares can be negative; clamping it to 0 is post-processing of the
 * release, while refusing it (and opening another session) would release
 * the statistics again with fresh noise that the ledger does not count. */
int fedc_stats_from_words_noised(const uint32_t *w, int32_t d, int32_t n_classes,
                                 fedc_stats *out) {
  return from_words(w, d, n_classes, out, 1);
}
