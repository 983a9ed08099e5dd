/*
 * cuda_bench.cu - figures for the CUDA backend and GPU aggregation
 * (bench/cuda.sh runs it; docs/cuda.md has the design). Three measurements,
 * each against the CPU where that means something:
 *
 *   softmax  softmax regression on the whole Fashion-MNIST training set:
 *            epochs per second and test accuracy, CUDA and CPU;
 *   wide     multinomial logistic (softmax) regression with 150,528
 *            features (224 x 224 x 3) and 1,000 classes on synthetic data
 *            generated on the device: images per second (target >= 20,000);
 *   agg      FedAvg of 100 updates of 10 million parameters through
 *            fedc_agg_cuda, streamed from pageable and from pinned host
 *            memory and already on the device, in GB/s of updates and of
 *            estimated device-memory traffic against the GPU's peak
 *            bandwidth; median and trimmed mean on the same; the CPU's
 *            FedAvg for comparison.
 *
 *   fedc-bench-cuda probe | softmax | wide | agg | all
 *
 * Without a CUDA device it prints "no CUDA device: skipped" and exits 0
 * (probe exits 77). Sizes come from the environment (bench/cuda.sh lists
 * them). Host code only calls fedc's API, plus the CUDA runtime for the
 * device's properties, device-side synthetic data and pinned buffers.
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "agg/agg.h"
#include "cuda/agg_cuda.h"
#include "base/alloc.h"
#include "ml/backend.h"
#include "data/data.h"
#include "base/error.h"
#include "ml/model.h"
#include "base/rng.h"
#include "ml/train.h"
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long env_long(const char *name, long def) {
  const char *s = getenv(name);
  if (s == NULL || *s == '\0') return def;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v <= 0) {
    fprintf(stderr, "fedc-bench-cuda: %s = '%s' is not a positive integer; using %ld\n", name, s,
            def);
    return def;
  }
  return v;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "fedc-bench-cuda: %s: %s (%s)\n", what, fedc_error_msg(), fedc_err_name(rc));
  exit(1);
}

static void cuda_check(cudaError_t e, const char *what) {
  if (e != cudaSuccess) {
    fprintf(stderr, "fedc-bench-cuda: %s: %s\n", what, cudaGetErrorString(e));
    exit(1);
  }
}

/* Peak device-memory bandwidth in GB/s: 2 transfers per clock (DDR) x the
 * bus width in bytes. cudaDeviceProp lost memoryClockRate in CUDA 13; the
 * attribute still has it, in kHz. */
static double peak_gbs(void) {
  int khz = 0, bits = 0;
  if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    return NAN;
  }
  return 2.0 * khz * 1e3 * (bits / 8.0) / 1e9;
}

static void print_device(void) {
  cudaDeviceProp p;
  cuda_check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  printf("device: %s, sm_%d%d, %d SMs, %.1f GiB, peak memory bandwidth %.0f GB/s; "
         "CUDA runtime %d, driver %d\n",
         p.name, p.major, p.minor, p.multiProcessorCount,
         (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), peak_gbs(), rt, drv);
}

/* ---- softmax regression on Fashion-MNIST -------------------------------- */

typedef struct fit_result {
  double epochs_per_s, test_acc, train_loss;
} fit_result;

