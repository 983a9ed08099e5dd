/*
 * cuda_module.c - finding, opening and checking libfedc-cuda.so, the CUDA
 * module (cuda_module.h has the places and the ABI). Loaded once per
 * process on first use; what went wrong is kept, so every later request
 * for the GPU gets the same one-line reason without another search.
 */
#include "ml/cuda_module.h"

#include <dlfcn.h>
#include <fedc/cuda.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"

#ifndef FEDC_CUDA_MODULE_DIR
#define FEDC_CUDA_MODULE_DIR "/usr/local/lib/fedc"
#endif

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int state;                  /* 0 not tried, 1 loaded, -1 failed */
static char set_path[PATH_MAX];    /* fedc_cuda_module_set_path's, or "" */
static char loaded_path[PATH_MAX]; /* where it came from */
static char why[1024];             /* the failure, when state = -1 */
static const fedc_cuda_module_api *api;

static const fedc_cuda_host_api host = {
    .abi = FEDC_CUDA_MODULE_ABI,
    .size = sizeof(fedc_cuda_host_api),
    .error_setv = fedc_error_setv,
    .malloc_array = fedc_malloc_array,
    .calloc = fedc_calloc,
    .realloc = fedc_realloc,
    .free = fedc_free,
};

int fedc_cuda_module_set_path(const char *path) {
  pthread_mutex_lock(&lock);
  int rc = 0;
  if (state != 0)
    rc = fedc_error_set(FEDC_EINVAL, "fedc_cuda_module_set_path: the CUDA module was "
                                     "already looked for");
  else if (path && strlen(path) >= sizeof set_path)
    rc = fedc_error_set(FEDC_EINVAL, "fedc_cuda_module_set_path: path too long");
  else
    snprintf(set_path, sizeof set_path, "%s", path ? path : "");
  pthread_mutex_unlock(&lock);
  return rc;
}

/* snprintf that may cut a long path short (the message stays readable). */
static void put(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *dst, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(dst, n, fmt, ap);
  va_end(ap);
}

/* The directory of the file that holds this code: libfedc.so, or the
 * program that linked libfedc.a (then /proc/self/exe, the real file). */
static int own_dir(char *dir, size_t n, int *is_shared) {
  Dl_info info;
  *is_shared = 0;
  const char *file = NULL;
  char exe[PATH_MAX];
  if (dladdr((void *)&own_dir, &info) && info.dli_fname && strstr(info.dli_fname, ".so")) {
    file = info.dli_fname;
    *is_shared = 1;
  } else {
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    file = exe;
  }
  const char *slash = strrchr(file, '/');
  if (slash == NULL) return -1;
  put(dir, n, "%.*s", (int)(slash - file), file);
  return 0;
}

/* Open one candidate. 1 loaded, 0 not there (keep looking), -1 there but
 * unusable (stop: why says so). */
static int try_open(const char *path) {
  if (access(path, F_OK) != 0) return 0;
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    put(why, sizeof why, "the CUDA module %s cannot be loaded: %s", path,
             e ? e : "dlopen failed");
    return -1;
  }
  fedc_cuda_module_entry_fn entry;
  *(void **)&entry = dlsym(lib, FEDC_CUDA_MODULE_ENTRY);
  const fedc_cuda_module_api *a = entry ? entry(&host) : NULL;
  if (a == NULL || a->abi != FEDC_CUDA_MODULE_ABI || a->size != sizeof *a ||
      a->backend_size != sizeof(fedc_backend)) {
    if (a == NULL)
      put(why, sizeof why,
          "the CUDA module %s was built for another version of fedc (it refuses this "
          "library's module ABI %d)",
          path, FEDC_CUDA_MODULE_ABI);
    else if (a->abi != FEDC_CUDA_MODULE_ABI)
      put(why, sizeof why,
          "the CUDA module %s was built for another version of fedc (module ABI %u, "
          "this library's %d)",
          path, (unsigned)a->abi, FEDC_CUDA_MODULE_ABI);
    else
      put(why, sizeof why,
          "the CUDA module %s was built for another version of fedc (module ABI %u, but "
          "its backend table is %u bytes, this library's %zu: rebuild the module)",
          path, (unsigned)a->abi, (unsigned)a->backend_size, sizeof(fedc_backend));
    dlclose(lib);
    return -1;
  }
  api = a;
  put(loaded_path, sizeof loaded_path, "%s", path);
  return 1;
}

/* The search of cuda_module.h, once; called under the lock. */
static void load(void) {
  char dir[PATH_MAX], cand[3][PATH_MAX + 64];
  int n = 0, is_shared = 0;
  if (set_path[0]) {
    put(cand[n++], sizeof cand[0], "%s", set_path);
  } else {
    if (own_dir(dir, sizeof dir, &is_shared) == 0)
      put(cand[n++], sizeof cand[0], "%s/%s" FEDC_CUDA_MODULE_FILE, dir,
               is_shared ? "fedc/" : "../lib/fedc/");
    put(cand[n++], sizeof cand[0], "%s", FEDC_CUDA_MODULE_DIR "/" FEDC_CUDA_MODULE_FILE);
  }
  for (int i = 0; i < n; i++) {
    int r = try_open(cand[i]);
    if (r != 0) {
      state = r;
      return;
    }
  }
  size_t used = (size_t)snprintf(why, sizeof why,
                                 "the CUDA module " FEDC_CUDA_MODULE_FILE
                                 " is not installed (looked for");
  for (int i = 0; i < n && used < sizeof why; i++)
    used += (size_t)snprintf(why + used, sizeof why - used, "%s %s", i ? "," : "", cand[i]);
  if (used < sizeof why)
    put(why + used, sizeof why - used, "; fedc builds it where nvcc is found)");
  state = -1;
}

int fedc__cuda_module_get(const char *who, const fedc_cuda_module_api **out) {
  *out = NULL;
  pthread_mutex_lock(&lock);
  if (state == 0) load();
  int ok = state == 1;
  pthread_mutex_unlock(&lock);
  if (!ok) return fedc_error_set(FEDC_EUNSUPPORTED, "%s: %s", who, why);
  *out = api;
  return 0;
}

const char *fedc__cuda_module_path(void) {
  pthread_mutex_lock(&lock);
  const char *p = state == 1 ? loaded_path : NULL;
  pthread_mutex_unlock(&lock);
  return p;
}

int fedc_cuda_available(void) {
  const fedc_cuda_module_api *m;
  if (fedc__cuda_module_get("cuda", &m) != 0) return 0;
  return m->device_present("cuda") == 0;
}
