/*
 * backend_cpu.c - the CPU backend: OpenBLAS for matrix products, the
 * kernels of the CPU variant in use (ml/kernels.h) for the skinny ones,
 * plain loops (which the compiler vectorizes) for the rest. It is the reference every
 * other backend is tested against. Buffers are 64-byte aligned host memory.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "ml/backend.h"
#include "ml/kernels.h"
#include "ml/xent_row.h"
#include "base/error.h"

void fedc_backend_cpu_set_blas_threads(int n) { openblas_set_num_threads(n); }

static float *cpu_alloc(fedc_backend *b, size_t n) {
  (void)b;
  if (n > SIZE_MAX / sizeof(float)) return NULL;
  float *p = fedc_malloc_aligned(n * sizeof(float));
  if (p) memset(p, 0, n * sizeof(float));
  return p;
}

static void cpu_release(fedc_backend *b, float *p) {
  (void)b;
  fedc_free_aligned(p);
}

static int cpu_copy(fedc_backend *b, float *dst, const float *src, size_t n) {
  (void)b;
  if (dst != src) memmove(dst, src, n * sizeof(float));
  return 0;
}

static int cpu_zero(fedc_backend *b, float *p, size_t n) {
  (void)b;
  memset(p, 0, n * sizeof(float));
  return 0;
}

/*
 * The skinny products of models with few outputs (softmax and logistic
 * regression, an MLP's last layer), where OpenBLAS spends more time packing
 * operands than multiplying, go to the kernels of the CPU variant in use
 * when the backend was opened (ml/kernels.h, base/cpu.h).
 */
typedef struct cpu_ctx {
  const fedc_kernels *kern;
  float *scratch; /* gemm_u8's unpacked rows for OpenBLAS, made on first use */
  size_t scratch_n;
} cpu_ctx;

/* The backend's kernel table; the elementwise ops below are the variant's
 * too (ml/kernels_elem.h). */
#define KERN(b) (((cpu_ctx *)(b)->ctx)->kern)

/* Products of any width go to a SIMD variant's kernels too (kernels.h's
 * wide) where they beat OpenBLAS (bench/kernels.c): a minibatch's forward
 * pass (A B^T, m rows), weight gradient (dZ^T A, k rows) and input
 * gradient (dZ W, m rows), and a forward pass over long rows (k >= 512: an
 * image's first layer, where their dot products over k match OpenBLAS at
 * any m); an evaluation's other layers go to OpenBLAS. */
static int nt_ours(const fedc_kernels *kern, int m, int n, int k) {
  return n <= FEDC_KERNEL_SMALL || (kern->wide && (m <= FEDC_KERNEL_BATCH || k >= 512));
}

static int cpu_gemm(fedc_backend *b, int ta, int tb, int m, int n, int k,
                    float alpha, const float *a, int lda, const float *bm,
                    int ldb, float beta, float *c, int ldc) {
  const fedc_kernels *kern = KERN(b);
  if (!ta && tb && nt_ours(kern, m, n, k)) {
    kern->gemm_nt(m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc);
    return 0;
  }
  if (ta && !tb && (m <= FEDC_KERNEL_SMALL || (kern->wide && k <= FEDC_KERNEL_BATCH))) {
    kern->gemm_tn(m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc);
    return 0;
  }
  if (!ta && !tb && kern->wide && m <= FEDC_KERNEL_BATCH) {
    kern->gemm_nn(m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc);
    return 0;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, bm, ldb,
              beta, c, ldc);
  return 0;
}

/* The small products with the data operand's rows read in place (backend.h):
 * the kernels' *_rows forms of what cpu_gemm runs for the same shapes. */
static int cpu_gemm_rows(fedc_backend *b, int ta, int tb, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *bm,
                         int ldb, const int64_t *rows, float beta, float *c, int ldc) {
  const fedc_kernels *kern = KERN(b);
  if (!ta && tb && n <= FEDC_KERNEL_SMALL) {
    kern->gemm_nt_rows(m, n, k, alpha, a, lda, rows, bm, ldb, beta, c, ldc);
    return 0;
  }
  if (ta && !tb && m <= FEDC_KERNEL_SMALL) {
    kern->gemm_tn_rows(m, n, k, alpha, a, lda, bm, ldb, rows, beta, c, ldc);
    return 0;
  }
  return fedc_error_set(FEDC_EINVAL, "cpu backend: gemm_rows of a %dx%dx%d product", m, n, k);
}