static fit_result fit_softmax(fedc_device dev, const fedc_dataset *train, const fedc_dataset *test,
                              int32_t epochs, int32_t batch) {
  fedc_backend *be;
  int rc = fedc_backend_open(dev, &be);
  if (rc != 0) die("backend", rc);
  fedc_model_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.type = FEDC_MODEL_SOFTMAX;
  spec.n_in = (int32_t)train->d;
  spec.n_out = train->n_classes;
  fedc_trainer *tr, *ev;
  if ((rc = fedc_trainer_new(be, &spec, batch, &tr)) != 0) die("trainer", rc);
  if ((rc = fedc_trainer_new(be, &spec, 1000, &ev)) != 0) die("trainer", rc);
  fedc_data_view tv, sv;
  if ((rc = fedc_data_view_open(be, train->x, train->y, train->n, train->d, &tv)) != 0)
    die("train data", rc);
  if ((rc = fedc_data_view_open(be, test->x, test->y, test->n, test->d, &sv)) != 0)
    die("test data", rc);
  size_t np = fedc_model_n_params(&spec);
  float *w = (float *)fedc_malloc_array(np, sizeof *w);
  int64_t *rows = (int64_t *)fedc_malloc_array((size_t)train->n, sizeof *rows);
  if (w == NULL || rows == NULL) die("host memory", FEDC_ENOMEM);
  fedc_model_init(&spec, 1, w);
  for (int64_t i = 0; i < train->n; i++)
    rows[i] = i;
  fedc_train_params p;
  memset(&p, 0, sizeof p);
  p.epochs = 1;
  p.batch_size = batch;
  p.lr = 0.05f;
  fedc_rng r;
  fedc_rng_seed(&r, 2);
  fedc_train_stats st;
  memset(&st, 0, sizeof st);
  double t0 = now_s();
  for (int32_t e = 0; e < epochs; e++) {
    memset(&st, 0, sizeof st);
    if ((rc = fedc_train_local(tr, &p, &tv, rows, train->n, &r, w, &st)) != 0) die("train", rc);
  }
  double secs = now_s() - t0;
  fedc_eval_sums s;
  memset(&s, 0, sizeof s);
  if ((rc = fedc_evaluate(ev, w, &sv, 0, test->n, &s, NULL)) != 0) die("evaluate", rc);
  fit_result out;
  out.epochs_per_s = epochs / secs;
  out.test_acc = (double)s.correct / (double)s.n;
  out.train_loss = st.loss_sum / (double)st.seen;
  fedc_free(w);
  fedc_free(rows);
  fedc_data_view_close(be, &tv);
  fedc_data_view_close(be, &sv);
  fedc_trainer_free(tr);
  fedc_trainer_free(ev);
  fedc_backend_close(be);
  return out;
}

static void bench_softmax(void) {
  const char *dir = getenv("FEDC_BENCH_FMNIST");
  if (dir == NULL || *dir == '\0') dir = "/usr/share/datasets/fashion-mnist";
  const int32_t epochs = (int32_t)env_long("FEDC_BENCH_EPOCHS", 5);
  const int32_t batch = (int32_t)env_long("FEDC_BENCH_BATCH", 32);
  char a[1024], b[1024], c[1024], d[1024];
  snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
  snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
  snprintf(c, sizeof c, "%s/t10k-images-idx3-ubyte.gz", dir);
  snprintf(d, sizeof d, "%s/t10k-labels-idx1-ubyte.gz", dir);
  fedc_dataset train, test;
  memset(&train, 0, sizeof train);
  memset(&test, 0, sizeof test);
  if (fedc_load_idx(a, b, &train) != 0 || fedc_load_idx(c, d, &test) != 0) {
    printf("softmax: Fashion-MNIST not readable (%s): skipped\n", fedc_error_msg());
    fedc_dataset_free(&train);
    return;
  }
  printf("softmax regression, Fashion-MNIST (%lld train rows, %lld test), batch %d, lr 0.05, "
         "%d epochs:\n",
         (long long)train.n, (long long)test.n, (int)batch, (int)epochs);
  const fedc_device devs[2] = {FEDC_DEVICE_CUDA, FEDC_DEVICE_CPU};
  for (int i = 0; i < 2; i++) {
    fit_result f = fit_softmax(devs[i], &train, &test, epochs, batch);
    printf("  %-4s  %8.2f epochs/s   test accuracy %.4f   last-epoch train loss %.4f\n",
           i == 0 ? "cuda" : "cpu", f.epochs_per_s, f.test_acc, f.train_loss);
  }
  fedc_dataset_free(&train);
  fedc_dataset_free(&test);
}

/* ---- wide logistic regression on synthetic data -------------------------- */

