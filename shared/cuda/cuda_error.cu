/*
 * cuda_error.cu - CUDA runtime errors translated into fedc's codes at the
 * edge (see cuda_internal.h; cuBLAS's are in cuda_blas.cu, beside the
 * library they come from), and the check that a device is there at all.
 * Every CUDA file of libfedc reports through these, so a person reads the
 * runtime's own words ("cudaErrorMemoryAllocation: out of memory") after
 * fedc's context ("cuda: upload of 784000 floats").
 */
#include "cuda/cuda_internal.h"

int fedc__cuda_error(cudaError_t e, const char *what) {
  /* clear the last-error slot; a sticky error (a faulted kernel) stays in
   * the context and fails every later call, which is what we want */
  (void)cudaGetLastError();
  return fedc_error_set(FEDC_EBACKEND, "cuda: %s: %s: %s", what, cudaGetErrorName(e),
                        cudaGetErrorString(e));
}

/*
 * cudaGetDeviceCount fails (cudaErrorNoDevice, cudaErrorInsufficientDriver
 * when no driver is installed) or returns 0 on a machine without a usable
 * GPU; both mean "not here", FEDC_EUNSUPPORTED, which tests turn into a skip.
 */
int fedc__cuda_device_present(const char *who) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "%s: no CUDA device is present (cudaGetDeviceCount: %s: %s)", who,
                          cudaGetErrorName(e), cudaGetErrorString(e));
  }
  if (count < 1)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "%s: no CUDA device is present (cudaGetDeviceCount: 0 devices)", who);
  return 0;
}
