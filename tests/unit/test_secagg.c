/*
 * test_secagg.c - secure aggregation (shared/secagg.h), every party in
 * memory: Shamir shares give the secret back at the threshold and not
 * below it; the masks cancel, so the server's sum equals the plain sum of
 * the quantized inputs exactly (mod 2^32) with no dropouts, with up to
 * n - t clients dropping after they shared, and on a sparse SecAgg+ graph;
 * what one client sends is not its input; the sample-weighted average is
 * within the documented quantization error of the float formula; broken,
 * repeated and out-of-phase messages are refused without changing state;
 * and nothing leaks, also when allocations fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "round/engine.h"
#include "base/error.h"
#include "base/rng.h"
#include "wire/safetensors.h"
#include "privacy/secagg.h"
#include "privacy/secagg_internal.h"

#define MAXP 24

static int64_t live_at_start;

static int setup(void **st) {
  (void)st;
  live_at_start = fedc_alloc_live();
  return 0;
}

static int teardown(void **st) {
  (void)st;
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

static int test_rand(void *ctx, unsigned char *buf, size_t len) {
  fedc_rng *r = ctx;
  for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)fedc_rng_u64(r);
  return 0;
}

/* ---- Shamir ------------------------------------------------------------------ */

static void make_secret(fedc_rng *r, uint8_t s[32]) {
  for (int i = 0; i < 32; i++) s[i] = (uint8_t)fedc_rng_u64(r);
}

static void shamir_at_threshold(void **st) {
  (void)st;
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  for (int32_t t = 1; t <= 9; t++) {
    uint8_t secret[32], back[32];
    make_secret(&r, secret);
    secret[31] = 0xff; /* the last chunk's top byte set too */
    uint64_t xs[9];
    for (int i = 0; i < 9; i++) xs[i] = 1000 + 17 * (uint64_t)i; /* ids + 1 */
    fedc_shamir_share sh[9];
    assert_int_equal(fedc_shamir_split(secret, t, xs, 9, test_rand, &r, sh), 0);
    /* any t of them: the first t, the last t, and t spread out */
    assert_int_equal(fedc_shamir_combine(sh, t, t, back), 0);
    assert_memory_equal(back, secret, 32);
    assert_int_equal(fedc_shamir_combine(sh + 9 - t, t, t, back), 0);
    assert_memory_equal(back, secret, 32);
    fedc_shamir_share pick[9];
    for (int32_t i = 0; i < t; i++) pick[i] = sh[(2 * i) % 9];
    assert_int_equal(fedc_shamir_combine(pick, t, t, back), 0);
    assert_memory_equal(back, secret, 32);
    /* all nine: the extra ones must agree */
    assert_int_equal(fedc_shamir_combine(sh, 9, t, back), 0);
    assert_memory_equal(back, secret, 32);
  }
}

static void shamir_below_threshold(void **st) {
  (void)st;
  fedc_rng r;
  fedc_rng_seed(&r, 6);
  int wrong = 0, detected = 0;
  for (int trial = 0; trial < 200; trial++) {
    uint8_t secret[32], back[32];
    make_secret(&r, secret);
    uint64_t xs[7] = {2, 3, 5, 8, 13, 21, 34};
    fedc_shamir_share sh[7];
    int32_t t = 4;
    assert_int_equal(fedc_shamir_split(secret, t, xs, 7, test_rand, &r, sh), 0);
    /* t - 1 shares with the right threshold: refused */
    assert_int_equal(fedc_shamir_combine(sh, t - 1, t, back), FEDC_EQUORUM);
    /* t - 1 shares read as if the threshold were t - 1: never the secret */
    int rc = fedc_shamir_combine(sh + trial % 4, t - 1, t - 1, back);
    if (rc == FEDC_ECHECKSUM) detected++;
    else if (rc == 0 && memcmp(back, secret, 32) != 0) wrong++;
    else fail_msg("t - 1 shares gave the secret back");
  }
  print_message("    below the threshold: %d detected, %d wrong secrets\n", detected, wrong);
  assert_int_equal(detected + wrong, 200);
  assert_true(detected > 190); /* a random chunk fits 7 bytes with p ~ 2^-5 */

  /* a share that disagrees with the others is detected */
  uint8_t secret[32], back[32];
  make_secret(&r, secret);
  uint64_t xs[5] = {1, 2, 3, 4, 5};
  fedc_shamir_share sh[5];
  assert_int_equal(fedc_shamir_split(secret, 3, xs, 5, test_rand, &r, sh), 0);
  sh[4].y[2] ^= 1;
  assert_int_equal(fedc_shamir_combine(sh, 5, 3, back), FEDC_ECHECKSUM);
  /* bad points */
  sh[1].x = sh[0].x;
  assert_int_equal(fedc_shamir_combine(sh, 3, 3, back), FEDC_EINVAL);
  uint64_t dup[3] = {4, 4, 5}, zero[3] = {0, 1, 2};
  assert_int_equal(fedc_shamir_split(secret, 2, dup, 3, test_rand, &r, sh), FEDC_EINVAL);
  assert_int_equal(fedc_shamir_split(secret, 2, zero, 3, test_rand, &r, sh), FEDC_EINVAL);
  assert_int_equal(fedc_shamir_split(secret, 4, xs, 3, test_rand, &r, sh), FEDC_EINVAL);
}

/* ---- the PRG and the helpers -------------------------------------------------- */

