/*
 * secagg_user.c - the client's side of secure aggregation (a "user" in
 * Bonawitz et al. 2017), one object per round, driven step by step with
 * byte-buffer messages (formats and the protocol in secagg.h):
 *
 *   advertise      two fresh X25519 key pairs (c: share encryption, s:
 *                  masks) and a commitment to a fresh self-mask seed b_u
 *   share          from the server's key list: the neighbour graph, Shamir
 *                  shares of b_u and of s_sk for each neighbour, each pair
 *                  encrypted under the key agreed with that neighbour
 *   masked_input   decrypt the shares the neighbours sent, then
 *                  y = n_u Q(x) + PRG(b_u) +- PRG(s_uv) for each neighbour
 *                  that shared (masked_words: the words w as they are in
 *                  place of n_u Q(x))
 *   unmask         for each neighbour that shared: its b share if it is
 *                  listed as a survivor, else its mask-key share
 *
 * Every message is checked whole before the state moves on; a step called
 * out of order is FEDC_ESTATE. Secrets are wiped when the object is freed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "privacy/secagg_internal.h"

enum { STEP_NEW, STEP_ADVERTISED, STEP_SHARED, STEP_MASKED, STEP_UNMASKED };

#define MAX_SAMPLES ((uint64_t)1 << 40)

struct fedc_secagg_client {
  int32_t round;
  uint32_t id;
  uint64_t n_samples;
  size_t n;
  int step;
  sa_rng rng;
  uint8_t c_sk[SA_KEY], c_pk[SA_KEY], s_sk[SA_KEY], s_pk[SA_KEY], b[SA_KEY];
  /* from KEYS */
  int32_t n_parties, me;
  uint32_t *ids;
  uint8_t *s_pks; /* n_parties x 32 (the mask keys; the others are not kept) */
  int32_t *nbr;   /* neighbour indices, increasing */
  int32_t deg, t, frac_bits;
  double clip;
  uint32_t min_survivors; /* 0, or the floor set by fedc_secagg_client_require */
  /* from MYSHARES: per neighbour */
  uint8_t *enc_keys; /* deg x 32: the share-encryption key of each pair */
  uint8_t *shared;
  fedc_shamir_share *b_sh, *sk_sh; /* shares of the neighbours' secrets */
};

static int step_error(const fedc_secagg_client *c, const char *what) {
  return fedc_error_set(FEDC_ESTATE, "secagg client %u: %s out of order (step %d)",
                        (unsigned)c->id, what, c->step);
}

