/*
 * backend_cuda.cu - the CUDA backend: the fedc_backend ops of backend.h on
 * one GPU. Buffers are device memory (cudaMalloc); products go to cuBLAS,
 * everything else to fedc's own kernels (cuda_kernels.cu). Host code only:
 * it owns the stream, the cuBLAS handle, the scratch the ops need, and the
 * translation of every CUDA and cuBLAS failure into FEDC_EBACKEND with the
 * runtime's text.
 *
 * One backend is used by one thread (backend.h); each gets its own stream
 * and cuBLAS handle, so the simulator's workers train side by side on one
 * GPU. All work of a backend goes to its stream in order; the calls that
 * return data to the host (download, loss, sumsq, sum_abs) wait for the
 * stream and so report any error a kernel met on the way. The device is
 * device 0 of those the process sees (choose with CUDA_VISIBLE_DEVICES).
 *
 * Two points where device memory meets host memory:
 *  - row indices (gather_rows, gather) are host arrays: they are copied into
 *    pinned memory and uploaded to a device buffer; when the next call asks
 *    for the same indices (gather after gather_rows of one batch) the
 *    device copy is reused;
 *  - the scores of the loss op are written wherever the pointer points,
 *    host or device (fedc_evaluate hands over the caller's host array), by a
 *    copy that lets unified addressing tell which it is.
 */
#include <string.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "base/alloc.h"
}

/* Device-side results of the reductions, downloaded in one small copy. */
typedef struct results {
  fedc_cuda_loss_sums loss;
  double sum;
} results;

typedef struct cuda_ctx {
  cudaStream_t stream;
  const fedc_cublas_api *cublas;
  cublasHandle_t blas;
  /* row indices: the last upload's pinned host copy and its device twin */
  int64_t *idx_h, *idx_d;
  size_t idx_cap;
  int32_t idx_n;          /* valid entries in idx_h/idx_d; -1 when none */
  cudaEvent_t idx_copied; /* idx_h may be rewritten once this has passed */
  /* loss heads: per-row losses, verdicts and scores */
  double *row_loss;
  int32_t *row_ok;
  float *scores;
  size_t rows_cap;
  /* reductions */
  double *partials; /* FEDC_CUDA_RED_BLOCKS */
  results *res_d;   /* device */
  results *res_h;   /* pinned host */
} cuda_ctx;

static cuda_ctx *ctx_of(fedc_backend *b) {
  return (cuda_ctx *)b->ctx;
}

/* ---- memory ------------------------------------------------------------- */

/* Zeroed device memory, like the CPU backend's; NULL with the CUDA text
 * recorded when the device is out of memory. */
static float *cuda_alloc(fedc_backend *b, size_t n) {
  if (n > SIZE_MAX / sizeof(float)) {
    fedc_error_set(FEDC_ENOMEM, "cuda: %zu floats do not fit in memory", n);
    return NULL;
  }
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, n * sizeof(float));
  if (e != cudaSuccess) {
    fedc__cuda_error(e, "cudaMalloc");
    return NULL;
  }
  e = cudaMemsetAsync(p, 0, n * sizeof(float), ctx_of(b)->stream);
  if (e != cudaSuccess) {
    fedc__cuda_error(e, "cudaMemsetAsync");
    cudaFree(p);
    return NULL;
  }
  return (float *)p;
}

static void cuda_release(fedc_backend *b, float *p) {
  (void)b;
  /* cudaFree waits for the work that may still use p */
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

/*
 * upload and download copy with cudaMemcpyDefault, so either side may be
 * host or device memory, and wait for the stream: the caller may reuse or
 * read its host buffer as soon as they return, pinned or not.
 */
static int cuda_copy(fedc_backend *b, float *dst, const float *src, size_t n, const char *what) {
  if (n == 0 || dst == src) return 0;
  cuda_ctx *x = ctx_of(b);
  cudaError_t e = cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDefault, x->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(x->stream);
  if (e != cudaSuccess) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s of %zu floats", what, n);
    return fedc__cuda_error(e, buf);
  }
  return 0;
}