static void prg_and_helpers(void **st) {
  (void)st;
  uint8_t seed[32] = {1, 2, 3}, other[32] = {1, 2, 4};
  uint32_t a[1001] = {0}, b[1001] = {0};
  fedc_secagg_prg_add(seed, +1, a, 1001);
  fedc_secagg_prg_add(seed, +1, b, 1001);
  assert_memory_equal(a, b, sizeof a);
  fedc_secagg_prg_add(other, +1, b, 1001);
  int same = 0;
  for (int i = 0; i < 1001; i++) same += a[i] == b[i] - a[i];
  assert_true(same < 3);
  fedc_secagg_prg_add(other, -1, b, 1001);
  fedc_secagg_prg_add(seed, -1, b, 1001);
  for (int i = 0; i < 1001; i++) assert_int_equal(b[i], 0);

  assert_int_equal(fedc_secagg_degree(10, 0), 9);
  assert_int_equal(fedc_secagg_degree(10, 4), 4);
  assert_int_equal(fedc_secagg_degree(10, 5), 6);
  assert_int_equal(fedc_secagg_degree(10, 8), 8);
  assert_int_equal(fedc_secagg_degree(10, 9), 9);
  assert_int_equal(fedc_secagg_threshold(9, 0.6), 6);
  assert_int_equal(fedc_secagg_threshold(9, 0.1), 5); /* a majority at least */
  assert_int_equal(fedc_secagg_threshold(9, 1.0), 9);
  assert_int_equal(fedc_secagg_threshold(1, 0.5), 1);
  int32_t f;
  assert_int_equal(fedc_secagg_frac_bits(3000, 4.0, &f), 0);
  assert_int_equal(f, 17);
  assert_int_equal(fedc_secagg_frac_bits(200000, 4.0, &f), 0);
  assert_int_equal(f, 11);
  assert_int_equal(fedc_secagg_frac_bits((uint64_t)1 << 40, 4.0, &f), FEDC_ERANGE);
  float x[4] = {1.5f, -5.0f, 0.25f, NAN};
  uint32_t q[4];
  size_t clipped;
  assert_int_equal(fedc_secagg_quantize(x, 3, 4.0, 2, 3, q, &clipped), 0);
  assert_int_equal(clipped, 1);
  assert_int_equal((int32_t)q[0], 18);
  assert_int_equal((int32_t)q[1], -48);
  assert_int_equal((int32_t)q[2], 3);
  assert_int_equal(fedc_secagg_quantize(x, 4, 4.0, 2, 3, q, NULL), FEDC_ENONFINITE);
}

/* ---- the protocol in memory ----------------------------------------------------- */

/* Which step a party stops answering before. */
enum { ALL = 0, NO_ADVERTISE, NO_SHARES, NO_MASKED, NO_UNMASK };
/* What a party reveals wrong: nothing, one word of its first share, every
 * share. */
enum { LIE_NONE = 0, LIE_ONE_WORD, LIE_ALL };

/* Alter revealed shares in an UNMASK message as a lying party would: one
 * share word moved by one (still a field element, so the message is well
 * formed), in the first entry or in every entry. */
static void tell_lies(uint8_t *m, size_t ml, int lie) {
  uint32_t count = fedc__sa_load32(m + SA_HEADER);
  assert_int_equal(ml, SA_HEADER + 4 + (size_t)count * SA_UNMASK_ENTRY);
  for (uint32_t k = 0; k < (lie == LIE_ALL ? count : 1); k++) {
    uint8_t *y = m + SA_HEADER + 4 + (size_t)k * SA_UNMASK_ENTRY + 8 + 8 * 2;
    fedc__sa_store64(y, (fedc__sa_load64(y) + 1) % FEDC_SHAMIR_PRIME);
  }
}

typedef struct party {
  uint32_t id;
  uint64_t n;
  float *x;
  int drop;
  int lie; /* LIE_*: what it reveals wrong in UNMASK */
  fedc_secagg_client *c;
  uint32_t *y; /* what it sent */
} party;

typedef struct world {
  int np;
  size_t len;
  party p[MAXP];
  fedc_secagg_params prm;
  fedc_secagg_server *s;
  fedc_secagg_result res;
  float *avg;
  uint32_t require; /* fedc_secagg_client_require for every party */
} world;

static void world_make(world *w, int np, size_t len, int32_t neighbors, const uint64_t *counts,
                       uint64_t seed) {
  memset(w, 0, sizeof *w);
  w->np = np;
  w->len = len;
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  for (int i = 0; i < np; i++) {
    party *q = &w->p[i];
    q->id = 3 + 7 * (uint32_t)i + (uint32_t)(i % 3); /* ids need not be dense */
    q->n = counts ? counts[i] : 100 + 37 * (uint64_t)i;
    q->x = malloc(len * sizeof *q->x);
    q->y = malloc(len * sizeof *q->y);
    for (size_t k = 0; k < len; k++) q->x[k] = (float)(fedc_rng_normal(&r) * 0.3);
  }
  w->avg = malloc(len * sizeof *w->avg);
  w->prm = (fedc_secagg_params){.round = 4, .n = len, .neighbors = neighbors,
                                .threshold = 0.6, .clip = 4.0, .graph_seed = seed * 31 + 1};
}

static void world_free(world *w) {
  for (int i = 0; i < w->np; i++) {
    fedc_secagg_client_free(w->p[i].c);
    free(w->p[i].x);
    free(w->p[i].y);
  }
  fedc_secagg_server_free(w->s);
  free(w->avg);
}