int fedc_secagg_client_new(int32_t round, uint32_t id, uint64_t n_samples, size_t n,
                           fedc_secagg_client **out) {
  *out = NULL;
  if (round < 0 || n_samples < 1 || n_samples > MAX_SAMPLES || n == 0)
    return fedc_error_set(FEDC_EINVAL,
                          "secagg client: round %d, %llu samples, %zu words: need round >= 0, "
                          "1..2^40 samples and a vector",
                          (int)round, (unsigned long long)n_samples, n);
  fedc_secagg_client *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "secagg client: out of memory");
  c->round = round;
  c->id = id;
  c->n_samples = n_samples;
  c->n = n;
  int rc = fedc__sa_rng_init(&c->rng, "fedc secagg client");
  if (rc == 0) rc = fedc__sa_keypair(&c->rng, c->c_sk, c->c_pk);
  if (rc == 0) rc = fedc__sa_keypair(&c->rng, c->s_sk, c->s_pk);
  if (rc == 0) rc = fedc__sa_random(&c->rng, c->b, SA_KEY);
  if (rc != 0) {
    fedc_secagg_client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void fedc_secagg_client_free(fedc_secagg_client *c) {
  if (c == NULL) return;
  fedc__sa_rng_free(&c->rng);
  fedc_free(c->ids);
  fedc_free(c->s_pks);
  fedc_free(c->nbr);
  fedc_free(c->shared);
  if (c->enc_keys) fedc__sa_wipe(c->enc_keys, (size_t)c->deg * SA_KEY);
  fedc_free(c->enc_keys);
  if (c->b_sh) fedc__sa_wipe(c->b_sh, (size_t)c->deg * sizeof *c->b_sh);
  if (c->sk_sh) fedc__sa_wipe(c->sk_sh, (size_t)c->deg * sizeof *c->sk_sh);
  fedc_free(c->b_sh);
  fedc_free(c->sk_sh);
  fedc__sa_wipe(c, sizeof *c);
  fedc_free(c);
}

int32_t fedc_secagg_client_frac_bits(const fedc_secagg_client *c) { return c->frac_bits; }
double fedc_secagg_client_clip(const fedc_secagg_client *c) { return c->clip; }

int fedc_secagg_client_advertise(fedc_secagg_client *c, uint8_t **msg, size_t *len) {
  *msg = NULL;
  *len = 0;
  if (c->step != STEP_NEW) return step_error(c, "advertise");
  sa_writer w;
  int rc = fedc__sa_writer_init(&w, SA_ADVERTISE_BYTES, SA_MSG_ADVERTISE, c->round, c->id);
  if (rc != 0) return rc;
  uint8_t commit[SA_KEY];
  fedc__sa_commit(c->b, c->round, c->id, commit);
  fedc__sa_put_u64(&w, c->n_samples);
  fedc__sa_put_bytes(&w, c->c_pk, SA_KEY);
  fedc__sa_put_bytes(&w, c->s_pk, SA_KEY);
  fedc__sa_put_bytes(&w, commit, SA_KEY);
  c->step = STEP_ADVERTISED;
  *msg = w.buf;
  *len = w.len;
  return 0;
}

/* ---- step 1: the key list, shares for the neighbours ---------------------- */

/* The parts of KEYS this client keeps, checked. */
typedef struct keys_view {
  uint64_t graph_seed;
  int32_t neighbors, t, frac_bits, count;
  double clip;
  const uint8_t *entries;
} keys_view;

static int read_keys(const fedc_secagg_client *c, const uint8_t *msg, size_t len,
                     keys_view *k) {
  sa_reader r;
  int32_t round;
  uint32_t id;
  int rc = fedc__sa_read_header(&r, msg, len, SA_MSG_KEYS, "KEYS", &round, &id);
  if (rc != 0) return rc;
  if (round != c->round)
    return fedc_error_set(FEDC_ESTALE, "secagg KEYS: for round %d, this is round %d", (int)round,
                          (int)c->round);
  k->graph_seed = fedc__sa_u64(&r);
  uint32_t nb = fedc__sa_u32(&r), t = fedc__sa_u32(&r), f = fedc__sa_u32(&r);
  uint64_t clip_bits = fedc__sa_u64(&r);
  uint32_t count = fedc__sa_u32(&r);
  if (r.bad) return fedc__sa_read_end(&r);
  memcpy(&k->clip, &clip_bits, sizeof k->clip);
  if (id != 0) return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: header id is not 0");
  if (count < 1 || count > FEDC_SECAGG_MAX_PARTIES)
    return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: %u parties (1..%d)", (unsigned)count,
                          FEDC_SECAGG_MAX_PARTIES);
  if (r.left != (size_t)count * SA_KEYS_ENTRY)
    return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: %zu bytes of entries for %u parties",
                          r.left, (unsigned)count);
  if (nb > FEDC_SECAGG_MAX_PARTIES)
    return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: neighbors = %u", (unsigned)nb);
  if (!(k->clip > 0) || !(k->clip <= 1048576.0))
    return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: clip %g is not in (0, 2^20]", k->clip);
  if (f > 30) return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: frac_bits %u > 30", (unsigned)f);
  k->neighbors = (int32_t)nb;
  k->t = (int32_t)t;
  k->frac_bits = (int32_t)f;
  k->count = (int32_t)count;
  k->entries = r.p;
  int32_t deg = fedc_secagg_degree(k->count, k->neighbors);
  if (deg >= 1 && (k->t < deg / 2 + 1 || k->t > deg))
    return fedc_error_set(FEDC_EFORMAT,
                          "secagg KEYS: threshold %u for %d neighbours (a majority at least)",
                          (unsigned)t, (int)deg);
  /* ids increasing, sample counts sane, this client listed as it said */
  uint64_t total = 0;
  int found = 0;
  for (int32_t i = 0; i < k->count; i++) {
    const uint8_t *e = k->entries + (size_t)i * SA_KEYS_ENTRY;
    uint32_t eid = fedc__sa_load32(e);
    uint64_t ns = fedc__sa_load64(e + 4);
    if (i > 0 && eid <= fedc__sa_load32(e - SA_KEYS_ENTRY))
      return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: ids are not strictly increasing");
    if (ns < 1 || ns > MAX_SAMPLES)
      return fedc_error_set(FEDC_EFORMAT, "secagg KEYS: party %u has %llu samples",
                            (unsigned)eid, (unsigned long long)ns);
    total += ns;
    if (eid == c->id) {
      if (ns != c->n_samples || memcmp(e + 12, c->c_pk, SA_KEY) != 0 ||
          memcmp(e + 12 + SA_KEY, c->s_pk, SA_KEY) != 0)
        return fedc_error_set(FEDC_EFORMAT,
                              "secagg KEYS: this client's entry is not what it advertised");
      found = 1;
    }
  }
  if (!found)
    return fedc_error_set(FEDC_ESTATE, "secagg KEYS: client %u is not in the key list",
                          (unsigned)c->id);
  if ((double)total * (ldexp(k->clip, k->frac_bits) + 0.5) >= 2147483648.0)
    return fedc_error_set(FEDC_EFORMAT,
                          "secagg KEYS: frac_bits %d with clip %g overflows for %llu samples",
                          (int)k->frac_bits, k->clip, (unsigned long long)total);
  if (k->count < 2)
    return fedc_error_set(FEDC_EQUORUM, "secagg KEYS: only %d party", (int)k->count);
  return 0;
}

