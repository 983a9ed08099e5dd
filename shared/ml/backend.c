/*
 * backend.c - picking a backend and the buffer helpers every caller uses.
 * The CPU backend is built in; the CUDA backend comes from the CUDA module.
 */
#include "ml/backend.h"

#include "base/error.h"

#include "ml/cuda_module.h"

/* The CUDA backend is in the CUDA module (cuda_module.h): loaded here on
 * first use, so that a machine without CUDA never needs its libraries. */
static int backend_cuda_open(fedc_backend **out) {
  const fedc_cuda_module_api *m;
  *out = NULL;
  int rc = fedc__cuda_module_get("device = cuda", &m);
  if (rc != 0) return rc;
  return m->backend_open(out);
}

/* 1 for the CPU; for CUDA, 1 when the module loads (a device may still be
 * missing: opening says so). */
int fedc_backend_available(fedc_device device) {
  const fedc_cuda_module_api *m;
  if (device == FEDC_DEVICE_CPU) return 1;
  return device == FEDC_DEVICE_CUDA && fedc__cuda_module_get("device = cuda", &m) == 0;
}

int fedc_backend_open(fedc_device device, fedc_backend **out) {
  switch (device) {
  case FEDC_DEVICE_CPU: return fedc__backend_cpu_open(out);
  case FEDC_DEVICE_CUDA: return backend_cuda_open(out);
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