/* Runs every step; returns the first error of the server (or 0). */
static int world_run(world *w) {
  uint32_t ids[MAXP];
  for (int i = 0; i < w->np; i++) ids[i] = w->p[i].id;
  int rc = fedc_secagg_server_new(&w->prm, ids, w->np, &w->s);
  if (rc != 0) return rc;
  for (int i = 0; i < w->np; i++) {
    party *q = &w->p[i];
    if (q->drop == NO_ADVERTISE) continue;
    assert_int_equal(fedc_secagg_client_new(w->prm.round, q->id, q->n, w->len, &q->c), 0);
    fedc_secagg_client_require(q->c, w->require);
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_advertise(q->c, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_advertise(w->s, q->id, m, ml), 0);
    fedc_free(m);
  }
  if ((rc = fedc_secagg_server_close_advertise(w->s)) != 0) return rc;
  const uint8_t *keys;
  size_t kl;
  assert_int_equal(fedc_secagg_server_keys(w->s, &keys, &kl), 0);
  for (int i = 0; i < w->np; i++) {
    party *q = &w->p[i];
    if (q->drop == NO_ADVERTISE) continue;
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_client_share(q->c, keys, kl, &m, &ml), 0);
    if (q->drop != NO_SHARES) assert_int_equal(fedc_secagg_server_add_shares(w->s, q->id, m, ml), 0);
    fedc_free(m);
  }
  if ((rc = fedc_secagg_server_close_shares(w->s)) != 0) return rc;
  for (int i = 0; i < w->np; i++) {
    party *q = &w->p[i];
    if (q->drop == NO_ADVERTISE || q->drop == NO_SHARES) continue;
    uint8_t *m;
    size_t ml;
    assert_int_equal(fedc_secagg_server_myshares(w->s, q->id, &m, &ml), 0);
    rc = fedc_secagg_client_masked_input(q->c, m, ml, q->x, w->len, q->y, NULL);
    fedc_free(m);
    if (rc != 0) return rc; /* a party refused: only the floor of require does */
    if (q->drop != NO_MASKED)
      assert_int_equal(fedc_secagg_server_add_masked(w->s, q->id, q->y, w->len), 0);
  }
  if ((rc = fedc_secagg_server_close_masked(w->s)) != 0) return rc;
  const uint8_t *sv;
  size_t svl;
  assert_int_equal(fedc_secagg_server_survivors(w->s, &sv, &svl), 0);
  for (int i = 0; i < w->np; i++) {
    party *q = &w->p[i];
    if (q->drop != ALL && q->drop != NO_UNMASK) continue;
    uint8_t *m;
    size_t ml;
    if ((rc = fedc_secagg_client_unmask(q->c, sv, svl, &m, &ml)) != 0) return rc;
    if (q->lie) tell_lies(m, ml, q->lie);
    if (q->drop != NO_UNMASK)
      assert_int_equal(fedc_secagg_server_add_unmask(w->s, q->id, m, ml), 0);
    fedc_free(m);
  }
  return fedc_secagg_server_finish(w->s, w->avg, w->len, &w->res);
}

static int survived(const party *q) { return q->drop == ALL || q->drop == NO_UNMASK; }

/* The sum and the average against the plain computation. */
static void check_world(world *w) {
  const uint32_t *sum = fedc_secagg_server_sum(w->s);
  assert_non_null(sum);
  int32_t f = w->res.frac_bits;
  uint32_t *want = calloc(w->len, sizeof *want), *q = malloc(w->len * sizeof *q);
  uint64_t total = 0;
  int32_t count = 0;
  for (int i = 0; i < w->np; i++) {
    if (!survived(&w->p[i])) continue;
    assert_int_equal(fedc_secagg_quantize(w->p[i].x, w->len, w->prm.clip, f, w->p[i].n, q, NULL),
                     0);
    for (size_t k = 0; k < w->len; k++) want[k] += q[k];
    total += w->p[i].n;
    count++;
  }
  assert_memory_equal(sum, want, w->len * sizeof *want);
  assert_int_equal(w->res.n_clients, count);
  assert_int_equal(w->res.total_samples, total);
  double bound = ldexp(1.0, -(f + 1)), worst = 0;
  for (size_t k = 0; k < w->len; k++) {
    long double s = 0;
    for (int i = 0; i < w->np; i++)
      if (survived(&w->p[i])) s += (long double)w->p[i].n * w->p[i].x[k];
    double exact = (double)(s / (long double)total);
    double err = fabs((double)w->avg[k] - exact);
    if (err > worst) worst = err;
    assert_true(err <= bound + 1e-7 * fabs(exact) + 1e-12);
  }
  print_message("    %d survivors, f = %d: max error %.2e (bound %.2e)\n", (int)count, (int)f,
                worst, bound);
  free(want);
  free(q);
}

static void masks_cancel(void **st) {
  (void)st;
  world w;
  world_make(&w, 10, 5000, 0, NULL, 11);
  assert_int_equal(world_run(&w), 0);
  assert_int_equal(fedc_secagg_server_phase(w.s), FEDC_SECAGG_DONE);
  assert_int_equal(w.res.dropped, 0);
  /* with nobody dropped the server removes only the self masks PRG(b_u):
   * the pairwise masks cancel by themselves, and the sum is exact */
  check_world(&w);
  /* while the masked vectors alone sum to noise */
  uint32_t raw = 0, plain = 0, q[1];
  for (int i = 0; i < w.np; i++) {
    raw += w.p[i].y[0];
    fedc_secagg_quantize(w.p[i].x, 1, w.prm.clip, w.res.frac_bits, w.p[i].n, q, NULL);
    plain += q[0];
  }
  assert_true(raw != plain);
  world_free(&w);
}

static void dropouts_after_sharing(void **st) {
  (void)st;
  /* 10 parties, every other party a neighbour (degree 9, t = 6): up to
   * n - 1 - t + 1 = 3 may drop after sharing */
  for (int drops = 1; drops <= 3; drops++) {
    world w;
    world_make(&w, 10, 3001, 0, NULL, 20 + (uint64_t)drops);
    for (int d = 0; d < drops; d++) w.p[(3 * d + 1) % 10].drop = NO_MASKED;
    assert_int_equal(world_run(&w), 0);
    assert_int_equal(w.res.dropped, drops);
    assert_int_equal(w.res.n_clients, 10 - drops);
    check_world(&w);
    world_free(&w);
  }
  /* a fourth is one too many: the round is abandoned, not averaged */
  world w;
  world_make(&w, 10, 100, 0, NULL, 30);
  for (int d = 0; d < 4; d++) w.p[d].drop = NO_MASKED;
  assert_int_equal(world_run(&w), FEDC_EQUORUM);
  assert_int_equal(fedc_secagg_server_phase(w.s), FEDC_SECAGG_FAILED);
  world_free(&w);
  /* dropouts at every step at once: one never advertises, one never
   * shares, two vanish after sharing, one after its masked input */
  world_make(&w, 12, 777, 0, NULL, 31);
  w.p[0].drop = NO_ADVERTISE;
  w.p[4].drop = NO_SHARES;
  w.p[5].drop = NO_MASKED;
  w.p[9].drop = NO_MASKED;
  w.p[11].drop = NO_UNMASK;
  assert_int_equal(world_run(&w), 0);
  assert_int_equal(w.res.dropped, 2);
  check_world(&w);
  world_free(&w);
}

