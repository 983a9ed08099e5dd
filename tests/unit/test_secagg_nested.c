/*
 * test_secagg_nested.c - secure aggregation in two levels, as relays run it
 * (docs/relays.md, "Secure aggregation"), every party in memory: two relay
 * sessions quantize with the flat round's fractional bits
 * (fedc_secagg_server_set_quantization), and the root's session over the
 * two relays' unmasked sums (masked as they are, masked_words) ends with
 * exactly the flat session's words and the bit-identical average; the same
 * when a site drops after sharing its keys inside a relay's session (the
 * relay's weight is then its survivors' total, add_masked_weighted). And
 * what the two new calls refuse: a quantization after KEYS or one whose sum
 * could wrap, a weight above what the party advertised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "privacy/secagg.h"

#define LEN 257
#define MAXP 8

typedef struct sp {
  uint32_t id;
  uint64_t n;        /* advertised */
  uint64_t weight;   /* 0: as advertised; else add_masked_weighted */
  const float *x;    /* a site's delta (masked_input) ... */
  const uint32_t *w; /* ... or a relay's sum (masked_words) */
  int drop;          /* drops after sharing its keys */
} sp;

/* One secure session over the parties: its sum words, average and f.
 * fixed_f >= 0: the relay's session, quantized with the parent's f. */
