/*
 * backend.h - the compute backend interface.
 *
 * Models and training never call BLAS or CUDA directly: they call the ops of
 * a backend through the fedc_op_* wrappers below. The CPU backend (OpenBLAS)
 * is always built and is the reference; a CUDA backend joins it when nvcc is
 * found at build time. Buffers handed to ops are backend memory (host memory
 * for the CPU backend, device memory for CUDA), allocated with fedc_buf_alloc
 * and moved with fedc_buf_upload / fedc_buf_download. Matrices are row-major.
 *
 * Every backend fills every op; an op a device cannot do well is done by
 * that backend on a host copy with the CPU code (ggml-backend's fallback).
 *
 * A backend object is used by one thread at a time; each simulator worker
 * thread owns its own (fedc_backend_open is cheap for the CPU).
 */
#ifndef FEDC_BACKEND_H
#define FEDC_BACKEND_H

#include <stddef.h>
#include <stdint.h>


typedef struct fedc_backend fedc_backend;

/* Per-step optimizer parameters for fedc_op_sgd_step. */
typedef struct fedc_sgd_params {
  float lr;       /* step size */
  float momentum; /* 0 = plain SGD; PyTorch's convention: v = m v + g */
  float l1, l2;   /* regularization added to the gradient: l2 w + l1 sign(w) */
  float prox_mu;  /* FedProx: mu (w - w_global); 0 = off */
} fedc_sgd_params;

/* Loss heads: what the last layer's output means. */
typedef enum { FEDC_DEVICE_CPU = 0, FEDC_DEVICE_CUDA = 1 } fedc_device;

typedef enum {
  FEDC_LOSS_SOFTMAX_XENT = 0, /* K logits, integer class labels */
  FEDC_LOSS_SIGMOID_BCE = 1,  /* 1 logit, labels 0/1 */
  FEDC_LOSS_MSE = 2           /* 1 output, real labels */
} fedc_loss_kind;