/* Agree on the pair's encryption key with the party of KEYS entry `entry`
 * (into key) and encrypt this client's shares for it into ct. */
static int seal_for(fedc_secagg_client *c, const uint8_t *entry, const fedc_shamir_share *bs,
                    const fedc_shamir_share *ss, uint8_t key[SA_KEY],
                    uint8_t ct[FEDC_SECAGG_CT_BYTES]) {
  uint32_t to = fedc__sa_load32(entry);
  uint8_t shared[SA_KEY], pt[SA_PT_BYTES];
  int rc = fedc__sa_agree(&c->rng, c->c_sk, entry + 12, shared);
  if (rc == FEDC_EFORMAT) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(FEDC_EFORMAT, "secagg KEYS: party %u's encryption key: %s",
                        (unsigned)to, msg);
  }
  if (rc == 0) rc = fedc__sa_derive(shared, "enc", c->round, c->id, to, key);
  if (rc == 0) {
    fedc__sa_store32(pt, c->id);
    fedc__sa_store32(pt + 4, to);
    fedc__sa_store32(pt + 8, (uint32_t)c->round);
    for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) {
      fedc__sa_store64(pt + 12 + 8 * k, bs->y[k]);
      fedc__sa_store64(pt + 12 + 8 * (FEDC_SHAMIR_WORDS + k), ss->y[k]);
    }
    rc = fedc__sa_seal(key, c->id, to, c->round, pt, ct);
  }
  fedc__sa_wipe(shared, sizeof shared);
  fedc__sa_wipe(pt, sizeof pt);
  return rc;
}

static int rand_cb(void *ctx, unsigned char *buf, size_t len) {
  return fedc__sa_random(ctx, buf, len) == 0 ? 0 : -1;
}

