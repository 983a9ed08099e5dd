/*
 * secagg.h - secure aggregation: the coordinator learns the sum of the
 * clients' updates and nothing else about any one of them, and the sum is
 * still recovered when clients drop out after they have shared their keys.
 *
 * The protocol is Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017), honest-but-curious
 * variant, on the sparse neighbour graph of Bell et al., "Secure
 * Single-Server Aggregation with (Poly)Logarithmic Overhead" (CCS 2020,
 * "SecAgg+"). Transport-agnostic: every message is a byte buffer that the
 * caller carries (the coordinator over HTTPS, a test in memory).
 *
 *     // server                                  // each client u
 *     fedc_secagg_server_new(&p, ids, n, &s);     fedc_secagg_client_new(r, id, n_u, len, &c);
 *                                                 fedc_secagg_client_advertise(c, &m, &ml);
 *     fedc_secagg_server_add_advertise(s, id, m, ml);        // (every client)
 *     fedc_secagg_server_close_advertise(s);
 *     fedc_secagg_server_keys(s, &k, &kl);        // broadcast k to every client
 *                                                 fedc_secagg_client_share(c, k, kl, &m, &ml);
 *     fedc_secagg_server_add_shares(s, id, m, ml);
 *     fedc_secagg_server_close_shares(s);
 *     fedc_secagg_server_myshares(s, id, &m, &ml);  // to client id
 *                                                 fedc_secagg_client_masked_input(c, m, ml, x, len, y, NULL);
 *     fedc_secagg_server_add_masked(s, id, y, len);
 *     fedc_secagg_server_close_masked(s);
 *     fedc_secagg_server_survivors(s, &v, &vl);   // broadcast v
 *                                                 fedc_secagg_client_unmask(c, v, vl, &m, &ml);
 *     fedc_secagg_server_add_unmask(s, id, m, ml);
 *     fedc_secagg_server_finish(s, avg, len, &res);  // the weighted average
 *
 * A client that stops answering between two steps is a dropout; the
 * server's close_* calls end a phase with whoever is in (the caller decides
 * when: a deadline, or everyone has answered).
 *
 * What a client sends (mod 2^32, word by word, Bonawitz et al. eq. 1):
 *
 *     y_u = n_u * Q(x_u) + PRG(b_u) + sum_{v in N(u), v > u} PRG(s_uv)
 *                                   - sum_{v in N(u), v < u} PRG(s_uv)
 *
 * N(u) are u's neighbours that shared their keys, s_uv the seed u and v
 * agree on by X25519, b_u u's own random seed. Pairwise masks cancel in the
 * sum; the server removes the PRG(b_u) of the survivors from Shamir shares
 * of b_u, and the pairwise masks of a dropped u from Shamir shares of u's
 * mask key, each revealed by u's surviving neighbours (never both for one
 * u). The server then has sum_u n_u Q(x_u) over the survivors.
 *
 * Quantization and sample weighting. Each coordinate is clipped to
 * [-clip, clip] and rounded to f fractional bits, Q(x) = round(x 2^f), then
 * multiplied by the client's sample count n_u, an integer: the weighting
 * is exact. f is the largest integer (at most 30) with
 *
 *     N * (clip * 2^f + 1/2) < 2^31,  N = the sum of the advertised n_u,
 *
 * so no partial sum over any subset of clients wraps, and the server reads
 * the sum as a signed 32-bit integer. The weighted average it returns is
 * sum_u n_u Q(x_u) / 2^f / sum_u n_u, whose error against the exact
 * sum_u n_u x_u / sum_u n_u is at most 2^-(f+1) per coordinate (a convex
 * combination of per-client rounding errors of at most 2^-(f+1) each),
 * plus float32 rounding of the result, for coordinates no client clipped.
 * Clients send model deltas (new - global), which are small: clip = 4 gives
 * f = 17 (error <= 3.9e-6) for N = 3000 samples, f = 11 for N = 200000.
 *
 * Primitives (mbedTLS 2.28): X25519 (RFC 7748) for both key pairs;
 * HKDF-SHA256 (RFC 5869) for every derived key; ChaCha20-Poly1305 (RFC 8439)
 * for the shares one client sends another through the server; AES-128 in
 * counter mode as the PRG; Shamir sharing over GF(2^61 - 1); SHA-256
 * commitments to b_u so that the server detects a wrong reconstruction.
 * Every key is bound to the round; secrets are wiped when freed.
 *
 * Wire formats (all integers little-endian, every message starts with the
 * 16-byte header  "FSA1" | type u8 | 0 u8 | 0 u16 | round i32 | id u32):
 *
 *   1 ADVERTISE  client -> server, id = sender:
 *                n_samples u64 | c_pk[32] | s_pk[32] | commit(b)[32]
 *   2 KEYS       server -> all, id = 0:
 *                graph_seed u64 | neighbors u32 | threshold u32 |
 *                frac_bits u32 | clip f64 | count u32 |
 *                count x (id u32 | n_samples u64 | c_pk[32] | s_pk[32]),
 *                ids strictly increasing
 *   3 SHARES     client -> server, id = sender:
 *                count u32 | count x (to u32 | ciphertext[108])
 *   4 MYSHARES   server -> client, id = recipient:
 *                count u32 | count x (from u32 | ciphertext[108])
 *   5 SURVIVORS  server -> all, id = 0:
 *                count u32 | count x id u32, strictly increasing
 *   6 UNMASK     client -> server, id = sender:
 *                count u32 | count x (about u32 | kind u8 (1: b, 2: mask
 *                key) | 0 u8 x3 | share y[5] u64)
 *
 * A ciphertext is ChaCha20-Poly1305 of (from u32 | to u32 | round i32 |
 * b share y[5] u64 | mask key share y[5] u64) under the pair's encryption
 * key, nonce = additional data = (from u32 | to u32 | round i32), tag last.
 * Each decoder checks the length, the header, counts against the length,
 * the order and membership of ids, and refuses anything else with
 * FEDC_EFORMAT naming the field.
 *
 * Errors: FEDC_EFORMAT (malformed message), FEDC_ESTALE (another round),
 * FEDC_ESTATE (a message out of phase), FEDC_EINVAL (a sender that may not
 * send it, or a bad argument), FEDC_EDUPLICATE (already received; the state
 * is unchanged), FEDC_ECHECKSUM (a share fails authentication, or a
 * reconstructed secret fails its commitment), FEDC_EQUORUM (too few
 * parties left to go on: the round is abandoned), FEDC_ERANGE (the
 * quantization bound cannot hold), FEDC_ENOMEM, FEDC_EIO (mbedTLS failed).
 */