struct fedc_backend {
  const char *name;
  fedc_device device;
  void *ctx;
  /* memory */
  float *(*alloc)(fedc_backend *b, size_t n);
  void (*release)(fedc_backend *b, float *p);
  int (*upload)(fedc_backend *b, float *dst, const float *src, size_t n);
  int (*download)(fedc_backend *b, float *dst, const float *src, size_t n);
  int (*zero)(fedc_backend *b, float *p, size_t n);
  /* C = alpha op(A) op(B) + beta C; op(X) = X or X^T; m x n result, k inner */
  int (*gemm)(fedc_backend *b, int trans_a, int trans_b, int m, int n, int k,
              float alpha, const float *a, int lda, const float *bm, int ldb,
              float beta, float *c, int ldc);
  /* optional (NULL: the caller gathers the rows first): gemm with the rows
   * of the data operand read where they lie, through rows (host indices):
   * with (trans_a, trans_b) = (0, 1), row i of A is a + rows[i] lda (a
   * layer's forward pass); with (1, 0), row p of B is bm + rows[p] ldb (its
   * weight gradient). Only for products whose small side (n, or m) is at
   * most gemm_rows_max; the same bits as gemm on the gathered rows. */
  int (*gemm_rows)(fedc_backend *b, int trans_a, int trans_b, int m, int n, int k,
                   float alpha, const float *a, int lda, const float *bm, int ldb,
                   const int64_t *rows, float beta, float *c, int ldc);
  int32_t gemm_rows_max;
  /* optional (NULL: the caller uses the data set's floats): a data set kept
   * as bytes, each b standing for b / 255.0f (data.h's x_u8), in host
   * memory. unpack_u8 writes rows x d floats, dst[i, :] = src[i, :] / 255
   * exactly; gemm_u8 is gemm (0, 1) with A as such rows (lda bytes apart)
   * for k at most gemm_u8_max_k: the same bits as gemm on the unpacked
   * rows. */
  int (*unpack_u8)(fedc_backend *b, float *dst, const uint8_t *src, int64_t d, int32_t rows);
  int (*gemm_u8)(fedc_backend *b, int m, int n, int k, float alpha, const uint8_t *a,
                 int lda, const float *bm, int ldb, float beta, float *c, int ldc);
  int32_t gemm_u8_max_k;
  /* dst[i, :] = src[rows[i], :] for i < n; rows are host indices */
  int (*gather_rows)(fedc_backend *b, float *dst, const float *src, int64_t d,
                     const int64_t *rows, int32_t n);
  /* also gathers labels: dst[i] = src[rows[i]] */
  int (*gather)(fedc_backend *b, float *dst, const float *src,
                const int64_t *rows, int32_t n);
  /* z[i, :] += bias for each of rows rows */
  int (*add_bias)(fedc_backend *b, float *z, const float *bias, int32_t rows,
                  int32_t cols);
  /* a = max(z, 0) elementwise (in place allowed) */
  int (*relu)(fedc_backend *b, float *a, const float *z, size_t n);
  /* dz = da * (a > 0) */
  int (*relu_backward)(fedc_backend *b, float *dz, const float *da,
                       const float *a, size_t n);
  /* out[j] = sum_i m[i, j] */
  int (*col_sum)(fedc_backend *b, float *out, const float *m, int32_t rows,
                 int32_t cols);
  /*
   * Loss head over rows x cols outputs z and labels y: writes the gradient
   * of (sum of per-row losses) * grad_scale into dz (dz may be NULL for
   * evaluation only), adds the summed loss to *loss_sum and the count of
   * correct predictions to *correct (classification heads), and, when
   * scores is not NULL, writes each row's score (P(class 1) for BCE, the
   * output for MSE, unused for softmax).
   */
  int (*loss)(fedc_backend *b, fedc_loss_kind kind, float *dz, const float *z,
              const float *y, int32_t rows, int32_t cols, float grad_scale,
              double *loss_sum, int64_t *correct, float *scores);
  /*
   * g += l2 w + l1 sign(w) + mu (w - w0)     (w0 may be NULL when mu = 0)
   * Used by the full-gradient path; sgd_step fuses it with the update.
   */
  int (*reg_grad)(fedc_backend *b, float *g, const float *w, const float *w0,
                  size_t n, float l1, float l2, float mu);
  /*
   * One SGD step on n parameters: g' = g + reg (as reg_grad);
   * v = momentum v + g' (v may be NULL when momentum = 0); w -= lr v.
   */
  int (*sgd_step)(fedc_backend *b, float *w, const float *g, float *v,
                  const float *w0, size_t n, const fedc_sgd_params *p);
  /* returns sum of squares of x, in double */
  int (*sumsq)(fedc_backend *b, const float *x, size_t n, double *out);
  int (*sum_abs)(fedc_backend *b, const float *x, size_t n, double *out);
  void (*close)(fedc_backend *b);
};

/* Open a backend for this thread. FEDC_EUNSUPPORTED when the device is not
 * built in or not present (the message says which). */
int fedc_backend_open(fedc_device device, fedc_backend **out);
void fedc_backend_close(fedc_backend *b);
/* 1 when the device's backend can be opened here: the CPU always, CUDA when
 * its module (libfedc-cuda.so) loads; fedc_error_msg() says why not. */
int fedc_backend_available(fedc_device device);

/* The CPU backend; always there. */
int fedc__backend_cpu_open(fedc_backend **out);
/* Tell the CPU's BLAS how many threads one call may use (the simulator
 * trains clients in parallel and sets 1). */
void fedc_backend_cpu_set_blas_threads(int n);

/* Buffer helpers that check allocation. */
float *fedc_buf_alloc(fedc_backend *b, size_t n);
void fedc_buf_free(fedc_backend *b, float *p);
int fedc_buf_upload(fedc_backend *b, float *dst, const float *src, size_t n);
int fedc_buf_download(fedc_backend *b, float *dst, const float *src, size_t n);

#endif