static int cuda_upload(fedc_backend *b, float *dst, const float *src, size_t n) {
  return cuda_copy(b, dst, src, n, "upload");
}

static int cuda_download(fedc_backend *b, float *dst, const float *src, size_t n) {
  return cuda_copy(b, dst, src, n, "download");
}

static int cuda_zero(fedc_backend *b, float *p, size_t n) {
  if (n == 0) return 0;
  FEDC_CUDA_TRY(cudaMemsetAsync(p, 0, n * sizeof(float), ctx_of(b)->stream), "zero");
  return 0;
}

/* ---- products ------------------------------------------------------------ */

/*
 * Row-major C = alpha op(A) op(B) + beta C on column-major cuBLAS.
 *
 * A row-major matrix with leading dimension ld, read as column-major with
 * the same ld, is its transpose: the bytes of row-major C (m x n) are
 * column-major C^T (n x m). So we ask cuBLAS for
 *     C^T = alpha op(B)^T op(A)^T + beta C^T
 * which is the same equation transposed. cuBLAS sees B's buffer as B^T
 * already, so op(B)^T needs no transpose from it when trans_b = 0 (it is
 * B^T, which is what it holds) and a transpose when trans_b = 1 (it wants
 * B, the transpose of what it holds): the flag passes through unchanged,
 * and the same for A. B goes first, the dimensions swap (n rows, m columns,
 * k inner), and the leading dimensions stay as given.
 */
static int cuda_gemm(fedc_backend *b, int ta, int tb, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *bm, int ldb, float beta, float *c,
                     int ldc) {
  if (m <= 0 || n <= 0) return 0;
  cuda_ctx *x = ctx_of(b);
  cublasStatus_t s =
      x->cublas->sgemm(x->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n,
                       m, k, &alpha, bm, ldb, a, lda, &beta, c, ldc);
  if (s != CUBLAS_STATUS_SUCCESS) {
    char buf[96];
    snprintf(buf, sizeof buf, "sgemm %c%c m=%d n=%d k=%d", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k);
    return fedc__cublas_error(s, buf);
  }
  return 0;
}

/* ---- gathers ------------------------------------------------------------- */

/*
 * Put rows[0..n) on the device and return the device copy. The pinned host
 * copy doubles as the record of what the device holds: the same indices
 * again are not uploaded again. The host copy is rewritten only after the
 * previous upload from it has finished (idx_copied).
 */
static int rows_to_device(fedc_backend *b, const int64_t *rows, int32_t n, const int64_t **out) {
  cuda_ctx *x = ctx_of(b);
  size_t bytes = (size_t)n * sizeof *rows;
  *out = x->idx_d;
  if (x->idx_n == n && memcmp(x->idx_h, rows, bytes) == 0) return 0;
  x->idx_n = -1;
  FEDC_CUDA_TRY(cudaEventSynchronize(x->idx_copied), "index upload");
  if ((size_t)n > x->idx_cap) {
    size_t cap = x->idx_cap * 2 > (size_t)n ? x->idx_cap * 2 : (size_t)n;
    int64_t *h = NULL, *d = NULL;
    /* the device copy may still be read by queued kernels */
    FEDC_CUDA_TRY(cudaStreamSynchronize(x->stream), "index buffer");
    cudaError_t e = cudaMallocHost((void **)&h, cap * sizeof *h);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d, cap * sizeof *d);
    if (e != cudaSuccess) {
      cudaFreeHost(h);
      return fedc__cuda_error(e, "index buffer");
    }
    cudaFreeHost(x->idx_h);
    cudaFree(x->idx_d);
    x->idx_h = h;
    x->idx_d = d;
    x->idx_cap = cap;
    *out = d;
  }
  memcpy(x->idx_h, rows, bytes);
  FEDC_CUDA_TRY(cudaMemcpyAsync(x->idx_d, x->idx_h, bytes, cudaMemcpyHostToDevice, x->stream),
                "index upload");
  FEDC_CUDA_TRY(cudaEventRecord(x->idx_copied, x->stream), "index upload");
  x->idx_n = n;
  return 0;
}