#ifndef FEDC_SECAGG_H
#define FEDC_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_SECAGG_MAX_PARTIES 10000
/* Parties times neighbours: the server keeps about 160 bytes per pair (a
 * ciphertext to route, a share to combine), so 2^21 pairs is ~340 MB; a
 * complete graph reaches it at 1448 parties, a SecAgg+ graph of degree 100
 * at 20000. */
#define FEDC_SECAGG_MAX_PAIRS (1 << 21)
#define FEDC_SECAGG_SEED_BYTES 32
/* Field elements of one 32-byte secret: 7-byte chunks, each below 2^56. */
#define FEDC_SHAMIR_WORDS 5
#define FEDC_SHAMIR_PRIME ((uint64_t)0x1fffffffffffffffULL) /* 2^61 - 1 */
#define FEDC_SECAGG_CT_BYTES 108 /* one encrypted share pair */
#define FEDC_SECAGG_DEFAULT_CLIP 4.0

/* ---- Shamir secret sharing over GF(2^61 - 1) ----------------------------- */

/* One share of a 32-byte secret: the polynomials' values at x (x != 0). */
typedef struct fedc_shamir_share {
  uint64_t x;
  uint64_t y[FEDC_SHAMIR_WORDS];
} fedc_shamir_share;

/* Random bytes, mbedtls_ctr_drbg_random's signature: 0 or non-zero. */
typedef int (*fedc_secagg_rand_fn)(void *ctx, unsigned char *buf, size_t len);

