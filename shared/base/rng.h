/*
 * rng.h - seeded pseudo-random numbers.
 *
 * xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64. Every
 * random decision in fedc draws from a stream derived from the job seed and
 * named by integers (round, client, purpose) with fedc_rng_derive(), so that
 * the same seed gives the same run whatever the thread count or the order in
 * which work finishes.
 */
#ifndef FEDC_RNG_H
#define FEDC_RNG_H

#include <stdint.h>

typedef struct fedc_rng {
  uint64_t s[4];
} fedc_rng;

void fedc_rng_seed(fedc_rng *r, uint64_t seed);
/* A stream for (seed, a, b, c): independent of every other triple. */
void fedc_rng_derive(fedc_rng *r, uint64_t seed, uint64_t a, uint64_t b,
                     uint64_t c);
uint64_t fedc_rng_u64(fedc_rng *r);
/* Uniform in [0, 1). */
double fedc_rng_uniform(fedc_rng *r);
/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint64_t fedc_rng_below(fedc_rng *r, uint64_t n);
/* Standard normal (Marsaglia polar method). */
double fedc_rng_normal(fedc_rng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang 2000; shape < 1 boosted
 * with U^(1/shape)). */
double fedc_rng_gamma(fedc_rng *r, double shape);
/* Fisher-Yates shuffle of n int64 values. */
void fedc_rng_shuffle_i64(fedc_rng *r, int64_t *v, int64_t n);
void fedc_rng_shuffle_i32(fedc_rng *r, int32_t *v, int32_t n);

#endif
