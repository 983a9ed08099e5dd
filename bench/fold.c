/*
 * fold.c - fedc-bench-fold: the coordinator's fold throughput, in GB/s of
 * float32 update per core, against this core's memory bandwidth (bench/
 * fold.sh runs it; docs/compression.md quotes it).
 *
 * The fold is what a worker does with a decoded update: fedc_engine_submit
 * into an engine built as the coordinator builds it (the pipeline from the
 * default config: FedAvg, max_weight_delta and max_client_share checks),
 * i.e. the update checked, turned to fixed point and added to the 128-bit
 * sums. Also timed: an int8 body decoded and folded (wire/coded_update.c)
 * and a float32 safetensors update decoded (its SHA-256 checked), the two
 * steps a compressed and a plain update take before the fold. Memory
 * bandwidth is one core's: a read of a large array (sum) and memcpy
 * (read + write bytes). Times are this thread's CPU time, medians of 5.
 *
 *   fedc-bench-fold [WEIGHTS [UPDATES]]     defaults 16777216 and 8
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "config/config.h"
#include "config/config_params.h"
#include "round/engine.h"
#include "round/pipeline.h"
#include "wire/client_json.h"
#include "wire/coded_update.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median5(double *v) {
  qsort(v, 5, sizeof *v, cmp);
  return v[2];
}

/* One core's read bandwidth (GB/s): sum 8-byte words of a 512 MiB array. */
static double read_bw(void) {
  size_t n = (size_t)64 << 20;
  uint64_t *a = fedc_malloc_array(n, 8);
  if (a == NULL) return 0;
  for (size_t i = 0; i < n; i++)
    a[i] = i;
  double t[5];
  volatile uint64_t sink = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    sink += s0 + s1 + s2 + s3;
    t[r] = (double)(n * 8) / (now() - t0) / 1e9;
  }
  fedc_free(a);
  return median5(t);
}

/* memcpy of 256 MiB: bytes read plus bytes written, per second. */
static double copy_bw(void) {
  size_t n = (size_t)256 << 20;
  char *a = fedc_malloc(n), *b = fedc_malloc(n);
  if (a == NULL || b == NULL) return 0;
  memset(a, 1, n);
  memset(b, 2, n);
  double t[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    memcpy(b, a, n);
    t[r] = 2.0 * (double)n / (now() - t0) / 1e9;
  }
  fedc_free(a);
  fedc_free(b);
  return median5(t);
}

/*
 * GB/s of float32 input over whole rounds: open, m updates submitted (for
 * coded: each int8 body decoded first), close (the share cap's held
 * updates are folded there, and the average taken once a round).
 */