/* Noise at the sites: a party sized its noise for at least `require`
 * parties in the sum, and refuses to send its masked input, or to reveal
 * shares, with fewer, so an overstated floor cannot thin the noise. */
static void floor_of_survivors(void **st) {
  (void)st;
  world w;
  world_make(&w, 6, 50, 0, NULL, 40);
  w.require = 6; /* everyone present: the round commits */
  assert_int_equal(world_run(&w), 0);
  check_world(&w);
  world_free(&w);
  world_make(&w, 6, 50, 0, NULL, 41);
  w.require = 7; /* more than the parties the KEYS list */
  w.p[2].drop = NO_ADVERTISE;
  assert_int_equal(world_run(&w), FEDC_EQUORUM);
  assert_non_null(strstr(fedc_error_msg(), "parties"));
  world_free(&w);
  world_make(&w, 6, 50, 0, NULL, 42);
  w.require = 6; /* six parties, but one drops after its masked input */
  w.p[3].drop = NO_MASKED;
  assert_int_equal(world_run(&w), FEDC_EQUORUM);
  assert_non_null(strstr(fedc_error_msg(), "survivors"));
  world_free(&w);
}

static void sparse_graph(void **st) {
  (void)st;
  /* SecAgg+: 20 parties, 6 neighbours each (t = 4), 2 drop */
  world w;
  world_make(&w, 20, 2000, 6, NULL, 40);
  w.p[3].drop = NO_MASKED;
  w.p[14].drop = NO_MASKED;
  assert_int_equal(world_run(&w), 0);
  check_world(&w);
  world_free(&w);
  /* the graph is symmetric, regular and the same for everyone */
  int32_t perm[20], pos[20];
  fedc__sa_ring(77, 20, perm, pos);
  int adj[20][20] = {{0}};
  for (int32_t i = 0; i < 20; i++) {
    int32_t nbr[19];
    assert_int_equal(fedc__sa_neighbours(perm, pos, 20, 5, i, nbr), 6);
    for (int j = 0; j < 6; j++) {
      assert_true(nbr[j] != i);
      adj[i][nbr[j]] = 1;
    }
  }
  for (int i = 0; i < 20; i++)
    for (int j = 0; j < 20; j++) assert_int_equal(adj[i][j], adj[j][i]);
}

static void weighted_average(void **st) {
  (void)st;
  static const uint64_t counts[6] = {1, 600, 37, 12000, 250, 3};
  world w;
  world_make(&w, 6, 4000, 0, counts, 50);
  /* some coordinates far apart between clients, so that weighting shows */
  for (size_t k = 0; k < w.len; k += 3) w.p[3].x[k] += 2.0f;
  assert_int_equal(world_run(&w), 0);
  check_world(&w);
  /* the unweighted mean would be far off on those coordinates */
  double mean = 0;
  for (int i = 0; i < 6; i++) mean += w.p[i].x[0] / 6.0;
  assert_true(fabs(mean - w.avg[0]) > 0.1);
  world_free(&w);
}

