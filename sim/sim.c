/*
 * sim.c - the simulator driver (see sim.h). Engine calls are serialized by
 * a mutex; everything else a worker touches is its own (backend, trainer,
 * weight buffer). Evaluation splits the test set into fixed chunks whose
 * sums are added in chunk order, so it too is independent of threading.
 * A share of a multi-process run (see sim.h) differs in three places only:
 * it drops the rows of clients it does not own, trains only its own
 * selected clients, and lets the driver combine the shares' updates into
 * the engine before close; the rest is the same code.
 */
#include "sim.h"
#include "sim_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "attack.h"
#include "config/config_params.h"
#include "round/pipeline.h"
#include "config/data_source.h"
#include "base/error.h"
#include "data/partition.h"
#include "base/pool.h"
#include "wire/safetensors.h"
#include "ml/model_describe.h"
#include "ml/train.h"
#include "ml/class_weight.h"
#include "ml/eval_model.h"


static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void workers_free(fedc_sim *s) {
  for (int32_t i = 0; s->workers && i < s->n_workers; i++) {
    worker *w = &s->workers[i];
    if (w->be) {
      fedc_data_view_close(w->be, &w->train_view);
      fedc_data_view_close(w->be, &w->test_view);
    }
    fedc_trainer_free(w->train);
    fedc_trainer_free(w->eval);
    fedc_free(w->w);
    fedc_backend_close(w->be);
  }
  fedc_free(s->workers);
  s->workers = NULL;
}

void fedc_sim_free(fedc_sim *s) {
  if (s == NULL) return;
  fedc_pool_free(s->pool);
  workers_free(s);
  fedc_engine_free(s->engine);
  fedc_partition_free(&s->part);
  fedc_dataset_free(&s->train);
  fedc_dataset_free(&s->test);
  fedc_data_prep_free(&s->prep);
  fedc_free(s->eligible);
  fedc_free(s->selected);
  fedc_free(s->mine);
  fedc_free(s->attackers);
  for (int i = 0; i < EVAL_CHUNKS; i++) fedc_free(s->chunks[i].report);
  fedc_free(s->report);
  fedc__sim_async_free(s->async);
  fedc__sim_scaffold_free(s);
  fedc__sim_codec_free(s);
  fedc_free(s->speed);
  pthread_mutex_destroy(&s->mu);
  fedc_free(s);
}