static double rounds_gbs(size_t n, int32_t m, double share, const float *x, const float *w,
                         const uint8_t *body, size_t blen, float *out) {
  fedc_config cfg;
  fedc_config_defaults(&cfg);
  cfg.max_client_share = share;
  fedc_pipeline_params pp;
  fedc_pipeline_params_from_config(&cfg, m, &pp);
  fedc_engine_params ep = {
      .rounds = 1000000, .clients_per_round = m, .min_clients = 1, .seed = 1, .strategy = "fedavg"};
  fedc_engine *e = NULL;
  if (fedc__engine_new_pipeline(&ep, &pp, n, x, &e) != 0) return -1;
  double t[5];
  int32_t ids[256], sel[256], k;
  for (int32_t i = 0; i < m; i++)
    ids[i] = i;
  for (int r = 0; r < 5; r++) {
    fedc_round_metrics rm;
    double t0 = now();
    if (fedc_engine_open(e, ids, m, m, sel, &k) != 0) return -1;
    int32_t round = fedc_engine_round(e);
    for (int32_t c = 0; c < m; c++) {
      fedc_coded_meta got;
      const float *u = w;
      if (body &&
          fedc_coded_decode(body, blen, FEDC_CODEC_INT8, fedc_engine_global(e), n, &got, out) != 0)
        return -1;
      if (body) u = out;
      if (fedc_engine_submit(e, round, c, u, n, 600 + (uint64_t)c, 0.5) != 0) return -1;
    }
    if (fedc_engine_close(e, &rm) != 0) return -1;
    t[r] = (double)n * 4 * m / 1e9 / (now() - t0);
  }
  fedc_engine_free(e);
  return median5(t);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : (size_t)16 << 20;
  int32_t m = argc > 2 ? (int32_t)strtol(argv[2], NULL, 10) : 8;
  if (n < 1 || m < 1 || m > 256) {
    fprintf(stderr, "usage: fedc-bench-fold [WEIGHTS [UPDATES 1..256]]\n");
    return 2;
  }
  float *x = fedc_malloc_array(n, sizeof(float)), *w = fedc_malloc_array(n, sizeof(float));
  float *out = fedc_malloc_array(n, sizeof(float));
  if (x == NULL || w == NULL || out == NULL) return 1;
  fedc_rng rng;
  fedc_rng_derive(&rng, 1, 2, 3, 4);
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)(fedc_rng_uniform(&rng) - 0.5);
    w[i] = x[i] + (float)(0.01 * (fedc_rng_uniform(&rng) - 0.5));
  }
  fedc_coded_meta cm = {
      .round = 1, .codec = FEDC_CODEC_INT8, .num_samples = 600, .train_loss = 0.5, .n = n, .k = 0};
  uint8_t *body = NULL, *cont = NULL;
  size_t blen = 0, clen = 0;
  fedc_st_tensor t = {.name = "w", .ndim = 1, .shape = {(int64_t)n}, .data = w};
  if (fedc_coded_encode(&cm, w, x, NULL, &rng, &body, &blen) != 0 ||
      fedc_client_update_encode_tensors(&t, 1, 1, 600, 0.5, &cont, &clen) != 0) {
    fprintf(stderr, "fold: %s\n", fedc_error_msg());
    return 1;
  }
  double plain0 = rounds_gbs(n, m, 0.0, x, w, NULL, 0, out);
  if (getenv("FEDC_FOLD_ONLY")) { /* for a profiler: the plain fold alone */
    printf("fold, max_client_share = 0: %.2f GB/s of float32\n", plain0);
    return 0;
  }
  double plain5 = rounds_gbs(n, m, 0.5, x, w, NULL, 0, out);
  double coded0 = rounds_gbs(n, m, 0.0, x, w, body, blen, out);
  double st[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int32_t c = 0; c < m; c++) {
      fedc_st_file *f = NULL;
      if (fedc_st_decode(cont, clen, &f) != 0) return 1;
      fedc_st_free(f);
    }
    st[r] = (double)clen * m / 1e9 / (now() - t0);
  }
  if (plain0 < 0 || plain5 < 0 || coded0 < 0) {
    fprintf(stderr, "fold: %s\n", fedc_error_msg());
    return 1;
  }
  double rb = read_bw(), cb = copy_bw();
  printf("weights %zu (%.0f MB float32), %d updates a round, one core (thread CPU time, "
         "median of 5 rounds)\n",
         n, (double)n * 4 / 1e6, (int)m);
  printf("  fold, max_client_share = 0   (open, submits, close)   %6.2f GB/s of float32\n", plain0);
  printf("  fold, max_client_share = 0.5 (the default)            %6.2f GB/s of float32\n", plain5);
  printf("  int8 bodies decoded, then folded (share 0)            %6.2f GB/s of float32\n", coded0);
  printf("  float32 safetensors update decoded (SHA-256 checked)  %6.2f GB/s\n", median5(st));
  printf("  memory, one core: read %.2f GB/s, memcpy %.2f GB/s (read + write)\n", rb, cb);
  fedc_free(body);
  fedc_free(cont);
  fedc_free(x);
  fedc_free(w);
  fedc_free(out);
  return 0;
}