static __device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* x uniform in [0, 1) like scaled pixels; labels uniform over the classes */
static __global__ void synth_k(float *x, size_t nx, float *y, size_t ny, int classes,
                               unsigned long long seed) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nx;
       i += (size_t)gridDim.x * blockDim.x) {
    x[i] = (float)(mix64(seed ^ i) >> 40) * (1.0f / 16777216.0f);
    if (i < ny) y[i] = (float)(mix64(~seed ^ i) % (unsigned long long)classes);
  }
}

static void bench_wide(void) {
  const int32_t d = 150528, classes = 1000;
  const int64_t n = env_long("FEDC_BENCH_WIDE_ROWS", 8192);
  const int32_t batch = (int32_t)env_long("FEDC_BENCH_WIDE_BATCH", 256);
  const int32_t epochs = (int32_t)env_long("FEDC_BENCH_WIDE_EPOCHS", 3);
  fedc_backend *be;
  int rc = fedc_backend_open(FEDC_DEVICE_CUDA, &be);
  if (rc != 0) die("backend", rc);
  float *x = fedc_buf_alloc(be, (size_t)n * d), *y = fedc_buf_alloc(be, (size_t)n);
  if (x == NULL || y == NULL) die("device memory for the data", FEDC_ENOMEM);
  cuda_check(cudaDeviceSynchronize(), "synthetic data");
  synth_k<<<4096, 256>>>(x, (size_t)n * d, y, (size_t)n, classes, 42);
  cuda_check(cudaGetLastError(), "synthetic data");
  cuda_check(cudaDeviceSynchronize(), "synthetic data");
  fedc_data_view v;
  v.x = x;
  v.y = y;
  v.n = n;
  v.d = d;
  fedc_model_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.type = FEDC_MODEL_SOFTMAX;
  spec.n_in = d;
  spec.n_out = classes;
  size_t np = fedc_model_n_params(&spec);
  fedc_trainer *t;
  if ((rc = fedc_trainer_new(be, &spec, batch, &t)) != 0) die("trainer", rc);
  float *w = (float *)fedc_malloc_array(np, sizeof *w);
  int64_t *rows = (int64_t *)fedc_malloc_array((size_t)n, sizeof *rows);
  if (w == NULL || rows == NULL) die("host memory", FEDC_ENOMEM);
  fedc_model_init(&spec, 3, w);
  for (int64_t i = 0; i < n; i++)
    rows[i] = i;
  fedc_train_params p;
  memset(&p, 0, sizeof p);
  p.batch_size = batch;
  p.lr = 0.01f;
  fedc_rng r;
  fedc_rng_seed(&r, 4);
  fedc_train_stats st;
  memset(&st, 0, sizeof st);
  /* warm-up (cuBLAS's kernels, the index buffers), then the model's trip
   * alone (epochs = 0: upload and download of w), then the timed epochs */
  p.epochs = 1;
  if ((rc = fedc_train_local(t, &p, &v, rows, batch * 4 < n ? batch * 4 : n, &r, w, &st)) != 0)
    die("train", rc);
  p.epochs = 0;
  double t0 = now_s();
  if ((rc = fedc_train_local(t, &p, &v, rows, n, &r, w, &st)) != 0) die("train", rc);
  double trip = now_s() - t0;
  p.epochs = epochs;
  memset(&st, 0, sizeof st);
  t0 = now_s();
  if ((rc = fedc_train_local(t, &p, &v, rows, n, &r, w, &st)) != 0) die("train", rc);
  double secs = now_s() - t0;
  double images = (double)epochs * (double)n;
  double steady = images / (secs - trip), whole = images / secs;
  /* one step: 2 GEMMs of 2 B d K flops (forward, weight gradient) */
  double tflops = 4.0 * images * d * classes / (secs - trip) / 1e12;
  printf("wide softmax regression %d features x %d classes (%.0f M parameters), %lld synthetic "
         "rows on the device, batch %d, %d epochs:\n",
         (int)d, (int)classes, np / 1e6, (long long)n, (int)batch, (int)epochs);
  printf("  %.0f images/s training (%.1f TFLOP/s in the products); %.0f images/s counting the "
         "model's %.2f s round trip to the host\n",
         steady, tflops, whole, trip);
  printf("  target >= 20000 images/s: %s   (mean train loss %.3f)\n",
         steady >= 20000.0 ? "met" : "NOT met", st.loss_sum / (double)st.seen);
  fedc_free(w);
  fedc_free(rows);
  fedc_trainer_free(t);
  fedc_buf_free(be, x);
  fedc_buf_free(be, y);
  fedc_backend_close(be);
}

