/*
 * upload_fold.c - a chunked upload folded as its bytes arrive (upload_fold.h;
 * docs/protocol.md, "Chunked uploads"). FedAvg's sums are exact 128-bit
 * integers, so an update folded range by range, in any order, and another
 * folded whole give the same sums, and a range folded with weight -n takes
 * out exactly what weight n put in. So a chunk is folded as soon as it is
 * on disk, and whatever happens to its upload afterwards (a bad whole
 * SHA-256, a refusal at completion, another update announced, the round
 * closing first, the client gone) the folds are read again from the spool
 * file and taken out, leaving the sums bit for bit as if it had never come.
 *
 * The one rule that keeps a round right: the sums a prepare reads hold the
 * folds of counted updates only. A commit settles first (fedc__fold_settle,
 * under c->mu like every fold), taking out every uncounted upload's folds
 * and voiding it (its bytes are folded whole at completion, if it still
 * completes in time). Folds are tied to the engine's round generation: once
 * another round opened, the sums they went into are gone. Nothing here is
 * durable: a coordinator killed with uploads part folded restarts with
 * empty sums, the round is opened again and its uploads start over (the
 * spool files of an earlier run are removed), as without early folds.
 *
 * Folds happen only where the job folds weight by weight
 * (fedc__engine_early_begin): plain FedAvg and the server optimizers, with
 * or without max_weight_delta and the share cap (an update it cuts is read
 * again from its spool at the prepare: the engine keeps the spool's
 * descriptor), sums in memory or in a file, no norm bound, DP, SCAFFOLD,
 * FedBuff, relay or secure aggregation; and only
 * for an update of F32 tensors laid out as the job's model (how fedc
 * encodes them), so that its values are one array in the spool file.
 */
#include "upload_fold.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "ml/layout.h"
#include "round/engine.h"
#include "wire/coded_update.h"
#include "wire/partial.h"
#include "wire/safetensors.h"
#include "wire/update_meta.h"

#define FOLD_SLICE ((size_t)1 << 16) /* values read and folded at a time */

void fedc__fold_init(fedc_fold_ctx *fx) {
  const char *env = getenv("FEDC_UPLOAD_EARLY_FOLD");
  fx->off = env && strcmp(env, "0") == 0;
}

void fedc__fold_free(fedc_fold_ctx *fx) {
  fedc_free(fx->w);
  fedc_free(fx->y);
  fx->w = fx->y = NULL;
}

