/*
 * cuda_kernels.cu - the CUDA backend's own kernels: row gathers, bias, ReLU
 * and its gradient, column sums, the fused loss heads, the regularization
 * gradient, the fused SGD step and the double-precision reductions. Each has
 * a launcher (declared in cuda_internal.h) that picks the geometry and
 * enqueues it on the caller's stream; backend_cuda.cu owns the streams,
 * memory and errors.
 *
 * The formulas are the CPU reference's (backend_cpu.c), element for element.
 * Reductions run in a fixed tree whose shape depends only on the sizes, so
 * the same inputs give the same bits run after run (no atomics on floats).
 * Elementwise kernels stride over the grid, so any n fits any grid.
 */
#include <limits.h>
#include <math.h>

#include "cuda/cuda_internal.h"

#define FULL_MASK 0xffffffffu

/* ---- reductions -------------------------------------------------------- */

template <typename T> static __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync(FULL_MASK, v, o);
  return v;
}

/*
 * The sum of v over the block (blockDim.x a multiple of 32, at most 1024),
 * valid in thread 0. Uses a shared array per type T; a kernel that sums two
 * values of the same type must __syncthreads() between the calls.
 */
template <typename T> static __device__ T block_sum(T v) {
  __shared__ T part[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) part[wid] = v;
  __syncthreads();
  const int nw = (int)(blockDim.x + 31) >> 5;
  v = (int)threadIdx.x < nw ? part[threadIdx.x] : T(0);
  if (wid == 0) v = warp_sum(v);
  return v;
}

static __device__ __forceinline__ size_t gtid() {
  return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}

static __device__ __forceinline__ size_t gstride() {
  return (size_t)gridDim.x * blockDim.x;
}

/* ---- gathers ------------------------------------------------------------ */

/* Rows over blockIdx.y, columns over x; the float4 version when every row
 * starts 16-byte aligned (d a multiple of 4 and aligned bases). */
static __global__ void gather_rows_k(float *dst, const float *src, int64_t d, const int64_t *rows,
                                     int32_t n) {
  for (int32_t i = blockIdx.y; i < n; i += gridDim.y) {
    const float *s = src + rows[i] * d;
    float *o = dst + (int64_t)i * d;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < d;
         j += (int64_t)gridDim.x * blockDim.x)
      o[j] = s[j];
  }
}

static __global__ void gather_rows4_k(float4 *dst, const float4 *src, int64_t d4,
                                      const int64_t *rows, int32_t n) {
  for (int32_t i = blockIdx.y; i < n; i += gridDim.y) {
    const float4 *s = src + rows[i] * d4;
    float4 *o = dst + (int64_t)i * d4;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < d4;
         j += (int64_t)gridDim.x * blockDim.x)
      o[j] = s[j];
  }
}

cudaError_t fedc__k_gather_rows(cudaStream_t s, float *dst, const float *src, int64_t d,
                                const int64_t *rows, int32_t n) {
  if (n <= 0 || d <= 0) return cudaSuccess;
  const int vec = d % 4 == 0 && ((uintptr_t)dst % 16) == 0 && ((uintptr_t)src % 16) == 0;
  const int64_t cols = vec ? d / 4 : d;
  int64_t bx = (cols + FEDC_CUDA_THREADS - 1) / FEDC_CUDA_THREADS;
  if (bx > 1024) bx = 1024;
  dim3 grid((unsigned)bx, (unsigned)(n < 65535 ? n : 65535));
  if (vec)
    gather_rows4_k<<<grid, FEDC_CUDA_THREADS, 0, s>>>((float4 *)dst, (const float4 *)src, cols,
                                                      rows, n);
  else
    gather_rows_k<<<grid, FEDC_CUDA_THREADS, 0, s>>>(dst, src, d, rows, n);
  return cudaGetLastError();
}

static __global__ void gather_k(float *dst, const float *src, const int64_t *rows, int32_t n) {
  for (size_t i = gtid(); i < (size_t)n; i += gstride())
    dst[i] = src[rows[i]];
}

cudaError_t fedc__k_gather(cudaStream_t s, float *dst, const float *src, const int64_t *rows,
                           int32_t n) {
  if (n <= 0) return cudaSuccess;
  gather_k<<<fedc__cuda_blocks((size_t)n), FEDC_CUDA_THREADS, 0, s>>>(dst, src, rows, n);
  return cudaGetLastError();
}

/* ---- bias, ReLU, column sums --------------------------------------------- */

