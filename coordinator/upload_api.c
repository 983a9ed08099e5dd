/*
 * upload_api.c - chunked, resumable uploads of updates (docs/protocol.md,
 * "Chunked uploads"):
 *
 *   POST /v1/upload?round=R&size=N&sha256=H        announce (or resume)
 *   GET  /v1/upload?round=R                         how many bytes are in
 *   POST /v1/upload/chunk?round=R&offset=K&sha256=h one chunk, its own hash
 *
 * An upload is keyed by (round, client), one per client. Each chunk is
 * checked against its SHA-256 and appended to the upload's spool file in
 * <store>.uploads/ and fsync'd on a worker before it is acknowledged, so
 * the coordinator holds one chunk per upload in memory, and a client cut
 * off resumes from the accepted offset. The last chunk completes the
 * update: the running hash must be the announced one, then the spool file
 * is mapped read-only and goes through the same checks and fold as a POST
 * /v1/update body (fedc__coord_queue_update), one completed upload at a
 * time; the mapping and the file go when the fold is done. Where the job
 * folds weight by weight, each chunk's values are folded as it is taken
 * (upload_fold.c), so the completed update is only checked and counted;
 * an upload that goes otherwise (replaced, refused, stale) has those folds
 * taken out (drop_fold). Secure aggregation takes its masked update in one
 * POST /v1/update (bounded by [server] max_body_mb) and refuses these.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mapped.h"
#include "coord_internal.h"
#include "upload_fold.h"
#include "upload_ledger.h"

/* A completed upload's spool, mapped for the fold; unmapped and removed by
 * spool_release once the update work is done. */
typedef struct spool_map {
  void *addr;
  size_t len;
  char path[512];
  fedc_coord *c; /* set while it is the one fold under way */
  fedc_coord *owner;
  fedc_upload_fold *fold; /* its early folds (upload_fold.h), or NULL */
} spool_map;

/* A completed upload waiting for its turn to be folded. */
typedef struct fold_wait {
  struct fold_wait *next;
  fedc_http_exchange *x; /* NULL once the connection died */
  int32_t client_id;
  spool_map *map;
} fold_wait;

struct coord_uploads {
  fedc_upload_table t;
  char dir[600];
  /* Completed uploads are checked and folded one at a time: a large
   * update's decode holds a float32 copy of the model beside its mapped
   * spool, and N of them at once would be N such copies. */
  int folding;
  fold_wait *head, *tail;
  fedc_fold_ctx fold; /* the early folds (upload_fold.c) */
  int freeing;
};

static void fold_next(fedc_coord *c);

static void spool_release(void *ud) {
  spool_map *m = ud;
  fedc_coord *c = m->c;
  if (m->fold) /* counted, or taken out now */
    fedc__fold_release(m->owner, &m->owner->uploads->fold, m->fold,
                       m->owner->stopping || m->owner->uploads->freeing);
  if (m->addr) {
    fedc__mapped_unregister(m->addr);
    munmap(m->addr, m->len);
  }
  unlink(m->path);
  fedc_free(m);
  if (c && c->uploads) {
    c->uploads->folding = 0;
    fold_next(c);
  }
}

static void fold_wait_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  ((fold_wait *)ud)->x = NULL;
}

/* Start the next waiting fold if none is under way (loop thread). */
static void fold_next(fedc_coord *c) {
  struct coord_uploads *ups = c->uploads;
  while (!ups->folding && ups->head) {
    fold_wait *w = ups->head;
    ups->head = w->next;
    if (ups->head == NULL) ups->tail = NULL;
    fedc_http_exchange *x = w->x;
    spool_map *m = w->map;
    coord_client *cl = fedc__coord_client_by_id(c, w->client_id);
    fedc_free(w);
    if (x) fedc_http_exchange_on_abort(x, NULL, NULL);
    if (x == NULL || cl == NULL || c->stopping || !fedc__coord_update_gate(c, x, cl)) {
      spool_release(m); /* m->c is NULL: no recursion */
      continue;
    }
    ups->folding = 1;
    m->c = c;
    fedc__coord_queue_update_early(c, x, cl, m->addr, m->len, spool_release, m, m->fold);
  }
}

/* Queue a completed upload for its fold (takes m). */
static void fold_later(fedc_coord *c, fedc_http_exchange *x, int32_t client_id, spool_map *m) {
  fold_wait *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) {
    spool_release(m);
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  w->x = x;
  w->client_id = client_id;
  w->map = m;
  fedc_http_exchange_on_abort(x, fold_wait_abort, w);
  if (c->uploads->tail) c->uploads->tail->next = w;
  else c->uploads->head = w;
  c->uploads->tail = w;
  fold_next(c);
}

