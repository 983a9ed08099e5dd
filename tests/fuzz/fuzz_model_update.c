/*
 * fuzz_model_update.c - fuzz target for update validation: what the
 * coordinator does with the body of POST /v1/update before anything
 * touches its state (coordinator.c's update_run): fedc_model_decode
 * against the job's model, then the metadata rules (fedc_update_meta_parse).
 *
 * The input is the container's bytes, checked against two small jobs: a
 * softmax model (4 inputs, 3 classes: layers.0.weight [3,4], layers.0.bias
 * [3]) and an mlp (4 -> 5 -> 3). Checked: only the documented error codes;
 * a refused update leaves the caller's weights untouched; an accepted one
 * has only finite weights below 2^31 and metadata in range; a bad_dtype
 * refusal (FEDC_EUNSUPPORTED) comes only for a header that has a tensor of
 * another dtype; and an accepted update encoded again the way the client
 * encodes it (weights, round, num_samples, train_loss) decodes to the same
 * weights and metadata, bit for bit. Every fedc block allocated is freed
 * before the input is done.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "ml/model.h"
#include "ml/model_io.h"
#include "wire/update_meta.h"

#define MAX_PARAMS 64
#define SENTINEL 0x7fc0beefu /* a NaN no decode produces for an accepted update */

/*
 * FEDC_EUNSUPPORTED (answered as bad_dtype, "a tensor is not F32") must
 * mean what it says: the header, parsed here independently, has a tensor
 * entry whose dtype is a string other than "F32".
 */
static int has_other_dtype(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | data[i];
  if (hlen > size - 8) return 0;
  cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)hlen);
  int found = 0;
  for (const cJSON *t = root ? root->child : NULL; t && !found; t = t->next) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    found = cJSON_IsString(dt) && strcmp(dt->valuestring, "F32") != 0;
  }
  cJSON_Delete(root);
  return found;
}

static void check_spec(const fedc_model_spec *spec, const uint8_t *data, size_t size) {
  size_t np = fedc_model_n_params(spec);
  FUZZ_CHECK(np <= MAX_PARAMS);
  float w[MAX_PARAMS];
  uint32_t sentinel = SENTINEL;
  for (size_t i = 0; i < np; i++)
    memcpy(&w[i], &sentinel, 4);

  fedc_st_file *f = NULL;
  int rc = fedc_model_decode(spec, data, size, w, &f);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_EUNSUPPORTED, FEDC_ECHECKSUM, FEDC_ETOOBIG,
                         FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ENOMEM));
  if (rc == FEDC_EUNSUPPORTED) FUZZ_CHECK(has_other_dtype(data, size));
  if (rc != 0) {
    FUZZ_CHECK(f == NULL);
    for (size_t i = 0; i < np; i++)
      FUZZ_CHECK(memcmp(&w[i], &sentinel, 4) == 0);
    return;
  }
  FUZZ_CHECK(f != NULL);
  for (size_t i = 0; i < np; i++)
    FUZZ_CHECK(isfinite(w[i]) && fabsf(w[i]) < 2147483648.0f);

  fedc_update_meta m;
  int mrc = fedc_update_meta_parse(f, &m);
  FUZZ_CHECK(mrc == 0 || mrc == FEDC_EFORMAT);
  if (mrc != 0) {
    FUZZ_CHECK(m.round == 0 && m.num_samples == 0 && m.sha256 == NULL);
    fedc_st_free(f);
    return;
  }
  FUZZ_CHECK(m.round >= 1);
  FUZZ_CHECK(m.num_samples >= 1 && m.num_samples <= FEDC_UPDATE_MAX_SAMPLES);
  FUZZ_CHECK(isfinite(m.train_loss));
  FUZZ_CHECK(m.sha256 == NULL || strlen(m.sha256) == 64);

  /* The client's encoding of the same update reads back the same. */
  char r[16], n[24], l[40];
  snprintf(r, sizeof r, "%d", (int)m.round);
  snprintf(n, sizeof n, "%lld", (long long)m.num_samples);
  snprintf(l, sizeof l, "%.17g", m.train_loss);
  fedc_st_meta meta[3] = {{"round", r}, {"num_samples", n}, {"train_loss", l}};
  uint8_t *buf = NULL;
  size_t len = 0;
  int erc = fedc_model_encode(spec, w, meta, 3, &buf, &len);
  FUZZ_CHECK(erc == 0 || erc == FEDC_ENOMEM);
  if (erc == 0) {
    float w2[MAX_PARAMS];
    fedc_st_file *g = NULL;
    int drc = fedc_model_decode(spec, buf, len, w2, &g);
    FUZZ_CHECK(drc == 0 || drc == FEDC_ENOMEM);
    if (drc == 0) {
      FUZZ_CHECK(memcmp(w, w2, np * sizeof(float)) == 0);
      fedc_update_meta m2;
      FUZZ_CHECK(fedc_update_meta_parse(g, &m2) == 0);
      FUZZ_CHECK(m2.round == m.round && m2.num_samples == m.num_samples);
      FUZZ_CHECK(memcmp(&m2.train_loss, &m.train_loss, sizeof(double)) == 0 ||
                 m2.train_loss == m.train_loss);
      FUZZ_CHECK(m2.sha256 != NULL && strlen(m2.sha256) == 64);
      fedc_st_free(g);
    }
    fedc_free(buf);
  }
  fedc_st_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  fedc_model_spec softmax = {.type = FEDC_MODEL_SOFTMAX, .n_in = 4, .n_out = 3};
  fedc_model_spec mlp = {
      .type = FEDC_MODEL_MLP, .n_in = 4, .n_out = 3, .n_hidden = 1, .hidden = {5}};
  check_spec(&softmax, data, size);
  check_spec(&mlp, data, size);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