/* pread all of len bytes at off; 0 or -1. */
static int read_at(int fd, void *buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t k = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

static void unlink_rec(fedc_fold_ctx *fx, fedc_upload_fold *r) {
  if (r->prev) r->prev->next = r->next;
  else if (fx->head == r) fx->head = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void free_rec(fedc_upload_fold *r) {
  if (r->fd >= 0) close(r->fd);
  if (r->hash_on) fedc__sha256_free(&r->h);
  fedc_free(r);
}

/*
 * Under c->mu: take r's folds out (values [0, r->folded) read again from
 * its spool, folded with weight -n_samples) while they are in the sums,
 * and void r. A read that fails leaves the sums wrong: the round's
 * aggregator is then failed (its prepare refuses) rather than committed.
 */
static void undo_locked(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload_fold *r) {
  if (!r->counted && r->folded > 0 && fedc__engine_early_live(c->engine, r->gen)) {
    for (size_t i = 0; i < r->folded; i += FOLD_SLICE) {
      size_t len = r->folded - i < FOLD_SLICE ? r->folded - i : FOLD_SLICE;
      if (read_at(r->fd, fx->w, len * sizeof(float), r->data_off + i * sizeof(float)) != 0) {
        fedc_log_error("round=%d client=%d msg=\"cannot read an upload's spool to take its "
                       "early folds out; the round is abandoned\" error=\"%s\"",
                       (int)r->round, (int)r->client_id, strerror(errno));
        fedc__engine_early_fail(c->engine);
        break;
      }
      fedc__engine_early_fold(c->engine, i, fx->w, len, -(int64_t)r->n_samples, fx->y);
    }
    fx->undone_bytes += (uint64_t)r->folded * sizeof(float);
    fedc_log_info("round=%d client=%d msg=\"early folds taken out\" values=%zu", (int)r->round,
                  (int)r->client_id, r->folded);
  }
  if (!r->counted) r->folded = 0;
  r->voided = 1;
}

/*
 * The header is in (worker, no lock): 1 with a new record in u->fold, 0
 * when the header is not all in yet, -1 when this upload is not folded
 * early (its update is checked and folded whole at completion, as before,
 * which finds and reports whatever was wrong).
 */
static int begin(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload *u) {
  if (fx->off || c->secagg || c->async_rounds || c->cfg.relay_parent[0] ||
      fedc__coord_scaffold_on(c) || c->layout.n_int > 0 || c->layout.n_float != c->n_params)
    return -1;
  if (u->accepted < 8) return 0;
  uint8_t le[8];
  if (read_at(u->fd, le, 8, 0) != 0 || fedc_coded_is(le, 8) || fedc_partial_is(le, 8))
    return -1; /* a compressed update, a relay's partial sum: decoded whole */
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | le[i];
  if (hlen == 0 || hlen > FEDC_ST_MAX_HEADER || hlen > u->size - 8) return -1;
  if (u->accepted < 8 + hlen) return 0;
  uint8_t *head = fedc_malloc((size_t)hlen + 8);
  if (head == NULL || read_at(u->fd, head, (size_t)hlen + 8, 0) != 0) {
    fedc_free(head);
    return -1;
  }
  fedc_st_file *f = NULL;
  const float *wf = NULL;
  fedc_update_meta meta;
  int ok = fedc_st_decode_ex(head, (size_t)u->size,
                             FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW | FEDC_ST_HEADER_ONLY, &f) == 0 &&
           fedc__layout_view(&c->layout, f, &wf) == 0 && wf != NULL &&
           fedc_update_meta_parse(f, &meta) == 0 && meta.round == u->round;
  uint64_t data_off = ok ? (uint64_t)((const uint8_t *)wf - head) : 0;
  fedc_st_free(f);
  fedc_free(head);
  if (!ok || data_off + (uint64_t)c->n_params * sizeof(float) > u->size) return -1;
  fedc_upload_fold *r = fedc_calloc(1, sizeof *r);
  if (r == NULL) return -1;
  r->fd = dup(u->fd);
  r->client_id = u->client_id;
  r->round = u->round;
  r->n_samples = (uint64_t)meta.num_samples;
  r->data_off = data_off;
  r->data_at = r->hashed = 8 + hlen;
  r->hash_on = fedc__sha256_begin(&r->h) == 0;
  r->n = c->n_params;
  pthread_mutex_lock(&c->mu);
  if (fx->w == NULL) fx->w = fedc_malloc_array(FOLD_SLICE, sizeof(float));
  if (fx->y == NULL) fx->y = fedc_malloc_array(FOLD_SLICE, sizeof(float));
  int go = r->fd >= 0 && fx->w && fx->y &&
           fedc__engine_early_begin(c->engine, r->round, r->client_id, r->n_samples, &r->gen);
  if (go) {
    r->next = fx->head;
    if (fx->head) fx->head->prev = r;
    fx->head = r;
  }
  pthread_mutex_unlock(&c->mu);
  if (!go) {
    free_rec(r);
    return -1;
  }
  u->fold = r;
  return 1;
}

/* The data section's bytes up to accepted into r's SHA-256 (the chunk
 * worker's, without c->mu: only it touches the hash while the upload is
 * under way). A failed read ends the hash: the update is then decoded and
 * checked whole at completion. */
static void hash_more(fedc_upload_fold *r, uint64_t accepted) {
  if (!r->hash_on || accepted <= r->hashed) return;
  size_t cap = (size_t)1 << 20;
  uint8_t *buf = fedc_malloc(cap);
  while (buf && r->hashed < accepted) {
    size_t len = accepted - r->hashed < cap ? (size_t)(accepted - r->hashed) : cap;
    if (read_at(r->fd, buf, len, r->hashed) != 0 || fedc__sha256_update(&r->h, buf, len) != 0)
      break;
    r->hashed += len;
  }
  fedc_free(buf);
  if (r->hashed < accepted) {
    fedc__sha256_free(&r->h);
    r->hash_on = 0;
  }
}

int fedc__fold_whole(fedc_coord *c, fedc_upload_fold *r, const uint8_t *body, size_t len,
                     fedc_st_file **f) {
  *f = NULL;
  if (r == NULL || !r->hash_on || r->hashed != len) return 0;
  uint8_t d[FEDC__SHA256_LEN];
  char hex[FEDC__SHA256_HEX_LEN + 1];
  int rc = fedc__sha256_finish(&r->h, d);
  fedc__sha256_free(&r->h);
  r->hash_on = 0;
  if (rc != 0) return 0;
  for (int i = 0; i < FEDC__SHA256_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  const float *wf = NULL;
  fedc_update_meta meta;
  int ok = fedc_st_decode_ex(body, len, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW | FEDC_ST_HEADER_ONLY,
                             f) == 0 &&
           fedc__layout_view(&c->layout, *f, &wf) == 0 &&
           (uint64_t)((const uint8_t *)wf - body) == r->data_off &&
           fedc_update_meta_parse(*f, &meta) == 0 && meta.round == r->round &&
           (uint64_t)meta.num_samples == r->n_samples &&
           (meta.sha256 == NULL || strcasecmp(meta.sha256, hex) == 0);
  if (ok) {
    pthread_mutex_lock(&c->mu);
    ok = !r->voided && r->folded == r->n && fedc__engine_early_live(c->engine, r->gen);
    pthread_mutex_unlock(&c->mu);
  }
  if (!ok) {
    fedc_st_free(*f);
    *f = NULL;
  }
  return ok;
}

void fedc__fold_chunk(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload *u) {
  if (u->fold_state < 0) return;
  if (u->fold_state == 0) {
    int b = begin(c, fx, u);
    if (b == 0) return;
    u->fold_state = b;
    if (b < 0) return;
  }
  fedc_upload_fold *r = u->fold;
  if (r == NULL) return;
  hash_more(r, u->accepted);
  pthread_mutex_lock(&c->mu);
  if (!r->voided && !fedc__engine_early_live(c->engine, r->gen)) r->voided = 1;
  uint64_t have = u->accepted > r->data_off ? (u->accepted - r->data_off) / sizeof(float) : 0;
  size_t avail = have < r->n ? (size_t)have : r->n;
  while (!r->voided && r->folded < avail) {
    size_t len = avail - r->folded < FOLD_SLICE ? avail - r->folded : FOLD_SLICE;
    if (read_at(r->fd, fx->w, len * sizeof(float), r->data_off + r->folded * sizeof(float)) != 0 ||
        fedc__engine_early_fold(c->engine, r->folded, fx->w, len, (int64_t)r->n_samples,
                                fx->y) != 0) {
      undo_locked(c, fx, r); /* the update is checked whole at completion, and says why */
      break;
    }
    r->folded += len;
    fx->folded_bytes += (uint64_t)len * sizeof(float);
  }
  pthread_mutex_unlock(&c->mu);
}

int fedc__fold_take(fedc_coord *c, fedc_upload_fold *r, int whole, int32_t round, int32_t client,
                    uint64_t n_samples, double loss, int *rc) {
  if (r == NULL) return 0;
  fedc_fold_ctx *fx = fedc__coord_fold_ctx(c);
  if (whole || (!r->voided && r->folded == r->n && r->round == round &&
                r->client_id == client && r->n_samples == n_samples &&
                fedc__engine_early_live(c->engine, r->gen))) {
    /* the engine may keep the spool's descriptor (the share cap may cut
     * the update at the prepare: its values are then read again) */
    *rc = fedc__engine_submit_folded(c->engine, round, client, n_samples, loss, &r->fd,
                                     r->data_off);
    if (*rc != 0 && whole) { /* refused as the whole would be (a duplicate, a stale round) */
      if (fx) undo_locked(c, fx, r);
      return 1;
    }
    if (*rc == 0) {
      r->counted = 1;
      fedc_log_info("round=%d client=%d msg=\"update folded as it arrived\" values=%zu "
                    "decoded=%d",
                    (int)round, (int)client, r->n, !whole);
      return 1;
    }
  }
  if (fx) undo_locked(c, fx, r);
  return 0;
}

void fedc__fold_settle(fedc_coord *c, fedc_fold_ctx *fx) {
  for (fedc_upload_fold *r = fx->head; r; r = r->next)
    if (!r->counted && !r->voided) undo_locked(c, fx, r);
}

typedef struct release_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_fold_ctx *fx;
  fedc_upload_fold *r;
} release_work;

static void release_run(uv_work_t *req) {
  release_work *w = req->data;
  pthread_mutex_lock(&w->c->mu);
  undo_locked(w->c, w->fx, w->r);
  unlink_rec(w->fx, w->r);
  pthread_mutex_unlock(&w->c->mu);
  free_rec(w->r);
}

static void release_done(uv_work_t *req, int status) {
  release_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  c->other_work--;
  fedc_free(w);
  fedc__coord_worker_done(c);
}

void fedc__fold_release(fedc_coord *c, fedc_fold_ctx *fx, fedc_upload_fold *r, int stopping) {
  if (r == NULL) return;
  pthread_mutex_lock(&c->mu);
  int work = !stopping && !r->counted && r->folded > 0 && fedc__engine_early_live(c->engine, r->gen);
  if (!work) unlink_rec(fx, r);
  pthread_mutex_unlock(&c->mu);
  if (!work) {
    free_rec(r);
    return;
  }
  release_work *w = fedc_calloc(1, sizeof *w);
  if (w) {
    w->c = c;
    w->fx = fx;
    w->r = r;
    w->req.data = w;
    if (uv_queue_work(c->loop, &w->req, release_run, release_done) == 0) {
      c->other_work++;
      return;
    }
    fedc_free(w);
  }
  pthread_mutex_lock(&c->mu); /* no worker: here */
  undo_locked(c, fx, r);
  unlink_rec(fx, r);
  pthread_mutex_unlock(&c->mu);
  free_rec(r);
}
