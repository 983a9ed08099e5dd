/*
 * relay_fold.c - the parent's side of a relay (docs/relays.md): a POST
 * /v1/update whose body is a partial sum (wire/partial.h) instead of a
 * safetensors container is the update of a relay, one client of this
 * coordinator that stands for a whole subtree. Its exact 128-bit sums and
 * sample total go into the open round through fedc_engine_merge, the path
 * by which fedc-sim-mpi's ranks add each other's partials: the relay's
 * slot is marked reported with the subtree's sample count and loss, and
 * the accumulator gains exactly the integers its sites' updates would have
 * added here, so the committed model is bit for bit the flat run's.
 *
 * Only where the flat run would add nothing but those integers: FedAvg
 * and the server optimizers that step after it, with no norm bound, no
 * client share cap (max_client_share = 0), no differential privacy and no
 * secure aggregation (each acts on single updates the parent never sees).
 * The engine refuses the non-additive strategies and DP itself; the rest
 * is refused here. max_weight_delta, a sanity bound on one update, is not
 * applied to a partial.
 */
#include "coord_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/partial.h"

static int fail(fedc__coord_partial_result *r, int status, reject_reason why, const char *code,
                const char *msg) {
  r->status = status;
  r->reason = why;
  snprintf(r->code, sizeof r->code, "%s", code);
  snprintf(r->msg, sizeof r->msg, "%s", msg);
  return 1;
}

/*
 * Worker thread, before the update is decoded as a container: 0 when body
 * is not a partial (the caller goes on), 1 when it was handled with the
 * outcome in *r. The words handed to the engine are those of a replica
 * that counted this one client: zeros in every other slot.
 */
int fedc__coord_partial_fold(fedc_coord *c, int32_t client_id, const uint8_t *body, size_t len,
                             fedc__coord_partial_result *r) {
  memset(r, 0, sizeof *r);
  if (!fedc_partial_is(body, len)) return 0;
  fedc_partial p;
  int drc = fedc_partial_decode(body, len, &p);
  if (drc != 0)
    return fail(r, 400, drc == FEDC_ECHECKSUM ? REJECT_bad_checksum : REJECT_bad_container,
                drc == FEDC_ECHECKSUM ? "bad_checksum" : "bad_container", fedc_error_msg());
  r->round = p.round;
  if (c->layout.narrow || c->layout.n_int > 0 || c->async_rounds || fedc__coord_scaffold_on(c))
    return fail(r, 400, REJECT_bad_request, "bad_request",
                "a relay's partial sum is taken only for float32 models folded by FedAvg in "
                "rounds (not F16/BF16 or integer tensors, fedbuff or scaffold) (docs/relays.md)");
  if (c->secagg != NULL || c->cfg.norm_bound > 0 || c->cfg.max_client_share > 0)
    return fail(r, 400, REJECT_bad_request, "bad_request",
                "a relay's partial sum cannot be taken under secure aggregation, "
                "[strategy] norm_bound or max_client_share (set it to 0) (docs/relays.md)");
  if (p.n != c->n_params) {
    char m[128];
    snprintf(m, sizeof m, "partial of %llu weights, the model has %zu", (unsigned long long)p.n,
             c->n_params);
    return fail(r, 400, REJECT_bad_shape, "bad_shape", m);
  }
  if (c->cfg.server_max_samples > 0 && p.total > c->cfg.server_max_samples)
    return fail(r, 400, REJECT_non_finite, "non_finite", "partial's sample count over max_samples");
  pthread_mutex_lock(&c->mu);
  size_t nw = fedc_engine_partial_words(c->engine);
  int32_t slot = -1, n_sel = fedc_engine_n_selected(c->engine);
  const int32_t *sel = fedc_engine_selected(c->engine);
  for (int32_t i = 0; sel != NULL && i < n_sel; i++)
    if (sel[i] == client_id) slot = i;
  int rc = 0;
  __int128 *words = NULL;
  if (nw == 0 || p.round != fedc_engine_round(c->engine))
    rc = fedc_engine_has_reported(c->engine, p.round, client_id)
             ? FEDC_EDUPLICATE
             : fedc_error_set(FEDC_ESTALE, "partial for round %d, round %d is %s", (int)p.round,
                              (int)fedc_engine_round(c->engine), nw ? "open" : "not open");
  else if (slot < 0)
    rc = fedc_engine_has_reported(c->engine, p.round, client_id)
             ? FEDC_EDUPLICATE
             : fedc_error_set(FEDC_EINVAL, "client %d is not selected in round %d", (int)client_id,
                              (int)p.round);
  else if ((words = fedc_calloc(nw, sizeof *words)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "out of memory for a partial");
  if (rc == 0) {
    for (uint64_t i = 0; i < p.n; i++)
      words[i] = fedc_partial_sum(&p, i);
    words[p.n] = (__int128)p.total;
    __int128 *s = words + p.n + 1 + 3 * (size_t)slot;
    uint64_t bits;
    memcpy(&bits, &p.train_loss, sizeof bits);
    s[0] = 1;
    s[1] = (__int128)p.total;
    s[2] = (__int128)bits;
    rc = fedc_engine_merge(c->engine, p.round, words, nw);
  }
  if (rc == 0 && c->n_round_updates < c->round_updates_cap) {
    fedc_store_update *u = &c->round_updates[c->n_round_updates++];
    u->client_id = client_id;
    u->num_samples = (int64_t)p.total;
    u->train_loss = p.train_loss;
    fedc__sha256_hex(body, len, u->sha256);
    u->received_at = (double)time(NULL);
  }
  if (rc == FEDC_EDUPLICATE) r->duplicate = 1;
  char msg[384];
  snprintf(msg, sizeof msg, "%s", fedc_error_msg());
  pthread_mutex_unlock(&c->mu);
  fedc_free(words);
  if (rc == 0 || r->duplicate) {
    r->status = 200;
    return 1;
  }
  if (rc == FEDC_ESTALE || rc == FEDC_ESTATE)
    return fail(r, 409, REJECT_stale_round, "stale_round", msg);
  if (rc == FEDC_EINVAL) return fail(r, 403, REJECT_not_selected, "not_selected", msg);
  if (rc == FEDC_EUNSUPPORTED) return fail(r, 400, REJECT_bad_request, "bad_request", msg);
  return fail(r, 503, REJECT_unavailable, "unavailable", msg);
}