int fedc_secagg_client_share(fedc_secagg_client *c, const uint8_t *keys, size_t keys_len,
                             uint8_t **msg, size_t *len) {
  *msg = NULL;
  *len = 0;
  if (c->step != STEP_ADVERTISED) return step_error(c, "share");
  keys_view k = {0};
  int rc = read_keys(c, keys, keys_len, &k);
  if (rc != 0) return rc;
  int32_t n = k.count;
  uint32_t *ids = fedc_malloc_array((size_t)n, sizeof *ids);
  uint8_t *s_pks = fedc_malloc_array((size_t)n, SA_KEY);
  int32_t *nbr = fedc_malloc_array((size_t)n, sizeof *nbr);
  int32_t *perm = fedc_malloc_array((size_t)n, sizeof *perm);
  int32_t *pos = fedc_malloc_array((size_t)n, sizeof *pos);
  uint64_t *xs = fedc_malloc_array((size_t)n, sizeof *xs);
  fedc_shamir_share *bs = fedc_calloc((size_t)n, sizeof *bs);
  fedc_shamir_share *ss = fedc_calloc((size_t)n, sizeof *ss);
  uint8_t *shared = fedc_calloc((size_t)n, 1);
  fedc_shamir_share *b_sh = fedc_calloc((size_t)n, sizeof *b_sh);
  fedc_shamir_share *sk_sh = fedc_calloc((size_t)n, sizeof *sk_sh);
  uint8_t *enc_keys = fedc_calloc((size_t)n, SA_KEY);
  sa_writer w = {0};
  if (!ids || !s_pks || !nbr || !perm || !pos || !xs || !bs || !ss || !shared || !b_sh ||
      !sk_sh || !enc_keys) {
    rc = fedc_error_set(FEDC_ENOMEM, "secagg client: out of memory");
    goto done;
  }
  for (int32_t i = 0; i < n; i++) {
    const uint8_t *e = k.entries + (size_t)i * SA_KEYS_ENTRY;
    ids[i] = fedc__sa_load32(e);
    memcpy(s_pks + (size_t)i * SA_KEY, e + 12 + SA_KEY, SA_KEY);
  }
  int32_t me = fedc__sa_find(ids, n, c->id);
  fedc__sa_ring(k.graph_seed, n, perm, pos);
  int32_t deg = fedc__sa_neighbours(perm, pos, n, k.neighbors, me, nbr);
  for (int32_t j = 0; j < deg; j++) xs[j] = (uint64_t)ids[nbr[j]] + 1;
  rc = fedc_shamir_split(c->b, k.t, xs, deg, rand_cb, &c->rng, bs);
  if (rc == 0) rc = fedc_shamir_split(c->s_sk, k.t, xs, deg, rand_cb, &c->rng, ss);
  if (rc == 0)
    rc = fedc__sa_writer_init(&w, SA_HEADER + 4 + (size_t)deg * SA_SHARE_ENTRY, SA_MSG_SHARES,
                              c->round, c->id);
  if (rc == 0) fedc__sa_put_u32(&w, (uint32_t)deg);
  for (int32_t j = 0; rc == 0 && j < deg; j++) {
    uint8_t ct[FEDC_SECAGG_CT_BYTES];
    const uint8_t *e = k.entries + (size_t)nbr[j] * SA_KEYS_ENTRY;
    rc = seal_for(c, e, &bs[j], &ss[j], enc_keys + (size_t)j * SA_KEY, ct);
    fedc__sa_put_u32(&w, ids[nbr[j]]);
    fedc__sa_put_bytes(&w, ct, sizeof ct);
  }
  if (rc == 0) {
    c->n_parties = n;
    c->me = me;
    c->ids = ids;
    c->s_pks = s_pks;
    c->nbr = nbr;
    c->deg = deg;
    c->t = k.t;
    c->frac_bits = k.frac_bits;
    c->clip = k.clip;
    c->shared = shared;
    c->b_sh = b_sh;
    c->sk_sh = sk_sh;
    c->enc_keys = enc_keys;
    ids = NULL, s_pks = NULL, nbr = NULL, shared = NULL, b_sh = sk_sh = NULL;
    enc_keys = NULL;
    c->step = STEP_SHARED;
    *msg = w.buf;
    *len = w.len;
    w.buf = NULL;
  }
done:
  fedc_free(w.buf);
  fedc_free(ids);
  fedc_free(s_pks);
  fedc_free(nbr);
  fedc_free(perm);
  fedc_free(pos);
  fedc_free(xs);
  if (bs) fedc__sa_wipe(bs, (size_t)n * sizeof *bs);
  if (ss) fedc__sa_wipe(ss, (size_t)n * sizeof *ss);
  fedc_free(bs);
  fedc_free(ss);
  fedc_free(shared);
  fedc_free(b_sh);
  fedc_free(sk_sh);
  if (enc_keys) fedc__sa_wipe(enc_keys, (size_t)n * SA_KEY);
  fedc_free(enc_keys);
  return rc;
}

