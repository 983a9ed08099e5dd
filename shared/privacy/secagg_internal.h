/*
 * secagg_internal.h - what the secure-aggregation files share and nobody
 * else needs: the key agreement, key derivation, share encryption and
 * random-number helpers (secagg_crypto.c), the neighbour graph and the
 * message reader and writer (secagg_common.c). See secagg.h.
 */
#ifndef FEDC_SECAGG_INTERNAL_H
#define FEDC_SECAGG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "privacy/secagg.h"

#define SA_KEY 32
#define SA_HEADER 16
#define SA_PT_BYTES (12 + 16 * FEDC_SHAMIR_WORDS) /* one share pair, in clear */
#define SA_TAG 16

enum {
  SA_MSG_ADVERTISE = 1,
  SA_MSG_KEYS = 2,
  SA_MSG_SHARES = 3,
  SA_MSG_MYSHARES = 4,
  SA_MSG_SURVIVORS = 5,
  SA_MSG_UNMASK = 6
};

enum { SA_KIND_B = 1, SA_KIND_SK = 2 };

/* Sizes of the fixed parts. */
#define SA_ADVERTISE_BYTES (SA_HEADER + 8 + 3 * SA_KEY)
#define SA_KEYS_FIXED (SA_HEADER + 8 + 4 + 4 + 4 + 8 + 4)
#define SA_KEYS_ENTRY (4 + 8 + 2 * SA_KEY)
#define SA_SHARE_ENTRY (4 + FEDC_SECAGG_CT_BYTES)
#define SA_UNMASK_ENTRY (4 + 4 + 8 * FEDC_SHAMIR_WORDS)

/* A DRBG seeded from the system's entropy, one per protocol object. */
typedef struct sa_rng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  int ready;
} sa_rng;

int fedc__sa_rng_init(sa_rng *r, const char *personal);
void fedc__sa_rng_free(sa_rng *r);
int fedc__sa_random(sa_rng *r, uint8_t *buf, size_t len);

/* X25519 (RFC 7748): a new key pair, the public key of a private one, and
 * the shared secret (FEDC_EFORMAT for a public key that is not a valid
 * curve point or gives an all-zero secret). Keys are 32 bytes LE. */
int fedc__sa_keypair(sa_rng *r, uint8_t sk[SA_KEY], uint8_t pk[SA_KEY]);
int fedc__sa_public(sa_rng *r, const uint8_t sk[SA_KEY], uint8_t pk[SA_KEY]);
int fedc__sa_agree(sa_rng *r, const uint8_t sk[SA_KEY], const uint8_t peer_pk[SA_KEY],
                   uint8_t shared[SA_KEY]);
/* FEDC_EFORMAT if pk is not a usable X25519 public key. */
int fedc__sa_check_public(const uint8_t pk[SA_KEY]);

/* HKDF-SHA256 of a shared secret into a 32-byte key named by purpose
 * ("mask" or "enc"), the round and the unordered pair {a, b}. */
int fedc__sa_derive(const uint8_t shared[SA_KEY], const char *purpose, int32_t round,
                    uint32_t a, uint32_t b, uint8_t out[SA_KEY]);
/* SHA-256 commitment to b_u: H("fedc-secagg-v1 commit" | round | id | b). */
void fedc__sa_commit(const uint8_t b[SA_KEY], int32_t round, uint32_t id, uint8_t out[SA_KEY]);

/* ChaCha20-Poly1305 of a share pair from -> to (see secagg.h). */
int fedc__sa_seal(const uint8_t key[SA_KEY], uint32_t from, uint32_t to, int32_t round,
                  const uint8_t pt[SA_PT_BYTES], uint8_t ct[FEDC_SECAGG_CT_BYTES]);
/* FEDC_ECHECKSUM when authentication fails. */
int fedc__sa_open(const uint8_t key[SA_KEY], uint32_t from, uint32_t to, int32_t round,
                  const uint8_t ct[FEDC_SECAGG_CT_BYTES], uint8_t pt[SA_PT_BYTES]);

/* Wipe a secret (not optimised away). */
void fedc__sa_wipe(void *p, size_t n);

/* ---- the neighbour graph --------------------------------------------------- */

/* The ring order of n parties for the graph: perm (position -> party)
 * and pos (party -> position), n entries each. */
void fedc__sa_ring(uint64_t seed, int32_t n, int32_t *perm, int32_t *pos);
/* Sorted neighbour indices (0..n-1) of party i among n; returns the
 * degree. nbr has room for the degree (fedc_secagg_degree, at most n - 1).
 * perm and pos (from fedc__sa_ring) are not read for a complete graph and
 * may then be NULL. */
int32_t fedc__sa_neighbours(const int32_t *perm, const int32_t *pos, int32_t n,
                            int32_t neighbors, int32_t i, int32_t *nbr);

/* ---- reading and writing messages ----------------------------------------- */

typedef struct sa_reader {
  const uint8_t *p;
  size_t left;
  const char *what; /* message name for errors */
  int bad;
} sa_reader;

/* Check the header (magic, type, zero bytes) and return the round and id.
 * FEDC_EFORMAT naming what; the round is checked by the caller. */
int fedc__sa_read_header(sa_reader *r, const uint8_t *msg, size_t len, int type,
                         const char *what, int32_t *round, uint32_t *id);
uint32_t fedc__sa_u32(sa_reader *r);
uint64_t fedc__sa_u64(sa_reader *r);
uint8_t fedc__sa_u8(sa_reader *r);
const uint8_t *fedc__sa_bytes(sa_reader *r, size_t n);
/* FEDC_EFORMAT when the reader ran short or bytes are left over. */
int fedc__sa_read_end(sa_reader *r);

typedef struct sa_writer {
  uint8_t *buf;
  size_t len, cap;
} sa_writer;

int fedc__sa_writer_init(sa_writer *w, size_t cap, int type, int32_t round, uint32_t id);
void fedc__sa_put_u32(sa_writer *w, uint32_t v);
void fedc__sa_put_u64(sa_writer *w, uint64_t v);
void fedc__sa_put_u8(sa_writer *w, uint8_t v);
void fedc__sa_put_bytes(sa_writer *w, const void *p, size_t n);

/* Little-endian helpers for share words. */
void fedc__sa_store64(uint8_t *p, uint64_t v);
uint64_t fedc__sa_load64(const uint8_t *p);
void fedc__sa_store32(uint8_t *p, uint32_t v);
uint32_t fedc__sa_load32(const uint8_t *p);

/* Binary search in a sorted id array; -1 if absent. */
int32_t fedc__sa_find(const uint32_t *ids, int32_t n, uint32_t id);
/* Binary search in a sorted index array; -1 if absent. */
int32_t fedc__sa_find_index(const int32_t *v, int32_t n, int32_t x);

#endif