/* The largest update the job's model allows: its float values as float32
 * (twice, with SCAFFOLD's control-variate delta), its integer tensors as
 * 64-bit, and 1 MiB for the container's header and metadata. */
static uint64_t update_bound(const fedc_coord *c) {
  uint64_t floats = (uint64_t)c->n_params * 4u * (fedc__coord_scaffold_on(c) ? 2u : 1u);
  return floats + (uint64_t)c->layout.n_int * 8u + ((uint64_t)1 << 20);
}

static struct coord_uploads *uploads(fedc_coord *c) {
  if (c->uploads) return c->uploads;
  struct coord_uploads *u = fedc_calloc(1, sizeof *u);
  if (u == NULL) return NULL;
  if (fedc__upload_dir(c->cfg.store_path, 1, u->dir, sizeof u->dir) != 0) {
    fedc_log_error("msg=\"chunked uploads unavailable\" error=\"%s\"", fedc_error_msg());
    fedc_free(u);
    return NULL;
  }
  fedc__fold_init(&u->fold);
  int gone = fedc__upload_dir_sweep(u->dir, c->job_id); /* an earlier run's */
  if (gone) fedc_log_info("msg=\"removed %d spooled uploads of an earlier run\"", gone);
  c->uploads = u;
  return u;
}

/* An upload that goes (loop thread, u not busy): its early folds are
 * taken out (upload_fold.c). */
static void drop_fold(fedc_coord *c, fedc_upload *u) {
  if (u->fold)
    fedc__fold_release(c, &c->uploads->fold, u->fold, c->stopping || c->uploads->freeing);
  u->fold = NULL;
  u->fold_state = 0;
}

struct fedc_fold_ctx *fedc__coord_fold_ctx(fedc_coord *c) {
  return c->uploads ? &c->uploads->fold : NULL;
}

void fedc__coord_upload_settle(fedc_coord *c) {
  if (c->uploads) fedc__fold_settle(c, &c->uploads->fold);
}

void fedc__coord_upload_free(fedc_coord *c) {
  if (c->uploads == NULL) return;
  c->uploads->freeing = 1;
  for (int32_t i = 0; i < c->uploads->t.n; i++) drop_fold(c, c->uploads->t.v[i]);
  while (c->uploads->head) { /* waiting folds (their connections are gone) */
    fold_wait *w = c->uploads->head;
    c->uploads->head = w->next;
    spool_release(w->map);
    fedc_free(w);
  }
  fedc__upload_table_free(&c->uploads->t);
  fedc__fold_free(&c->uploads->fold);
  fedc_free(c->uploads);
  c->uploads = NULL;
}

/* The chunk size clients are told: FEDC_UPLOAD_CHUNK, or less when
 * [server] max_body_mb is smaller (a chunk is an ordinary request). */
static uint64_t chunk_size(const fedc_coord *c) {
  double max = c->cfg.server_max_body_mb * 1048576.0;
  uint64_t room = max > 4096.0 ? (uint64_t)max - 4096u : 4096u;
  return room < FEDC_UPLOAD_CHUNK ? room : FEDC_UPLOAD_CHUNK;
}

