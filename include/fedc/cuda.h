/*
 * fedc/cuda.h - where fedc finds its CUDA module.
 *
 * The CUDA backend (device = cuda) and GPU aggregation are a module,
 * libfedc-cuda.so, that fedc opens the first time they are asked for; no
 * program links the CUDA runtime (docs/cuda.md). By default fedc looks
 * beside itself (<dir of libfedc.so>/fedc/, or <dir of the program>/../lib/fedc/
 * for a program linked with libfedc.a) and then in the installed
 * $(LIBDIR)/fedc/. A program may name the file instead:
 *
 *     fedc_cuda_module_set_path("/opt/fedc/libfedc-cuda.so");
 *
 * fedc itself reads no environment variable for this; fedc's programs pass
 * FEDC_CUDA_MODULE on when it is set.
 */
#ifndef FEDC_PUBLIC_CUDA_H
#define FEDC_PUBLIC_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

/* Use this file as the CUDA module (NULL: the default places). Call before
 * anything opens a CUDA backend: once the module is loaded, or has failed
 * to load, FEDC_EINVAL. The string is copied. */
int fedc_cuda_module_set_path(const char *path);

/* 1 when the CUDA module loads and reports a usable device; 0 otherwise,
 * with fedc_error_msg() saying what is missing. Loads the module. */
int fedc_cuda_available(void);

#ifdef __cplusplus
}
#endif

#endif