static void run_session(sp *ps, int np, int32_t fixed_f, uint32_t *sum, float *avg,
                        int32_t *f_out, fedc_secagg_result *res) {
  uint32_t ids[MAXP] = {0};
  for (int i = 0; i < np; i++) ids[i] = ps[i].id;
  fedc_secagg_params prm = {.round = 5, .n = LEN, .neighbors = 0, .threshold = 0.6,
                            .clip = 4.0, .graph_seed = 99};
  fedc_secagg_server *s = NULL;
  fedc_secagg_client *c[MAXP] = {0};
  assert_int_equal(fedc_secagg_server_new(&prm, ids, np, &s), 0);
  for (int i = 0; i < np; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_new(5, ps[i].id, ps[i].n, LEN, &c[i]), 0);
    assert_int_equal(fedc_secagg_client_advertise(c[i], &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_advertise(s, ps[i].id, m, ml), 0);
    fedc_free(m);
  }
  if (fixed_f >= 0) assert_int_equal(fedc_secagg_server_set_quantization(s, fixed_f, 4.0), 0);
  assert_int_equal(fedc_secagg_server_close_advertise(s), 0);
  *f_out = fedc_secagg_server_frac_bits(s);
  const uint8_t *keys;
  size_t kl;
  assert_int_equal(fedc_secagg_server_keys(s, &keys, &kl), 0);
  for (int i = 0; i < np; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_share(c[i], keys, kl, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_shares(s, ps[i].id, m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_close_shares(s), 0);
  uint32_t *y = malloc(LEN * sizeof *y);
  for (int i = 0; i < np; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_server_myshares(s, ps[i].id, &m, &ml), 0);
    assert_int_equal(ps[i].x ? fedc_secagg_client_masked_input(c[i], m, ml, ps[i].x, LEN, y, NULL)
                             : fedc_secagg_client_masked_words(c[i], m, ml, ps[i].w, LEN, y),
                     0);
    fedc_free(m);
    if (ps[i].drop) continue;
    assert_int_equal(ps[i].weight ? fedc_secagg_server_add_masked_weighted(s, ps[i].id, y, LEN,
                                                                           ps[i].weight)
                                  : fedc_secagg_server_add_masked(s, ps[i].id, y, LEN),
                     0);
  }
  free(y);
  assert_int_equal(fedc_secagg_server_close_masked(s), 0);
  const uint8_t *sv;
  size_t svl;
  assert_int_equal(fedc_secagg_server_survivors(s, &sv, &svl), 0);
  for (int i = 0; i < np; i++) {
    if (ps[i].drop) continue;
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_unmask(c[i], sv, svl, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_unmask(s, ps[i].id, m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_finish(s, avg, avg ? LEN : 0, res), 0);
  memcpy(sum, fedc_secagg_server_sum(s), LEN * sizeof *sum);
  for (int i = 0; i < np; i++) fedc_secagg_client_free(c[i]);
  fedc_secagg_server_free(s);
}

typedef struct sites {
  int n;
  float x[MAXP][LEN];
  uint64_t count[MAXP];
} sites;

static void make_sites(sites *st, int n, uint64_t seed) {
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  st->n = n;
  for (int i = 0; i < n; i++) {
    st->count[i] = 150 + 91 * (uint64_t)i;
    for (int k = 0; k < LEN; k++) st->x[i][k] = (float)(fedc_rng_normal(&r) * 0.05);
  }
}

/*
 * Flat: sites 0..n-1 in one session. Nested: sites 0..split-1 under relay
 * A, the rest under relay B, each relay session at the flat f, then the
 * root over A and B. `dropper` (or -1) drops after sharing its keys in
 * both; the words and the average must be identical.
 */
static void flat_equals_nested(int n, int split, int dropper) {
  sites st;
  make_sites(&st, n, 11 + (uint64_t)n);
  sp flat[MAXP];
  for (int i = 0; i < n; i++)
    flat[i] = (sp){.id = (uint32_t)i + 1, .n = st.count[i], .x = st.x[i], .drop = i == dropper};
  uint32_t sum_flat[LEN], sum_a[LEN], sum_b[LEN], sum_root[LEN];
  float avg_flat[LEN], avg_root[LEN];
  int32_t f_flat, f_a, f_b, f_root;
  fedc_secagg_result rf, ra, rb, rr;
  run_session(flat, n, -1, sum_flat, avg_flat, &f_flat, &rf);

  /* each relay's own advertised total would give a larger f: it must not be used */
  uint64_t n_a = 0, n_b = 0;
  for (int i = 0; i < n; i++) *(i < split ? &n_a : &n_b) += st.count[i];
  int32_t f_own;
  assert_int_equal(fedc_secagg_frac_bits(n_a, 4.0, &f_own), 0);
  assert_true(f_own > f_flat);

  run_session(flat, split, f_flat, sum_a, NULL, &f_a, &ra);
  run_session(flat + split, n - split, f_flat, sum_b, NULL, &f_b, &rb);
  assert_int_equal(f_a, f_flat);
  assert_int_equal(f_b, f_flat);
  sp root[2] = {{.id = 40, .n = n_a, .weight = ra.total_samples, .w = sum_a},
                {.id = 41, .n = n_b, .weight = rb.total_samples, .w = sum_b}};
  run_session(root, 2, -1, sum_root, avg_root, &f_root, &rr);
  assert_int_equal(f_root, f_flat);
  assert_int_equal(rr.total_samples, rf.total_samples);
  assert_memory_equal(sum_root, sum_flat, sizeof sum_flat);
  assert_memory_equal(avg_root, avg_flat, sizeof avg_flat);
  if (dropper >= 0) {
    assert_int_equal(rf.dropped, 1);
    assert_int_equal(ra.dropped + rb.dropped, 1);
  }
}

static void nested_equals_flat(void **st) {
  (void)st;
  flat_equals_nested(6, 3, -1);
}

static void nested_with_a_dropout(void **st) {
  (void)st;
  flat_equals_nested(7, 4, 3); /* 4 sites under A, its last drops after sharing */
}

static void refusals(void **st) {
  (void)st;
  uint32_t ids[3] = {1, 2, 3};
  fedc_secagg_params prm = {.round = 2, .n = LEN, .threshold = 0.6, .clip = 4.0, .graph_seed = 1};
  fedc_secagg_server *s = NULL;
  fedc_secagg_client *c[3] = {0};
  assert_int_equal(fedc_secagg_server_new(&prm, ids, 3, &s), 0);
  assert_int_equal(fedc_secagg_server_set_quantization(s, 31, 4.0), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_server_set_quantization(s, 10, 0.0), FEDC_EINVAL);
  for (int i = 0; i < 3; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_new(2, ids[i], 100000, LEN, &c[i]), 0);
    assert_int_equal(fedc_secagg_client_advertise(c[i], &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_advertise(s, ids[i], m, ml), 0);
    fedc_free(m);
  }
  /* 300000 samples: f = 30 would wrap */
  assert_int_equal(fedc_secagg_server_set_quantization(s, 30, 4.0), 0);
  assert_int_equal(fedc_secagg_server_close_advertise(s), FEDC_ERANGE);
  assert_int_equal(fedc_secagg_server_phase(s), FEDC_SECAGG_FAILED);
  fedc_secagg_server_free(s);
  for (int i = 0; i < 3; i++) fedc_secagg_client_free(c[i]);

  /* after KEYS: too late; a weight above the advertised count */
  assert_int_equal(fedc_secagg_server_new(&prm, ids, 3, &s), 0);
  for (int i = 0; i < 3; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_new(2, ids[i], 100, LEN, &c[i]), 0);
    assert_int_equal(fedc_secagg_client_advertise(c[i], &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_advertise(s, ids[i], m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_close_advertise(s), 0);
  assert_int_equal(fedc_secagg_server_set_quantization(s, 10, 4.0), FEDC_ESTATE);
  const uint8_t *keys;
  size_t kl;
  assert_int_equal(fedc_secagg_server_keys(s, &keys, &kl), 0);
  for (int i = 0; i < 3; i++) {
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_share(c[i], keys, kl, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_shares(s, ids[i], m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_close_shares(s), 0);
  uint32_t y[LEN] = {0};
  assert_int_equal(fedc_secagg_server_add_masked_weighted(s, 1, y, LEN, 101), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_server_add_masked_weighted(s, 1, y, LEN, 0), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_server_count(s, FEDC_SECAGG_MASKED), 0);
  assert_int_equal(fedc_secagg_server_add_masked_weighted(s, 1, y, LEN, 60), 0);
  assert_int_equal(fedc_secagg_server_party_samples(s, 1), 60);
  assert_int_equal(fedc_secagg_server_add_masked_weighted(s, 1, y, LEN, 60), FEDC_EDUPLICATE);
  fedc_secagg_server_free(s);
  for (int i = 0; i < 3; i++) fedc_secagg_client_free(c[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nested_equals_flat),
      cmocka_unit_test(nested_with_a_dropout),
      cmocka_unit_test(refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