static void masked_is_not_the_input(void **st) {
  (void)st;
  world w;
  world_make(&w, 5, 20000, 0, NULL, 60);
  assert_int_equal(world_run(&w), 0);
  uint32_t *q = malloc(w.len * sizeof *q);
  assert_int_equal(fedc_secagg_quantize(w.p[2].x, w.len, w.prm.clip, w.res.frac_bits, w.p[2].n, q,
                                        NULL),
                   0);
  size_t equal = 0;
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  for (size_t k = 0; k < w.len; k++) {
    equal += w.p[2].y[k] == q[k];
    double a = (int32_t)q[k], b = (int32_t)w.p[2].y[k];
    sx += a, sy += b, sxy += a * b, sxx += a * a, syy += b * b;
  }
  double n = (double)w.len;
  double corr = (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
  print_message("    masked vs input: %zu of %zu words equal, correlation %.4f\n", equal, w.len,
                corr);
  assert_true(equal < 5);
  assert_true(fabs(corr) < 0.05);
  free(q);
  world_free(&w);
}

/* ---- refusals --------------------------------------------------------------------- */

static void malformed_messages(void **st) {
  (void)st;
  fedc_secagg_params prm = {.round = 2, .n = 16, .neighbors = 0, .threshold = 0.6, .clip = 4,
                            .graph_seed = 9};
  uint32_t ids[3] = {10, 20, 30};
  fedc_secagg_server *s;
  assert_int_equal(fedc_secagg_server_new(&prm, ids, 3, &s), 0);
  fedc_secagg_client *c[3];
  uint8_t *adv[3];
  size_t al[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fedc_secagg_client_new(2, ids[i], 50, 16, &c[i]), 0);
    assert_int_equal(fedc_secagg_client_advertise(c[i], &adv[i], &al[i]), 0);
  }
  /* a second advertise is out of order */
  uint8_t *m;
  size_t ml;
  assert_int_equal(fedc_secagg_client_advertise(c[0], &m, &ml), FEDC_ESTATE);
  /* every single-byte corruption and truncation of ADVERTISE is refused
   * or (for the commitment, which the server cannot check yet) taken */
  uint8_t bad[256];
  for (size_t i = 0; i < al[0]; i++) {
    memcpy(bad, adv[0], al[0]);
    bad[i] ^= 0x80;
    int rc = fedc_secagg_server_add_advertise(s, 10, bad, al[0]);
    if (rc == 0) {
      assert_true(i >= SA_HEADER); /* a sample count, a key or the commitment */
      fedc_secagg_server_free(s);
      assert_int_equal(fedc_secagg_server_new(&prm, ids, 3, &s), 0);
    } else {
      assert_true(rc == FEDC_EFORMAT || rc == FEDC_ESTALE || rc == FEDC_EINVAL);
    }
  }
  for (size_t cut = 0; cut < al[0]; cut++)
    assert_int_equal(fedc_secagg_server_add_advertise(s, 10, adv[0], cut), FEDC_EFORMAT);
  memcpy(bad, adv[0], al[0]);
  bad[al[0]] = 0;
  assert_int_equal(fedc_secagg_server_add_advertise(s, 10, bad, al[0] + 1), FEDC_EFORMAT);
  /* another round, another sender, a stranger */
  memcpy(bad, adv[0], al[0]);
  bad[8] = 3;
  assert_int_equal(fedc_secagg_server_add_advertise(s, 10, bad, al[0]), FEDC_ESTALE);
  assert_int_equal(fedc_secagg_server_add_advertise(s, 20, adv[0], al[0]), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_server_count(s, FEDC_SECAGG_ADVERTISE), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fedc_secagg_server_add_advertise(s, ids[i], adv[i], al[i]), 0);
  assert_int_equal(fedc_secagg_server_add_advertise(s, 10, adv[0], al[0]), FEDC_EDUPLICATE);
  assert_int_equal(fedc_secagg_server_count(s, FEDC_SECAGG_ADVERTISE), 3);
  assert_true(fedc_secagg_server_phase_complete(s));
  /* out of phase */
  assert_int_equal(fedc_secagg_server_add_masked(s, 10, (uint32_t[16]){0}, 16), FEDC_ESTATE);
  assert_int_equal(fedc_secagg_server_close_shares(s), FEDC_ESTATE);
  assert_int_equal(fedc_secagg_server_close_advertise(s), 0);
  assert_int_equal(fedc_secagg_server_add_advertise(s, 10, adv[0], al[0]), FEDC_ESTATE);
  for (int i = 0; i < 3; i++) fedc_free(adv[i]);

  /* KEYS: a client refuses a list that misstates it or is broken */
  const uint8_t *keys;
  size_t kl;
  assert_int_equal(fedc_secagg_server_keys(s, &keys, &kl), 0);
  uint8_t *k2 = malloc(kl + 4);
  memcpy(k2, keys, kl);
  k2[kl - 1] ^= 1; /* the last party's mask key */
  assert_int_equal(fedc_secagg_client_share(c[2], k2, kl, &m, &ml), FEDC_EFORMAT);
  memcpy(k2, keys, kl);
  k2[28] = 1; /* threshold 1 of 2 neighbours: no majority */
  k2[29] = k2[30] = k2[31] = 0;
  assert_int_equal(fedc_secagg_client_share(c[0], k2, kl, &m, &ml), FEDC_EFORMAT);
  memcpy(k2, keys, kl);
  k2[32] = 31; /* frac_bits */
  assert_int_equal(fedc_secagg_client_share(c[0], k2, kl, &m, &ml), FEDC_EFORMAT);
  assert_int_equal(fedc_secagg_client_share(c[0], keys, kl - 1, &m, &ml), FEDC_EFORMAT);
  memcpy(k2, keys, kl);
  k2[8] = 1; /* round */
  assert_int_equal(fedc_secagg_client_share(c[0], k2, kl, &m, &ml), FEDC_ESTALE);
  free(k2);

  /* SHARES */
  uint8_t *sh[3];
  size_t sl[3];
  for (int i = 0; i < 3; i++) assert_int_equal(fedc_secagg_client_share(c[i], keys, kl, &sh[i], &sl[i]), 0);
  assert_int_equal(fedc_secagg_server_add_shares(s, 10, sh[0], sl[0] - 1), FEDC_EFORMAT);
  assert_int_equal(fedc_secagg_server_add_shares(s, 20, sh[0], sl[0]), FEDC_EINVAL);
  uint8_t *sb = malloc(sl[0]);
  memcpy(sb, sh[0], sl[0]);
  sb[20] = 30; /* first entry "to 30" instead of 20: out of order */
  assert_int_equal(fedc_secagg_server_add_shares(s, 10, sb, sl[0]), FEDC_EFORMAT);
  assert_int_equal(fedc_secagg_server_count(s, FEDC_SECAGG_SHARES), 0);
  /* a tampered ciphertext passes the server (it cannot read it) but its
   * recipient refuses it */
  memcpy(sb, sh[0], sl[0]);
  sb[30] ^= 4;
  assert_int_equal(fedc_secagg_server_add_shares(s, 10, sb, sl[0]), 0);
  free(sb);
  assert_int_equal(fedc_secagg_server_add_shares(s, 10, sh[0], sl[0]), FEDC_EDUPLICATE);
  for (int i = 1; i < 3; i++) assert_int_equal(fedc_secagg_server_add_shares(s, ids[i], sh[i], sl[i]), 0);
  for (int i = 0; i < 3; i++) fedc_free(sh[i]);
  assert_int_equal(fedc_secagg_server_close_shares(s), 0);
  float x[16] = {0};
  uint32_t y[16];
  assert_int_equal(fedc_secagg_server_myshares(s, 20, &m, &ml), 0);
  assert_int_equal(fedc_secagg_client_masked_input(c[1], m, ml, x, 16, y, NULL), FEDC_ECHECKSUM);
  /* MYSHARES broken in other ways */
  assert_int_equal(fedc_secagg_client_masked_input(c[1], m, ml - 3, x, 16, y, NULL), FEDC_EFORMAT);
  assert_int_equal(fedc_secagg_client_masked_input(c[2], m, ml, x, 16, y, NULL), FEDC_EFORMAT);
  fedc_free(m);
  assert_int_equal(fedc_secagg_server_myshares(s, 99, &m, &ml), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_server_add_masked(s, 10, y, 15), FEDC_EINVAL);

  for (int i = 0; i < 3; i++) fedc_secagg_client_free(c[i]);
  fedc_secagg_server_free(s);
  /* the server refuses bad parameters and repeated parties */
  uint32_t twice[2] = {4, 4};
  assert_int_equal(fedc_secagg_server_new(&prm, twice, 2, &s), FEDC_EINVAL);
  prm.threshold = 0;
  assert_int_equal(fedc_secagg_server_new(&prm, ids, 3, &s), FEDC_EINVAL);
  assert_int_equal(fedc_secagg_client_new(-1, 1, 10, 16, &c[0]), FEDC_EINVAL);
}

