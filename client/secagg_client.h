/*
 * secagg_client.h - the edge client's part of a secure round (client.c
 * calls it for a train task that says "secagg": true): the exchanges of
 * docs/protocol.md "Secure aggregation", driving shared/secagg.h's client.
 * Internal to the client; the transport comes in as a callback so that this
 * file does not depend on how client.c retries and backs off.
 */
#ifndef FEDC_SECAGG_CLIENT_H
#define FEDC_SECAGG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "http_curl.h"

typedef struct fedc_client_secagg_io {
  void *ctx;
  /* One exchange (GET when body is NULL), retried through network errors
   * and 5xx: 0 with *resp (status < 500; the caller frees it), or -1 when
   * the run must end (the outcome is set by the callee). */
  int (*call)(void *ctx, const char *what, const char *path, const char *ctype,
              const void *body, size_t len, double timeout_s, fedc_http_response *resp);
  /* A 403: 0 when it is not_selected (the round goes on without this
   * client), -1 when the client is not allowed (the run ends). */
  int (*forbidden)(void *ctx, const char *what, const fedc_http_response *resp,
                   int32_t round);
  /* 1 when the run was asked to stop. */
  int (*stopped)(void *ctx);
  double poll_s; /* longest long-poll */
  double test_stall_s; /* test hook: wait this long after sharing keys */
  int test_lie;        /* test hook: reveal one wrong share word */
} fedc_client_secagg_io;

/*
 * One secure round for client `client_id`: advertise keys, share, send the
 * masked delta (n floats, the trained model minus the round's start model)
 * with its sample count and loss, reveal shares. 0 when the round is done
 * or given up (refused, abandoned, too few parties: logged; the client
 * polls for its next task), -1 when the run must end. min_survivors > 0
 * (noise at the sites): give the round up rather than send the masked
 * delta or reveal shares with fewer parties or survivors.
 */
int fedc__client_secagg_round(const fedc_client_secagg_io *io, int32_t round, int64_t client_id,
                              const float *delta, size_t n, int64_t n_samples,
                              double train_loss, uint32_t min_survivors);

/*
 * The statistics session before round 1 (round 0): the same steps with the
 * site's statistics as words (data/schema.h fedc_stats_to_words, n words),
 * summed unweighted; the masked words go to POST /v1/stats. 0 done, 1
 * given up (logged; the client polls again and may be asked anew), -1
 * when the run must end.
 */
int fedc__client_secagg_stats(const fedc_client_secagg_io *io, int64_t client_id,
                              const uint32_t *words, size_t n);

#endif