static __global__ void add_bias_k(float *z, const float *bias, size_t total, int32_t cols) {
  for (size_t i = gtid(); i < total; i += gstride())
    z[i] += bias[i % (size_t)cols];
}

cudaError_t fedc__k_add_bias(cudaStream_t s, float *z, const float *bias, int32_t rows,
                             int32_t cols) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  size_t total = (size_t)rows * (size_t)cols;
  add_bias_k<<<fedc__cuda_blocks(total), FEDC_CUDA_THREADS, 0, s>>>(z, bias, total, cols);
  return cudaGetLastError();
}

static __global__ void relu_k(float *a, const float *z, size_t n) {
  for (size_t i = gtid(); i < n; i += gstride()) {
    float v = z[i];
    a[i] = v > 0.0f ? v : 0.0f;
  }
}

cudaError_t fedc__k_relu(cudaStream_t s, float *a, const float *z, size_t n) {
  if (n == 0) return cudaSuccess;
  relu_k<<<fedc__cuda_blocks(n), FEDC_CUDA_THREADS, 0, s>>>(a, z, n);
  return cudaGetLastError();
}

static __global__ void relu_backward_k(float *dz, const float *da, const float *a, size_t n) {
  for (size_t i = gtid(); i < n; i += gstride())
    dz[i] = a[i] > 0.0f ? da[i] : 0.0f;
}

cudaError_t fedc__k_relu_backward(cudaStream_t s, float *dz, const float *da, const float *a,
                                  size_t n) {
  if (n == 0) return cudaSuccess;
  relu_backward_k<<<fedc__cuda_blocks(n), FEDC_CUDA_THREADS, 0, s>>>(dz, da, a, n);
  return cudaGetLastError();
}

/*
 * out[j] = sum_i m[i, j]. A block of 32 x 8 threads owns 32 columns: each
 * of the 8 rows of threads sums every 8th row (reads of a row are coalesced
 * across the 32 columns), then thread row 0 adds the 8 partials in order.
 */
#define CS_X 32
#define CS_Y 8

static __global__ void col_sum_k(float *out, const float *m, int32_t rows, int32_t cols) {
  __shared__ float part[CS_Y][CS_X + 1];
  const int32_t j = blockIdx.x * CS_X + threadIdx.x;
  float acc = 0.0f;
  if (j < cols)
    for (int32_t i = threadIdx.y; i < rows; i += CS_Y)
      acc += m[(size_t)i * (size_t)cols + (size_t)j];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float t = 0.0f;
    for (int q = 0; q < CS_Y; q++)
      t += part[q][threadIdx.x];
    out[j] = t;
  }
}

cudaError_t fedc__k_col_sum(cudaStream_t s, float *out, const float *m, int32_t rows,
                            int32_t cols) {
  if (cols <= 0) return cudaSuccess;
  dim3 block(CS_X, CS_Y);
  unsigned bx = (unsigned)((cols + CS_X - 1) / CS_X);
  col_sum_k<<<bx, block, 0, s>>>(out, m, rows < 0 ? 0 : rows, cols);
  return cudaGetLastError();
}

/* ---- loss heads ---------------------------------------------------------- */