static void tampered_unmask(void **st) {
  (void)st;
  /* a survivor's revealed share altered: it disagrees with the other two
   * shares of that secret; the set of two that gives the committed seed
   * is found, the revealer is named and excluded, and the round ends with
   * the exact sum */
  world w;
  world_make(&w, 4, 64, 0, NULL, 70);
  uint32_t ids[4];
  for (int i = 0; i < 4; i++) ids[i] = w.p[i].id;
  assert_int_equal(fedc_secagg_server_new(&w.prm, ids, 4, &w.s), 0);
  uint8_t *m;
  size_t ml;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(fedc_secagg_client_new(4, ids[i], w.p[i].n, 64, &w.p[i].c), 0);
    assert_int_equal(fedc_secagg_client_advertise(w.p[i].c, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_advertise(w.s, ids[i], m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_close_advertise(w.s), 0);
  const uint8_t *keys, *sv;
  size_t kl, svl;
  fedc_secagg_server_keys(w.s, &keys, &kl);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(fedc_secagg_client_share(w.p[i].c, keys, kl, &m, &ml), 0);
    assert_int_equal(fedc_secagg_server_add_shares(w.s, ids[i], m, ml), 0);
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_close_shares(w.s), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(fedc_secagg_server_myshares(w.s, ids[i], &m, &ml), 0);
    assert_int_equal(fedc_secagg_client_masked_input(w.p[i].c, m, ml, w.p[i].x, 64, w.p[i].y, NULL),
                     0);
    fedc_free(m);
    assert_int_equal(fedc_secagg_server_add_masked(w.s, ids[i], w.p[i].y, 64), 0);
  }
  assert_int_equal(fedc_secagg_server_add_masked(w.s, ids[0], w.p[0].y, 64), FEDC_EDUPLICATE);
  assert_int_equal(fedc_secagg_server_close_masked(w.s), 0);
  fedc_secagg_server_survivors(w.s, &sv, &svl);
  const uint32_t *surv;
  assert_int_equal(fedc_secagg_server_survivor_ids(w.s, &surv), 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(fedc_secagg_client_unmask(w.p[i].c, sv, svl, &m, &ml), 0);
    if (i == 1) {
      m[ml - 5] ^= 1; /* the last share's value */
      int rc = fedc_secagg_server_add_unmask(w.s, ids[i], m, ml);
      assert_true(rc == 0 || rc == FEDC_EFORMAT);
    } else {
      uint8_t *k = malloc(ml);
      memcpy(k, m, ml);
      k[SA_HEADER + 8] = SA_KIND_SK; /* wrong kind for a survivor */
      assert_int_equal(fedc_secagg_server_add_unmask(w.s, ids[i], k, ml), FEDC_EFORMAT);
      free(k);
      assert_int_equal(fedc_secagg_server_add_unmask(w.s, ids[i], m, ml), 0);
    }
    fedc_free(m);
  }
  assert_int_equal(fedc_secagg_server_finish(w.s, w.avg, 64, &w.res), 0);
  assert_int_equal(w.res.excluded, 1);
  const uint32_t *ex;
  assert_int_equal(fedc_secagg_server_excluded(w.s, &ex), 1);
  assert_int_equal(ex[0], ids[1]);
  check_world(&w);
  world_free(&w);
}

/* The test indices of the parties the server excluded, in order. */
static void expect_excluded(const world *w, const int *who, int n) {
  const uint32_t *ids;
  assert_int_equal(fedc_secagg_server_excluded(w->s, &ids), n);
  for (int i = 0; i < n; i++) assert_int_equal(ids[i], w->p[who[i]].id);
}

static int is_secret(void *ctx, const uint8_t s[32]) { return memcmp(ctx, s, 32) == 0; }
static int never(void *ctx, const uint8_t s[32]) { (void)ctx, (void)s; return 0; }

static void shamir_decode_locates(void **st) {
  (void)st;
  fedc_rng r;
  fedc_rng_seed(&r, 8);
  uint8_t secret[32], back[32], wrong[9];
  make_secret(&r, secret);
  uint64_t xs[9];
  for (int i = 0; i < 9; i++) xs[i] = 40 + 3 * (uint64_t)i;
  fedc_shamir_share sh[9], bad[9];
  assert_int_equal(fedc_shamir_split(secret, 5, xs, 9, test_rand, &r, sh), 0);
  /* all right: nobody wrong */
  assert_int_equal(fedc_shamir_decode(sh, 9, 5, is_secret, secret, back, wrong), 0);
  assert_memory_equal(back, secret, 32);
  for (int i = 0; i < 9; i++) assert_int_equal(wrong[i], 0);
  /* 1 to 4 wrong shares (one word each, in different words): 2 within
   * Berlekamp-Welch's bound (9 - 5) / 2, up to 4 = n - t by the sets */
  static const int at[4] = {7, 0, 4, 2};
  for (int k = 1; k <= 4; k++) {
    memcpy(bad, sh, sizeof sh);
    for (int j = 0; j < k; j++) bad[at[j]].y[j] = (bad[at[j]].y[j] + 1 + (uint64_t)j) % FEDC_SHAMIR_PRIME;
    assert_int_equal(fedc_shamir_combine(bad, 9, 5, back), FEDC_ECHECKSUM);
    assert_int_equal(fedc_shamir_decode(bad, 9, 5, is_secret, secret, back, wrong), 0);
    assert_memory_equal(back, secret, 32);
    for (int i = 0; i < 9; i++) {
      int want = 0;
      for (int j = 0; j < k; j++) want |= at[j] == i;
      assert_int_equal(wrong[i], want);
    }
  }
  /* 5 wrong: only 4 right, below the threshold; and a check that takes
   * nothing: no secret, nobody named */
  bad[8].y[4] ^= 1;
  assert_int_equal(fedc_shamir_decode(bad, 9, 5, is_secret, secret, back, wrong), FEDC_ECHECKSUM);
  assert_int_equal(fedc_shamir_decode(sh, 9, 5, never, NULL, back, wrong), FEDC_ECHECKSUM);
  assert_int_equal(fedc_shamir_decode(sh, 4, 5, is_secret, secret, back, wrong), FEDC_EQUORUM);
}

static void liar_is_excluded(void **st) {
  (void)st;
  /* 10 parties (t = 6, 9 shares of each secret): one reveals one wrong
   * share word. It is named, its masked input stays in the sum (its b_u
   * rebuilt from the others' shares), and the sum is exact */
  world w;
  world_make(&w, 10, 3000, 0, NULL, 90);
  w.p[4].lie = LIE_ONE_WORD;
  assert_int_equal(world_run(&w), 0);
  assert_int_equal(w.res.excluded, 1);
  expect_excluded(&w, (int[]){4}, 1);
  assert_int_equal(w.res.n_clients, 10);
  check_world(&w);
  world_free(&w);
  /* two liars about every share they reveal, and a dropout whose mask key
   * they lie about too: 8 shares of a survivor's seed, 2 wrong, 6 = t
   * right */
  world_make(&w, 10, 1000, 0, NULL, 91);
  w.p[2].lie = LIE_ALL;
  w.p[7].lie = LIE_ALL;
  w.p[5].drop = NO_MASKED;
  assert_int_equal(world_run(&w), 0);
  expect_excluded(&w, (int[]){2, 7}, 2);
  assert_int_equal(w.res.dropped, 1);
  check_world(&w);
  world_free(&w);
  /* a sparse SecAgg+ graph: 20 parties, 6 neighbours, t = 4 */
  world_make(&w, 20, 500, 6, NULL, 92);
  w.p[11].lie = LIE_ALL;
  w.p[3].drop = NO_MASKED;
  assert_int_equal(world_run(&w), 0);
  expect_excluded(&w, (int[]){11}, 1);
  check_world(&w);
  world_free(&w);
  /* too little redundancy to correct: 4 parties (t = 2), one drops; the
   * liar is found on the dropout's mask key (3 shares), but a survivor's
   * seed then has 2 shares, one of them the liar's. The round is
   * abandoned, nothing is averaged, and the liar is named */
  world_make(&w, 4, 64, 0, NULL, 93);
  w.p[0].drop = NO_MASKED;
  w.p[3].lie = LIE_ALL;
  assert_int_equal(world_run(&w), FEDC_ECHECKSUM);
  assert_int_equal(fedc_secagg_server_phase(w.s), FEDC_SECAGG_FAILED);
  assert_null(fedc_secagg_server_sum(w.s));
  expect_excluded(&w, (int[]){3}, 1);
  world_free(&w);
  /* no redundancy at all (3 parties, 2 shares of each secret, t = 2): a
   * wrong share is detected but cannot be told from the right one */
  world_make(&w, 3, 64, 0, NULL, 94);
  w.p[1].lie = LIE_ONE_WORD;
  assert_int_equal(world_run(&w), FEDC_ECHECKSUM);
  assert_int_equal(fedc_secagg_server_phase(w.s), FEDC_SECAGG_FAILED);
  expect_excluded(&w, NULL, 0);
  world_free(&w);
}

/* ---- allocation failures ---------------------------------------------------------- */

static void allocation_failures(void **st) {
  (void)st;
  int ok = 0;
  for (int64_t k = 1; k < 400 && !ok; k++) {
    world w;
    world_make(&w, 4, 32, 0, NULL, 80);
    uint32_t ids[4];
    for (int i = 0; i < 4; i++) ids[i] = w.p[i].id;
    int64_t live0 = fedc_alloc_live();
    fedc_alloc_fail_after(k, 1);
    /* every call may fail, with FEDC_ENOMEM and nothing half-done */
    int rc = fedc_secagg_server_new(&w.prm, ids, 4, &w.s);
    for (int i = 0; rc == 0 && i < 4; i++) {
      uint8_t *m = NULL;
      size_t ml;
      rc = fedc_secagg_client_new(4, ids[i], w.p[i].n, 32, &w.p[i].c);
      if (rc == 0) rc = fedc_secagg_client_advertise(w.p[i].c, &m, &ml);
      if (rc == 0) rc = fedc_secagg_server_add_advertise(w.s, ids[i], m, ml);
      fedc_free(m);
    }
    if (rc == 0) rc = fedc_secagg_server_close_advertise(w.s);
    const uint8_t *keys;
    size_t kl;
    if (rc == 0) rc = fedc_secagg_server_keys(w.s, &keys, &kl);
    for (int i = 0; rc == 0 && i < 4; i++) {
      uint8_t *m = NULL;
      size_t ml;
      rc = fedc_secagg_client_share(w.p[i].c, keys, kl, &m, &ml);
      if (rc == 0) rc = fedc_secagg_server_add_shares(w.s, ids[i], m, ml);
      fedc_free(m);
    }
    if (rc == 0) rc = fedc_secagg_server_close_shares(w.s);
    for (int i = 0; rc == 0 && i < 4; i++) {
      uint8_t *m = NULL;
      size_t ml;
      rc = fedc_secagg_server_myshares(w.s, ids[i], &m, &ml);
      if (rc == 0)
        rc = fedc_secagg_client_masked_input(w.p[i].c, m, ml, w.p[i].x, 32, w.p[i].y, NULL);
      if (rc == 0) rc = fedc_secagg_server_add_masked(w.s, ids[i], w.p[i].y, 32);
      fedc_free(m);
    }
    if (rc == 0) rc = fedc_secagg_server_close_masked(w.s);
    const uint8_t *sv;
    size_t svl;
    if (rc == 0) rc = fedc_secagg_server_survivors(w.s, &sv, &svl);
    for (int i = 0; rc == 0 && i < 4; i++) {
      uint8_t *m = NULL;
      size_t ml;
      rc = fedc_secagg_client_unmask(w.p[i].c, sv, svl, &m, &ml);
      if (rc == 0) rc = fedc_secagg_server_add_unmask(w.s, ids[i], m, ml);
      fedc_free(m);
    }
    if (rc == 0) rc = fedc_secagg_server_finish(w.s, w.avg, 32, &w.res);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      ok = 1;
      check_world(&w);
    } else {
      assert_int_equal(rc, FEDC_ENOMEM);
    }
    for (int i = 0; i < 4; i++) {
      fedc_secagg_client_free(w.p[i].c);
      w.p[i].c = NULL;
    }
    fedc_secagg_server_free(w.s);
    w.s = NULL;
    assert_int_equal(fedc_alloc_live(), live0);
    world_free(&w);
  }
  assert_true(ok);
}