static int cuda_gather_rows(fedc_backend *b, float *dst, const float *src, int64_t d,
                            const int64_t *rows, int32_t n) {
  if (n <= 0) return 0;
  const int64_t *rd;
  int rc = rows_to_device(b, rows, n, &rd);
  if (rc != 0) return rc;
  FEDC_CUDA_TRY(fedc__k_gather_rows(ctx_of(b)->stream, dst, src, d, rd, n), "gather_rows");
  return 0;
}

static int cuda_gather(fedc_backend *b, float *dst, const float *src, const int64_t *rows,
                       int32_t n) {
  if (n <= 0) return 0;
  const int64_t *rd;
  int rc = rows_to_device(b, rows, n, &rd);
  if (rc != 0) return rc;
  FEDC_CUDA_TRY(fedc__k_gather(ctx_of(b)->stream, dst, src, rd, n), "gather");
  return 0;
}

/* ---- elementwise ---------------------------------------------------------- */

static int cuda_add_bias(fedc_backend *b, float *z, const float *bias, int32_t rows, int32_t cols) {
  FEDC_CUDA_TRY(fedc__k_add_bias(ctx_of(b)->stream, z, bias, rows, cols), "add_bias");
  return 0;
}

static int cuda_relu(fedc_backend *b, float *a, const float *z, size_t n) {
  FEDC_CUDA_TRY(fedc__k_relu(ctx_of(b)->stream, a, z, n), "relu");
  return 0;
}

static int cuda_relu_backward(fedc_backend *b, float *dz, const float *da, const float *a,
                              size_t n) {
  FEDC_CUDA_TRY(fedc__k_relu_backward(ctx_of(b)->stream, dz, da, a, n), "relu_backward");
  return 0;
}

static int cuda_col_sum(fedc_backend *b, float *out, const float *m, int32_t rows, int32_t cols) {
  FEDC_CUDA_TRY(fedc__k_col_sum(ctx_of(b)->stream, out, m, rows, cols), "col_sum");
  return 0;
}

/* ---- loss heads ------------------------------------------------------------ */

static int grow_rows(cuda_ctx *x, size_t rows) {
  if (rows <= x->rows_cap) return 0;
  size_t cap = x->rows_cap * 2 > rows ? x->rows_cap * 2 : rows;
  double *l = NULL;
  int32_t *ok = NULL;
  float *sc = NULL;
  FEDC_CUDA_TRY(cudaStreamSynchronize(x->stream), "loss scratch");
  cudaError_t e = cudaMalloc((void **)&l, cap * sizeof *l);
  if (e == cudaSuccess) e = cudaMalloc((void **)&ok, cap * sizeof *ok);
  if (e == cudaSuccess) e = cudaMalloc((void **)&sc, cap * sizeof *sc);
  if (e != cudaSuccess) {
    cudaFree(l);
    cudaFree(ok);
    return fedc__cuda_error(e, "loss scratch");
  }
  cudaFree(x->row_loss);
  cudaFree(x->row_ok);
  cudaFree(x->scores);
  x->row_loss = l;
  x->row_ok = ok;
  x->scores = sc;
  x->rows_cap = cap;
  return 0;
}

/*
 * The fused loss heads: per-row losses, verdicts, the gradient and scores
 * in one kernel, their sums in a second, then one download of 16 bytes (and
 * of the scores when asked for). Waiting here is also what lets training
 * check every step's loss for a divergence, as it does on the CPU.
 */