/* log(1 + exp(x)) without overflow (as backend_cpu.c). */
static __device__ __forceinline__ double softplus(double x) {
  return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/*
 * Softmax cross-entropy, one warp per row. Stable: the row max m is
 * subtracted before exponentiating, loss = log(sum_j e^(z_j - m)) + m - z_y,
 * dz_j = e^(z_j - m) / sum * grad_scale, minus grad_scale at the label. The
 * predicted class is the first index of the max, as on the CPU. A label
 * outside 0..cols-1 makes the row's loss NaN, which training reports as a
 * non-finite loss (the CPU would read out of bounds).
 */
static __global__ void softmax_xent_k(float *dz, const float *z, const float *y, int32_t rows,
                                      int32_t cols, float grad_scale, double *row_loss,
                                      int32_t *row_ok) {
  const int lane = threadIdx.x & 31;
  const size_t warp = gtid() >> 5, n_warps = gstride() >> 5;
  for (size_t i = warp; i < (size_t)rows; i += n_warps) {
    const float *zi = z + i * (size_t)cols;
    float *dzi = dz ? dz + i * (size_t)cols : NULL;
    /* max and first argmax: each lane over its columns, then the warp */
    float m = -INFINITY;
    int arg = INT_MAX;
    if (lane < cols) m = zi[lane], arg = lane;
    for (int32_t j = lane + 32; j < cols; j += 32)
      if (zi[j] > m) m = zi[j], arg = j;
    for (int o = 16; o > 0; o >>= 1) {
      float m2 = __shfl_down_sync(FULL_MASK, m, o);
      int a2 = __shfl_down_sync(FULL_MASK, arg, o);
      if (m2 > m || (m2 == m && a2 < arg)) m = m2, arg = a2;
    }
    m = __shfl_sync(FULL_MASK, m, 0);
    arg = __shfl_sync(FULL_MASK, arg, 0);
    float sum = 0.0f;
    for (int32_t j = lane; j < cols; j += 32) {
      float e = expf(zi[j] - m);
      if (dzi) dzi[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    sum = __shfl_sync(FULL_MASK, sum, 0);
    const float yl = y[i];
    const int ok_label = yl >= 0.0f && yl < (float)cols;
    const int32_t label = ok_label ? (int32_t)yl : 0;
    if (dzi) {
      const float inv = grad_scale / sum;
      for (int32_t j = lane; j < cols; j += 32) {
        float g = dzi[j] * inv;
        if (ok_label && j == label) g -= grad_scale;
        dzi[j] = g;
      }
    }
    if (lane == 0) {
      row_loss[i] = ok_label ? (double)logf(sum) + (double)(m - zi[label]) : (double)NAN;
      row_ok[i] = ok_label && arg == label;
    }
  }
}

/* Sigmoid BCE and MSE: one thread per row, in double like the CPU. */
static __global__ void sigmoid_bce_k(float *dz, const float *z, const float *y, int32_t rows,
                                     int32_t cols, float grad_scale, double *row_loss,
                                     int32_t *row_ok, float *scores) {
  for (size_t i = gtid(); i < (size_t)rows; i += gstride()) {
    const double zz = z[i * (size_t)cols], yy = y[i];
    const double p = 1.0 / (1.0 + exp(-zz));
    row_loss[i] = softplus(zz) - yy * zz;
    if (dz) dz[i * (size_t)cols] = (float)(p - yy) * grad_scale;
    row_ok[i] = (p >= 0.5) == (y[i] >= 0.5f);
    if (scores) scores[i] = (float)p;
  }
}

static __global__ void mse_k(float *dz, const float *z, const float *y, int32_t rows, int32_t cols,
                             float grad_scale, double *row_loss, int32_t *row_ok, float *scores) {
  for (size_t i = gtid(); i < (size_t)rows; i += gstride()) {
    const float zi = z[i * (size_t)cols];
    const double e = (double)zi - (double)y[i];
    row_loss[i] = e * e;
    if (dz) dz[i * (size_t)cols] = (float)(2.0 * e) * grad_scale;
    row_ok[i] = 0;
    if (scores) scores[i] = zi;
  }
}

cudaError_t fedc__k_loss(cudaStream_t s, fedc_loss_kind kind, float *dz, const float *z,
                         const float *y, int32_t rows, int32_t cols, float grad_scale,
                         double *row_loss, int32_t *row_ok, float *scores) {
  if (rows <= 0) return cudaSuccess;
  if (kind == FEDC_LOSS_SOFTMAX_XENT) {
    /* 8 warps (rows) per block */
    size_t blocks = ((size_t)rows + 7) / 8;
    if (blocks > FEDC_CUDA_MAX_BLOCKS) blocks = FEDC_CUDA_MAX_BLOCKS;
    softmax_xent_k<<<(unsigned)blocks, FEDC_CUDA_THREADS, 0, s>>>(dz, z, y, rows, cols, grad_scale,
                                                                  row_loss, row_ok);
  } else if (kind == FEDC_LOSS_SIGMOID_BCE) {
    sigmoid_bce_k<<<fedc__cuda_blocks((size_t)rows), FEDC_CUDA_THREADS, 0, s>>>(
        dz, z, y, rows, cols, grad_scale, row_loss, row_ok, scores);
  } else {
    mse_k<<<fedc__cuda_blocks((size_t)rows), FEDC_CUDA_THREADS, 0, s>>>(
        dz, z, y, rows, cols, grad_scale, row_loss, row_ok, scores);
  }
  return cudaGetLastError();
}

/* One block of 1024 threads: each sums every 1024th row, then the block. */
static __global__ void loss_reduce_k(const double *row_loss, const int32_t *row_ok, int32_t rows,
                                     fedc_cuda_loss_sums *out) {
  double l = 0.0;
  long long c = 0;
  for (int32_t i = threadIdx.x; i < rows; i += blockDim.x) {
    l += row_loss[i];
    c += row_ok[i];
  }
  l = block_sum(l);
  c = block_sum(c);
  if (threadIdx.x == 0) {
    out->loss = l;
    out->correct = c;
  }
}

cudaError_t fedc__k_loss_reduce(cudaStream_t s, const double *row_loss, const int32_t *row_ok,
                                int32_t rows, fedc_cuda_loss_sums *out) {
  loss_reduce_k<<<1, 1024, 0, s>>>(row_loss, row_ok, rows < 0 ? 0 : rows, out);
  return cudaGetLastError();
}

/* ---- regularization and the SGD step ------------------------------------- */

static __device__ __forceinline__ float sign_of(float x) {
  return (float)((x > 0.0f) - (x < 0.0f));
}

/* g += l2 w + l1 sign(w) + mu (w - w0); w0 is read only when mu != 0. */
static __global__ void reg_grad_k(float *g, const float *w, const float *w0, size_t n, float l1,
                                  float l2, float mu) {
  for (size_t i = gtid(); i < n; i += gstride()) {
    const float wi = w[i];
    float r = l2 * wi + l1 * sign_of(wi);
    if (mu != 0.0f) r += mu * (wi - w0[i]);
    g[i] += r;
  }
}

cudaError_t fedc__k_reg_grad(cudaStream_t s, float *g, const float *w, const float *w0, size_t n,
                             float l1, float l2, float mu) {
  if (n == 0) return cudaSuccess;
  reg_grad_k<<<fedc__cuda_blocks(n), FEDC_CUDA_THREADS, 0, s>>>(g, w, w0, n, l1, l2, mu);
  return cudaGetLastError();
}

static __global__ void sgd_plain_k(float *w, const float *g, size_t n, float lr) {
  for (size_t i = gtid(); i < n; i += gstride())
    w[i] -= lr * g[i];
}

/* The fused step: g' = g + reg (reg_grad's), v = m v + g', w -= lr v (or
 * w -= lr g' without momentum); one pass over w, g, v and w0. */
static __global__ void sgd_fused_k(float *w, const float *g, float *v, const float *w0, size_t n,
                                   float lr, float m, float l1, float l2, float mu) {
  for (size_t i = gtid(); i < n; i += gstride()) {
    const float wi = w[i];
    float gi = g[i] + l2 * wi + l1 * sign_of(wi);
    if (mu != 0.0f) gi += mu * (wi - w0[i]);
    if (m != 0.0f) {
      gi = m * v[i] + gi;
      v[i] = gi;
    }
    w[i] = wi - lr * gi;
  }
}

cudaError_t fedc__k_sgd_step(cudaStream_t s, float *w, const float *g, float *v, const float *w0,
                             size_t n, const fedc_sgd_params *p) {
  if (n == 0) return cudaSuccess;
  const unsigned blocks = fedc__cuda_blocks(n);
  if (p->l1 == 0.0f && p->l2 == 0.0f && p->prox_mu == 0.0f && p->momentum == 0.0f)
    sgd_plain_k<<<blocks, FEDC_CUDA_THREADS, 0, s>>>(w, g, n, p->lr);
  else
    sgd_fused_k<<<blocks, FEDC_CUDA_THREADS, 0, s>>>(w, g, v, w0, n, p->lr, p->momentum, p->l1,
                                                     p->l2, p->prox_mu);
  return cudaGetLastError();
}

/* ---- sums of squares and of absolute values ------------------------------ */

static __global__ void sum_partial_k(const float *x, size_t n, int square, double *partials) {
  double acc = 0.0;
  for (size_t i = gtid(); i < n; i += gstride()) {
    const double v = x[i];
    acc += square ? v * v : fabs(v);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

static __global__ void sum_final_k(const double *partials, unsigned count, double *out) {
  double acc = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x)
    acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

cudaError_t fedc__k_sum(cudaStream_t s, const float *x, size_t n, int square, double *partials,
                        double *out) {
  size_t b = (n + FEDC_CUDA_THREADS - 1) / FEDC_CUDA_THREADS;
  if (b < 1) b = 1;
  if (b > FEDC_CUDA_RED_BLOCKS) b = FEDC_CUDA_RED_BLOCKS;
  sum_partial_k<<<(unsigned)b, FEDC_CUDA_THREADS, 0, s>>>(x, n, square, partials);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  sum_final_k<<<1, 1024, 0, s>>>(partials, (unsigned)b, out);
  return cudaGetLastError();
}
