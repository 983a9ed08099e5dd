/*
 * pool.c - parallel-for on pthreads. A job is published under the mutex
 * with a generation number; workers claim tasks with an atomic counter and
 * the last one to finish wakes the caller.
 */
#include "base/pool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "base/alloc.h"
#include "base/error.h"

struct fedc_pool {
  int32_t n_workers;
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  uint64_t generation;
  int stopping;
  /* the current job */
  fedc_pool_fn fn;
  void *arg;
  int32_t n_tasks;
  _Atomic int32_t next_task;
  int32_t busy; /* helper threads still in the current job */
};

typedef struct worker_arg {
  fedc_pool *pool;
  int32_t index;
} worker_arg;

static void drain(fedc_pool *p, int32_t worker) {
  for (;;) {
    int32_t t = atomic_fetch_add(&p->next_task, 1);
    if (t >= p->n_tasks) return;
    p->fn(p->arg, t, worker);
  }
}

static void *worker_main(void *varg) {
  worker_arg *wa = varg;
  fedc_pool *p = wa->pool;
  int32_t index = wa->index;
  fedc_free(wa);
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->stopping) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    drain(p, index);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0) pthread_cond_signal(&p->done_cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int fedc_pool_new(int32_t n_workers, fedc_pool **out) {
  *out = NULL;
  if (n_workers < 1) return fedc_error_set(FEDC_EINVAL, "pool: %d workers", (int)n_workers);
  fedc_pool *p = fedc_calloc(1, sizeof *p);
  if (p == NULL) return fedc_error_set(FEDC_ENOMEM, "pool: out of memory");
  p->n_workers = n_workers;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->threads = fedc_calloc((size_t)n_workers, sizeof *p->threads);
  if (p->threads == NULL) {
    fedc_pool_free(p);
    return fedc_error_set(FEDC_ENOMEM, "pool: out of memory");
  }
  for (int32_t i = 1; i < n_workers; i++) {
    worker_arg *wa = fedc_malloc(sizeof *wa);
    if (wa == NULL) {
      p->n_workers = i;
      fedc_pool_free(p);
      return fedc_error_set(FEDC_ENOMEM, "pool: out of memory");
    }
    wa->pool = p;
    wa->index = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
      fedc_free(wa);
      p->n_workers = i;
      fedc_pool_free(p);
      return fedc_error_set(FEDC_ENOMEM, "pool: cannot start thread %d", (int)i);
    }
  }
  *out = p;
  return 0;
}

void fedc_pool_free(fedc_pool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (int32_t i = 1; p->threads && i < p->n_workers; i++)
    pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->done_cv);
  fedc_free(p->threads);
  fedc_free(p);
}

int32_t fedc_pool_size(const fedc_pool *p) { return p->n_workers; }

void fedc_pool_run(fedc_pool *p, int32_t n_tasks, fedc_pool_fn fn, void *arg) {
  if (n_tasks <= 0) return;
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n_tasks = n_tasks;
  atomic_store(&p->next_task, 0);
  p->busy = p->n_workers - 1;
  p->generation++;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->busy > 0) pthread_cond_wait(&p->done_cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