/* ---- step 2: the masked input ------------------------------------------------ */

/* Decrypt and check the shares neighbour j sent (ciphertext ct) into
 * b_sh[j] and sk_sh[j]. */
static int open_from(fedc_secagg_client *c, int32_t j, const uint8_t *ct) {
  uint32_t from = c->ids[c->nbr[j]];
  uint8_t pt[SA_PT_BYTES];
  int rc = fedc__sa_open(c->enc_keys + (size_t)j * SA_KEY, from, c->id, c->round, ct, pt);
  if (rc != 0) return rc;
  if (fedc__sa_load32(pt) != from || fedc__sa_load32(pt + 4) != c->id ||
      fedc__sa_load32(pt + 8) != (uint32_t)c->round)
    rc = fedc_error_set(FEDC_EFORMAT, "secagg MYSHARES: the shares from %u name another pair",
                        (unsigned)from);
  for (int k = 0; rc == 0 && k < FEDC_SHAMIR_WORDS; k++) {
    c->b_sh[j].y[k] = fedc__sa_load64(pt + 12 + 8 * k);
    c->sk_sh[j].y[k] = fedc__sa_load64(pt + 12 + 8 * (FEDC_SHAMIR_WORDS + k));
    if (c->b_sh[j].y[k] >= FEDC_SHAMIR_PRIME || c->sk_sh[j].y[k] >= FEDC_SHAMIR_PRIME)
      rc = fedc_error_set(FEDC_EFORMAT, "secagg MYSHARES: a share from %u is not a field element",
                          (unsigned)from);
  }
  fedc__sa_wipe(pt, sizeof pt);
  return rc;
}

/* Neighbour slot of a party id, or -1. */
static int32_t slot_of(const fedc_secagg_client *c, uint32_t id) {
  int32_t i = fedc__sa_find(c->ids, c->n_parties, id);
  return i < 0 ? -1 : fedc__sa_find_index(c->nbr, c->deg, i);
}

/* The floor of fedc_secagg_client_require against a count of parties or
 * survivors: below it, the sum would carry less noise than the site was
 * told to count on. */
static int below_floor(const fedc_secagg_client *c, uint32_t count, const char *what) {
  if (c->min_survivors == 0 || count >= c->min_survivors) return 0;
  return fedc_error_set(FEDC_EQUORUM,
                        "secagg: %u %s, fewer than the %u the noise at the sites counts on",
                        (unsigned)count, what, (unsigned)c->min_survivors);
}

/* masked_input and masked_words: y = the input (x quantized and weighted,
 * or the words w as they are) plus the masks. */