/*
 * Split secret into n shares at the points xs[0..n) (distinct, non-zero,
 * below 2^61 - 1) so that any t of them give it back and t - 1 reveal
 * nothing (Shamir 1979): each 7-byte chunk is the constant term of a random
 * polynomial of degree t - 1. FEDC_EINVAL (t outside 1..n, a bad point),
 * FEDC_EIO (rand failed).
 */
int fedc_shamir_split(const uint8_t secret[FEDC_SECAGG_SEED_BYTES], int32_t t,
                      const uint64_t *xs, int32_t n, fedc_secagg_rand_fn rand,
                      void *rand_ctx, fedc_shamir_share *out);
/*
 * Reconstruct from n shares with threshold t by Lagrange interpolation at 0
 * over the first t; the others, if any, must lie on the same polynomials.
 * FEDC_EQUORUM (n < t), FEDC_EINVAL (repeated or zero x), FEDC_ECHECKSUM
 * (shares that disagree, or a chunk that cannot be one of a secret: below
 * the threshold this is what usually comes back, and otherwise a wrong
 * secret).
 */
int fedc_shamir_combine(const fedc_shamir_share *shares, int32_t n, int32_t t,
                        uint8_t secret[FEDC_SECAGG_SEED_BYTES]);
/* Whether a reconstructed secret is the dealer's (its commitment or its
 * public key says): 1 yes, 0 no. */
typedef int (*fedc_shamir_check_fn)(void *ctx, const uint8_t secret[FEDC_SECAGG_SEED_BYTES]);
/*
 * Reconstruct from n shares with threshold t when some may be wrong, and
 * say which: wrong[i] = 1 for each share off the polynomials of the secret
 * that check accepts, 0 for the others. First every share is combined as
 * fedc_shamir_combine does; if they disagree (or the secret fails check),
 * Berlekamp-Welch decoding on the first min(n, 256) shares corrects up to
 * floor((min(n, 256) - t) / 2) wrong ones; failing that, sets of t shares
 * are tried in turn (at most 4096 sets), which finds the secret whenever t
 * shares are right and the sets are few enough. A secret is taken
 * only when check accepts it and at least t shares lie on its polynomials,
 * so a share is called wrong only against the dealer's own secret.
 * FEDC_EQUORUM (n < t), FEDC_EINVAL, FEDC_ECHECKSUM (no accepted secret:
 * too many wrong shares for the redundancy n - t), FEDC_ENOMEM.
 */
int fedc_shamir_decode(const fedc_shamir_share *shares, int32_t n, int32_t t,
                       fedc_shamir_check_fn check, void *ctx,
                       uint8_t secret[FEDC_SECAGG_SEED_BYTES], uint8_t *wrong);

/* ---- what client and server compute alike -------------------------------- */

/* y[i] += sign * PRG(seed)[i] (mod 2^32), sign = +1 or -1. The PRG is
 * AES-128 with key seed[0..16), block j = AES(seed[16..24) | j as u64 LE),
 * read as little-endian 32-bit words. */
void fedc_secagg_prg_add(const uint8_t seed[FEDC_SECAGG_SEED_BYTES], int sign,
                         uint32_t *y, size_t n);

/* Shamir threshold of a party with `degree` neighbours: the larger of
 * ceil(fraction * degree) and a strict majority, floor(degree / 2) + 1,
 * at most degree (at least 1). */
int32_t fedc_secagg_threshold(int32_t degree, double fraction);

/* Neighbours of each party: complete when neighbors = 0 or covers every
 * other party; else a Harary graph (each party joined to the
 * ceil(neighbors/2) next and previous ones on a ring) on a random order of
 * the parties drawn from seed, as SecAgg+ does (Bell et al. 2020, sec. 3).
 * Degree = min(n - 1, 2 ceil(neighbors / 2)). */
