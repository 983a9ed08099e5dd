/*
 * model_io.c - encode and decode a model's flat weights as safetensors,
 * with the checks an update from an untrusted peer needs (see model_io.h).
 */
#include "ml/model_io.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

int fedc_model_encode(const fedc_model_spec *spec, const float *w,
                      const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                      size_t *len) {
  fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
  size_t n = fedc_model_tensors(spec, w, t, 2 * FEDC_MODEL_MAX_LAYERS);
  return fedc_st_encode(t, n, meta, n_meta, out, len);
}

/*
 * Whether the decoder refused a tensor's dtype (it ends that message, and
 * only that one, with DTYPE_REFUSAL). Not "the message mentions dtype":
 * tensor names, field names and "missing field 'dtype'" are in messages
 * too, and a malformed container is bad_container, not bad_dtype (found by
 * tests/fuzz/fuzz_model_update.c). Names in messages are quoted, so a name
 * cannot end the message.
 */
#define DTYPE_REFUSAL "(fedc reads F32 only)"
static int is_dtype_refusal(const char *msg) {
  size_t n = strlen(msg), k = sizeof DTYPE_REFUSAL - 1;
  return n >= k && memcmp(msg + n - k, DTYPE_REFUSAL, k) == 0;
}

int fedc_model_decode(const fedc_model_spec *spec, const uint8_t *bytes,
                      size_t len, float *w, fedc_st_file **file) {
  if (file) *file = NULL;
  fedc_st_file *f = NULL;
  int rc = fedc_st_decode(bytes, len, &f);
  if (rc == FEDC_EFORMAT && is_dtype_refusal(fedc_error_msg()))
    rc = FEDC_EUNSUPPORTED; /* a well-formed container of another dtype */
  if (rc != 0) return rc;
  size_t np = fedc_model_n_params(spec);
  float *tmp = fedc_malloc_array(np, sizeof(float));
  if (tmp == NULL) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_ENOMEM, "model: out of memory");
  }
  rc = fedc_model_from_tensors(spec, f, tmp);
  if (rc == FEDC_ENOTFOUND) rc = FEDC_ESHAPE;
  for (size_t i = 0; rc == 0 && i < np; i++)
    if (!isfinite(tmp[i]) || fabsf(tmp[i]) >= 2147483648.0f)
      rc = fedc_error_set(FEDC_ENONFINITE, "model: weight %zu is %g", i,
                          (double)tmp[i]);
  if (rc == 0) memcpy(w, tmp, np * sizeof(float));
  fedc_free(tmp);
  if (rc == 0 && file) *file = f;
  else fedc_st_free(f);
  return rc;
}
