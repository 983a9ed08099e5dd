/*
 * rng.c - xoshiro256** with splitmix64 seeding, and the distributions fedc
 * needs (uniform, normal, gamma for Dirichlet partitions).
 */
#include "base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void fedc_rng_seed(fedc_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void fedc_rng_derive(fedc_rng *r, uint64_t seed, uint64_t a, uint64_t b,
                     uint64_t c) {
  uint64_t x = seed;
  uint64_t h = splitmix64(&x);
  x = h ^ a;
  h = splitmix64(&x);
  x = h ^ b;
  h = splitmix64(&x);
  x = h ^ c;
  h = splitmix64(&x);
  fedc_rng_seed(r, h);
}

uint64_t fedc_rng_u64(fedc_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double fedc_rng_uniform(fedc_rng *r) {
  return (double)(fedc_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Lemire's nearly divisionless method (2019). */
uint64_t fedc_rng_below(fedc_rng *r, uint64_t n) {
  unsigned __int128 m = (unsigned __int128)fedc_rng_u64(r) * n;
  uint64_t lo = (uint64_t)m;
  if (lo < n) {
    uint64_t t = (0 - n) % n;
    while (lo < t) {
      m = (unsigned __int128)fedc_rng_u64(r) * n;
      lo = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

double fedc_rng_normal(fedc_rng *r) {
  double u, v, s;
  do {
    u = 2.0 * fedc_rng_uniform(r) - 1.0;
    v = 2.0 * fedc_rng_uniform(r) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  return u * sqrt(-2.0 * log(s) / s);
}

double fedc_rng_gamma(fedc_rng *r, double shape) {
  if (shape < 1.0) {
    double u;
    do u = fedc_rng_uniform(r); while (u == 0.0);
    return fedc_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = fedc_rng_normal(r);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    double u = fedc_rng_uniform(r);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

void fedc_rng_shuffle_i64(fedc_rng *r, int64_t *v, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)fedc_rng_below(r, (uint64_t)i + 1);
    int64_t t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

void fedc_rng_shuffle_i32(fedc_rng *r, int32_t *v, int32_t n) {
  for (int32_t i = n - 1; i > 0; i--) {
    int32_t j = (int32_t)fedc_rng_below(r, (uint64_t)i + 1);
    int32_t t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}
