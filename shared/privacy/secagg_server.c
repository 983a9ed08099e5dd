/*
 * secagg_server.c - the server's side of secure aggregation, one object
 * per round (protocol and formats in secagg.h). It collects each phase's
 * messages, checks every one whole before it changes anything, routes the
 * encrypted shares, folds masked inputs into one running sum as they
 * arrive (its memory is one vector of n words plus small per-party
 * records), and at the end reconstructs the survivors' self-mask seeds and
 * the dropped parties' mask keys from the revealed Shamir shares to strip
 * the masks off the sum.
 *
 * The sets are Bonawitz et al.'s: U1 advertised, U2 shared (a subset of
 * U1), U3 sent a masked input (survivors, a subset of U2), U5 revealed
 * shares (a subset of U3). The graph's indices are positions in U1, which
 * is sorted by id, the order of the KEYS broadcast. Closing a phase checks
 * that the round can still succeed, and fails it early (FEDC_EQUORUM)
 * when it cannot.
 *
 * A survivor may reveal a wrong share in UNMASK (nothing lets the server
 * check one share alone). finish decodes each secret despite such shares
 * (fedc_shamir_decode against the dealer's commitment or public key),
 * names their revealers and sets their shares aside for the rest of the
 * round, so that one liar can no longer make every round fail.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "privacy/secagg_internal.h"

#define MAX_SAMPLES ((uint64_t)1 << 40)

typedef struct party {
  uint32_t id;
  uint64_t n_samples;
  uint8_t c_pk[SA_KEY], s_pk[SA_KEY], commit[SA_KEY];
  uint8_t advertised, shared, masked, unmasked;
  uint8_t liar; /* revealed a share off the dealer's polynomial */
  int32_t *nbr; /* U1 indices, increasing (after KEYS) */
  int32_t deg;
  uint8_t *cts; /* deg ciphertexts addressed to this party, slot j from nbr[j] */
  uint8_t *ct_in;
  fedc_shamir_share *sh; /* shares about this party revealed in UNMASK */
  int32_t n_sh;
} party;

struct fedc_secagg_server {
  fedc_secagg_params p;
  fedc_secagg_phase phase;
  sa_rng rng;
  party *all; /* the allowed parties, by increasing id */
  int32_t n_all;
  party **u1; /* advertised, by increasing id */
  int32_t n1, t, frac_bits;
  int32_t fixed_f; /* set_quantization's f, or -1: from the advertised total */
  int32_t counts[4];
  uint32_t *sum;
  uint8_t *keys_msg, *surv_msg;
  size_t keys_len, surv_len;
  uint32_t *surv_ids;
  int32_t n_surv, n_shared;
  uint32_t *liars; /* parties found revealing wrong shares, increasing */
  int32_t n_liars;
  fedc_secagg_result res;
};

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