/* ---- what carries the result: the U32 container and the engine ----------------- */

static void u32_container(void **st) {
  (void)st;
  uint32_t words[5] = {0, 1, 0x80000000u, 0xffffffffu, 12345};
  fedc_st_meta meta[] = {{"round", "3"}, {"num_samples", "10"}};
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode_u32("masked", words, 5, meta, 2, &buf, &len), 0);
  fedc_st_file *f = NULL;
  /* every other path reads F32 only */
  assert_int_equal(fedc_st_decode(buf, len, &f), FEDC_EFORMAT);
  assert_non_null(strstr(fedc_error_msg(), "U32"));
  assert_int_equal(fedc_st_decode_ex(buf, len, FEDC_ST_ALLOW_U32, &f), 0);
  assert_string_equal(fedc_st_dtype(f, 0), "U32");
  const uint32_t *got;
  size_t n;
  assert_int_equal(fedc_st_find_u32(f, "masked", &got, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(got, words, sizeof words);
  assert_string_equal(fedc_st_meta_get(f, "round"), "3");
  assert_int_equal(fedc_st_find_u32(f, "other", &got, &n), FEDC_ENOTFOUND);
  fedc_st_free(f);
  buf[len - 1] ^= 1; /* the checksum still guards the words */
  assert_int_equal(fedc_st_decode_ex(buf, len, FEDC_ST_ALLOW_U32, &f), FEDC_ECHECKSUM);
  fedc_free(buf);
  /* an F32 tensor is not taken for words */
  float v[2] = {1, 2};
  fedc_st_tensor t = {"masked", 1, {2, 0, 0, 0}, v};
  assert_int_equal(fedc_st_encode(&t, 1, NULL, 0, &buf, &len), 0);
  assert_int_equal(fedc_st_decode_ex(buf, len, FEDC_ST_ALLOW_U32, &f), 0);
  assert_int_equal(fedc_st_find_u32(f, "masked", &got, &n), FEDC_EUNSUPPORTED);
  fedc_st_free(f);
  fedc_free(buf);
}

static void engine_takes_the_sum(void **st) {
  (void)st;
  enum { NP = 50 };
  float w0[NP], avg[NP];
  for (int i = 0; i < NP; i++) w0[i] = 0.01f * (float)i, avg[i] = 1.0f - 0.02f * (float)i;
  fedc_engine_params ep = {.rounds = 2, .clients_per_round = 4, .min_clients = 3, .seed = 1,
                           .strategy = "fedavg"};
  fedc_engine *e;
  assert_int_equal(fedc_engine_new(&ep, NP, w0, &e), 0);
  int32_t elig[4] = {11, 12, 13, 14}, sel[4], ns;
  assert_int_equal(fedc_engine_open(e, elig, 4, 4, sel, &ns), 0);
  int32_t who[3] = {12, 14, 11};
  uint64_t n[3] = {100, 300, 600};
  double loss[3] = {1.0, 2.0, 0.5};
  /* refused whole: a stranger, a repeat, another round, another shape */
  int32_t bad[3] = {12, 99, 11};
  assert_int_equal(fedc_engine_submit_sum(e, 1, bad, n, loss, 3, avg, NP), FEDC_EINVAL);
  int32_t twice[3] = {12, 12, 11};
  assert_int_equal(fedc_engine_submit_sum(e, 1, twice, n, loss, 3, avg, NP), FEDC_EDUPLICATE);
  assert_int_equal(fedc_engine_submit_sum(e, 2, who, n, loss, 3, avg, NP), FEDC_ESTALE);
  assert_int_equal(fedc_engine_submit_sum(e, 1, who, n, loss, 3, avg, NP - 1), FEDC_ESHAPE);
  assert_int_equal(fedc_engine_reported(e), 0);
  assert_int_equal(fedc_engine_submit_sum(e, 1, who, n, loss, 3, avg, NP), 0);
  assert_int_equal(fedc_engine_reported(e), 3);
  assert_int_equal(fedc_engine_submit(e, 1, 14, avg, NP, 5, 0.0), FEDC_EDUPLICATE);
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  assert_int_equal(m.clients, 3);
  assert_int_equal(m.samples, 1000);
  assert_true(fabs(m.train_loss - (100 * 1.0 + 300 * 2.0 + 600 * 0.5) / 1000.0) < 1e-12);
  const float *g = fedc_engine_global(e);
  for (int i = 0; i < NP; i++) assert_true(fabsf(g[i] - avg[i]) < 1e-7f);
  fedc_engine_free(e);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(shamir_at_threshold),   T(shamir_below_threshold), T(prg_and_helpers),
      T(masks_cancel),          T(dropouts_after_sharing),
      T(floor_of_survivors),    T(sparse_graph),
      T(weighted_average),      T(masked_is_not_the_input), T(malformed_messages),
      T(tampered_unmask),       T(shamir_decode_locates),   T(liar_is_excluded),
      T(allocation_failures),     T(u32_container),
      T(engine_takes_the_sum),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