static int cuda_loss(fedc_backend *b, fedc_loss_kind kind, float *dz, const float *z,
                     const float *y, int32_t rows, int32_t cols, float grad_scale, double *loss_sum,
                     int64_t *correct, float *scores) {
  if (rows <= 0) return 0;
  cuda_ctx *x = ctx_of(b);
  int rc = grow_rows(x, (size_t)rows);
  if (rc != 0) return rc;
  const int want_scores = scores != NULL && kind != FEDC_LOSS_SOFTMAX_XENT;
  FEDC_CUDA_TRY(fedc__k_loss(x->stream, kind, dz, z, y, rows, cols, grad_scale, x->row_loss,
                             x->row_ok, want_scores ? x->scores : NULL),
                "loss");
  FEDC_CUDA_TRY(fedc__k_loss_reduce(x->stream, x->row_loss, x->row_ok, rows, &x->res_d->loss),
                "loss sum");
  FEDC_CUDA_TRY(cudaMemcpyAsync(&x->res_h->loss, &x->res_d->loss, sizeof x->res_h->loss,
                                cudaMemcpyDeviceToHost, x->stream),
                "loss download");
  if (want_scores)
    FEDC_CUDA_TRY(cudaMemcpyAsync(scores, x->scores, (size_t)rows * sizeof *scores,
                                  cudaMemcpyDefault, x->stream),
                  "scores download");
  FEDC_CUDA_TRY(cudaStreamSynchronize(x->stream), "loss");
  if (loss_sum) *loss_sum += x->res_h->loss.loss;
  if (correct) *correct += x->res_h->loss.correct;
  return 0;
}

/* ---- regularization, the SGD step, reductions ------------------------------ */

static int cuda_reg_grad(fedc_backend *b, float *g, const float *w, const float *w0, size_t n,
                         float l1, float l2, float mu) {
  if (l1 == 0.0f && l2 == 0.0f && mu == 0.0f) return 0;
  if (mu != 0.0f && w0 == NULL)
    return fedc_error_set(FEDC_EINVAL, "cuda reg_grad: mu = %g needs w0", (double)mu);
  FEDC_CUDA_TRY(fedc__k_reg_grad(ctx_of(b)->stream, g, w, w0, n, l1, l2, mu), "reg_grad");
  return 0;
}

static int cuda_sgd_step(fedc_backend *b, float *w, const float *g, float *v, const float *w0,
                         size_t n, const fedc_sgd_params *p) {
  if (p->momentum != 0.0f && v == NULL)
    return fedc_error_set(FEDC_EINVAL, "cuda sgd_step: momentum %g needs v", (double)p->momentum);
  if (p->prox_mu != 0.0f && w0 == NULL)
    return fedc_error_set(FEDC_EINVAL, "cuda sgd_step: prox_mu %g needs w0", (double)p->prox_mu);
  FEDC_CUDA_TRY(fedc__k_sgd_step(ctx_of(b)->stream, w, g, v, w0, n, p), "sgd_step");
  return 0;
}

static int cuda_sum(fedc_backend *b, const float *xs, size_t n, int square, double *out,
                    const char *what) {
  cuda_ctx *x = ctx_of(b);
  FEDC_CUDA_TRY(fedc__k_sum(x->stream, xs, n, square, x->partials, &x->res_d->sum), what);
  FEDC_CUDA_TRY(cudaMemcpyAsync(&x->res_h->sum, &x->res_d->sum, sizeof x->res_h->sum,
                                cudaMemcpyDeviceToHost, x->stream),
                what);
  FEDC_CUDA_TRY(cudaStreamSynchronize(x->stream), what);
  *out = x->res_h->sum;
  return 0;
}

static int cuda_sumsq(fedc_backend *b, const float *xs, size_t n, double *out) {
  return cuda_sum(b, xs, n, 1, out, "sumsq");
}

static int cuda_sum_abs(fedc_backend *b, const float *xs, size_t n, double *out) {
  return cuda_sum(b, xs, n, 0, out, "sum_abs");
}

/* ---- open and close --------------------------------------------------------- */