int fedc_secagg_server_new(const fedc_secagg_params *p, const uint32_t *ids, int32_t n_ids,
                           fedc_secagg_server **out) {
  *out = NULL;
  if (p == NULL || p->round < 0 || p->n == 0 || p->neighbors < 0 || !(p->threshold > 0) ||
      !(p->threshold <= 1) || !(p->clip > 0) || !(p->clip <= 1048576.0) || n_ids < 0 ||
      n_ids > FEDC_SECAGG_MAX_PARTIES || (ids == NULL && n_ids > 0))
    return fedc_error_set(FEDC_EINVAL,
                          "secagg server: need round >= 0, a vector, threshold in (0, 1], "
                          "clip in (0, 2^20] and at most %d parties",
                          FEDC_SECAGG_MAX_PARTIES);
  fedc_secagg_server *s = fedc_calloc(1, sizeof *s);
  uint32_t *sorted = fedc_malloc_array((size_t)n_ids + 1, sizeof *sorted);
  if (s) {
    s->all = fedc_calloc((size_t)n_ids + 1, sizeof *s->all);
    s->u1 = fedc_calloc((size_t)n_ids + 1, sizeof *s->u1);
    s->sum = fedc_calloc(p->n, sizeof *s->sum);
  }
  if (s == NULL || sorted == NULL || s->all == NULL || s->u1 == NULL || s->sum == NULL) {
    fedc_free(sorted);
    fedc_secagg_server_free(s);
    return fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory for %zu words", p->n);
  }
  s->p = *p;
  s->fixed_f = -1;
  if (n_ids > 0) memcpy(sorted, ids, (size_t)n_ids * sizeof *sorted);
  qsort(sorted, (size_t)n_ids, sizeof *sorted, cmp_u32);
  int rc = 0;
  for (int32_t i = 1; i < n_ids && rc == 0; i++)
    if (sorted[i] == sorted[i - 1])
      rc = fedc_error_set(FEDC_EINVAL, "secagg server: party %u listed twice",
                          (unsigned)sorted[i]);
  for (int32_t i = 0; i < n_ids; i++) s->all[i].id = sorted[i];
  s->n_all = n_ids;
  fedc_free(sorted);
  if (rc == 0) rc = fedc__sa_rng_init(&s->rng, "fedc secagg server");
  if (rc != 0) {
    fedc_secagg_server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void fedc_secagg_server_free(fedc_secagg_server *s) {
  if (s == NULL) return;
  for (int32_t i = 0; s->all && i < s->n_all; i++) {
    party *q = &s->all[i];
    fedc_free(q->nbr);
    fedc_free(q->cts);
    fedc_free(q->ct_in);
    if (q->sh) fedc__sa_wipe(q->sh, (size_t)q->deg * sizeof *q->sh);
    fedc_free(q->sh);
  }
  fedc__sa_rng_free(&s->rng);
  fedc_free(s->all);
  fedc_free(s->u1);
  fedc_free(s->sum);
  fedc_free(s->keys_msg);
  fedc_free(s->surv_msg);
  fedc_free(s->surv_ids);
  fedc_free(s->liars);
  fedc_free(s);
}

fedc_secagg_phase fedc_secagg_server_phase(const fedc_secagg_server *s) { return s->phase; }

int32_t fedc_secagg_server_count(const fedc_secagg_server *s, fedc_secagg_phase p) {
  return p >= FEDC_SECAGG_ADVERTISE && p <= FEDC_SECAGG_UNMASK ? s->counts[p] : 0;
}

static party *find_party(const fedc_secagg_server *s, uint32_t id) {
  int32_t lo = 0, hi = s->n_all;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (s->all[mid].id == id) return &s->all[mid];
    if (s->all[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

int fedc_secagg_server_party_phase(const fedc_secagg_server *s, uint32_t id) {
  const party *q = find_party(s, id);
  if (q == NULL) return -1;
  return q->unmasked ? FEDC_SECAGG_UNMASK
         : q->masked ? FEDC_SECAGG_MASKED
         : q->shared ? FEDC_SECAGG_SHARES
         : q->advertised ? FEDC_SECAGG_ADVERTISE : -1;
}

uint64_t fedc_secagg_server_party_samples(const fedc_secagg_server *s, uint32_t id) {
  const party *q = find_party(s, id);
  return q && q->advertised ? q->n_samples : 0;
}

int32_t fedc_secagg_server_threshold(const fedc_secagg_server *s) { return s->t; }
int32_t fedc_secagg_server_frac_bits(const fedc_secagg_server *s) { return s->frac_bits; }

int fedc_secagg_server_phase_complete(const fedc_secagg_server *s) {
  switch (s->phase) {
  case FEDC_SECAGG_ADVERTISE: return s->counts[0] == s->n_all;
  case FEDC_SECAGG_SHARES: return s->counts[1] == s->n1;
  case FEDC_SECAGG_MASKED: return s->counts[2] == s->n_shared;
  case FEDC_SECAGG_UNMASK: return s->counts[3] == s->n_surv;
  default: return 1;
  }
}

static int fail(fedc_secagg_server *s, int rc) {
  s->phase = FEDC_SECAGG_FAILED;
  return rc;
}

void fedc_secagg_server_fail(fedc_secagg_server *s) { s->phase = FEDC_SECAGG_FAILED; }

/* The common checks of a client's message: phase, header, round, sender. */
static int open_msg(const fedc_secagg_server *s, fedc_secagg_phase phase, int type,
                    const char *what, uint32_t sender, const uint8_t *msg, size_t len,
                    sa_reader *r, party **q) {
  if (s->phase != phase)
    return fedc_error_set(FEDC_ESTATE, "secagg %s from %u: the round is in phase %s", what,
                          (unsigned)sender, fedc_secagg_phase_name(s->phase));
  int32_t round;
  uint32_t id;
  int rc = fedc__sa_read_header(r, msg, len, type, what, &round, &id);
  if (rc != 0) return rc;
  if (round != s->p.round)
    return fedc_error_set(FEDC_ESTALE, "secagg %s: for round %d, this is round %d", what,
                          (int)round, (int)s->p.round);
  if (id != sender)
    return fedc_error_set(FEDC_EINVAL, "secagg %s: says it is from %u, sent by %u", what,
                          (unsigned)id, (unsigned)sender);
  *q = find_party(s, sender);
  if (*q == NULL)
    return fedc_error_set(FEDC_EINVAL, "secagg %s: %u is not a party of round %d", what,
                          (unsigned)sender, (int)s->p.round);
  return 0;
}

/* ---- advertise ------------------------------------------------------------- */

int fedc_secagg_server_add_advertise(fedc_secagg_server *s, uint32_t sender,
                                     const uint8_t *msg, size_t len) {
  sa_reader r;
  party *q;
  int rc = open_msg(s, FEDC_SECAGG_ADVERTISE, SA_MSG_ADVERTISE, "ADVERTISE", sender, msg, len,
                    &r, &q);
  if (rc != 0) return rc;
  uint64_t ns = fedc__sa_u64(&r);
  const uint8_t *c_pk = fedc__sa_bytes(&r, SA_KEY), *s_pk = fedc__sa_bytes(&r, SA_KEY),
                *commit = fedc__sa_bytes(&r, SA_KEY);
  if ((rc = fedc__sa_read_end(&r)) != 0) return rc;
  if (ns < 1 || ns > MAX_SAMPLES)
    return fedc_error_set(FEDC_EFORMAT, "secagg ADVERTISE: %llu samples (1..2^40)",
                          (unsigned long long)ns);
  if (fedc__sa_check_public(c_pk) != 0 || fedc__sa_check_public(s_pk) != 0)
    return fedc_error_set(FEDC_EFORMAT, "secagg ADVERTISE from %u: a public key is not valid",
                          (unsigned)sender);
  if (q->advertised)
    return fedc_error_set(FEDC_EDUPLICATE, "secagg ADVERTISE: %u already advertised",
                          (unsigned)sender);
  q->n_samples = ns;
  memcpy(q->c_pk, c_pk, SA_KEY);
  memcpy(q->s_pk, s_pk, SA_KEY);
  memcpy(q->commit, commit, SA_KEY);
  q->advertised = 1;
  s->counts[FEDC_SECAGG_ADVERTISE]++;
  return 0;
}

/* The graph over U1 and every party's routing slots. */
static int build_graph(fedc_secagg_server *s) {
  int32_t n = s->n1;
  int32_t *perm = fedc_malloc_array((size_t)n, sizeof *perm);
  int32_t *pos = fedc_malloc_array((size_t)n, sizeof *pos);
  int rc = perm && pos ? 0 : fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory");
  if (rc == 0) fedc__sa_ring(s->p.graph_seed, n, perm, pos);
  int32_t deg = fedc_secagg_degree(n, s->p.neighbors);
  for (int32_t i = 0; rc == 0 && i < n; i++) {
    party *q = s->u1[i];
    q->nbr = fedc_malloc_array((size_t)deg + 1, sizeof *q->nbr);
    q->cts = fedc_malloc_array((size_t)deg, FEDC_SECAGG_CT_BYTES);
    q->ct_in = fedc_calloc((size_t)deg, 1);
    q->sh = fedc_calloc((size_t)deg, sizeof *q->sh);
    if (!q->nbr || !q->cts || !q->ct_in || !q->sh) {
      rc = fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory for the graph");
      break;
    }
    q->deg = fedc__sa_neighbours(perm, pos, n, s->p.neighbors, i, q->nbr);
  }
  fedc_free(perm);
  fedc_free(pos);
  return rc;
}

/*
 * A relay's session (docs/relays.md, "Secure aggregation"): its sites must
 * quantize with the parent's f and clip, not with what its own advertised
 * total would give, so that its unmasked sum is the words the sites would
 * have added at the parent. Only before KEYS is built.
 */
int fedc_secagg_server_set_quantization(fedc_secagg_server *s, int32_t frac_bits, double clip) {
  if (s->phase != FEDC_SECAGG_ADVERTISE)
    return fedc_error_set(FEDC_ESTATE, "secagg: set_quantization in phase %s",
                          fedc_secagg_phase_name(s->phase));
  if (frac_bits < 0 || frac_bits > 30 || !(clip > 0) || !(clip <= 1048576.0))
    return fedc_error_set(FEDC_EINVAL, "secagg: set_quantization: frac_bits %d, clip %g",
                          (int)frac_bits, clip);
  s->fixed_f = frac_bits;
  s->p.clip = clip;
  return 0;
}

int fedc_secagg_server_close_advertise(fedc_secagg_server *s) {
  if (s->phase != FEDC_SECAGG_ADVERTISE)
    return fedc_error_set(FEDC_ESTATE, "secagg: close_advertise in phase %s",
                          fedc_secagg_phase_name(s->phase));
  uint64_t total = 0;
  s->n1 = 0;
  for (int32_t i = 0; i < s->n_all; i++)
    if (s->all[i].advertised) {
      s->u1[s->n1++] = &s->all[i];
      total += s->all[i].n_samples;
    }
  if (s->n1 < 2)
    return fail(s, fedc_error_set(FEDC_EQUORUM, "secagg round %d: %d party advertised keys",
                                  (int)s->p.round, (int)s->n1));
  int rc = 0;
  if (s->fixed_f < 0) {
    rc = fedc_secagg_frac_bits(total, s->p.clip, &s->frac_bits);
  } else if ((double)total * (ldexp(s->p.clip, s->fixed_f) + 0.5) >= 2147483648.0) {
    rc = fedc_error_set(FEDC_ERANGE,
                        "secagg round %d: the given frac_bits %d with clip %g overflows for "
                        "%llu samples",
                        (int)s->p.round, (int)s->fixed_f, s->p.clip,
                        (unsigned long long)total);
  } else {
    s->frac_bits = s->fixed_f;
  }
  if (rc != 0) return fail(s, rc);
  int64_t pairs = (int64_t)s->n1 * fedc_secagg_degree(s->n1, s->p.neighbors);
  if (pairs > FEDC_SECAGG_MAX_PAIRS)
    return fail(s, fedc_error_set(FEDC_ERANGE,
                                  "secagg round %d: %d parties with %d neighbours each are "
                                  "more pairs than %d; use fewer neighbours ([privacy] "
                                  "secagg_neighbors)",
                                  (int)s->p.round, (int)s->n1,
                                  (int)fedc_secagg_degree(s->n1, s->p.neighbors),
                                  FEDC_SECAGG_MAX_PAIRS));
  rc = build_graph(s);
  if (rc != 0) return fail(s, rc);
  s->t = fedc_secagg_threshold(fedc_secagg_degree(s->n1, s->p.neighbors), s->p.threshold);
  sa_writer w;
  rc = fedc__sa_writer_init(&w, SA_KEYS_FIXED + (size_t)s->n1 * SA_KEYS_ENTRY, SA_MSG_KEYS,
                            s->p.round, 0);
  if (rc != 0) return fail(s, rc);
  uint64_t clip_bits;
  memcpy(&clip_bits, &s->p.clip, sizeof clip_bits);
  fedc__sa_put_u64(&w, s->p.graph_seed);
  fedc__sa_put_u32(&w, (uint32_t)s->p.neighbors);
  fedc__sa_put_u32(&w, (uint32_t)s->t);
  fedc__sa_put_u32(&w, (uint32_t)s->frac_bits);
  fedc__sa_put_u64(&w, clip_bits);
  fedc__sa_put_u32(&w, (uint32_t)s->n1);
  for (int32_t i = 0; i < s->n1; i++) {
    const party *q = s->u1[i];
    fedc__sa_put_u32(&w, q->id);
    fedc__sa_put_u64(&w, q->n_samples);
    fedc__sa_put_bytes(&w, q->c_pk, SA_KEY);
    fedc__sa_put_bytes(&w, q->s_pk, SA_KEY);
  }
  s->keys_msg = w.buf;
  s->keys_len = w.len;
  s->phase = FEDC_SECAGG_SHARES;
  return 0;
}

int fedc_secagg_server_keys(const fedc_secagg_server *s, const uint8_t **msg, size_t *len) {
  if (s->keys_msg == NULL)
    return fedc_error_set(FEDC_ESTATE, "secagg: no key list (advertise phase %s)",
                          s->phase == FEDC_SECAGG_ADVERTISE ? "still open" : "failed");
  *msg = s->keys_msg;
  *len = s->keys_len;
  return 0;
}

/* ---- shares ------------------------------------------------------------------ */

static int32_t index_in_u1(const fedc_secagg_server *s, const party *q) {
  int32_t lo = 0, hi = s->n1;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (s->u1[mid]->id == q->id) return mid;
    if (s->u1[mid]->id < q->id) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

int fedc_secagg_server_add_shares(fedc_secagg_server *s, uint32_t sender, const uint8_t *msg,
                                  size_t len) {
  sa_reader r;
  party *q;
  int rc = open_msg(s, FEDC_SECAGG_SHARES, SA_MSG_SHARES, "SHARES", sender, msg, len, &r, &q);
  if (rc != 0) return rc;
  int32_t me = index_in_u1(s, q);
  if (me < 0)
    return fedc_error_set(FEDC_EINVAL, "secagg SHARES: %u did not advertise keys",
                          (unsigned)sender);
  uint32_t count = fedc__sa_u32(&r);
  if (r.bad) return fedc__sa_read_end(&r);
  if (count != (uint32_t)q->deg || r.left != (size_t)count * SA_SHARE_ENTRY)
    return fedc_error_set(FEDC_EFORMAT,
                          "secagg SHARES from %u: %u entries in %zu bytes, it has %d neighbours",
                          (unsigned)sender, (unsigned)count, r.left, (int)q->deg);
  /* one entry per neighbour, in the neighbours' order */
  const uint8_t *e = r.p;
  for (int32_t j = 0; j < q->deg; j++)
    if (fedc__sa_load32(e + (size_t)j * SA_SHARE_ENTRY) != s->u1[q->nbr[j]]->id)
      return fedc_error_set(FEDC_EFORMAT,
                            "secagg SHARES from %u: entry %d is not for neighbour %u",
                            (unsigned)sender, (int)j, (unsigned)s->u1[q->nbr[j]]->id);
  if (q->shared)
    return fedc_error_set(FEDC_EDUPLICATE, "secagg SHARES: %u already shared", (unsigned)sender);
  for (int32_t j = 0; j < q->deg; j++) {
    party *v = s->u1[q->nbr[j]];
    int32_t slot = fedc__sa_find_index(v->nbr, v->deg, me);
    memcpy(v->cts + (size_t)slot * FEDC_SECAGG_CT_BYTES, e + (size_t)j * SA_SHARE_ENTRY + 4,
           FEDC_SECAGG_CT_BYTES);
    v->ct_in[slot] = 1;
  }
  q->shared = 1;
  s->counts[FEDC_SECAGG_SHARES]++;
  return 0;
}

/* Neighbours of q that are in the set flagged by field (shared/masked). */
static int32_t live_neighbours(const fedc_secagg_server *s, const party *q, int masked) {
  int32_t k = 0;
  for (int32_t j = 0; j < q->deg; j++) {
    const party *v = s->u1[q->nbr[j]];
    k += masked ? v->masked : v->shared;
  }
  return k;
}

int fedc_secagg_server_close_shares(fedc_secagg_server *s) {
  if (s->phase != FEDC_SECAGG_SHARES)
    return fedc_error_set(FEDC_ESTATE, "secagg: close_shares in phase %s",
                          fedc_secagg_phase_name(s->phase));
  s->n_shared = s->counts[FEDC_SECAGG_SHARES];
  if (s->n_shared < 2)
    return fail(s, fedc_error_set(FEDC_EQUORUM, "secagg round %d: %d party shared keys",
                                  (int)s->p.round, (int)s->n_shared));
  /* a party whose secrets fewer than t neighbours hold can be neither
   * unmasked nor dropped */
  for (int32_t i = 0; i < s->n1; i++) {
    const party *q = s->u1[i];
    if (q->shared && live_neighbours(s, q, 0) < s->t)
      return fail(s, fedc_error_set(FEDC_EQUORUM,
                                    "secagg round %d: %d of client %u's neighbours shared, "
                                    "the threshold is %d",
                                    (int)s->p.round, (int)live_neighbours(s, q, 0),
                                    (unsigned)q->id, (int)s->t));
  }
  s->phase = FEDC_SECAGG_MASKED;
  return 0;
}

int fedc_secagg_server_myshares(const fedc_secagg_server *s, uint32_t id, uint8_t **msg,
                                size_t *len) {
  *msg = NULL;
  *len = 0;
  if (s->phase < FEDC_SECAGG_MASKED || s->phase == FEDC_SECAGG_FAILED)
    return fedc_error_set(FEDC_ESTATE, "secagg: MYSHARES in phase %s",
                          fedc_secagg_phase_name(s->phase));
  const party *q = find_party(s, id);
  if (q == NULL || !q->shared)
    return fedc_error_set(FEDC_EINVAL, "secagg: %u did not share keys in round %d",
                          (unsigned)id, (int)s->p.round);
  int32_t count = 0;
  for (int32_t j = 0; j < q->deg; j++) count += q->ct_in[j];
  sa_writer w;
  int rc = fedc__sa_writer_init(&w, SA_HEADER + 4 + (size_t)count * SA_SHARE_ENTRY,
                                SA_MSG_MYSHARES, s->p.round, id);
  if (rc != 0) return rc;
  fedc__sa_put_u32(&w, (uint32_t)count);
  for (int32_t j = 0; j < q->deg; j++) {
    if (!q->ct_in[j]) continue;
    fedc__sa_put_u32(&w, s->u1[q->nbr[j]]->id);
    fedc__sa_put_bytes(&w, q->cts + (size_t)j * FEDC_SECAGG_CT_BYTES, FEDC_SECAGG_CT_BYTES);
  }
  *msg = w.buf;
  *len = w.len;
  return 0;
}

/* ---- masked inputs ------------------------------------------------------------ */

int fedc_secagg_server_add_masked(fedc_secagg_server *s, uint32_t sender, const uint32_t *y,
                                  size_t n) {
  if (s->phase != FEDC_SECAGG_MASKED)
    return fedc_error_set(FEDC_ESTATE, "secagg masked input from %u: the round is in phase %s",
                          (unsigned)sender, fedc_secagg_phase_name(s->phase));
  party *q = find_party(s, sender);
  if (q == NULL || !q->shared)
    return fedc_error_set(FEDC_EINVAL, "secagg masked input: %u did not share keys",
                          (unsigned)sender);
  if (n != s->p.n || y == NULL)
    return fedc_error_set(FEDC_EINVAL, "secagg masked input from %u: %zu words, want %zu",
                          (unsigned)sender, n, s->p.n);
  if (q->masked)
    return fedc_error_set(FEDC_EDUPLICATE, "secagg masked input: %u already sent one",
                          (unsigned)sender);
  uint32_t *sum = s->sum;
  for (size_t i = 0; i < n; i++) sum[i] += y[i];
  q->masked = 1;
  s->counts[FEDC_SECAGG_MASKED]++;
  return 0;
}

/*
 * A relay's masked sum: its weight (what the result divides by) is the
 * sample count of its sites that survived its own session, at most what
 * it advertised (its sites that dropped after sharing are not in the sum).
 * The quantization bound was checked against the advertised counts, which
 * bound the sum's magnitude whatever the weight.
 */
int fedc_secagg_server_add_masked_weighted(fedc_secagg_server *s, uint32_t sender,
                                           const uint32_t *y, size_t n, uint64_t n_samples) {
  party *q = find_party(s, sender);
  if (q != NULL && q->advertised && !q->masked && (n_samples < 1 || n_samples > q->n_samples))
    return fedc_error_set(FEDC_EINVAL,
                          "secagg masked sum from %u: weight %llu, it advertised %llu",
                          (unsigned)sender, (unsigned long long)n_samples,
                          (unsigned long long)q->n_samples);
  int rc = fedc_secagg_server_add_masked(s, sender, y, n);
  if (rc == 0) q->n_samples = n_samples;
  return rc;
}

int fedc_secagg_server_close_masked(fedc_secagg_server *s) {
  if (s->phase != FEDC_SECAGG_MASKED)
    return fedc_error_set(FEDC_ESTATE, "secagg: close_masked in phase %s",
                          fedc_secagg_phase_name(s->phase));
  s->n_surv = s->counts[FEDC_SECAGG_MASKED];
  if (s->n_surv < s->t || s->n_surv < 2)
    return fail(s, fedc_error_set(FEDC_EQUORUM,
                                  "secagg round %d: %d masked inputs, the threshold is %d",
                                  (int)s->p.round, (int)s->n_surv, (int)s->t));
  /* every secret that will be needed must have t holders among the
   * survivors, the only parties that will be asked */
  for (int32_t i = 0; i < s->n1; i++) {
    const party *q = s->u1[i];
    if (!q->shared) continue;
    int32_t k = live_neighbours(s, q, 1);
    if (k > 0 && k < s->t)
      return fail(s, fedc_error_set(FEDC_EQUORUM,
                                    "secagg round %d: %d of client %u's neighbours survive, "
                                    "the threshold is %d",
                                    (int)s->p.round, (int)k, (unsigned)q->id, (int)s->t));
    if (k == 0 && q->masked)
      return fail(s, fedc_error_set(FEDC_EQUORUM, "secagg round %d: client %u has no "
                                    "surviving neighbour", (int)s->p.round, (unsigned)q->id));
  }
  s->surv_ids = fedc_malloc_array((size_t)s->n_surv, sizeof *s->surv_ids);
  sa_writer w = {0};
  int rc = s->surv_ids ? 0 : fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory");
  if (rc == 0)
    rc = fedc__sa_writer_init(&w, SA_HEADER + 4 + 4 * (size_t)s->n_surv, SA_MSG_SURVIVORS,
                              s->p.round, 0);
  if (rc != 0) return fail(s, rc);
  fedc__sa_put_u32(&w, (uint32_t)s->n_surv);
  for (int32_t i = 0, k = 0; i < s->n1; i++)
    if (s->u1[i]->masked) {
      s->surv_ids[k++] = s->u1[i]->id;
      fedc__sa_put_u32(&w, s->u1[i]->id);
    }
  s->surv_msg = w.buf;
  s->surv_len = w.len;
  s->phase = FEDC_SECAGG_UNMASK;
  return 0;
}

int fedc_secagg_server_survivors(const fedc_secagg_server *s, const uint8_t **msg, size_t *len) {
  if (s->surv_msg == NULL)
    return fedc_error_set(FEDC_ESTATE, "secagg: no survivor list in phase %s",
                          fedc_secagg_phase_name(s->phase));
  *msg = s->surv_msg;
  *len = s->surv_len;
  return 0;
}

int32_t fedc_secagg_server_survivor_ids(const fedc_secagg_server *s, const uint32_t **ids) {
  *ids = s->surv_ids;
  return s->surv_ids ? s->n_surv : 0;
}

/* ---- unmasking ----------------------------------------------------------------- */

int fedc_secagg_server_add_unmask(fedc_secagg_server *s, uint32_t sender, const uint8_t *msg,
                                  size_t len) {
  sa_reader r;
  party *q;
  int rc = open_msg(s, FEDC_SECAGG_UNMASK, SA_MSG_UNMASK, "UNMASK", sender, msg, len, &r, &q);
  if (rc != 0) return rc;
  if (!q->masked)
    return fedc_error_set(FEDC_EINVAL, "secagg UNMASK: %u is not a survivor", (unsigned)sender);
  uint32_t count = fedc__sa_u32(&r);
  if (r.bad) return fedc__sa_read_end(&r);
  int32_t want = live_neighbours(s, q, 0);
  if (count != (uint32_t)want || r.left != (size_t)count * SA_UNMASK_ENTRY)
    return fedc_error_set(FEDC_EFORMAT,
                          "secagg UNMASK from %u: %u entries in %zu bytes, want %d",
                          (unsigned)sender, (unsigned)count, r.left, (int)want);
  /* exactly the neighbours that shared, in order, each with the right kind */
  const uint8_t *e = r.p;
  int32_t k = 0;
  for (int32_t j = 0; j < q->deg; j++) {
    const party *v = s->u1[q->nbr[j]];
    if (!v->shared) continue;
    const uint8_t *x = e + (size_t)k++ * SA_UNMASK_ENTRY;
    uint8_t kind = x[4];
    if (fedc__sa_load32(x) != v->id || x[5] || x[6] || x[7])
      return fedc_error_set(FEDC_EFORMAT, "secagg UNMASK from %u: entry %d is not about %u",
                            (unsigned)sender, (int)(k - 1), (unsigned)v->id);
    if (kind != (v->masked ? SA_KIND_B : SA_KIND_SK))
      return fedc_error_set(FEDC_EFORMAT,
                            "secagg UNMASK from %u: a %s share for %u, which %s", (unsigned)sender,
                            kind == SA_KIND_B ? "self-mask" : "mask-key", (unsigned)v->id,
                            v->masked ? "survived" : "dropped");
    for (int w = 0; w < FEDC_SHAMIR_WORDS; w++)
      if (fedc__sa_load64(x + 8 + 8 * w) >= FEDC_SHAMIR_PRIME)
        return fedc_error_set(FEDC_EFORMAT, "secagg UNMASK from %u: a share is not a field "
                              "element", (unsigned)sender);
  }
  if (q->unmasked)
    return fedc_error_set(FEDC_EDUPLICATE, "secagg UNMASK: %u already answered",
                          (unsigned)sender);
  k = 0;
  for (int32_t j = 0; j < q->deg; j++) {
    party *v = s->u1[q->nbr[j]];
    if (!v->shared) continue;
    const uint8_t *x = e + (size_t)k++ * SA_UNMASK_ENTRY;
    fedc_shamir_share *sh = &v->sh[v->n_sh++];
    sh->x = (uint64_t)sender + 1;
    for (int w = 0; w < FEDC_SHAMIR_WORDS; w++) sh->y[w] = fedc__sa_load64(x + 8 + 8 * w);
  }
  q->unmasked = 1;
  s->counts[FEDC_SECAGG_UNMASK]++;
  return 0;
}

/* What a reconstructed secret is checked against: b_u's commitment or
 * the public mask key. */
typedef struct secret_check {
  fedc_secagg_server *s;
  const party *q;
  int kind; /* SA_KIND_B or SA_KIND_SK */
  int32_t k_round;
} secret_check;

static int check_secret(void *ctx, const uint8_t secret[FEDC_SECAGG_SEED_BYTES]) {
  secret_check *k = ctx;
  uint8_t v[SA_KEY];
  int ok;
  if (k->kind == SA_KIND_B) {
    fedc__sa_commit(secret, k->k_round, k->q->id, v);
    ok = memcmp(v, k->q->commit, SA_KEY) == 0;
  } else {
    ok = fedc__sa_public(&k->s->rng, secret, v) == 0 && memcmp(v, k->q->s_pk, SA_KEY) == 0;
  }
  fedc__sa_wipe(v, sizeof v);
  return ok;
}

static int cmp_id(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Party sender revealed a wrong share: excluded from here on. */
static void mark_liar(fedc_secagg_server *s, party *v) {
  if (v->liar) return;
  v->liar = 1;
  s->liars[s->n_liars++] = v->id;
  qsort(s->liars, (size_t)s->n_liars, sizeof *s->liars, cmp_id);
}

/*
 * Reconstruct a party's secret from the shares revealed about it, leaving
 * out those of revealers already found lying (unless too few remain), and
 * name the revealers of shares that disagree with the dealer's secret.
 */
static int reconstruct(fedc_secagg_server *s, party *q, int kind, uint8_t out[SA_KEY]) {
  const char *what = kind == SA_KIND_B ? "self-mask seed" : "mask key";
  fedc_shamir_share *sh = fedc_malloc_array((size_t)q->n_sh + 1, sizeof *sh);
  party **from = fedc_malloc_array((size_t)q->n_sh + 1, sizeof *from);
  uint8_t *wrong = fedc_calloc((size_t)q->n_sh + 1, 1);
  int rc = sh && from && wrong ? 0 : fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory");
  int32_t n = 0, honest = 0;
  for (int32_t i = 0; rc == 0 && i < q->n_sh; i++)
    honest += !find_party(s, (uint32_t)(q->sh[i].x - 1))->liar;
  for (int32_t i = 0; rc == 0 && i < q->n_sh; i++) {
    party *v = find_party(s, (uint32_t)(q->sh[i].x - 1));
    if (v->liar && honest >= s->t) continue;
    from[n] = v;
    sh[n++] = q->sh[i];
  }
  secret_check k = {.s = s, .q = q, .kind = kind, .k_round = s->p.round};
  if (rc == 0) rc = fedc_shamir_decode(sh, n, s->t, check_secret, &k, out, wrong);
  if (rc == 0)
    for (int32_t i = 0; i < n; i++)
      if (wrong[i]) mark_liar(s, from[i]);
  if (rc != 0 && rc != FEDC_ENOMEM) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(rc, "secagg round %d: %s of client %u from %d shares: %s",
                        (int)s->p.round, what, (unsigned)q->id, (int)n, msg);
  }
  if (sh) fedc__sa_wipe(sh, (size_t)q->n_sh * sizeof *sh);
  fedc_free(sh);
  fedc_free(from);
  fedc_free(wrong);
  return rc;
}

/* Remove the pairwise masks between dropped party q and its surviving
 * neighbours, from q's reconstructed mask key. */
static int strip_dropped(fedc_secagg_server *s, party *q, const uint8_t sk[SA_KEY]) {
  uint8_t pk[SA_KEY];
  int rc = fedc__sa_public(&s->rng, sk, pk);
  if (rc == 0 && memcmp(pk, q->s_pk, SA_KEY) != 0)
    rc = fedc_error_set(FEDC_ECHECKSUM,
                        "secagg round %d: the mask key rebuilt for client %u does not match "
                        "its public key",
                        (int)s->p.round, (unsigned)q->id);
  for (int32_t j = 0; rc == 0 && j < q->deg; j++) {
    const party *v = s->u1[q->nbr[j]];
    if (!v->masked) continue;
    uint8_t shared[SA_KEY], seed[SA_KEY];
    rc = fedc__sa_agree(&s->rng, sk, v->s_pk, shared);
    if (rc == 0) rc = fedc__sa_derive(shared, "mask", s->p.round, q->id, v->id, seed);
    /* v added +PRG(s_vq) when q > v, -PRG(s_vq) when q < v */
    if (rc == 0) fedc_secagg_prg_add(seed, q->id > v->id ? -1 : +1, s->sum, s->p.n);
    fedc__sa_wipe(shared, sizeof shared);
    fedc__sa_wipe(seed, sizeof seed);
  }
  return rc;
}

int fedc_secagg_server_finish(fedc_secagg_server *s, float *avg, size_t n,
                              fedc_secagg_result *res) {
  if (s->phase != FEDC_SECAGG_UNMASK)
    return fedc_error_set(FEDC_ESTATE, "secagg: finish in phase %s",
                          fedc_secagg_phase_name(s->phase));
  if (avg && n != s->p.n)
    return fedc_error_set(FEDC_EINVAL, "secagg: finish into %zu floats, the round has %zu", n,
                          s->p.n);
  int rc = 0;
  fedc_secagg_result r = {.frac_bits = s->frac_bits};
  fedc_free(s->liars);
  s->n_liars = 0;
  s->liars = fedc_malloc_array((size_t)s->n_surv + 1, sizeof *s->liars);
  if (s->liars == NULL) return fedc_error_set(FEDC_ENOMEM, "secagg server: out of memory");
  for (int32_t i = 0; rc == 0 && i < s->n1; i++) {
    party *q = s->u1[i];
    if (!q->shared) continue;
    uint8_t secret[SA_KEY];
    if (q->masked) {
      /* its commitment is checked inside: a wrong seed is never taken */
      rc = reconstruct(s, q, SA_KIND_B, secret);
      if (rc == 0) fedc_secagg_prg_add(secret, -1, s->sum, s->p.n);
      r.n_clients++;
      r.total_samples += q->n_samples;
    } else {
      r.dropped++;
      if (live_neighbours(s, q, 1) > 0) {
        rc = reconstruct(s, q, SA_KIND_SK, secret);
        if (rc == 0) rc = strip_dropped(s, q, secret);
      }
    }
    fedc__sa_wipe(secret, sizeof secret);
  }
  r.excluded = s->n_liars;
  if (rc != 0) return fail(s, rc);
  if (avg) fedc_secagg_dequantize(s->sum, n, s->frac_bits, r.total_samples, avg);
  s->res = r;
  if (res) *res = r;
  s->phase = FEDC_SECAGG_DONE;
  return 0;
}

int32_t fedc_secagg_server_excluded(const fedc_secagg_server *s, const uint32_t **ids) {
  *ids = s->liars;
  return s->liars ? s->n_liars : 0;
}

const uint32_t *fedc_secagg_server_sum(const fedc_secagg_server *s) {
  return s->phase == FEDC_SECAGG_DONE ? s->sum : NULL;
}
