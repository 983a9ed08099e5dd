/*
 * module_entry.cu - the CUDA module's side of ml/cuda_module.h: its one
 * exported function, which checks the library's ABI and returns the table
 * of entry points, and the library services the module's code calls
 * (fedc_error_set, fedc_malloc_array & co), forwarded to the host table so
 * that errors land in the library's per-thread slot and memory comes from
 * the library's allocator. Everything else in libfedc-cuda.so is hidden
 * (the link's version script exports only fedc_cuda_module_entry).
 */
#include <stdio.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "base/alloc.h"
#include "ml/cuda_module.h"
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const fedc_cuda_host_api *host;

/* ---- the library's services, as the module's code names them ---------- */

extern "C" int fedc_error_set(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = host->error_setv(err, fmt, ap);
  va_end(ap);
  return rc;
}

extern "C" void *fedc_malloc_array(size_t count, size_t size) {
  return host->malloc_array(count, size);
}
extern "C" void *fedc_calloc(size_t count, size_t size) { return host->calloc(count, size); }
extern "C" void *fedc_realloc(void *p, size_t size) { return host->realloc(p, size); }
extern "C" void fedc_free(void *p) { host->free(p); }

/* ---- the table ---------------------------------------------------------- */

static int device_present(const char *who) { return fedc__cuda_device_present(who); }

static const fedc_cuda_module_api table = {
    FEDC_CUDA_MODULE_ABI,
    sizeof(fedc_cuda_module_api),
    sizeof(fedc_backend),
    0,
    "CUDA runtime " STR(CUDART_VERSION),
    device_present,
    fedc__backend_cuda_open,
    fedc__cuda_agg_new,
    fedc__cuda_agg_begin,
    fedc__cuda_agg_add,
    fedc__cuda_agg_finish,
    fedc__cuda_agg_stats_get,
    fedc__cuda_agg_free,
    fedc__cuda_agg_robust_host,
    fedc__cuda_agg_fedavg_host,
    fedc__cuda_agg_i128_to_double_host,
    fedc__cuda_agg_sums_get,
    fedc__cuda_agg_sums_put,
};

/*
 * The module's one export. host must be of this ABI and at least as large
 * as the module knows it; otherwise NULL (the library then refuses the
 * module, naming the ABI). Called once, by the library, under its lock.
 */
extern "C" __attribute__((visibility("default"))) const fedc_cuda_module_api *
fedc_cuda_module_entry(const fedc_cuda_host_api *h) {
  if (h == NULL || h->abi != FEDC_CUDA_MODULE_ABI || h->size < sizeof(fedc_cuda_host_api))
    return NULL;
  host = h;
  return &table;
}