static void answer_state(const fedc_coord *c, fedc_http_exchange *x, const fedc_upload *u) {
  char body[160];
  int n = snprintf(body, sizeof body,
                   "{\"round\":%d,\"size\":%llu,\"offset\":%llu,\"chunk\":%llu}", (int)u->round,
                   (unsigned long long)u->size, (unsigned long long)u->accepted,
                   (unsigned long long)chunk_size(c));
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

static void busy(fedc_coord *c, fedc_http_exchange *x) {
  static const char msg[] =
      "{\"error\":\"unavailable\",\"message\":\"a chunk of this upload is being written; retry\"}";
  fedc__coord_reject(c, REJECT_unavailable);
  fedc_http_respond(x, 503, "application/json", msg, sizeof msg - 1, "Retry-After: 1\r\n");
}

/* 1 when the client has reported in round (its update is in): answered as
 * a resend of POST /v1/update (200, duplicate). */
static int already_in(fedc_coord *c, fedc_http_exchange *x, coord_client *cl, int32_t round) {
  if (c->state == ROUND_COMMITTING) return 0;
  pthread_mutex_lock(&c->mu);
  int in = fedc_engine_has_reported(c->engine, round, cl->id);
  pthread_mutex_unlock(&c->mu);
  if (in) {
    c->updates_duplicate++;
    fedc__coord_answer_update(x, 200, round, 1, "", "");
  }
  return in;
}

static int bad(fedc_coord *c, fedc_http_exchange *x, int status, reject_reason r,
               const char *code, const char *msg) {
  fedc__coord_reject(c, r);
  fedc_http_respond_error(x, status, code, "%s", msg);
  return 0;
}

/* round= from the query: 1 with it, else 0 after answering 400. */
static int query_round(fedc_coord *c, fedc_http_exchange *x, const char *q, int32_t *round) {
  uint64_t r = 0;
  if (fedc__upload_query_u64(q, "round", &r) != 1 || r < 1 || r > INT32_MAX)
    return bad(c, x, 400, REJECT_bad_request, "bad_request", "round= (a round number) is required");
  *round = (int32_t)r;
  return 1;
}

/* ---- announce and ask -------------------------------------------------------- */

static void announce(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                     coord_client *cl) {
  int32_t round;
  uint64_t size = 0;
  char sha[80];
  if (!query_round(c, x, req->query, &round)) return;
  if (fedc__upload_query_u64(req->query, "size", &size) != 1 || size == 0 ||
      fedc__upload_query_str(req->query, "sha256", sha, sizeof sha) != 1 ||
      !fedc__upload_sha_ok(sha)) {
    bad(c, x, 400, REJECT_bad_request, "bad_request",
        "POST /v1/upload takes round=, size= (bytes, > 0) and sha256= (64 hex digits)");
    return;
  }
  if (req->body_len != 0) {
    bad(c, x, 400, REJECT_bad_request, "bad_request",
        "POST /v1/upload takes no body; the bytes go to /v1/upload/chunk");
    return;
  }
  uint64_t bound = update_bound(c);
  if (size > bound) {
    char m[200];
    snprintf(m, sizeof m, "an update of %llu bytes is over the %llu this job's model allows",
             (unsigned long long)size, (unsigned long long)bound);
    bad(c, x, 413, REJECT_too_large, "too_large", m);
    return;
  }
  if (!fedc__coord_update_gate(c, x, cl)) return;
  if (already_in(c, x, cl, round)) return;
  struct coord_uploads *ups = uploads(c);
  if (ups == NULL) {
    bad(c, x, 503, REJECT_unavailable, "unavailable", "chunked uploads are unavailable");
    return;
  }
  if (!c->async_rounds) {
    for (int32_t i = 0; i < ups->t.n; i++)
      if (!ups->t.v[i]->busy && ups->t.v[i]->round < c->round) drop_fold(c, ups->t.v[i]);
    fedc__upload_sweep_stale(&ups->t, c->round);
  }
  fedc_upload *u = fedc__upload_find(&ups->t, cl->id);
  if (u && u->busy) {
    busy(c, x);
    return;
  }
  if (u && u->fd >= 0 && u->round == round && u->size == size && strcmp(u->sha, sha) == 0) {
    u->last = fedc__coord_now(); /* a resume */
    fedc_log_info("round=%d client=%d msg=\"upload resumed\" offset=%llu size=%llu", (int)round,
                  (int)cl->id, (unsigned long long)u->accepted, (unsigned long long)size);
    answer_state(c, x, u);
    return;
  }
  if (u) { /* another update replaces it */
    drop_fold(c, u);
    fedc__upload_discard(u);
  }
  else u = fedc__upload_add(&ups->t, cl->id);
  if (u == NULL) {
    bad(c, x, 503, REJECT_unavailable, "unavailable", "out of memory");
    return;
  }
  if (fedc__upload_open(u, ups->dir, c->job_id, cl->id, round, size, sha) != 0) {
    char m[384];
    snprintf(m, sizeof m, "%s", fedc_error_msg());
    fedc__upload_remove(&ups->t, u);
    bad(c, x, 503, REJECT_unavailable, "unavailable", m);
    return;
  }
  u->last = fedc__coord_now();
  answer_state(c, x, u);
}

static void ask(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                coord_client *cl) {
  int32_t round;
  if (!query_round(c, x, req->query, &round)) return;
  fedc_upload *u = c->uploads ? fedc__upload_find(&c->uploads->t, cl->id) : NULL;
  if (u == NULL || u->fd < 0 || u->round != round) {
    fedc_http_respond_error(x, 404, "no_upload", "client %d has no upload under way for round %d",
                            (int)cl->id, (int)round);
    return;
  }
  answer_state(c, x, u);
}

/* ---- chunks ------------------------------------------------------------------ */

typedef struct chunk_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_http_exchange *x; /* NULL once the connection died */
  fedc_upload *u;
  int32_t client_id;
  uint8_t *buf;
  size_t len;
  char sha[80];
  int rc;       /* the append's */
  int complete; /* the last chunk: hash checked (rc), spool mapped (map) */
  spool_map *map;
  char msg[384];
} chunk_work;

