/*
 * kernels_elem.h - the CPU backend's elementwise ops (kernels.h: bias,
 * ReLU and its gradient, column sums, the SGD step), as plain loops that
 * each kernels_<variant>.c includes, so that the compiler vectorizes them
 * for that variant's instruction set rather than the portable baseline's
 * (SSE2 on x86-64). ReLU, its gradient, the bias and the column sums give
 * the same bits in every variant (one operation per element, the same
 * order); the SGD step may differ in the last bit between variants, where
 * one fuses the multiply-add and another does not.
 */
#ifndef FEDC_ML_KERNELS_ELEM_H
#define FEDC_ML_KERNELS_ELEM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void elem_add_bias(float *z, const float *bias, int32_t rows, int32_t cols) {
  for (int32_t i = 0; i < rows; i++) {
    float *zi = z + (size_t)i * (size_t)cols;
    for (int32_t j = 0; j < cols; j++) zi[j] += bias[j];
  }
}

static void elem_relu(float *a, const float *z, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = z[i] > 0.0f ? z[i] : 0.0f;
}

static void elem_relu_backward(float *dz, const float *da, const float *a, size_t n) {
  for (size_t i = 0; i < n; i++) dz[i] = a[i] > 0.0f ? da[i] : 0.0f;
}

static void elem_col_sum(float *out, const float *m, int32_t rows, int32_t cols) {
  memset(out, 0, (size_t)cols * sizeof(float));
  for (int32_t i = 0; i < rows; i++) {
    const float *mi = m + (size_t)i * (size_t)cols;
    for (int32_t j = 0; j < cols; j++) out[j] += mi[j];
  }
}

static inline float elem_sign(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

/* w -= lr (g + l2 w + l1 sign(w) + mu (w - w0)), through the momentum
 * buffer v (v = m v + that) when m != 0; the plain step alone when every
 * extra is 0. */
static void elem_sgd_step(float *w, const float *g, float *v, const float *w0, size_t n,
                          float lr, float m, float l1, float l2, float mu) {
  if (l1 == 0.0f && l2 == 0.0f && mu == 0.0f && m == 0.0f) {
    for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
    return;
  }
  for (size_t i = 0; i < n; i++) {
    float gi = g[i] + l2 * w[i] + l1 * elem_sign(w[i]);
    if (mu != 0.0f) gi += mu * (w[i] - w0[i]);
    if (m != 0.0f) gi = v[i] = m * v[i] + gi;
    w[i] -= lr * gi;
  }
}

#define FEDC_KERNELS_ELEM                                                    \
  elem_add_bias, elem_relu, elem_relu_backward, elem_col_sum, elem_sgd_step

#endif
