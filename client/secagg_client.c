/*
 * secagg_client.c - the edge client's side of a secure round
 * (docs/protocol.md, "Secure aggregation"): after training, the client
 * runs the four steps of shared/secagg.h's client over HTTPS,
 *
 *   POST /v1/secagg/advertise        its two public keys and commitment
 *   GET  /v1/secagg/keys             (long-poll) everyone's keys
 *   POST /v1/secagg/shares           encrypted shares for its neighbours
 *   GET  /v1/secagg/myshares         (long-poll) the shares sent to it
 *   POST /v1/update                  the masked delta, one U32 tensor
 *   GET  /v1/secagg/survivors        (long-poll) who sent masked deltas
 *   POST /v1/secagg/unmask           the shares that remove the masks
 *
 * A long-poll answered 204 is asked again at once. A 409 (the round moved
 * on or was abandoned), a 403 not_selected (the round went on without this
 * client) or a protocol refusal from the library ends this round for the
 * client, which then polls for its next task; nothing is resent, because
 * the keys of a round live only in this function.
 *
 * Test hook: io->test_stall_s > 0 (fedc-client sets it from
 * FEDC_TEST_SECAGG_STALL_S=<seconds>; the library reads no environment)
 * makes the client wait that long after sharing its keys, so that a test
 * can kill it at exactly that point. io->test_lie (FEDC_TEST_SECAGG_LIE=1)
 * makes it a lying client: one word of the first share it reveals in
 * UNMASK is moved by one (still a field element, so the message is well
 * formed and only the share is wrong), as a client vetoing rounds would.
 */
#include "secagg_client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "client.h"
#include "base/error.h"
#include "base/log.h"
#include "wire/safetensors.h"
#include "privacy/secagg.h"

#define MSG_MAX ((size_t)64 << 20)
#define POLL_MARGIN_S 30.0
#define POST_TIMEOUT_S 600.0

enum { STEP_OK = 0, STEP_GIVE_UP = 1, STEP_END = -1 };

typedef struct sa_run {
  const fedc_client_secagg_io *io;
  int32_t round;
  uint64_t sent, received; /* bytes of this round's secure-aggregation bodies */
} sa_run;

/* The error code and message of a refusal, logged. 403 is checked for
 * "forbidden" (the run ends). */
static int refused(sa_run *s, const char *what, fedc_http_response *resp) {
  char code[64], msg[256];
  fedc_client_error_parse((const char *)resp->body, resp->len, code, sizeof code, msg, sizeof msg);
  if (resp->status == 403 && s->io->forbidden(s->io->ctx, what, resp, s->round) != 0)
    return STEP_END;
  fedc_log_warn("msg=\"secure round given up\" round=%d request=%s status=%ld error=%s "
                "message=\"%s\"",
                (int)s->round, what, resp->status, code[0] ? code : "-", msg);
  return STEP_GIVE_UP;
}

static int post(sa_run *s, const char *what, const char *path, const char *ctype,
                const uint8_t *body, size_t len) {
  fedc_http_response resp;
  if (s->io->call(s->io->ctx, what, path, ctype, body, len, POST_TIMEOUT_S, &resp) != 0)
    return STEP_END;
  s->sent += len;
  int rc = resp.status == 200 ? STEP_OK : refused(s, what, &resp);
  fedc_http_response_free(&resp);
  return rc;
}

/* Long-poll a broadcast until it comes (200: *out, freed with fedc_free). */
static int fetch(sa_run *s, const char *what, uint8_t **out, size_t *len) {
  char path[128];
  snprintf(path, sizeof path, "/v1/secagg/%s?round=%d&wait=%g", what, (int)s->round,
           s->io->poll_s);
  for (;;) {
    if (s->io->stopped(s->io->ctx)) return STEP_END;
    fedc_http_response resp;
    if (s->io->call(s->io->ctx, what, path, NULL, NULL, 0, s->io->poll_s + POLL_MARGIN_S,
                    &resp) != 0)
      return STEP_END;
    if (resp.status == 204) {
      fedc_http_response_free(&resp);
      continue;
    }
    if (resp.status != 200) {
      int rc = refused(s, what, &resp);
      fedc_http_response_free(&resp);
      return rc;
    }
    s->received += resp.len;
    *out = resp.body; /* fedc_malloc'd by the transport */
    *len = resp.len;
    resp.body = NULL;
    fedc_http_response_free(&resp);
    return STEP_OK;
  }
}