/* ---- aggregation ------------------------------------------------------------ */

/* K adds of the given buffers (cycled) and a finish; seconds. */
static double agg_run(fedc_agg_cuda *a, float *const *bufs, int nbufs, int K, size_t n, float *out,
                      double *finish_s) {
  int rc = fedc_agg_cuda_begin(a, NULL, n);
  if (rc != 0) die("agg begin", rc);
  double t0 = now_s();
  for (int k = 0; k < K; k++)
    if ((rc = fedc_agg_cuda_add(a, bufs[k % nbufs], n, 100 + (uint64_t)k, NULL)) != 0)
      die("agg add", rc);
  double t1 = now_s();
  if ((rc = fedc_agg_cuda_finish(a, out, n)) != 0) die("agg finish", rc);
  double t2 = now_s();
  if (finish_s) *finish_s = t2 - t1;
  return t2 - t0;
}

static void bench_agg(void) {
  const int K = (int)env_long("FEDC_BENCH_AGG_UPDATES", 100);
  const size_t n = (size_t)env_long("FEDC_BENCH_AGG_PARAMS", 10000000);
  const int H = 4; /* distinct host updates, cycled */
  const double upd_gb = (double)K * (double)n * sizeof(float) / 1e9;
  const double peak = peak_gbs();
  printf("aggregation of %d updates of %zu parameters (%.1f GB of updates); peak device "
         "bandwidth %.0f GB/s:\n",
         K, n, upd_gb, peak);
  float *host[4], *pinned[4], *dev[4];
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  for (int h = 0; h < H; h++) {
    host[h] = (float *)fedc_malloc_array(n, sizeof(float));
    if (host[h] == NULL) die("host memory", FEDC_ENOMEM);
    for (size_t i = 0; i < n; i++)
      host[h][i] = (float)(0.1 * (fedc_rng_uniform(&r) - 0.5));
    cuda_check(cudaMallocHost((void **)&pinned[h], n * sizeof(float)), "cudaMallocHost");
    memcpy(pinned[h], host[h], n * sizeof(float));
  }
  float *out = (float *)fedc_malloc_array(n, sizeof(float));
  float *cpu_out = (float *)fedc_malloc_array(n, sizeof(float));
  if (out == NULL || cpu_out == NULL) die("host memory", FEDC_ENOMEM);

  /* the CPU's FedAvg, the reference and the baseline */
  fedc_strategy *s;
  int rc = fedc_fedavg_new(n, &s);
  if (rc != 0) die("cpu fedavg", rc);
  s->ops->begin(s, NULL, n);
  double t0 = now_s();
  for (int k = 0; k < K; k++)
    if ((rc = s->ops->add(s, host[k % H], n, 100 + (uint64_t)k)) != 0) die("cpu fedavg", rc);
  if ((rc = s->ops->finish(s, cpu_out, n)) != 0) die("cpu fedavg", rc);
  double cpu_s = now_s() - t0;
  fedc_strategy_free(s);
  printf("  cpu  fedavg (one thread)           %7.3f s  %7.2f GB/s of updates\n", cpu_s,
         upd_gb / cpu_s);

  fedc_agg_cuda_params p;
  memset(&p, 0, sizeof p);
  p.kind = FEDC_AGG_CUDA_FEDAVG;
  fedc_agg_cuda *a;
  if ((rc = fedc_agg_cuda_new(&p, n, &a)) != 0) die("agg_cuda", rc);
  agg_run(a, host, H, H, n, out, NULL); /* warm-up */
  double pageable_s = agg_run(a, host, H, K, n, out, NULL);
  int same = memcmp(out, cpu_out, n * sizeof *out) == 0;
  double pinned_s = agg_run(a, pinned, H, K, n, out, NULL);
  same = same && memcmp(out, cpu_out, n * sizeof *out) == 0;
  printf("  cuda fedavg from pageable host     %7.3f s  %7.2f GB/s of updates\n", pageable_s,
         upd_gb / pageable_s);
  printf("  cuda fedavg from pinned host       %7.3f s  %7.2f GB/s of updates\n", pinned_s,
         upd_gb / pinned_s);
  for (int h = 0; h < H; h++) {
    cuda_check(cudaMalloc((void **)&dev[h], n * sizeof(float)), "cudaMalloc");
    cuda_check(cudaMemcpy(dev[h], host[h], n * sizeof(float), cudaMemcpyHostToDevice), "copy");
  }
  double dev_s = agg_run(a, dev, H, K, n, out, NULL);
  same = same && memcmp(out, cpu_out, n * sizeof *out) == 0;
  /* per parameter and update: the check reads 4 bytes; the fold reads 4 and
   * reads and writes a 16-byte sum */
  const double traffic = (double)K * (double)n * 40.0 / 1e9;
  printf("  cuda fedavg on the device          %7.3f s  %7.2f GB/s of updates, ~%.0f GB/s of "
         "memory traffic (%.0f%% of peak)\n",
         dev_s, upd_gb / dev_s, traffic / dev_s, 100.0 * traffic / dev_s / peak);
  printf("  cuda fedavg equals the cpu's bit for bit: %s\n", same ? "yes" : "NO");
  fedc_agg_cuda_free(a);

  /* robust statistics keep every update: K copies on the device */
  const fedc_agg_cuda_kind kinds[2] = {FEDC_AGG_CUDA_MEDIAN, FEDC_AGG_CUDA_TRIMMED_MEAN};
  for (int i = 0; i < 2; i++) {
    memset(&p, 0, sizeof p);
    p.kind = kinds[i];
    p.trim_beta = 0.1;
    p.max_updates = K;
    if ((rc = fedc_agg_cuda_new(&p, n, &a)) != 0) die("agg_cuda", rc);
    double fin = 0.0;
    double all = agg_run(a, dev, H, K, n, out, &fin);
    /* 32 passes of the bitwise selection (the trimmed mean one more) */
    double reads = (i == 0 ? 32.0 : 33.0) * K * (double)n * 4.0 / 1e9;
    printf("  cuda %-12s on the device     %7.3f s  (adds %.3f s, finish %.3f s: ~%.0f GB/s "
           "of reads)\n",
           i == 0 ? "median" : "trimmed_mean", all, all - fin, fin, reads / fin);
    fedc_agg_cuda_free(a);
  }
  for (int h = 0; h < H; h++) {
    fedc_free(host[h]);
    cudaFreeHost(pinned[h]);
    cudaFree(dev[h]);
  }
  fedc_free(out);
  fedc_free(cpu_out);
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "all";
  if (strcmp(what, "probe") && strcmp(what, "softmax") && strcmp(what, "wide") &&
      strcmp(what, "agg") && strcmp(what, "all")) {
    fprintf(stderr, "usage: fedc-bench-cuda [probe|softmax|wide|agg|all]\n");
    return 2;
  }
  fedc_backend *be;
  int rc = fedc_backend_open(FEDC_DEVICE_CUDA, &be);
  if (rc == FEDC_EUNSUPPORTED) {
    printf("no CUDA device: skipped (%s)\n", fedc_error_msg());
    return strcmp(what, "probe") == 0 ? 77 : 0;
  }
  if (rc != 0) die("cuda backend", rc);
  fedc_backend_close(be);
  print_device();
  if (strcmp(what, "probe") == 0) return 0;
  int all = strcmp(what, "all") == 0;
  if (all || strcmp(what, "softmax") == 0) bench_softmax();
  if (all || strcmp(what, "wide") == 0) bench_wide();
  if (all || strcmp(what, "agg") == 0) bench_agg();
  return 0;
}
