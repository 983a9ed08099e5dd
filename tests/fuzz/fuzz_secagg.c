/*
 * fuzz_secagg.c - fuzz target for the secure-aggregation messages
 * (shared/privacy/secagg.h): every byte string that crosses the network in
 * a secure round, on the side that reads it.
 *
 *   server (the coordinator, coordinator/secagg_rounds.c):
 *     0 ADVERTISE   fedc_secagg_server_add_advertise
 *     1 SHARES      fedc_secagg_server_add_shares
 *     2 masked      the body of POST /v1/update in a secure round: one U32
 *                   tensor "masked" in a safetensors container, its update
 *                   metadata, then fedc_secagg_server_add_masked (what
 *                   secagg_rounds.c's masked_run does)
 *     3 UNMASK      fedc_secagg_server_add_unmask, then finish
 *     7 UNMASK      the same in a round of five parties, where one wrong
 *                   share per secret can be located: the finish must then
 *                   give the exact average, naming the sender alone as
 *                   excluded when its shares were wrong
 *   client (the edge client, client/secagg_client.c):
 *     4 KEYS        fedc_secagg_client_share
 *     5 MYSHARES    fedc_secagg_client_masked_input
 *     6 SURVIVORS   fedc_secagg_client_unmask
 *
 * Each input builds a real round of three parties (ids 1, 2, 3; four
 * words each; five, ids 1 to 5, for parser 7) and drives it to the phase
 * where the message is read. Input byte 0 picks the parser (low 3 bits), the party
 * (bits 4-5: party 1, 2, 3, or 3 for a stranger, id 99) and the mode
 * (bit 7): clear, the rest of the input is the message; set, the rest is
 * XORed over the message the real protocol produced at that point (and
 * what goes past its end is appended), so that the fuzzer reaches what
 * lies behind the counts, ids and authenticated ciphertexts of a valid
 * message whose keys it cannot know in advance.
 *
 * Checked: only documented error codes; a message unchanged from the real
 * one (mode bit set, all zero bytes) is accepted; a refused message leaves
 * the state as it was (the real message is accepted after it); after an
 * accepted UNMASK the round finishes either with the exact average of the
 * three inputs or with FEDC_ECHECKSUM / FEDC_EQUORUM, never with a wrong
 * sum; every fedc block is freed.
 *
 * Built with -DFUZZ_SECAGG_SEEDS it is instead a program that writes seeds
 * for the corpus (tests/fuzz/make_seeds.py builds and runs it): each
 * message of a real round, raw and as an all-zero XOR patch.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "privacy/secagg.h"
#include "wire/safetensors.h"
#include "wire/update_meta.h"

#define PARTIES 5 /* at most; 3 but for P_UNMASK5 */
#define WORDS 4
#define ROUND 7
#define STRANGER 99u

enum { P_ADVERTISE, P_SHARES, P_MASKED, P_UNMASK, P_KEYS, P_MYSHARES, P_SURVIVORS, P_UNMASK5 };

static const uint32_t IDS[PARTIES] = {1, 2, 3, 4, 5};
static const uint64_t SAMPLES[PARTIES] = {10, 20, 30, 40, 50};

/* A round in progress: the server, the clients, and each party's real
 * message of the current step (owned here). */
typedef struct fixture {
  int np; /* parties */
  fedc_secagg_server *srv;
  fedc_secagg_client *cli[PARTIES];
  float x[PARTIES][WORDS];
  uint32_t y[PARTIES][WORDS];
  uint8_t *msg[PARTIES];
  size_t len[PARTIES];
} fixture;

static void drop_msgs(fixture *f) {
  for (int k = 0; k < f->np; k++) {
    fedc_free(f->msg[k]);
    f->msg[k] = NULL;
    f->len[k] = 0;
  }
}

static void fixture_free(fixture *f) {
  drop_msgs(f);
  for (int k = 0; k < f->np; k++)
    fedc_secagg_client_free(f->cli[k]);
  fedc_secagg_server_free(f->srv);
}

/* A step of the real protocol that must work. */
#define MUST(call) FUZZ_CHECK((call) == 0)

/* The masked update container as the client sends it (client/secagg_client.c). */
static int encode_masked(const uint32_t *y, uint64_t n_samples, uint8_t **out, size_t *len) {
  char r[16], ns[24];
  snprintf(r, sizeof r, "%d", ROUND);
  snprintf(ns, sizeof ns, "%llu", (unsigned long long)n_samples);
  fedc_st_meta meta[] = {
      {"format", "fedc-secagg"}, {"round", r}, {"num_samples", ns}, {"train_loss", "0.5"}};
  return fedc_st_encode_u32("masked", y, WORDS, meta, 4, out, len);
}

