/*
 * cuda_blas.cu - cuBLAS, loaded with dlopen the first time a CUDA backend
 * opens, rather than linked into every binary.
 *
 * Why: libcublasLt is over 500 MB, and a binary linked against it pays
 * about 0.2 s and 200 MB of resident memory at every start for relocations,
 * whether it ever touches a GPU or not. fedc-client on a CPU-only edge
 * device, the coordinator and each test would all pay it. The CUDA runtime
 * itself (libcudart) is small and stays linked.
 *
 * The library is the one whose headers fedc was compiled with
 * (libcublas.so.<CUBLAS_VER_MAJOR>), found on the loader's path, the
 * binary's runpath, or in FEDC_CUDA_LIBDIR (the toolkit's lib64 at build
 * time). The function pointers take their types from the cuBLAS header, so
 * a signature mismatch is a compile error. It is loaded once per process
 * and never unloaded.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "cuda/cuda_internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define CUBLAS_SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)

static fedc_cublas_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[512]; /* empty when loaded */

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (p == NULL && load_error[0] == '\0')
    snprintf(load_error, sizeof load_error, "%s: no symbol %s", CUBLAS_SONAME, name);
  return p;
}

static void load(void) {
  void *lib = dlopen(CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
#ifdef FEDC_CUDA_LIBDIR
  if (lib == NULL) lib = dlopen(FEDC_CUDA_LIBDIR "/" CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
  if (lib == NULL) {
    const char *why = dlerror();
    snprintf(load_error, sizeof load_error, "%s", why ? why : CUBLAS_SONAME ": not found");
    return;
  }
  /* the header's names are macros for the _v2 entry points */
  api.create = (decltype(api.create))sym(lib, "cublasCreate_v2");
  api.destroy = (decltype(api.destroy))sym(lib, "cublasDestroy_v2");
  api.set_stream = (decltype(api.set_stream))sym(lib, "cublasSetStream_v2");
  api.set_math_mode = (decltype(api.set_math_mode))sym(lib, "cublasSetMathMode");
  api.sgemm = (decltype(api.sgemm))sym(lib, "cublasSgemm_v2");
  api.status_name = (decltype(api.status_name))sym(lib, "cublasGetStatusName");
  api.status_string = (decltype(api.status_string))sym(lib, "cublasGetStatusString");
}

int fedc__cublas_load(const fedc_cublas_api **out) {
  *out = NULL;
  pthread_once(&once, load);
  if (load_error[0] != '\0')
    return fedc_error_set(FEDC_EBACKEND, "cuda: cuBLAS could not be loaded: %s", load_error);
  *out = &api;
  return 0;
}

int fedc__cublas_error(cublasStatus_t s, const char *what) {
  if (api.status_name && api.status_string)
    return fedc_error_set(FEDC_EBACKEND, "cublas: %s: %s: %s", what, api.status_name(s),
                          api.status_string(s));
  return fedc_error_set(FEDC_EBACKEND, "cublas: %s: status %d", what, (int)s);
}