static int workers_new(fedc_sim *s) {
  const fedc_config *c = &s->cfg;
  s->workers = fedc_calloc((size_t)s->n_workers, sizeof *s->workers);
  if (s->workers == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  for (int32_t i = 0; i < s->n_workers; i++) {
    worker *w = &s->workers[i];
    int rc = fedc_backend_open(c->device, &w->be);
    if (rc == 0) rc = fedc_trainer_new(w->be, &s->spec, c->batch_size, &w->train);
    if (rc == 0 && s->share.evaluator)
      rc = fedc_trainer_new(w->be, &s->spec, EVAL_BATCH, &w->eval);
    if (rc == 0)
      rc = fedc_data_view_open(w->be, s->train.x, s->train.y, s->train.n,
                               s->train.d, &w->train_view);
    if (rc == 0 && s->share.evaluator)
      rc = fedc_data_view_open(w->be, s->test.x, s->test.y, s->test.n,
                               s->test.d, &w->test_view);
    /* the CPU trains on and evaluates pixels (bytes / 255) from byte
     * copies: a quarter of the memory read each round, the same results */
    if (rc == 0 && w->be->device == FEDC_DEVICE_CPU) {
      rc = fedc_dataset_pack_u8(&s->train);
      if (rc > 0) w->train_view.x_u8 = s->train.x_u8;
      if (rc >= 0 && s->share.evaluator) rc = fedc_dataset_pack_u8(&s->test);
      if (rc > 0 && s->share.evaluator) w->test_view.x_u8 = s->test.x_u8;
      rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && (w->w = fedc_malloc_array(s->n_params, sizeof(float))) == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
    if (rc != 0) return rc;
  }
  return 0;
}

/*
 * Keep only the rows of this share's clients (c % size == rank), gathered
 * client by client into a compact data set, and point the partition into
 * it; the other clients get empty ranges. This is the layout that
 * fedc_dataset_permute gives a single process, restricted to the owned
 * clients: each one's rows contiguous and in partition order, so a client
 * trains on the same bytes in the same order whatever the number of
 * processes. Holds the whole set and the share at once, briefly.
 */
static int keep_share(fedc_sim *s) {
  fedc_partition *p = &s->part;
  const fedc_dataset *all = &s->train;
  int32_t rank = s->share.rank, size = s->share.size;
  size_t d = (size_t)all->d;
  int64_t n = 0;
  for (int32_t c = rank; c < p->n_clients; c += size)
    n += p->offsets[c + 1] - p->offsets[c];
  size_t rows = n > 0 ? (size_t)n : 1;
  fedc_dataset kept = {.n = n, .d = all->d, .n_classes = all->n_classes};
  kept.x = fedc_malloc_aligned(rows * d * sizeof(float));
  kept.y = fedc_malloc_aligned(rows * sizeof(float));
  if (kept.x == NULL || kept.y == NULL) {
    fedc_dataset_free(&kept);
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory for rank %d's rows",
                          (int)rank);
  }
  int64_t at = 0, begin = p->offsets[0];
  for (int32_t c = 0; c < p->n_clients; c++) {
    int64_t end = p->offsets[c + 1];
    p->offsets[c] = at;
    for (int64_t i = begin; c % size == rank && i < end; i++, at++) {
      int64_t row = p->index[i];
      memcpy(kept.x + (size_t)at * d, all->x + (size_t)row * d, d * sizeof(float));
      kept.y[at] = all->y[row];
    }
    begin = end;
  }
  p->offsets[p->n_clients] = at;
  for (int64_t i = 0; i < n; i++) p->index[i] = i;
  int64_t *shrunk = fedc_realloc(p->index, rows * sizeof *p->index);
  if (shrunk) p->index = shrunk; /* else the larger block serves as well */
  fedc_dataset_free(&s->train);
  s->train = kept;
  return 0;
}

static int sim_new(const fedc_config *cfg, const fedc_sim_share *share, int split,
                   fedc_sim **out);

/* The evaluator's reports, one per test chunk and their sum; none for a
 * model the report cannot hold (more than 64 classes): only loss and
 * accuracy are then measured. */
static int reports_new(fedc_sim *s) {
  fedc_eval_report probe;
  if (fedc_eval_report_init_for(&probe, &s->spec, s->cfg.eval_threshold) != 0) return 0;
  s->report = fedc_malloc(sizeof *s->report);
  for (int i = 0; i < EVAL_CHUNKS; i++)
    s->chunks[i].report = fedc_malloc(sizeof *s->chunks[i].report);
  int ok = s->report != NULL;
  for (int i = 0; i < EVAL_CHUNKS; i++) ok = ok && s->chunks[i].report != NULL;
  return ok ? 0 : fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
}

int fedc_sim_new_config(const fedc_config *cfg, fedc_sim **out) {
  const fedc_sim_share whole = {.rank = 0, .size = 1, .evaluator = 1};
  return sim_new(cfg, &whole, 0, out);
}

int fedc_sim_new_share(const fedc_config *cfg, const fedc_sim_share *share,
                       fedc_sim **out) {
  return sim_new(cfg, share, 1, out);
}

/*
 * The driver's capability check comes first, before any data is read: the
 * simulator runs asynchronous strategies but not secure aggregation, and a
 * share of a split run (split) needs an additive strategy whose partial
 * sums the processes can merge.
 */
static int sim_new(const fedc_config *cfg, const fedc_sim_share *share, int split,
                   fedc_sim **out) {
  *out = NULL;
  if (share->size < 1 || share->rank < 0 || share->rank >= share->size)
    return fedc_error_set(FEDC_EINVAL, "sim: share %d of %d", (int)share->rank,
                          (int)share->size);
  fedc_strategy_needs drv;
  fedc_strategy_needs_init(&drv);
  drv.split = split;
  drv.can_async = !split;
  drv.can_variates = 1;
  drv.driver = split ? "fedc-sim-mpi" : "fedc-sim";
  int crc = fedc_config_check_strategy(cfg, &drv);
  if (crc != 0) return crc;
  /* [strategy] max_client_share guards a coordinator against a site that
   * lies about its sample count. The simulator's clients are in-process
   * and report their true counts, so it applies only when set; a split run
   * cannot apply it (the updates it holds aside live on other processes),
   * so there it is refused rather than ignored. */
  const char *share_origin = fedc_config_origin(cfg, "strategy", "max_client_share");
  int share_set = share_origin != NULL && strcmp(share_origin, "default") != 0;
  int share_on = share_set && cfg->max_client_share > 0.0 && cfg->max_client_share < 1.0;
  if (split && share_on)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] max_client_share = %g: fedc-sim-mpi cannot cap a "
                          "client's weight across processes; leave it unset or set it to 1 "
                          "(the simulator's clients report their true sample counts)",
                          share_origin, cfg->max_client_share);
  fedc_sim *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  pthread_mutex_init(&s->mu, NULL);
  s->cfg = *cfg;
  s->share = *share;
  const fedc_config *c = &s->cfg;
  int rc = fedc_data_load_prep(c, &s->train, &s->test, &s->prep);
  if (rc == 0 && !s->share.evaluator) fedc_dataset_free(&s->test);
  if (rc == 0)
    rc = fedc_model_spec_from_config(c, (int32_t)s->train.d, s->train.n_classes,
                                     &s->spec);
  if (rc == 0) {
    fedc_partition_params pp = {.kind = (fedc_partition_kind)c->partition,
                                .n_clients = c->clients,
                                .alpha = c->alpha,
                                .shards_per_client = c->shards_per_client,
                                .seed = c->seed};
    rc = fedc_partition_make(&s->train, &pp, &s->part);
  }
  if (rc == 0) rc = fedc_attackers_pick(c, &s->attackers);
  if (rc == 0) fedc_attack_flip_labels(c, s->attackers, &s->part, &s->train);
  if (rc == 0 && s->share.size > 1) {
    rc = keep_share(s);
  } else if (rc == 0) {
    /* lay each client's rows out contiguously: its minibatches are then
     * gathered from a few MB that stay in cache, not from all of memory */
    rc = fedc_dataset_permute(&s->train, s->part.index);
    for (int64_t i = 0; rc == 0 && i < s->train.n; i++) s->part.index[i] = i;
  }
  float *w0 = NULL;
  if (rc == 0) {
    s->n_params = fedc_model_n_params(&s->spec);
    w0 = fedc_malloc_array(s->n_params, sizeof(float));
    s->eligible = fedc_malloc_array((size_t)c->clients, sizeof(int32_t));
    s->selected = fedc_malloc_array((size_t)c->clients_per_round, sizeof(int32_t));
    s->mine = fedc_malloc_array((size_t)c->clients_per_round, sizeof(int32_t));
    if (w0 == NULL || s->eligible == NULL || s->selected == NULL || s->mine == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  }
  if (rc == 0) {
    fedc_model_init(&s->spec, c->seed, w0);
    fedc_pipeline_params pp;
    fedc_pipeline_params_from_config(c, c->clients, &pp);
    if (!share_on) pp.max_share = 0.0;
    /* SCAFFOLD's server variate weighs clients by rows, out of all rows */
    if (pp.variate_total <= 0.0) pp.variate_total = (double)s->train.n;
    fedc_engine_params ep = {.rounds = c->rounds,
                             .clients_per_round = c->clients_per_round,
                             .min_clients = c->min_clients,
                             .seed = c->seed,
                             .strategy = c->strategy};
    rc = fedc__engine_new_pipeline(&ep, &pp, s->n_params, w0, &s->engine);
  }
  /* a schema's statistics under DP (data_source.c) spend their share first */
  if (rc == 0 && (c->features[0] || c->schema_from[0]) && c->dp_noise_multiplier > 0)
    rc = fedc__engine_account_release(s->engine, c->dp_noise_multiplier);
  fedc_free(w0);
  if (rc == 0) {
    for (int32_t i = 0; i < c->clients; i++) s->eligible[i] = i;
    s->n_workers = c->threads;
    /* parallelism comes from training clients side by side; each BLAS call
     * stays on its own thread */
    fedc_backend_cpu_set_blas_threads(1);
    rc = fedc_pool_new(s->n_workers, &s->pool);
  }
  if (rc == 0) rc = workers_new(s);
  if (rc == 0 && s->share.evaluator) rc = reports_new(s);
  if (rc == 0) rc = fedc__sim_scaffold_new(s);
  if (rc == 0) rc = fedc__sim_codec_new(s);
  if (rc != 0) {
    fedc_sim_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void record_error(fedc_sim *s, int rc) {
  pthread_mutex_lock(&s->mu);
  if (s->round_rc == 0) {
    s->round_rc = rc;
    snprintf(s->round_err, sizeof s->round_err, "%s", fedc_error_msg());
  }
  pthread_mutex_unlock(&s->mu);
}

/*
 * [train] class_weight and pos_weight for one client: balanced from the
 * client's own label counts (a site knows only its own). Returns 1 when the
 * client trains unweighted, 0 with weights in out, or an error.
 */
static int client_weights(const fedc_sim *s, const int64_t *rows, int64_t n, float *out) {
  const fedc_config *c = &s->cfg;
  if (s->spec.type == FEDC_MODEL_LINREG) return 1;
  fedc_class_weight cw;
  int rc = fedc_class_weight_parse(c->class_weight, &cw);
  if (rc != 0) return rc;
  if (cw.mode == FEDC_CLASS_WEIGHT_NONE && c->pos_weight == 1.0) return 1;
  int32_t k = (s->spec.type == FEDC_MODEL_LOGREG) ? 2 : s->spec.n_out;
  if (k > FEDC_CLASS_WEIGHT_MAX)
    return fedc_error_set(FEDC_EINVAL, "[train] class_weight: %d classes, at most %d", (int)k,
                          FEDC_CLASS_WEIGHT_MAX);
  int64_t counts[FEDC_CLASS_WEIGHT_MAX] = {0};
  for (int64_t i = 0; i < n; i++) {
    int32_t y = (int32_t)s->train.y[rows[i]];
    if (y >= 0 && y < k) counts[y]++;
  }
  return fedc_class_weight_resolve(&cw, c->pos_weight, k, counts, out);
}

/*
 * Train one client on worker wi: w holds the start model on entry and the
 * client's update on return (an attacker's already turned into its
 * attack). The local shuffling draws from the stream (seed, round, client),
 * so the update does not depend on the worker or the order of training.
 */
int fedc__sim_train_client(fedc_sim *s, int32_t wi, int32_t client,
                           int32_t round, float *w, double *loss,
                           int64_t *n_rows) {
  worker *wk = &s->workers[wi];
  const fedc_config *c = &s->cfg;
  const int64_t *rows = s->part.index + s->part.offsets[client];
  *n_rows = s->part.offsets[client + 1] - s->part.offsets[client];
  fedc_rng rng;
  fedc_rng_derive(&rng, c->seed, 0x747261696e /* "train" */, (uint64_t)round,
                  (uint64_t)client);
  fedc_train_params tp = {.epochs = c->epochs, .batch_size = c->batch_size,
                          .lr = (float)c->lr, .momentum = (float)c->momentum,
                          .prox_mu = (float)c->prox_mu};
  float weights[FEDC_CLASS_WEIGHT_MAX];
  int rc = client_weights(s, rows, *n_rows, weights);
  if (rc < 0) return rc;
  if (rc == 0) tp.class_weight = weights, tp.n_class_weight = (s->spec.type == FEDC_MODEL_LOGREG) ? 2 : s->spec.n_out;
  if (s->scaffold) tp.correction = fedc__sim_scaffold_before(s, wi, client, w);
  fedc_train_stats st = {0};
  rc = fedc_train_local(wk->train, &tp, &wk->train_view, rows, *n_rows, &rng, w, &st);
  if (rc == 0 && s->scaffold) rc = fedc__sim_scaffold_after(s, wi, client, w, st.steps);
  if (rc != 0) return rc;
  *loss = st.seen ? st.loss_sum / (double)st.seen : 0.0;
  return 0;
}

/* Pool task: train this share's selected client number `task` and submit
 * its update. */
static void train_task(void *arg, int32_t task, int32_t wi) {
  fedc_sim *s = arg;
  worker *w = &s->workers[wi];
  const fedc_config *c = &s->cfg;
  int32_t client = s->mine[task];
  int32_t round = fedc_engine_round(s->engine);
  memcpy(w->w, fedc_engine_global(s->engine), s->n_params * sizeof(float));
  double loss;
  int64_t n_rows;
  int rc = fedc__sim_train_client(s, wi, client, round, w->w, &loss, &n_rows);
  if (rc != 0) {
    record_error(s, rc);
    return;
  }
  if (s->attackers[client])
    fedc_attack_update(c, round, client, fedc_engine_global(s->engine), w->w, s->n_params);
  rc = fedc__sim_codec_apply(s, client, round, (uint64_t)n_rows, loss, w->w);
  if (rc != 0) {
    record_error(s, rc);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->scaffold)
    rc = fedc__engine_submit_variate(s->engine, round, client, w->w,
                                     fedc__sim_scaffold_delta(s, wi), s->n_params,
                                     (uint64_t)n_rows, loss);
  else
    rc = fedc_engine_submit(s->engine, round, client, w->w, s->n_params,
                            (uint64_t)n_rows, loss);
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) record_error(s, rc);
}

static void eval_task(void *arg, int32_t task, int32_t wi) {
  fedc_sim *s = arg;
  worker *w = &s->workers[wi];
  int64_t n = s->test.n;
  int64_t begin = n * task / EVAL_CHUNKS, end = n * (task + 1) / EVAL_CHUNKS;
  chunk_sums *cs = &s->chunks[task];
  cs->sums = (fedc_eval_sums){0};
  if (cs->report == NULL) {
    cs->rc = fedc_evaluate(w->eval, fedc_engine_global(s->engine), &w->test_view,
                           begin, end, &cs->sums, NULL);
  } else { /* the loss, the accuracy and the report from one forward pass */
    cs->rc = fedc_eval_report_init_for(cs->report, &s->spec, s->cfg.eval_threshold);
    if (cs->rc == 0)
      cs->rc = fedc_evaluate_with_report(w->eval, fedc_engine_global(s->engine), &w->test_view,
                                         s->test.y, begin, end, &cs->sums, cs->report);
  }
  if (cs->rc != 0) record_error(s, cs->rc);
}

int fedc_sim_evaluate(fedc_sim *s, double *loss, double *acc) {
  if (!s->share.evaluator)
    return fedc_error_set(FEDC_ESTATE, "sim: rank %d does not hold the test set",
                          (int)s->share.rank);
  s->round_rc = 0;
  fedc_pool_run(s->pool, EVAL_CHUNKS, eval_task, s);
  if (s->round_rc != 0) return fedc_error_set(s->round_rc, "%s", s->round_err);
  fedc_eval_sums t = {0};
  for (int i = 0; i < EVAL_CHUNKS; i++) {
    t.loss_sum += s->chunks[i].sums.loss_sum;
    t.correct += s->chunks[i].sums.correct;
    t.n += s->chunks[i].sums.n;
  }
  if (s->report) {
    int rc = fedc_eval_report_init_for(s->report, &s->spec, s->cfg.eval_threshold);
    for (int i = 0; rc == 0 && i < EVAL_CHUNKS; i++)
      rc = fedc_eval_report_merge(s->report, s->chunks[i].report);
    if (rc != 0) return rc;
    s->report_round = fedc_engine_round(s->engine) - 1;
  }
  *loss = t.n ? t.loss_sum / (double)t.n : NAN;
  *acc = t.n ? (double)t.correct / (double)t.n : NAN;
  if (s->spec.type == FEDC_MODEL_LINREG) *acc = NAN;
  return 0;
}

int fedc_sim_round(fedc_sim *s, fedc_round_metrics *out) {
  const fedc_strategy_info *info = fedc_strategy_lookup(s->cfg.strategy);
  if (info && (info->caps & FEDC_STRATEGY_ASYNC)) return fedc__sim_async_step(s, out);
  return fedc_sim_round_combined(s, NULL, NULL, out);
}

/*
 * One round: open (every share draws the same selection), train the
 * selected clients this share owns, let the driver combine the other
 * shares' updates, close, evaluate. A failure anywhere abandons the round:
 * a client failing in a simulation is a bug or a diverged configuration,
 * not a dropout to ride out.
 */
int fedc_sim_round_combined(fedc_sim *s, fedc_sim_combine_fn combine,
                            void *ctx, fedc_round_metrics *out) {
  const fedc_config *c = &s->cfg;
  double t0 = now_s();
  int rc = fedc_engine_open(s->engine, s->eligible, c->clients,
                            c->clients_per_round, s->selected, &s->n_selected);
  if (rc != 0) return rc;
  s->n_mine = 0;
  for (int32_t i = 0; i < s->n_selected; i++)
    if (s->selected[i] % s->share.size == s->share.rank)
      s->mine[s->n_mine++] = s->selected[i];
  s->round_rc = 0;
  fedc_pool_run(s->pool, s->n_mine, train_task, s);
  double t1 = now_s();
  s->phase[0] += t1 - t0;
  s->vtime += fedc__sim_round_vtime(s); /* the slowest selected client's time */
  if (s->round_rc != 0)
    rc = fedc_error_set(s->round_rc, "round %d: %s",
                        (int)fedc_engine_round(s->engine), s->round_err);
  if (combine) rc = combine(ctx, s->engine, rc);
  if (rc != 0) {
    fedc_round_metrics ignored;
    int saved = rc;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    fedc_engine_close(s->engine, &ignored);
    return fedc_error_set(saved, "%s", msg);
  }
  fedc_round_metrics m;
  rc = fedc_engine_close(s->engine, &m);
  if (rc != 0) return rc;
  double t2 = now_s();
  s->phase[1] += t2 - t1;
  double loss = NAN, acc = NAN;
  if (s->share.evaluator && (m.round % c->eval_every == 0 || m.round == c->rounds)) {
    rc = fedc_sim_evaluate(s, &loss, &acc);
    if (rc != 0) return rc;
  }
  s->phase[2] += now_s() - t2;
  double secs = now_s() - t0;
  fedc_engine_record(s->engine, m.round, loss, acc, secs);
  m.test_loss = loss;
  m.test_acc = acc;
  m.secs = secs;
  *out = m;
  return 0;
}

int fedc_sim_eval_json(const fedc_sim *s, char **out) {
  *out = NULL;
  if (s->report == NULL || s->report_round == 0 ||
      s->report_round != fedc_engine_round(s->engine) - 1)
    return 0;
  fedc_eval_metrics m;
  int rc = fedc_eval_metrics_compute(s->report, &m);
  if (rc == 0) rc = fedc_eval_metrics_to_json(&m, s->report, 1, out);
  return rc;
}

void fedc_sim_phase_secs(const fedc_sim *s, double out[3]) {
  for (int i = 0; i < 3; i++) out[i] = s->phase[i];
}

int fedc_sim_done(const fedc_sim *s) { return fedc_engine_done(s->engine); }
int64_t fedc_sim_rows(const fedc_sim *s) { return s->train.n; }
const fedc_model_spec *fedc_sim_spec(const fedc_sim *s) { return &s->spec; }
const float *fedc_sim_global(const fedc_sim *s) {
  return fedc_engine_global(s->engine);
}
const fedc_engine *fedc_sim_engine(const fedc_sim *s) { return s->engine; }

int fedc_sim_save(const fedc_sim *s, const char *path) {
  fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
  size_t n = fedc_model_tensors(&s->spec, fedc_sim_global(s), t,
                                2 * FEDC_MODEL_MAX_LAYERS);
  char seed[32], hidden[128] = "";
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->cfg.seed);
  for (int32_t i = 0, off = 0; i < s->spec.n_hidden; i++)
    off += snprintf(hidden + off, sizeof hidden - (size_t)off, "%s%d",
                    i ? "," : "", (int)s->spec.hidden[i]);
  /* the same self-description as the coordinator's models (model_describe.h),
   * plus what only a simulation has */
  fedc_st_meta extra[] = {{"model", fedc_model_type_name(s->spec.type)},
                          {"hidden", hidden},
                          {"seed", seed}};
  fedc_model_desc m;
  int rc = fedc_model_describe(&s->spec, "fedc-sim", fedc_engine_round(s->engine) - 1,
                               s->prep.schema, s->prep.mean, s->prep.std, extra,
                               sizeof extra / sizeof extra[0], &m);
  if (rc == 0) rc = fedc_st_write_file(path, t, n, m.meta, m.n);
  fedc_model_desc_free(&m);
  return rc;
}