/*
 * Drive a fresh round up to the reading of message `parser`: f->msg[k] is
 * then party k's real message there (for a client parser, the server's
 * message to party k).
 */
static void fixture_build(fixture *f, int parser) {
  memset(f, 0, sizeof *f);
  f->np = parser == P_UNMASK5 ? 5 : 3;
  fedc_secagg_params p = {.round = ROUND, .n = WORDS, .neighbors = 0, .threshold = 0.5,
                          .clip = FEDC_SECAGG_DEFAULT_CLIP, .graph_seed = 42};
  MUST(fedc_secagg_server_new(&p, IDS, f->np, &f->srv));
  for (int k = 0; k < f->np; k++) {
    MUST(fedc_secagg_client_new(ROUND, IDS[k], SAMPLES[k], WORDS, &f->cli[k]));
    for (int i = 0; i < WORDS; i++)
      f->x[k][i] = 0.125f * (float)(k + 1) - 0.25f * (float)i;
    MUST(fedc_secagg_client_advertise(f->cli[k], &f->msg[k], &f->len[k]));
  }
  if (parser == P_ADVERTISE) return;
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_server_add_advertise(f->srv, IDS[k], f->msg[k], f->len[k]));
  drop_msgs(f);
  MUST(fedc_secagg_server_close_advertise(f->srv));
  const uint8_t *keys;
  size_t keys_len;
  MUST(fedc_secagg_server_keys(f->srv, &keys, &keys_len));
  if (parser == P_KEYS) {
    for (int k = 0; k < f->np; k++) {
      f->msg[k] = fedc_malloc(keys_len);
      FUZZ_CHECK(f->msg[k] != NULL);
      memcpy(f->msg[k], keys, keys_len);
      f->len[k] = keys_len;
    }
    return;
  }
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_client_share(f->cli[k], keys, keys_len, &f->msg[k], &f->len[k]));
  if (parser == P_SHARES) return;
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_server_add_shares(f->srv, IDS[k], f->msg[k], f->len[k]));
  drop_msgs(f);
  MUST(fedc_secagg_server_close_shares(f->srv));
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_server_myshares(f->srv, IDS[k], &f->msg[k], &f->len[k]));
  if (parser == P_MYSHARES) return;
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_client_masked_input(f->cli[k], f->msg[k], f->len[k], f->x[k], WORDS,
                                         f->y[k], NULL));
  drop_msgs(f);
  for (int k = 0; k < f->np; k++)
    MUST(encode_masked(f->y[k], SAMPLES[k], &f->msg[k], &f->len[k]));
  if (parser == P_MASKED) return;
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_server_add_masked(f->srv, IDS[k], f->y[k], WORDS));
  drop_msgs(f);
  MUST(fedc_secagg_server_close_masked(f->srv));
  const uint8_t *surv;
  size_t surv_len;
  MUST(fedc_secagg_server_survivors(f->srv, &surv, &surv_len));
  if (parser == P_SURVIVORS) {
    for (int k = 0; k < f->np; k++) {
      f->msg[k] = fedc_malloc(surv_len);
      FUZZ_CHECK(f->msg[k] != NULL);
      memcpy(f->msg[k], surv, surv_len);
      f->len[k] = surv_len;
    }
    return;
  }
  for (int k = 0; k < f->np; k++)
    MUST(fedc_secagg_client_unmask(f->cli[k], surv, surv_len, &f->msg[k], &f->len[k]));
}

#ifndef FUZZ_SECAGG_SEEDS
/* The documented error codes of secagg.h, and those of the container. */
static int known_rc(int rc) {
  return FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_ESTALE, FEDC_ESTATE, FEDC_EINVAL,
                     FEDC_EDUPLICATE, FEDC_ECHECKSUM, FEDC_EQUORUM, FEDC_ERANGE, FEDC_ENOMEM,
                     FEDC_EIO);
}

/*
 * What the coordinator does with a masked update's body (masked_run):
 * the container, one U32 tensor "masked" of the model's length, the
 * metadata, this round, the advertised sample count, then the fold.
 */