static void chunk_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  ((chunk_work *)ud)->x = NULL;
}

/* Map the completed spool read-only for the fold. */
static int map_spool(chunk_work *w) {
  fedc_upload *u = w->u;
  spool_map *m = fedc_calloc(1, sizeof *m);
  if (m == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  snprintf(m->path, sizeof m->path, "%s", u->path);
  m->len = (size_t)u->size;
  m->owner = w->c;
  m->addr = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, u->fd, 0);
  if (m->addr == MAP_FAILED) {
    int e = errno;
    fedc_free(m);
    return fedc_error_set(FEDC_EIO, "uploads: cannot map %s: %s", u->path, strerror(e));
  }
  madvise(m->addr, m->len, MADV_SEQUENTIAL);
  /* its readers drop the pages they are done with (base/mapped.h) */
  fedc__mapped_register(m->addr, m->len);
  w->map = m;
  return 0;
}

static void chunk_run(uv_work_t *req) {
  chunk_work *w = req->data;
  fedc_upload *u = w->u;
  w->rc = fedc__upload_append(u, w->buf, w->len, w->sha);
  if (w->rc == 0) fedc__fold_chunk(w->c, &w->c->uploads->fold, u); /* upload_fold.c */
  if (w->rc == 0 && u->accepted == u->size) {
    w->complete = 1;
    w->rc = fedc__upload_finish_hash(u);
    if (w->rc == 0) w->rc = map_spool(w);
  }
  snprintf(w->msg, sizeof w->msg, "%s", w->rc ? fedc_error_msg() : "");
}

static void chunk_done(uv_work_t *req, int status) {
  chunk_work *w = req->data;
  fedc_coord *c = w->c;
  fedc_upload *u = w->u;
  fedc_http_exchange *x = w->x;
  (void)status;
  c->other_work--;
  u->busy = 0;
  u->last = fedc__coord_now();
  fedc_free(w->buf);
  if (x) fedc_http_exchange_on_abort(x, NULL, NULL);
  coord_client *cl = fedc__coord_client_by_id(c, w->client_id);
  if (w->complete && w->rc == 0) {
    /* the file now belongs to the mapping: the entry goes, its name with it */
    int32_t round = u->round;
    close(u->fd);
    u->fd = -1;
    w->map->fold = u->fold; /* its update work counts the folds, or takes them out */
    u->fold = NULL;
    fedc__upload_remove(&c->uploads->t, u);
    fedc_log_info("round=%d client=%d msg=\"upload complete\" bytes=%zu", (int)round,
                  (int)w->client_id, w->map->len);
    if (x == NULL || cl == NULL || c->stopping) spool_release(w->map);
    else fold_later(c, x, w->client_id, w->map);
  } else if (w->rc == FEDC_ECHECKSUM) {
    if (w->complete) {
      /* the whole is not what was announced: the upload starts over */
      drop_fold(c, u);
      fedc__upload_remove(&c->uploads->t, u);
      fedc__coord_reject(c, REJECT_bad_checksum);
      if (x) fedc_http_respond_error(x, 400, "bad_checksum", "%s", w->msg);
    } else {
      fedc__coord_reject(c, REJECT_bad_checksum);
      if (x) fedc_http_respond_error(x, 400, "bad_chunk_checksum", "%s", w->msg);
    }
    fedc_log_info("client=%d msg=\"upload chunk refused\" reason=\"%s\"", (int)w->client_id,
                  w->msg);
  } else if (w->rc != 0) {
    if (w->complete) {
      drop_fold(c, u);
      fedc__upload_remove(&c->uploads->t, u);
    }
    fedc__coord_reject(c, REJECT_unavailable);
    if (x) fedc_http_respond_error(x, 503, "unavailable", "%s", w->msg);
  } else if (x) {
    answer_state(c, x, u);
  }
  fedc_free(w);
  fedc__coord_worker_done(c);
}

