/*
 * cuda_internal.h - what the CUDA files of libfedc share (backend_cuda.cu,
 * cuda_kernels.cu, agg_cuda.cu): the translation of CUDA and cuBLAS errors
 * into FEDC_EBACKEND at the edge, the "is there a device" check, launch
 * geometry, and the host-side launchers of the training kernels.
 *
 * Only .cu files include it (it needs nvcc's C++ and the CUDA headers);
 * nothing outside the .cu files sees a CUDA type. The launchers enqueue on the
 * stream they are given and return cudaGetLastError() of the launch: errors
 * of the kernel's execution surface at the next synchronizing call, where
 * the backend translates them.
 */
#ifndef FEDC_CUDA_INTERNAL_H
#define FEDC_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* fedc's headers are C: the system headers they include come first, above,
 * so that only fedc's own declarations get C linkage here */
extern "C" {
#include "ml/backend.h"
#include "base/error.h"
#include "cuda/agg_cuda.h"
}

/* The module's entry points (module_entry.cu puts them in its table):
 * agg_cuda.h's functions and test hooks, as agg_cuda.cu defines them, and
 * the backend's open (backend_cuda.cu). */
extern "C" {
int fedc__backend_cuda_open(fedc_backend **out);
int fedc__cuda_agg_new(const fedc_agg_cuda_params *p, size_t n, fedc_agg_cuda **out);
int fedc__cuda_agg_begin(fedc_agg_cuda *a, const float *global, size_t n);
int fedc__cuda_agg_add(fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples,
                       double *norm);
int fedc__cuda_agg_finish(fedc_agg_cuda *a, float *out, size_t n);
void fedc__cuda_agg_stats_get(const fedc_agg_cuda *a, fedc_agg_cuda_stats *out);
void fedc__cuda_agg_free(fedc_agg_cuda *a);
int fedc__cuda_agg_sums_get(fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n);
int fedc__cuda_agg_sums_put(fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n);
void fedc__cuda_agg_robust_host(int trimmed, size_t t, const float *const *upd, size_t k,
                                size_t n, float *out);
void fedc__cuda_agg_fedavg_host(const float *const *w, const uint64_t *samples, size_t k,
                                size_t n, float *out);
double fedc__cuda_agg_i128_to_double_host(__int128 v);
}

/* Threads per block of the elementwise and reduction kernels, and the most
 * blocks a grid-stride kernel is given (enough to fill any current GPU). */
#define FEDC_CUDA_THREADS 256
#define FEDC_CUDA_MAX_BLOCKS 8192
/* Blocks of the first pass of a two-pass reduction: its partial sums fit in
 * one block of the second pass. */
#define FEDC_CUDA_RED_BLOCKS 1024

/* Blocks for n elements at FEDC_CUDA_THREADS each, at least 1, at most
 * FEDC_CUDA_MAX_BLOCKS (the kernels stride over the rest). */
static inline unsigned fedc__cuda_blocks(size_t n) {
  size_t b = (n + FEDC_CUDA_THREADS - 1) / FEDC_CUDA_THREADS;
  if (b < 1) b = 1;
  if (b > FEDC_CUDA_MAX_BLOCKS) b = FEDC_CUDA_MAX_BLOCKS;
  return (unsigned)b;
}

/*
 * Record "cuda: <what>: <cudaGetErrorName>: <cudaGetErrorString>" and return
 * FEDC_EBACKEND. It also clears the runtime's last-error slot, so that a
 * failed call (an out-of-memory cudaMalloc) is not reported again by the
 * cudaGetLastError() that follows the next kernel launch.
 */
int fedc__cuda_error(cudaError_t e, const char *what);
/* The same for cuBLAS: "cublas: <what>: <name>: <string>" (cuda_blas.cu). */
int fedc__cublas_error(cublasStatus_t s, const char *what);

/*
 * The cuBLAS calls fedc makes, from the library loaded at run time
 * (cuda_blas.cu says why); the types are the header's own.
 */
typedef struct fedc_cublas_api {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasDestroy_v2) destroy;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetMathMode) set_math_mode;
  decltype(&cublasSgemm_v2) sgemm;
  decltype(&cublasGetStatusName) status_name;
  decltype(&cublasGetStatusString) status_string;
} fedc_cublas_api;

/* Load cuBLAS once per process; FEDC_EBACKEND with dlopen's words when it
 * cannot be loaded. Thread-safe. */
int fedc__cublas_load(const fedc_cublas_api **out);
/*
 * 0 when at least one CUDA device is usable; otherwise FEDC_EUNSUPPORTED
 * with "<who>: no CUDA device is present (cudaGetDeviceCount: <why>)".
 */
int fedc__cuda_device_present(const char *who);

#define FEDC_CUDA_TRY(call, what)                                                                  \
  do {                                                                                             \
    cudaError_t fedc_e_ = (call);                                                                  \
    if (fedc_e_ != cudaSuccess) return fedc__cuda_error(fedc_e_, (what));                          \
  } while (0)

/* ---- launchers of the training kernels (cuda_kernels.cu) ---------------- */

/* dst[i, :] = src[rows[i], :], rows in device memory */
cudaError_t fedc__k_gather_rows(cudaStream_t s, float *dst, const float *src, int64_t d,
                                const int64_t *rows, int32_t n);
/* dst[i] = src[rows[i]] */
cudaError_t fedc__k_gather(cudaStream_t s, float *dst, const float *src, const int64_t *rows,
                           int32_t n);
cudaError_t fedc__k_add_bias(cudaStream_t s, float *z, const float *bias, int32_t rows,
                             int32_t cols);
cudaError_t fedc__k_relu(cudaStream_t s, float *a, const float *z, size_t n);
cudaError_t fedc__k_relu_backward(cudaStream_t s, float *dz, const float *da, const float *a,
                                  size_t n);
cudaError_t fedc__k_col_sum(cudaStream_t s, float *out, const float *m, int32_t rows, int32_t cols);

/*
 * The loss heads. The first pass writes each row's loss (row_loss, double)
 * and whether it was predicted right (row_ok), the gradient into dz when dz
 * is not NULL, and scores when not NULL (device memory); the second pass
 * (fedc__k_loss_reduce) sums both over the rows in a fixed order into
 * out->loss and out->correct, so the host downloads one small struct.
 */
typedef struct fedc_cuda_loss_sums {
  double loss;
  long long correct;
} fedc_cuda_loss_sums;

cudaError_t fedc__k_loss(cudaStream_t s, fedc_loss_kind kind, float *dz, const float *z,
                         const float *y, int32_t rows, int32_t cols, float grad_scale,
                         double *row_loss, int32_t *row_ok, float *scores);
cudaError_t fedc__k_loss_reduce(cudaStream_t s, const double *row_loss, const int32_t *row_ok,
                                int32_t rows, fedc_cuda_loss_sums *out);

cudaError_t fedc__k_reg_grad(cudaStream_t s, float *g, const float *w, const float *w0, size_t n,
                             float l1, float l2, float mu);
cudaError_t fedc__k_sgd_step(cudaStream_t s, float *w, const float *g, float *v, const float *w0,
                             size_t n, const fedc_sgd_params *p);

/* *out = sum of x^2 (square = 1) or of |x| (square = 0), in double, summed
 * in an order fixed by n alone; partials holds FEDC_CUDA_RED_BLOCKS doubles. */
cudaError_t fedc__k_sum(cudaStream_t s, const float *x, size_t n, int square, double *partials,
                        double *out);

#endif