/* A refusal from the protocol library: the round is given up (or, out of
 * memory, the run ends). */
static int library_failed(sa_run *s, const char *step, int rc) {
  fedc_log_warn("msg=\"secure round given up\" round=%d step=%s error=%s reason=\"%s\"",
                (int)s->round, step, fedc_err_name(rc), fedc_error_msg());
  return rc == FEDC_ENOMEM ? STEP_END : STEP_GIVE_UP;
}

static void stall_for_tests(sa_run *s) {
  double secs = s->io->test_stall_s;
  if (!(secs > 0)) return;
  fedc_log_info("msg=\"test hook: stalling after sharing keys\" round=%d secs=%g",
                (int)s->round, secs);
  for (double left = secs; left > 0 && !s->io->stopped(s->io->ctx); left -= 0.1) {
    struct timespec ts = {0, 100000000L};
    nanosleep(&ts, NULL);
  }
}

/* Test hook: the first revealed share's first word, plus one mod 2^61 - 1
 * (UNMASK: 16-byte header, count u32, then entries of about u32 | kind u8
 * | 3 zero bytes | y[5] u64, secagg.h). */
static void lie_for_tests(sa_run *s, uint8_t *msg, size_t len) {
  const size_t at = 16 + 4 + 8;
  if (!s->io->test_lie || len < at + 8) return;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | msg[at + (size_t)i];
  v = (v + 1) % FEDC_SHAMIR_PRIME;
  for (int i = 0; i < 8; i++) msg[at + (size_t)i] = (uint8_t)(v >> (8 * i));
  fedc_log_info("msg=\"test hook: revealing a wrong share word\" round=%d", (int)s->round);
}

/* The masked delta as a safetensors container: one U32 tensor "masked"
 * and the metadata of a plain update. */
static int encode_masked(const uint32_t *y, size_t n, int32_t round, int64_t n_samples,
                         double train_loss, uint8_t **out, size_t *len) {
  char r[16], ns[24], l[40];
  snprintf(r, sizeof r, "%d", (int)round);
  snprintf(ns, sizeof ns, "%lld", (long long)n_samples);
  snprintf(l, sizeof l, "%.9g", isfinite(train_loss) ? train_loss : 0.0);
  fedc_st_meta meta[] = {{"format", "fedc-secagg"}, {"round", r}, {"num_samples", ns},
                         {"train_loss", l}};
  return fedc_st_encode_u32("masked", y, n, meta, sizeof meta / sizeof *meta, out, len);
}

/* The statistics session's masked words: one U32 tensor "masked",
 * metadata format "fedc-secagg-stats" and round 0. */
static int encode_masked_stats(const uint32_t *y, size_t n, uint8_t **out, size_t *len) {
  fedc_st_meta meta[] = {{"format", "fedc-secagg-stats"}, {"round", "0"}};
  return fedc_st_encode_u32("masked", y, n, meta, sizeof meta / sizeof *meta, out, len);
}

/* The four steps; delta (n floats, a round) or words (n words, the
 * statistics session, sent to POST /v1/stats). */