int32_t fedc_secagg_degree(int32_t n_parties, int32_t neighbors);

/* Fractional bits for a total sample count and clip (see above).
 * FEDC_ERANGE when even f = 0 could overflow. */
int fedc_secagg_frac_bits(uint64_t total_samples, double clip, int32_t *frac_bits);
/* out[i] = n_samples * round(clamp(x[i], -clip, clip) * 2^f) mod 2^32.
 * *clipped (if not NULL) counts coordinates that were clamped; NaN is
 * FEDC_ENONFINITE. */
int fedc_secagg_quantize(const float *x, size_t n, double clip, int32_t frac_bits,
                         uint64_t n_samples, uint32_t *out, size_t *clipped);
/* out[i] = (int32_t)sum[i] / 2^f / total. */
void fedc_secagg_dequantize(const uint32_t *sum, size_t n, int32_t frac_bits,
                            uint64_t total, float *out);

/* ---- the client (one per round) ------------------------------------------ */

typedef struct fedc_secagg_client fedc_secagg_client;

/*
 * A client for round (>= 1; 0 is a job's statistics session) with identity id (the coordinator's client
 * id; its Shamir point is id + 1), n_samples >= 1 and vectors of n words.
 * Draws its two X25519 key pairs and b_u. FEDC_EINVAL, FEDC_ENOMEM,
 * FEDC_EIO.
 */
int fedc_secagg_client_new(int32_t round, uint32_t id, uint64_t n_samples, size_t n,
                           fedc_secagg_client **out);
void fedc_secagg_client_free(fedc_secagg_client *c);

/* Step 0: the ADVERTISE message (*msg freed with fedc_free). */
int fedc_secagg_client_advertise(fedc_secagg_client *c, uint8_t **msg, size_t *len);
/*
 * Step 1: read the KEYS broadcast (checked: this round, this client listed
 * as it advertised, a sane threshold and quantization), split b_u and the
 * mask key among the neighbours and encrypt each pair of shares for its
 * neighbour: the SHARES message. FEDC_EQUORUM when fewer than 2 parties.
 */
int fedc_secagg_client_share(fedc_secagg_client *c, const uint8_t *keys, size_t keys_len,
                             uint8_t **msg, size_t *len);
/*
 * Step 2: read MYSHARES (the shares the neighbours sent this client; a
 * neighbour missing from it did not share and is left out of the masks),
 * check and decrypt them, and write the masked input of x (n floats) into
 * y (n words). *clipped as fedc_secagg_quantize. FEDC_ECHECKSUM for a
 * share that fails authentication.
 */
int fedc_secagg_client_masked_input(fedc_secagg_client *c, const uint8_t *myshares,
                                    size_t myshares_len, const float *x, size_t n,
                                    uint32_t *y, size_t *clipped);
/*
 * Step 2 for a vector of words summed as they are (the statistics session,
 * docs/protocol.md): y = w + the masks, no quantization and no weighting by
 * n_samples (the client is made with n_samples = 1). The caller keeps each
 * word small enough that the sum over the parties cannot wrap. Errors as
 * masked_input.
 */
int fedc_secagg_client_masked_words(fedc_secagg_client *c, const uint8_t *myshares,
                                    size_t myshares_len, const uint32_t *w, size_t n,
                                    uint32_t *y);
/*
 * Step 3: read SURVIVORS and reveal, for each neighbour that shared, its
 * b share if it survived, else its mask-key share: the UNMASK message.
 * FEDC_EQUORUM when fewer survivors than the threshold (revealing would
 * not help and could expose a survivor), FEDC_ESTATE when this client is
 * not listed, FEDC_EFORMAT when the list contradicts what the client saw.
 */
int fedc_secagg_client_unmask(fedc_secagg_client *c, const uint8_t *survivors,
                              size_t survivors_len, uint8_t **msg, size_t *len);