static int mask_input(fedc_secagg_client *c, const uint8_t *myshares, size_t myshares_len,
                      const float *x, const uint32_t *w, size_t n, uint32_t *y,
                      size_t *clipped) {
  if (c->step != STEP_SHARED) return step_error(c, "masked_input");
  int floor_rc = below_floor(c, (uint32_t)c->n_parties, "parties");
  if (floor_rc != 0) return floor_rc;
  if (n != c->n)
    return fedc_error_set(FEDC_EINVAL, "secagg client: %zu values, the round has %zu", n, c->n);
  sa_reader r;
  int32_t round;
  uint32_t id;
  int rc = fedc__sa_read_header(&r, myshares, myshares_len, SA_MSG_MYSHARES, "MYSHARES",
                                &round, &id);
  if (rc != 0) return rc;
  if (round != c->round)
    return fedc_error_set(FEDC_ESTALE, "secagg MYSHARES: for round %d, this is round %d",
                          (int)round, (int)c->round);
  if (id != c->id)
    return fedc_error_set(FEDC_EFORMAT, "secagg MYSHARES: addressed to client %u, not %u",
                          (unsigned)id, (unsigned)c->id);
  uint32_t count = fedc__sa_u32(&r);
  if (r.bad) return fedc__sa_read_end(&r);
  if (count > (uint32_t)c->deg || r.left != (size_t)count * SA_SHARE_ENTRY)
    return fedc_error_set(FEDC_EFORMAT,
                          "secagg MYSHARES: %u entries in %zu bytes, %d neighbours",
                          (unsigned)count, r.left, (int)c->deg);
  memset(c->shared, 0, (size_t)c->deg);
  uint32_t prev = 0;
  for (uint32_t e = 0; e < count && rc == 0; e++) {
    uint32_t from = fedc__sa_u32(&r);
    const uint8_t *ct = fedc__sa_bytes(&r, FEDC_SECAGG_CT_BYTES);
    int32_t j = slot_of(c, from);
    if (e > 0 && from <= prev)
      rc = fedc_error_set(FEDC_EFORMAT, "secagg MYSHARES: senders are not strictly increasing");
    else if (j < 0)
      rc = fedc_error_set(FEDC_EFORMAT, "secagg MYSHARES: shares from %u, not a neighbour",
                          (unsigned)from);
    else
      rc = open_from(c, j, ct);
    if (rc == 0) c->shared[j] = 1;
    prev = from;
  }
  int32_t got = 0;
  for (int32_t j = 0; j < c->deg; j++) got += c->shared[j];
  if (rc == 0 && got < c->t)
    rc = fedc_error_set(FEDC_EQUORUM,
                        "secagg: %d of this client's %d neighbours shared; the threshold is %d",
                        (int)got, (int)c->deg, (int)c->t);
  if (rc == 0 && x != NULL)
    rc = fedc_secagg_quantize(x, n, c->clip, c->frac_bits, c->n_samples, y, clipped);
  else if (rc == 0)
    memcpy(y, w, n * sizeof *y);
  if (rc == 0) fedc_secagg_prg_add(c->b, +1, y, n);
  for (int32_t j = 0; rc == 0 && j < c->deg; j++) {
    if (!c->shared[j]) continue;
    int32_t v = c->nbr[j];
    uint8_t shared[SA_KEY], seed[SA_KEY];
    rc = fedc__sa_agree(&c->rng, c->s_sk, c->s_pks + (size_t)v * SA_KEY, shared);
    if (rc == 0) rc = fedc__sa_derive(shared, "mask", c->round, c->id, c->ids[v], seed);
    if (rc == 0) fedc_secagg_prg_add(seed, c->ids[v] > c->id ? +1 : -1, y, n);
    fedc__sa_wipe(shared, sizeof shared);
    fedc__sa_wipe(seed, sizeof seed);
  }
  if (rc != 0) {
    memset(c->shared, 0, (size_t)c->deg);
    fedc__sa_wipe(c->b_sh, (size_t)c->deg * sizeof *c->b_sh);
    fedc__sa_wipe(c->sk_sh, (size_t)c->deg * sizeof *c->sk_sh);
    fedc__sa_wipe(y, n * sizeof *y);
    return rc;
  }
  c->step = STEP_MASKED;
  return 0;
}

void fedc_secagg_client_require(fedc_secagg_client *c, uint32_t min_survivors) {
  c->min_survivors = min_survivors;
}


int fedc_secagg_client_masked_input(fedc_secagg_client *c, const uint8_t *myshares,
                                    size_t myshares_len, const float *x, size_t n,
                                    uint32_t *y, size_t *clipped) {
  return mask_input(c, myshares, myshares_len, x, NULL, n, y, clipped);
}

int fedc_secagg_client_masked_words(fedc_secagg_client *c, const uint8_t *myshares,
                                    size_t myshares_len, const uint32_t *w, size_t n,
                                    uint32_t *y) {
  return mask_input(c, myshares, myshares_len, NULL, w, n, y, NULL);
}

/* ---- step 3: revealing shares -------------------------------------------------- */