static int take_masked(fixture *f, uint32_t sender, const uint8_t *body, size_t len) {
  fedc_st_file *st = NULL;
  int rc = fedc_st_decode_ex(body, len, FEDC_ST_ALLOW_U32, &st);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_ECHECKSUM, FEDC_EUNSUPPORTED, FEDC_ETOOBIG,
                         FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ENOMEM));
  if (rc != 0) return FEDC_EFORMAT;
  const uint32_t *words = NULL;
  size_t n = 0;
  rc = fedc_st_count(st) == 1 ? fedc_st_find_u32(st, "masked", &words, &n) : FEDC_ENOTFOUND;
  fedc_update_meta m;
  if (rc != 0 || n != WORDS) {
    rc = FEDC_EFORMAT;
  } else if (fedc_update_meta_parse(st, &m) != 0) {
    rc = FEDC_EFORMAT;
  } else if (m.round != ROUND) {
    rc = FEDC_ESTALE;
  } else if (fedc_secagg_server_party_samples(f->srv, sender) != (uint64_t)m.num_samples) {
    rc = FEDC_EFORMAT;
  } else {
    rc = fedc_secagg_server_add_masked(f->srv, sender, words, n);
  }
  fedc_st_free(st);
  return rc;
}

/* Give message (msg, len) to the reader of `parser` as party k (or the
 * stranger); the client parsers' outputs are freed here. */
static int feed(fixture *f, int parser, int k, uint32_t sender, const uint8_t *msg, size_t len) {
  uint8_t *out = NULL;
  size_t out_len = 0;
  uint32_t y[WORDS];
  int rc;
  fedc_secagg_client *c = f->cli[k];
  switch (parser) {
  case P_ADVERTISE: rc = fedc_secagg_server_add_advertise(f->srv, sender, msg, len); break;
  case P_SHARES: rc = fedc_secagg_server_add_shares(f->srv, sender, msg, len); break;
  case P_MASKED: rc = take_masked(f, sender, msg, len); break;
  case P_UNMASK:
  case P_UNMASK5: rc = fedc_secagg_server_add_unmask(f->srv, sender, msg, len); break;
  case P_KEYS: rc = fedc_secagg_client_share(c, msg, len, &out, &out_len); break;
  case P_MYSHARES:
    rc = fedc_secagg_client_masked_input(c, msg, len, f->x[k], WORDS, y, NULL);
    break;
  default: rc = fedc_secagg_client_unmask(c, msg, len, &out, &out_len); break;
  }
  FUZZ_CHECK(known_rc(rc));
  FUZZ_CHECK(rc == 0 || out == NULL);
  if (rc == 0 && parser == P_KEYS) FUZZ_CHECK(out != NULL && out_len > 0);
  fedc_free(out);
  return rc;
}

/* The exact weighted average of the inputs, and whether avg is it (to
 * the quantization's error bound). */
static int average_ok(const fixture *f, const float *avg, int32_t frac_bits) {
  double total = 0;
  for (int k = 0; k < f->np; k++)
    total += (double)SAMPLES[k];
  for (int i = 0; i < WORDS; i++) {
    double want = 0;
    for (int k = 0; k < f->np; k++)
      want += (double)SAMPLES[k] * f->x[k][i];
    want /= total;
    if (!(fabs(avg[i] - want) <= ldexp(1.0, -frac_bits) + 1e-6)) return 0;
  }
  return 1;
}

/* After an accepted UNMASK from party k: the others' real ones, then the
 * end of the round, which is exact or refused; with five parties (each
 * secret has 4 shares, threshold 3) it is exact, and names party k alone
 * when its message was not its real one. */