/* A data set kept as bytes (backend.h): the kernels' unpack_u8 and
 * gemm_nt_u8. */
static int cpu_unpack_u8(fedc_backend *b, float *dst, const uint8_t *src, int64_t d,
                         int32_t rows) {
  KERN(b)->unpack_u8(dst, src, (size_t)d * (size_t)rows);
  return 0;
}

/* gemm_u8: the kernel reads the bytes where cpu_gemm would take the shape;
 * otherwise the rows are unpacked into the backend's scratch for OpenBLAS
 * (a backend serves one thread at a time: backend.h). */
static int cpu_gemm_u8(fedc_backend *b, int m, int n, int k, float alpha, const uint8_t *a,
                       int lda, const float *bm, int ldb, float beta, float *c, int ldc) {
  cpu_ctx *x = b->ctx;
  if (k <= FEDC_KERNEL_U8_MAXK && nt_ours(x->kern, m, n, k)) {
    x->kern->gemm_nt_u8(m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc);
    return 0;
  }
  size_t need = (size_t)m * (size_t)k;
  if (need > x->scratch_n) {
    fedc_free_aligned(x->scratch);
    x->scratch_n = 0;
    if ((x->scratch = fedc_malloc_aligned(need * sizeof(float))) == NULL)
      return fedc_error_set(FEDC_ENOMEM, "cpu backend: out of memory");
    x->scratch_n = need;
  }
  for (int i = 0; i < m; i++)
    x->kern->unpack_u8(x->scratch + (size_t)i * (size_t)k, a + (size_t)i * (size_t)lda,
                       (size_t)k);
  return cpu_gemm(b, 0, 1, m, n, k, alpha, x->scratch, k, bm, ldb, beta, c, ldc);
}

static int cpu_gather_rows(fedc_backend *b, float *dst, const float *src,
                           int64_t d, const int64_t *rows, int32_t n) {
  (void)b;
  for (int32_t i = 0; i < n; i++)
    memcpy(dst + (size_t)i * (size_t)d, src + (size_t)rows[i] * (size_t)d,
           (size_t)d * sizeof(float));
  return 0;
}

static int cpu_gather(fedc_backend *b, float *dst, const float *src,
                      const int64_t *rows, int32_t n) {
  (void)b;
  for (int32_t i = 0; i < n; i++) dst[i] = src[rows[i]];
  return 0;
}

static int cpu_add_bias(fedc_backend *b, float *z, const float *bias,
                        int32_t rows, int32_t cols) {
  KERN(b)->add_bias(z, bias, rows, cols);
  return 0;
}

static int cpu_relu(fedc_backend *b, float *a, const float *z, size_t n) {
  KERN(b)->relu(a, z, n);
  return 0;
}

static int cpu_relu_backward(fedc_backend *b, float *dz, const float *da,
                             const float *a, size_t n) {
  KERN(b)->relu_backward(dz, da, a, n);
  return 0;
}

static int cpu_col_sum(fedc_backend *b, float *out, const float *m,
                       int32_t rows, int32_t cols) {
  KERN(b)->col_sum(out, m, rows, cols);
  return 0;
}

