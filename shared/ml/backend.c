/*
 * backend.c - picking a backend and the buffer helpers every caller uses.
 */
#include "ml/backend.h"

#include "base/error.h"

#ifndef FEDC_HAVE_CUDA
#define FEDC_HAVE_CUDA 0
#endif

#if FEDC_HAVE_CUDA
/* shared/backend_cuda.cu; the Makefile defines FEDC_HAVE_CUDA=1 when it
 * builds the .cu files */
int fedc__backend_cuda_open(fedc_backend **out);
#else
static int fedc__backend_cuda_open(fedc_backend **out) {
  *out = NULL;
  return fedc_error_set(FEDC_EUNSUPPORTED,
                        "device = cuda: this build of fedc has no CUDA backend "
                        "(nvcc was not found at build time, or make CUDA=0)");
}
#endif

int fedc_backend_available(fedc_device device) {
  return device == FEDC_DEVICE_CPU || (device == FEDC_DEVICE_CUDA && FEDC_HAVE_CUDA);
}

int fedc_backend_open(fedc_device device, fedc_backend **out) {
  switch (device) {
  case FEDC_DEVICE_CPU: return fedc__backend_cpu_open(out);
  case FEDC_DEVICE_CUDA: return fedc__backend_cuda_open(out);
  }
  return fedc_error_set(FEDC_EINVAL, "unknown device %d", (int)device);
}

void fedc_backend_close(fedc_backend *b) {
  if (b) b->close(b);
}

float *fedc_buf_alloc(fedc_backend *b, size_t n) { return b->alloc(b, n ? n : 1); }

void fedc_buf_free(fedc_backend *b, float *p) {
  if (p) b->release(b, p);
}

int fedc_buf_upload(fedc_backend *b, float *dst, const float *src, size_t n) {
  return b->upload(b, dst, src, n);
}

int fedc_buf_download(fedc_backend *b, float *dst, const float *src, size_t n) {
  return b->download(b, dst, src, n);
}