/*
 * With noise at the sites (docs/privacy.md), each site's noise is sized for
 * at least min_survivors parties in the sum. Before step 0: the client then
 * refuses (FEDC_EQUORUM) to send a masked input when the KEYS listed fewer
 * parties, and to reveal shares when fewer survivors are listed, so a
 * coordinator that overstated min_survivors cannot get a sum with less
 * noise than promised. 0 = no floor.
 */
void fedc_secagg_client_require(fedc_secagg_client *c, uint32_t min_survivors);
/* After step 1: the fractional bits and clip of the round. */
int32_t fedc_secagg_client_frac_bits(const fedc_secagg_client *c);
double fedc_secagg_client_clip(const fedc_secagg_client *c);

/* ---- the server (one per round) ------------------------------------------ */

typedef struct fedc_secagg_server fedc_secagg_server;

typedef struct fedc_secagg_params {
  int32_t round;       /* >= 1; 0: the statistics session before round 1 */
  size_t n;            /* words per vector */
  int32_t neighbors;   /* SecAgg+ degree; 0 = every other party */
  double threshold;    /* (0, 1]: fraction of a party's neighbours */
  double clip;         /* > 0: each coordinate is clamped to +-clip */
  uint64_t graph_seed; /* names the neighbour graph */
} fedc_secagg_params;

typedef enum {
  FEDC_SECAGG_ADVERTISE = 0, /* collecting ADVERTISE */
  FEDC_SECAGG_SHARES = 1,    /* KEYS out; collecting SHARES */
  FEDC_SECAGG_MASKED = 2,    /* MYSHARES out; collecting masked inputs */
  FEDC_SECAGG_UNMASK = 3,    /* SURVIVORS out; collecting UNMASK */
  FEDC_SECAGG_DONE = 4,      /* finished: the sum is known */
  FEDC_SECAGG_FAILED = 5     /* abandoned (too few parties) */
} fedc_secagg_phase;

/* The outcome of a round. */
typedef struct fedc_secagg_result {
  int32_t n_clients;      /* survivors summed */
  uint64_t total_samples; /* their sample counts, summed */
  int32_t frac_bits;
  int32_t dropped;        /* shared keys, sent no masked input */
  int32_t excluded;       /* survivors that revealed wrong shares (below) */
} fedc_secagg_result;

/* ids (distinct): the parties allowed to take part (the round's selected
 * clients). FEDC_EINVAL, FEDC_ENOMEM, FEDC_EIO. */
int fedc_secagg_server_new(const fedc_secagg_params *p, const uint32_t *ids, int32_t n_ids,
                           fedc_secagg_server **out);
void fedc_secagg_server_free(fedc_secagg_server *s);

fedc_secagg_phase fedc_secagg_server_phase(const fedc_secagg_server *s);
const char *fedc_secagg_phase_name(fedc_secagg_phase p);
/* Parties that have sent the message of a phase (ADVERTISE .. UNMASK). */
int32_t fedc_secagg_server_count(const fedc_secagg_server *s, fedc_secagg_phase p);
/* The last phase whose message party id has sent, or -1 if none. */
int fedc_secagg_server_party_phase(const fedc_secagg_server *s, uint32_t id);
/* The sample count party id advertised (0 if it did not). */
uint64_t fedc_secagg_server_party_samples(const fedc_secagg_server *s, uint32_t id);
/* After close_advertise: the Shamir threshold and the fractional bits. */
int32_t fedc_secagg_server_threshold(const fedc_secagg_server *s);
int32_t fedc_secagg_server_frac_bits(const fedc_secagg_server *s);
/* 1 when every party still expected in the current phase has sent. */
int fedc_secagg_server_phase_complete(const fedc_secagg_server *s);

/* Before close_advertise: quantize with frac_bits and clip as given (a
 * relay's session takes its parent's) instead of the f the advertised
 * total gives; close_advertise then fails (FEDC_ERANGE) if the sum over
 * this session's parties could wrap. FEDC_ESTATE after KEYS, FEDC_EINVAL. */
int fedc_secagg_server_set_quantization(fedc_secagg_server *s, int32_t frac_bits, double clip);

