/*
 * backoff.c - the client's retry schedule (client.h): full-jitter
 * exponential backoff, seeded so that tests can replay it.
 */
#include <math.h>

#include "client.h"


/*
 * Full jitter, as in Marc Brooker's "Exponential Backoff And Jitter" (AWS
 * Architecture Blog, 2015): sleep = uniform(0, min(cap, base * 2^attempt)).
 * Of the schemes compared there it spreads a crowd of clients best, so that
 * a coordinator coming back after a restart is not hit by all of them at
 * the same instant, and does the least total work.
 */
void fedc_client_backoff_init(fedc_client_backoff *b, double base_s, double max_s, uint64_t seed) {
  b->base_s = base_s;
  b->max_s = max_s;
  b->attempt = 0;
  fedc_rng_seed(&b->rng, seed);
}

double fedc_client_backoff_cap(const fedc_client_backoff *b) {
  /* ldexp saturates to inf for huge attempts, which min() then caps */
  double cap = ldexp(b->base_s, b->attempt);
  return cap < b->max_s ? cap : b->max_s;
}

double fedc_client_backoff_next(fedc_client_backoff *b) {
  double d = fedc_rng_uniform(&b->rng) * fedc_client_backoff_cap(b);
  if (b->attempt < 1024) b->attempt++;
  return d;
}

void fedc_client_backoff_reset(fedc_client_backoff *b) {
  b->attempt = 0;
}

