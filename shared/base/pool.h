/*
 * pool.h - a fixed pool of worker threads running parallel-for jobs.
 *
 * fedc_pool_run(pool, n, fn, arg) calls fn(arg, task, worker) for every task
 * in 0..n-1, spread over the workers (each takes the next task when free),
 * and returns when all are done. worker is the index of the thread
 * (0..n_workers-1) so that a task can use that thread's own buffers. The
 * calling thread works too, as worker 0.
 */
#ifndef FEDC_POOL_H
#define FEDC_POOL_H

#include <stdint.h>

typedef struct fedc_pool fedc_pool;
typedef void (*fedc_pool_fn)(void *arg, int32_t task, int32_t worker);

int fedc_pool_new(int32_t n_workers, fedc_pool **out);
void fedc_pool_free(fedc_pool *p);
int32_t fedc_pool_size(const fedc_pool *p);
void fedc_pool_run(fedc_pool *p, int32_t n_tasks, fedc_pool_fn fn, void *arg);

#endif