/* Each add_* checks its message whole before the state changes. */
int fedc_secagg_server_add_advertise(fedc_secagg_server *s, uint32_t sender,
                                     const uint8_t *msg, size_t len);
/* End the advertise phase and build KEYS. FEDC_EQUORUM below 2 parties,
 * FEDC_ERANGE when the quantization bound cannot hold or the graph has more
 * than FEDC_SECAGG_MAX_PAIRS pairs: the round fails. */
int fedc_secagg_server_close_advertise(fedc_secagg_server *s);
/* The KEYS broadcast (owned by s, valid until it is freed). */
int fedc_secagg_server_keys(const fedc_secagg_server *s, const uint8_t **msg, size_t *len);
int fedc_secagg_server_add_shares(fedc_secagg_server *s, uint32_t sender, const uint8_t *msg,
                                  size_t len);
/* End the sharing phase. FEDC_EQUORUM when some party that shared has
 * fewer than threshold neighbours that shared. */
int fedc_secagg_server_close_shares(fedc_secagg_server *s);
/* MYSHARES for a party that shared (*msg freed with fedc_free). */
int fedc_secagg_server_myshares(const fedc_secagg_server *s, uint32_t id, uint8_t **msg,
                                size_t *len);
/* Fold a masked input (n words) into the running sum. */
int fedc_secagg_server_add_masked(fedc_secagg_server *s, uint32_t sender, const uint32_t *y,
                                  size_t n);
/* The same for a relay's masked sum, whose weight in the result becomes
 * n_samples (1 .. what it advertised: its sites that survived its own
 * session). FEDC_EINVAL for a weight outside that range. */
int fedc_secagg_server_add_masked_weighted(fedc_secagg_server *s, uint32_t sender,
                                           const uint32_t *y, size_t n, uint64_t n_samples);
/* End the masked-input phase and build SURVIVORS. FEDC_EQUORUM when the
 * survivors cannot be unmasked even if all of them answer. */
int fedc_secagg_server_close_masked(fedc_secagg_server *s);
int fedc_secagg_server_survivors(const fedc_secagg_server *s, const uint8_t **msg, size_t *len);
/* The survivors' ids (after close_masked), increasing. */
int32_t fedc_secagg_server_survivor_ids(const fedc_secagg_server *s, const uint32_t **ids);
int fedc_secagg_server_add_unmask(fedc_secagg_server *s, uint32_t sender, const uint8_t *msg,
                                  size_t len);
/*
 * End the round: reconstruct each survivor's b_u and each dropped party's
 * mask key from the shares received, remove the masks, and write the
 * sample-weighted average of the survivors' inputs into avg (n floats; may
 * be NULL for the sum alone).
 *
 * Revealed shares that disagree are located (fedc_shamir_decode, each
 * secret checked against the dealer's commitment to b_u or its public mask
 * key) and their revealer is excluded: its other revealed shares are set
 * aside for the secrets still to rebuild, and it is listed by
 * fedc_secagg_server_excluded. Its own masked input stays in the sum (it
 * can leave it only if its input were unmasked alone, which the protocol
 * forbids), with its b_u rebuilt from the others' shares. FEDC_EQUORUM (too
 * few shares for some secret), FEDC_ECHECKSUM (shares disagree beyond what
 * the redundancy corrects, or a reconstruction fails its check); the phase
 * is then FAILED, and the revealers found wrong so far are still listed.
 */
int fedc_secagg_server_finish(fedc_secagg_server *s, float *avg, size_t n,
                              fedc_secagg_result *res);
/* After finish (done or failed): the parties whose revealed shares were
 * wrong, increasing; the count is returned. */
int32_t fedc_secagg_server_excluded(const fedc_secagg_server *s, const uint32_t **ids);
/* After finish: sum_u n_u Q(x_u) mod 2^32 over the survivors (n words). */
const uint32_t *fedc_secagg_server_sum(const fedc_secagg_server *s);
/* Mark the round failed (the caller abandons it). */
void fedc_secagg_server_fail(fedc_secagg_server *s);

#endif
