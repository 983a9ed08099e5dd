/*
 * cuda_module.h - the boundary between libfedc and its CUDA module,
 * libfedc-cuda.so (docs/cuda.md).
 *
 * No program and not libfedc.so links the CUDA runtime. The CUDA backend
 * and GPU aggregation live in a module that the library opens with dlopen
 * the first time device = cuda (or GPU aggregation) is asked for, so the
 * same binaries run on machines with and without CUDA. The module exports
 * one symbol, FEDC_CUDA_MODULE_ENTRY, a function that takes the library's
 * table of services (errors, memory) and returns the module's table of
 * entry points. Both tables start with the ABI version and their own size:
 * a module built for another ABI is refused with a message, never called.
 *
 * Where the library looks (the first that exists wins; fedc__cuda_module_get
 * lists every place it tried in its error):
 *   1. the path a program gave fedc_cuda_module_set_path() (then only it);
 *   2. beside the code of libfedc itself: <dir of libfedc.so>/fedc/, or,
 *      for a program linked with libfedc.a, <dir of the program>/../lib/fedc/
 *      (the build tree: build/bin/ and build/tests/ find build/lib/fedc/);
 *   3. FEDC_CUDA_MODULE_DIR, compiled in: $(LIBDIR)/fedc.
 * The library reads no environment variable for this; a program may
 * (fedc-sim, fedc-client and fedc-coordinator take FEDC_CUDA_MODULE).
 *
 * This header is C and names no CUDA type: the library side is compiled by
 * cc, the module side by nvcc.
 */
#ifndef FEDC_CUDA_MODULE_H
#define FEDC_CUDA_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ml/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever either table or a type it passes (fedc_backend,
 * fedc_agg_cuda_params) changes shape. */
#define FEDC_CUDA_MODULE_ABI 4
#define FEDC_CUDA_MODULE_ENTRY "fedc_cuda_module_entry"
#define FEDC_CUDA_MODULE_FILE "libfedc-cuda.so"

/* What the library lends the module: the module reports errors into the
 * library's per-thread error slot and allocates with the library's
 * (replaceable) allocator, so fedc_error_msg() and allocation-failure tests
 * see the module's calls as their own. */
typedef struct fedc_cuda_host_api {
  uint32_t abi;  /* FEDC_CUDA_MODULE_ABI */
  uint32_t size; /* sizeof(fedc_cuda_host_api) */
  int (*error_setv)(int err, const char *fmt, va_list ap);
  void *(*malloc_array)(size_t count, size_t size);
  void *(*calloc)(size_t count, size_t size);
  void *(*realloc)(void *p, size_t size);
  void (*free)(void *p);
} fedc_cuda_host_api;

struct fedc_agg_cuda;
struct fedc_agg_cuda_params;
struct fedc_agg_cuda_stats;

/* What the module gives back; every pointer is filled. The agg_* entries
 * are agg_cuda.h's functions (cuda/agg_cuda_module.c forwards to them); the *_host
 * entries are its test hooks. */
typedef struct fedc_cuda_module_api {
  uint32_t abi;           /* FEDC_CUDA_MODULE_ABI */
  uint32_t size;          /* sizeof(fedc_cuda_module_api) */
  uint32_t backend_size;  /* sizeof(fedc_backend) the module was built with */
  uint32_t reserved;
  const char *version;    /* "CUDA runtime 13.0" */
  /* 0 when a device is usable; FEDC_EUNSUPPORTED "<who>: no CUDA device..." */
  int (*device_present)(const char *who);
  int (*backend_open)(fedc_backend **out);
  int (*agg_new)(const struct fedc_agg_cuda_params *p, size_t n, struct fedc_agg_cuda **out);
  int (*agg_begin)(struct fedc_agg_cuda *a, const float *global, size_t n);
  int (*agg_add)(struct fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples,
                 double *norm);
  int (*agg_finish)(struct fedc_agg_cuda *a, float *out, size_t n);
  void (*agg_stats_get)(const struct fedc_agg_cuda *a, struct fedc_agg_cuda_stats *out);
  void (*agg_free)(struct fedc_agg_cuda *a);
  void (*robust_host)(int trimmed, size_t t, const float *const *upd, size_t k, size_t n,
                      float *out);
  void (*fedavg_host)(const float *const *w, const uint64_t *samples, size_t k, size_t n,
                      float *out);
  double (*i128_to_double_host)(__int128 v);
  /* ABI 2: FedAvg's running sum to and from the host (agg_cuda.h) */
  int (*agg_sums_get)(struct fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n);
  int (*agg_sums_put)(struct fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n);
} fedc_cuda_module_api;

/* The module's one exported function: NULL when host is of another ABI. */
typedef const fedc_cuda_module_api *(*fedc_cuda_module_entry_fn)(const fedc_cuda_host_api *host);

/*
 * Load the module once per process and return its table. Thread-safe; a
 * failure is remembered (the process does not retry) and each call returns
 * FEDC_EUNSUPPORTED with the message "<who>: <why>", why naming what is
 * missing: the module (with the places looked in), a library it needs
 * (dlopen's words: "libcudart.so.13: cannot open shared object file"), or
 * an ABI mismatch.
 */
int fedc__cuda_module_get(const char *who, const fedc_cuda_module_api **out);
/* Where the module was loaded from, or NULL if it is not loaded. */
const char *fedc__cuda_module_path(void);

#ifdef __cplusplus
}
#endif

#endif