int fedc_secagg_client_unmask(fedc_secagg_client *c, const uint8_t *survivors,
                              size_t survivors_len, uint8_t **msg, size_t *len) {
  *msg = NULL;
  *len = 0;
  if (c->step != STEP_MASKED) return step_error(c, "unmask");
  sa_reader r;
  int32_t round;
  uint32_t id;
  int rc = fedc__sa_read_header(&r, survivors, survivors_len, SA_MSG_SURVIVORS, "SURVIVORS",
                                &round, &id);
  if (rc != 0) return rc;
  if (round != c->round)
    return fedc_error_set(FEDC_ESTALE, "secagg SURVIVORS: for round %d, this is round %d",
                          (int)round, (int)c->round);
  uint32_t count = fedc__sa_u32(&r);
  if (r.bad) return fedc__sa_read_end(&r);
  if (id != 0) return fedc_error_set(FEDC_EFORMAT, "secagg SURVIVORS: header id is not 0");
  if (count < 1 || count > (uint32_t)c->n_parties || r.left != 4 * (size_t)count)
    return fedc_error_set(FEDC_EFORMAT, "secagg SURVIVORS: %u ids in %zu bytes, %d parties",
                          (unsigned)count, r.left, (int)c->n_parties);
  const uint8_t *list = r.p;
  uint8_t *alive = fedc_calloc((size_t)c->deg, 1);
  if (alive == NULL) return fedc_error_set(FEDC_ENOMEM, "secagg client: out of memory");
  int me = 0;
  for (uint32_t i = 0; i < count && rc == 0; i++) {
    uint32_t v = fedc__sa_load32(list + 4 * (size_t)i);
    if (i > 0 && v <= fedc__sa_load32(list + 4 * (size_t)(i - 1))) {
      rc = fedc_error_set(FEDC_EFORMAT, "secagg SURVIVORS: ids are not strictly increasing");
      break;
    }
    if (fedc__sa_find(c->ids, c->n_parties, v) < 0) {
      rc = fedc_error_set(FEDC_EFORMAT, "secagg SURVIVORS: %u is not in the key list",
                          (unsigned)v);
      break;
    }
    if (v == c->id) me = 1;
    int32_t j = slot_of(c, v);
    if (j < 0) continue;
    /* a survivor sent a masked input, so it must have shared first */
    if (!c->shared[j])
      rc = fedc_error_set(FEDC_EFORMAT, "secagg SURVIVORS: %u never shared with client %u",
                          (unsigned)v, (unsigned)c->id);
    alive[j] = 1;
  }
  if (rc == 0 && !me)
    rc = fedc_error_set(FEDC_ESTATE, "secagg SURVIVORS: client %u is not listed",
                        (unsigned)c->id);
  /* Bonawitz et al.: with fewer than t survivors, stop; and never help to
   * unmask a lone survivor, whose "sum" is its own input */
  if (rc == 0 && (count < (uint32_t)c->t || count < 2))
    rc = fedc_error_set(FEDC_EQUORUM, "secagg: %u survivors, the threshold is %d",
                        (unsigned)count, (int)c->t);
  if (rc == 0) rc = below_floor(c, count, "survivors");
  int32_t entries = 0;
  for (int32_t j = 0; j < c->deg; j++) entries += c->shared[j];
  sa_writer w = {0};
  if (rc == 0)
    rc = fedc__sa_writer_init(&w, SA_HEADER + 4 + (size_t)entries * SA_UNMASK_ENTRY,
                              SA_MSG_UNMASK, c->round, c->id);
  if (rc == 0) {
    fedc__sa_put_u32(&w, (uint32_t)entries);
    for (int32_t j = 0; j < c->deg; j++) {
      if (!c->shared[j]) continue;
      const fedc_shamir_share *sh = alive[j] ? &c->b_sh[j] : &c->sk_sh[j];
      fedc__sa_put_u32(&w, c->ids[c->nbr[j]]);
      fedc__sa_put_u8(&w, alive[j] ? SA_KIND_B : SA_KIND_SK);
      for (int k = 0; k < 3; k++) fedc__sa_put_u8(&w, 0);
      for (int k = 0; k < FEDC_SHAMIR_WORDS; k++) fedc__sa_put_u64(&w, sh->y[k]);
    }
    c->step = STEP_UNMASKED;
    *msg = w.buf;
    *len = w.len;
  }
  fedc_free(alive);
  return rc;
}