static int run_steps(sa_run *s, fedc_secagg_client *sc, const float *delta,
                     const uint32_t *words, size_t n, int64_t n_samples, double train_loss) {
  uint8_t *msg = NULL, *in = NULL;
  size_t len = 0, in_len = 0;
  uint32_t *y = NULL;
  int rc = fedc_secagg_client_advertise(sc, &msg, &len);
  int step = rc ? library_failed(s, "advertise", rc)
                : post(s, "secagg advertise", "/v1/secagg/advertise",
                       "application/octet-stream", msg, len);
  fedc_free(msg);
  msg = NULL;
  if (step == STEP_OK) step = fetch(s, "keys", &in, &in_len);
  if (step == STEP_OK) {
    rc = fedc_secagg_client_share(sc, in, in_len, &msg, &len);
    step = rc ? library_failed(s, "share", rc)
              : post(s, "secagg shares", "/v1/secagg/shares", "application/octet-stream", msg,
                     len);
    fedc_free(msg);
    msg = NULL;
  }
  fedc_free(in);
  in = NULL;
  if (step == STEP_OK) {
    stall_for_tests(s);
    step = fetch(s, "myshares", &in, &in_len);
  }
  if (step == STEP_OK) {
    y = fedc_malloc_array(n, sizeof *y);
    size_t clipped = 0;
    rc = y == NULL ? fedc_error_set(FEDC_ENOMEM, "out of memory")
         : words   ? fedc_secagg_client_masked_words(sc, in, in_len, words, n, y)
                   : fedc_secagg_client_masked_input(sc, in, in_len, delta, n, y, &clipped);
    if (rc == 0 && clipped)
      fedc_log_warn("msg=\"secure round: update coordinates clipped\" round=%d clipped=%zu "
                    "clip=%g",
                    (int)s->round, clipped, fedc_secagg_client_clip(sc));
    if (rc == 0)
      rc = words ? encode_masked_stats(y, n, &msg, &len)
                 : encode_masked(y, n, s->round, n_samples, train_loss, &msg, &len);
    step = rc      ? library_failed(s, "masked input", rc)
           : words ? post(s, "masked statistics", "/v1/stats", "application/octet-stream", msg,
                          len)
                   : post(s, "masked update", "/v1/update", "application/octet-stream", msg,
                          len);
    fedc_free(msg);
    msg = NULL;
  }
  fedc_free(in);
  in = NULL;
  fedc_free(y);
  if (step == STEP_OK) step = fetch(s, "survivors", &in, &in_len);
  if (step == STEP_OK) {
    rc = fedc_secagg_client_unmask(sc, in, in_len, &msg, &len);
    if (rc == 0) lie_for_tests(s, msg, len);
    step = rc ? library_failed(s, "unmask", rc)
              : post(s, "secagg unmask", "/v1/secagg/unmask", "application/octet-stream", msg,
                     len);
    fedc_free(msg);
  }
  fedc_free(in);
  return step;
}

int fedc__client_secagg_round(const fedc_client_secagg_io *io, int32_t round, int64_t client_id,
                              const float *delta, size_t n, int64_t n_samples,
                              double train_loss, uint32_t min_survivors) {
  sa_run s = {.io = io, .round = round};
  if (client_id < 0 || client_id > UINT32_MAX) {
    fedc_log_error("msg=\"secure round: client id %lld does not fit\"", (long long)client_id);
    return 0;
  }
  fedc_secagg_client *sc = NULL;
  int rc = fedc_secagg_client_new(round, (uint32_t)client_id, (uint64_t)n_samples, n, &sc);
  if (rc == 0) fedc_secagg_client_require(sc, min_survivors);
  int step = rc ? library_failed(&s, "keys", rc)
                : run_steps(&s, sc, delta, NULL, n, n_samples, train_loss);
  if (step == STEP_OK)
    fedc_log_info("msg=\"secure round done\" round=%d frac_bits=%d bytes_sent=%llu "
                  "bytes_received=%llu",
                  (int)round, (int)fedc_secagg_client_frac_bits(sc),
                  (unsigned long long)s.sent, (unsigned long long)s.received);
  fedc_secagg_client_free(sc);
  return step == STEP_END ? -1 : 0;
}

int fedc__client_secagg_stats(const fedc_client_secagg_io *io, int64_t client_id,
                              const uint32_t *words, size_t n) {
  sa_run s = {.io = io, .round = 0};
  if (client_id < 0 || client_id > UINT32_MAX) {
    fedc_log_error("msg=\"statistics session: client id %lld does not fit\"",
                   (long long)client_id);
    return 1;
  }
  fedc_secagg_client *sc = NULL;
  int rc = fedc_secagg_client_new(0, (uint32_t)client_id, 1, n, &sc);
  int step = rc ? library_failed(&s, "keys", rc) : run_steps(&s, sc, NULL, words, n, 1, 0.0);
  if (step == STEP_OK)
    fedc_log_info("msg=\"statistics sent masked (secure aggregation)\" words=%zu "
                  "bytes_sent=%llu bytes_received=%llu",
                  n, (unsigned long long)s.sent, (unsigned long long)s.received);
  fedc_secagg_client_free(sc);
  return step == STEP_END ? -1 : step == STEP_OK ? 0 : 1;
}