static void chunk(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                  coord_client *cl) {
  int32_t round;
  uint64_t off = 0;
  char sha[80];
  if (!query_round(c, x, req->query, &round)) return;
  if (fedc__upload_query_u64(req->query, "offset", &off) != 1 ||
      fedc__upload_query_str(req->query, "sha256", sha, sizeof sha) != 1 ||
      !fedc__upload_sha_ok(sha)) {
    bad(c, x, 400, REJECT_bad_request, "bad_request",
        "POST /v1/upload/chunk takes round=, offset= (bytes) and sha256= (the chunk's, 64 hex "
        "digits)");
    return;
  }
  fedc_upload *u = c->uploads ? fedc__upload_find(&c->uploads->t, cl->id) : NULL;
  if (u == NULL || u->fd < 0 || u->round != round) {
    if (already_in(c, x, cl, round)) return; /* the last chunk's answer was lost */
    fedc_http_respond_error(x, 404, "no_upload",
                            "client %d has no upload under way for round %d; announce it with "
                            "POST /v1/upload",
                            (int)cl->id, (int)round);
    return;
  }
  if (u->busy) {
    busy(c, x);
    return;
  }
  switch (fedc__upload_chunk_place(u->size, u->accepted, off, req->body_len)) {
  case FEDC_CHUNK_HAVE:
    answer_state(c, x, u); /* a resend of accepted bytes: nothing to do */
    return;
  case FEDC_CHUNK_GAP: {
    char body[200];
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"bad_offset\",\"message\":\"the upload has %llu bytes; a chunk "
                     "at %llu does not follow them\",\"offset\":%llu}",
                     (unsigned long long)u->accepted, (unsigned long long)off,
                     (unsigned long long)u->accepted);
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond(x, 409, "application/json", body, (size_t)n, NULL);
    return;
  }
  case FEDC_CHUNK_OVER:
    bad(c, x, 400, REJECT_bad_request, "bad_request",
        "the chunk is empty or runs past the announced size");
    return;
  case FEDC_CHUNK_BIG:
    bad(c, x, 413, REJECT_too_large, "too_large", "a chunk is at most 16 MiB");
    return;
  case FEDC_CHUNK_NEXT:
    break;
  }
  if (off + req->body_len == u->size) /* the time its last byte came (bench/early_fold.py) */
    fedc_log_info("round=%d client=%d msg=\"last chunk in\" size=%llu", (int)round, (int)cl->id,
                  (unsigned long long)u->size);
  chunk_work *w = fedc_calloc(1, sizeof *w);
  uint8_t *buf = w ? fedc_malloc(req->body_len) : NULL;
  if (buf == NULL) {
    fedc_free(w);
    bad(c, x, 503, REJECT_unavailable, "unavailable", "out of memory");
    return;
  }
  memcpy(buf, req->body, req->body_len);
  w->c = c;
  w->x = x;
  w->u = u;
  w->client_id = cl->id;
  w->buf = buf;
  w->len = req->body_len;
  snprintf(w->sha, sizeof w->sha, "%s", sha);
  w->req.data = w;
  fedc_http_exchange_on_abort(x, chunk_abort, w);
  if (uv_queue_work(c->loop, &w->req, chunk_run, chunk_done) != 0) {
    fedc_http_exchange_on_abort(x, NULL, NULL);
    fedc_free(buf);
    fedc_free(w);
    bad(c, x, 503, REJECT_unavailable, "unavailable", "cannot queue the chunk");
    return;
  }
  u->busy = 1;
  c->other_work++;
}

void fedc__coord_upload_handle(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, coord_client *cl) {
  int post = strcmp(req->method, "POST") == 0, get = strcmp(req->method, "GET") == 0;
  int is_chunk = strcmp(req->path, "/v1/upload/chunk") == 0;
  if (c->stopping) {
    fedc_http_respond_error(x, 503, "unavailable", "the coordinator is stopping");
    return;
  }
  if (c->secagg) {
    bad(c, x, 400, REJECT_bad_request, "unsupported",
        "secure aggregation takes its masked update in one POST /v1/update");
    return;
  }
  if (is_chunk && post) chunk(c, x, req, cl);
  else if (!is_chunk && post) announce(c, x, req, cl);
  else if (!is_chunk && get) ask(c, x, req, cl);
  else
    fedc_http_respond_error(x, 405, "method_not_allowed", "%s takes %s", req->path,
                            is_chunk ? "POST" : "GET or POST");
}