static void finish_round(fixture *f, int k, int lied) {
  for (int j = 0; j < f->np; j++) {
    if (j == k) continue;
    int rc = fedc_secagg_server_add_unmask(f->srv, IDS[j], f->msg[j], f->len[j]);
    FUZZ_CHECK(rc == 0);
  }
  float avg[WORDS];
  fedc_secagg_result res;
  int rc = fedc_secagg_server_finish(f->srv, avg, WORDS, &res);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_ECHECKSUM, FEDC_EQUORUM, FEDC_ENOMEM));
  const uint32_t *ex;
  int32_t n_ex = fedc_secagg_server_excluded(f->srv, &ex);
  FUZZ_CHECK(n_ex == 0 || (n_ex == 1 && ex[0] == IDS[k] && lied));
  if (f->np == 5) FUZZ_CHECK(rc == FEDC_ENOMEM || (rc == 0 && n_ex == (lied ? 1 : 0)));
  if (rc == 0) {
    FUZZ_CHECK(res.n_clients == f->np && res.dropped == 0 && res.excluded == n_ex);
    FUZZ_CHECK(average_ok(f, avg, res.frac_bits));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int64_t live = fedc_alloc_live();
  int parser = data[0] & 7;
  int slot = (data[0] >> 4) & 3;
  int np = parser == P_UNMASK5 ? 5 : 3; /* slot 3 is party 4 of five */
  int k = slot < np ? slot : np - 1;
  uint32_t sender = slot < np ? IDS[k] : STRANGER;
  int patch = (data[0] & 0x80) != 0;
  const uint8_t *rest = data + 1;
  size_t n = size - 1;

  fixture f;
  fixture_build(&f, parser);
  uint8_t *msg = NULL;
  size_t len = n;
  int unchanged = 0;
  if (patch) {
    len = f.len[k] > n ? f.len[k] : n;
    msg = fedc_malloc(len ? len : 1);
    FUZZ_CHECK(msg != NULL);
    memset(msg, 0, len);
    memcpy(msg, f.msg[k], f.len[k]);
    unchanged = n <= f.len[k];
    for (size_t i = 0; i < n; i++) {
      msg[i] ^= rest[i];
      if (rest[i]) unchanged = 0;
    }
  } else {
    msg = fedc_malloc(n ? n : 1);
    FUZZ_CHECK(msg != NULL);
    memcpy(msg, rest, n);
    unchanged = n == f.len[k] && memcmp(rest, f.msg[k], n) == 0;
  }

  int rc = feed(&f, parser, k, sender, msg, len);
  if (unchanged && sender != STRANGER) FUZZ_CHECK(rc == 0);
  int server_side = parser <= P_UNMASK || parser == P_UNMASK5;
  if (sender == STRANGER && server_side) FUZZ_CHECK(rc != 0);
  if (server_side && sender != STRANGER) {
    /* the real message after it: taken if the fuzzed one was refused
     * (nothing changed), a duplicate or taken again if it was accepted */
    int again = feed(&f, parser, k, sender, f.msg[k], f.len[k]);
    if (rc != 0) FUZZ_CHECK(again == 0);
    else FUZZ_CHECK(again == 0 || again == FEDC_EDUPLICATE);
    int lied = rc == 0 && (len != f.len[k] || memcmp(msg, f.msg[k], len) != 0);
    if (parser == P_UNMASK || parser == P_UNMASK5) finish_round(&f, k, lied);
  }
  fedc_free(msg);
  fixture_free(&f);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
#else
/* The seed writer: tests/fuzz/make_seeds.py runs it with the corpus
 * folder, tests/fuzz/corpus/secagg. */
static void put(const char *dir, const char *name, int sel, const uint8_t *msg, size_t len,
                int zero) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *out = fopen(path, "wb");
  if (out == NULL) {
    perror(path);
    exit(1);
  }
  fputc(sel, out);
  for (size_t i = 0; i < len; i++)
    fputc(zero ? 0 : msg[i], out);
  if (fclose(out) != 0) exit(1);
}

int main(int argc, char **argv) {
  static const char *const NAMES[] = {"advertise", "shares", "masked", "unmask",
                                      "keys", "myshares", "survivors", "unmask5"};
  const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/secagg";
  for (int parser = P_ADVERTISE; parser <= P_UNMASK5; parser++) {
    fixture f;
    fixture_build(&f, parser);
    for (int k = 0; k < f.np && k < 4; k++) {
      char name[64];
      int sel = parser | (k << 4);
      snprintf(name, sizeof name, "%s-party%d", NAMES[parser], k + 1);
      put(dir, name, sel, f.msg[k], f.len[k], 0);
      snprintf(name, sizeof name, "%s-party%d-patch", NAMES[parser], k + 1);
      put(dir, name, sel | 0x80, f.msg[k], f.len[k], 1);
      if (parser == P_UNMASK || parser == P_UNMASK5) {
        /* a liar: one share word of its first entry changed (a patch of
         * zeros but one bit, at byte 28: header 16, count 4, id, kind) */
        snprintf(name, sizeof name, "%s-party%d-lie", NAMES[parser], k + 1);
        uint8_t *z = calloc(f.len[k], 1);
        if (z == NULL) exit(1);
        z[16 + 4 + 8 + 2] = 0x10;
        put(dir, name, sel | 0x80, z, f.len[k], 0);
        free(z);
      }
    }
    char name[64];
    snprintf(name, sizeof name, "%s-stranger", NAMES[parser]);
    put(dir, name, parser | (3 << 4) | 0x80, f.msg[0], f.len[0], 1);
    snprintf(name, sizeof name, "%s-truncated", NAMES[parser]);
    put(dir, name, parser, f.msg[0], f.len[0] / 2, 0);
    fixture_free(&f);
  }
  return 0;
}
#endif