/* Frees whatever open managed to create; safe on a half-built backend. */
static void cuda_close(fedc_backend *b) {
  cuda_ctx *x = ctx_of(b);
  if (x->stream) cudaStreamSynchronize(x->stream);
  if (x->blas) x->cublas->destroy(x->blas);
  cudaFree(x->idx_d);
  cudaFreeHost(x->idx_h);
  if (x->idx_copied) cudaEventDestroy(x->idx_copied);
  cudaFree(x->row_loss);
  cudaFree(x->row_ok);
  cudaFree(x->scores);
  cudaFree(x->partials);
  cudaFree(x->res_d);
  cudaFreeHost(x->res_h);
  if (x->stream) cudaStreamDestroy(x->stream);
  (void)cudaGetLastError();
  fedc_free(b);
}

static int ctx_init(cuda_ctx *x) {
  /* cudaSetDevice creates the context: a broken driver fails here, at open */
  FEDC_CUDA_TRY(cudaSetDevice(0), "cudaSetDevice(0)");
  /* a blocking stream: ordered with work on the legacy default stream,
   * which is what code outside fedc (benchmarks, tests) uses */
  FEDC_CUDA_TRY(cudaStreamCreate(&x->stream), "cudaStreamCreate");
  int rc = fedc__cublas_load(&x->cublas);
  if (rc != 0) return rc;
  cublasStatus_t s = x->cublas->create(&x->blas);
  if (s != CUBLAS_STATUS_SUCCESS) {
    x->blas = NULL;
    return fedc__cublas_error(s, "cublasCreate");
  }
  s = x->cublas->set_stream(x->blas, x->stream);
  if (s != CUBLAS_STATUS_SUCCESS) return fedc__cublas_error(s, "cublasSetStream");
  /* full FP32 products: no TF32 unless cuBLAS's own environment asks */
  s = x->cublas->set_math_mode(x->blas, CUBLAS_DEFAULT_MATH);
  if (s != CUBLAS_STATUS_SUCCESS) return fedc__cublas_error(s, "cublasSetMathMode");
  FEDC_CUDA_TRY(cudaEventCreateWithFlags(&x->idx_copied, cudaEventDisableTiming),
                "cudaEventCreate");
  FEDC_CUDA_TRY(cudaMalloc((void **)&x->partials, FEDC_CUDA_RED_BLOCKS * sizeof(double)),
                "reduction scratch");
  FEDC_CUDA_TRY(cudaMalloc((void **)&x->res_d, sizeof(results)), "reduction scratch");
  FEDC_CUDA_TRY(cudaMallocHost((void **)&x->res_h, sizeof(results)), "reduction scratch");
  return 0;
}

extern "C" int fedc__backend_cuda_open(fedc_backend **out) {
  *out = NULL;
  int rc = fedc__cuda_device_present("device = cuda");
  if (rc != 0) return rc;
  /* the backend and its context in one block, as the CPU's */
  fedc_backend *b = (fedc_backend *)fedc_calloc(1, sizeof *b + sizeof(cuda_ctx));
  if (b == NULL) return fedc_error_set(FEDC_ENOMEM, "cuda backend: out of memory");
  b->ctx = (char *)b + sizeof *b;
  cuda_ctx *x = ctx_of(b);
  x->idx_n = -1;
  b->name = "cuda";
  b->device = FEDC_DEVICE_CUDA;
  b->alloc = cuda_alloc;
  b->release = cuda_release;
  b->upload = cuda_upload;
  b->download = cuda_download;
  b->zero = cuda_zero;
  b->gemm = cuda_gemm;
  b->gather_rows = cuda_gather_rows;
  b->gather = cuda_gather;
  b->add_bias = cuda_add_bias;
  b->relu = cuda_relu;
  b->relu_backward = cuda_relu_backward;
  b->col_sum = cuda_col_sum;
  b->loss = cuda_loss;
  b->reg_grad = cuda_reg_grad;
  b->sgd_step = cuda_sgd_step;
  b->sumsq = cuda_sumsq;
  b->sum_abs = cuda_sum_abs;
  b->close = cuda_close;
  rc = ctx_init(x);
  if (rc != 0) {
    cuda_close(b);
    return rc;
  }
  *out = b;
  return 0;
}