/* log(1 + exp(x)) without overflow. */
static double softplus(double x) {
  return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/*
 * Softmax cross-entropy per row, computed stably by subtracting the row max:
 * loss = logsumexp(z) - z[y]; d loss / d z = softmax(z) - onehot(y).
 * Sigmoid BCE: loss = softplus(z) - y z; gradient sigmoid(z) - y.
 * MSE: loss = (z - y)^2; gradient 2 (z - y).
 */
static int cpu_loss(fedc_backend *b, fedc_loss_kind kind, float *dz,
                    const float *z, const float *y, int32_t rows, int32_t cols,
                    float grad_scale, double *loss_sum, int64_t *correct,
                    float *scores) {
  (void)b;
  double loss = 0.0;
  int64_t ok = 0;
  for (int32_t i = 0; i < rows; i++) {
    const float *zi = z + (size_t)i * (size_t)cols;
    float *dzi = dz ? dz + (size_t)i * (size_t)cols : NULL;
    if (kind == FEDC_LOSS_SOFTMAX_XENT) {
      int32_t label = (int32_t)y[i], arg = 0;
      if (dzi) {
        float zmax = zi[0];
        for (int32_t j = 1; j < cols; j++)
          if (zi[j] > zmax) zmax = zi[j], arg = j;
        float sum = 0.0f;
        for (int32_t j = 0; j < cols; j++) sum += (dzi[j] = expf(zi[j] - zmax));
        float inv = grad_scale / sum;
        for (int32_t j = 0; j < cols; j++) dzi[j] *= inv;
        dzi[label] -= grad_scale;
        loss += (double)logf(sum) + (double)(zmax - zi[label]);
      } else { /* evaluation: the evaluation report's own row loss */
        loss += fedc__xent_row(zi, cols, label, &arg);
      }
      ok += arg == label;
    } else if (kind == FEDC_LOSS_SIGMOID_BCE) {
      double zz = zi[0], p = 1.0 / (1.0 + exp(-zz));
      loss += softplus(zz) - (double)y[i] * zz;
      if (dzi) dzi[0] = (float)(p - (double)y[i]) * grad_scale;
      ok += (p >= 0.5) == (y[i] >= 0.5f);
      if (scores) scores[i] = (float)p;
    } else {
      double e = (double)zi[0] - (double)y[i];
      loss += e * e;
      if (dzi) dzi[0] = (float)(2.0 * e) * grad_scale;
      if (scores) scores[i] = zi[0];
    }
  }
  if (loss_sum) *loss_sum += loss;
  if (correct) *correct += ok;
  return 0;
}

static inline float sign_of(float x) {
  return (float)((x > 0.0f) - (x < 0.0f));
}

static int cpu_reg_grad(fedc_backend *b, float *g, const float *w,
                        const float *w0, size_t n, float l1, float l2,
                        float mu) {
  (void)b;
  if (l1 == 0.0f && l2 == 0.0f && mu == 0.0f) return 0;
  for (size_t i = 0; i < n; i++) {
    float r = l2 * w[i] + l1 * sign_of(w[i]);
    if (mu != 0.0f) r += mu * (w[i] - w0[i]);
    g[i] += r;
  }
  return 0;
}

static int cpu_sgd_step(fedc_backend *b, float *w, const float *g, float *v,
                        const float *w0, size_t n, const fedc_sgd_params *p) {
  KERN(b)->sgd_step(w, g, v, w0, n, p->lr, p->momentum, p->l1, p->l2, p->prox_mu);
  return 0;
}

static int cpu_sumsq(fedc_backend *b, const float *x, size_t n, double *out) {
  (void)b;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
  *out = s;
  return 0;
}

static int cpu_sum_abs(fedc_backend *b, const float *x, size_t n, double *out) {
  (void)b;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += fabs((double)x[i]);
  *out = s;
  return 0;
}

static void cpu_close(fedc_backend *b) {
  fedc_free_aligned(((cpu_ctx *)b->ctx)->scratch);
  fedc_free(b);
}

int fedc__backend_cpu_open(fedc_backend **out) {
  /* the backend and its context in one block */
  fedc_backend *b = fedc_calloc(1, sizeof *b + sizeof(cpu_ctx));
  *out = NULL;
  if (b == NULL) return fedc_error_set(FEDC_ENOMEM, "cpu backend: out of memory");
  b->ctx = (char *)b + sizeof *b;
  ((cpu_ctx *)b->ctx)->kern = fedc_kernels_get();
  b->name = "cpu";
  b->device = FEDC_DEVICE_CPU;
  b->alloc = cpu_alloc;
  b->release = cpu_release;
  b->upload = cpu_copy;
  b->download = cpu_copy;
  b->zero = cpu_zero;
  b->gemm = cpu_gemm;
  b->gemm_rows = cpu_gemm_rows;
  b->gemm_rows_max = FEDC_KERNEL_SMALL;
  b->unpack_u8 = cpu_unpack_u8;
  b->gemm_u8 = cpu_gemm_u8;
  b->gemm_u8_max_k = INT32_MAX;
  b->gather_rows = cpu_gather_rows;
  b->gather = cpu_gather;
  b->add_bias = cpu_add_bias;
  b->relu = cpu_relu;
  b->relu_backward = cpu_relu_backward;
  b->col_sum = cpu_col_sum;
  b->loss = cpu_loss;
  b->reg_grad = cpu_reg_grad;
  b->sgd_step = cpu_sgd_step;
  b->sumsq = cpu_sumsq;
  b->sum_abs = cpu_sum_abs;
  b->close = cpu_close;
  *out = b;
  return 0;
}
