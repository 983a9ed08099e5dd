/*
 * fuzz_safetensors.c - fuzz target for the safetensors decoder, the one
 * container every model, update and checkpoint travels in.
 *
 * The input is the container's bytes. Each is decoded twice, F32 only
 * (fedc_st_decode, what updates and checkpoints use) and with U32 allowed
 * (what secure aggregation uses). Checked: only the documented error codes
 * come back and nothing is returned with them; whatever the strict decoder
 * takes the lenient one takes too, identically; a decoded file is
 * self-consistent (names, dims, the name index, metadata lookup, the data
 * section exactly covered); and re-encoding it gives bytes that decode to
 * the same tensors and metadata, bit for bit. Every fedc block allocated is
 * freed before the input is done.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "wire/safetensors.h"

/* Element count of a tensor view; the decoder has bounded it. */
static size_t elements(const fedc_st_tensor *t) {
  size_t n = 1;
  for (int32_t d = 0; d < t->ndim; d++)
    n *= (size_t)t->shape[d];
  return n;
}

/* A decoded file is what its accessors say it is. Returns the data bytes. */
static size_t check_file(const fedc_st_file *f) {
  size_t n = fedc_st_count(f), bytes = 0;
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor t, by_name;
    fedc_st_get(f, i, &t);
    FUZZ_CHECK(t.name != NULL && t.name[0] != '\0' && strlen(t.name) <= 255);
    FUZZ_CHECK(strcmp(t.name, "__metadata__") != 0);
    FUZZ_CHECK(t.ndim >= 0 && t.ndim <= FEDC_ST_MAX_DIMS);
    for (int32_t d = 0; d < t.ndim; d++)
      FUZZ_CHECK(t.shape[d] >= 0);
    FUZZ_CHECK(((uintptr_t)t.data & 63) == 0);
    FUZZ_CHECK(fedc_st_find(f, t.name, &by_name) == 0);
    FUZZ_CHECK(by_name.data == t.data && by_name.ndim == t.ndim);
    const char *dt = fedc_st_dtype(f, i);
    FUZZ_CHECK(dt != NULL && (strcmp(dt, "F32") == 0 || strcmp(dt, "U32") == 0));
    bytes += 4 * elements(&t);
  }
  fedc_st_tensor none;
  fedc_st_get(f, n, &none);
  FUZZ_CHECK(none.name == NULL);
  FUZZ_CHECK(fedc_st_dtype(f, n) == NULL);
  return bytes;
}

/* Same tensors (names, dtypes, shapes, bits) in the same order, and the
 * same metadata apart from the sha256 that every encoder writes afresh. */
static void check_same(const fedc_st_file *a, const fedc_st_file *b) {
  FUZZ_CHECK(fedc_st_count(a) == fedc_st_count(b));
  for (size_t i = 0; i < fedc_st_count(a); i++) {
    fedc_st_tensor x, y;
    fedc_st_get(a, i, &x);
    fedc_st_get(b, i, &y);
    FUZZ_CHECK(strcmp(x.name, y.name) == 0);
    FUZZ_CHECK(strcmp(fedc_st_dtype(a, i), fedc_st_dtype(b, i)) == 0);
    FUZZ_CHECK(x.ndim == y.ndim);
    for (int32_t d = 0; d < x.ndim; d++)
      FUZZ_CHECK(x.shape[d] == y.shape[d]);
    FUZZ_CHECK(memcmp(x.data, y.data, 4 * elements(&x)) == 0);
  }
}

/*
 * The metadata of a decoded file, read independently: the header parsed
 * again with cJSON. Fills out (without "sha256", which every encoder
 * writes afresh) with pointers into *tree (free it with cJSON_Delete), and
 * checks that the decoder's lookup agrees with every key.
 */
static size_t meta_of(const fedc_st_file *f, const uint8_t *buf, cJSON **tree, fedc_st_meta **out) {
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | buf[i];
  *tree = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
  FUZZ_CHECK(*tree != NULL); /* cJSON running out of memory aside */
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(*tree, "__metadata__");
  size_t n = 0;
  *out = fedc_malloc_array((size_t)cJSON_GetArraySize(m) + 1, sizeof **out);
  FUZZ_CHECK(*out != NULL);
  for (const cJSON *v = m ? m->child : NULL; v != NULL; v = v->next) {
    const char *got = fedc_st_meta_get(f, v->string);
    FUZZ_CHECK(got != NULL && cJSON_IsString(v));
    FUZZ_CHECK(strcmp(got, v->valuestring) == 0);
    if (strcmp(v->string, "sha256") == 0) continue;
    (*out)[n].key = v->string;
    (*out)[n].value = v->valuestring;
    n++;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  fedc_st_file *f = NULL, *g = NULL;
  int rc = fedc_st_decode(data, size, &f);
  FUZZ_CHECK(FUZZ_ONE_OF(rc, 0, FEDC_EFORMAT, FEDC_ECHECKSUM, FEDC_ETOOBIG, FEDC_ENOMEM));
  FUZZ_CHECK((rc == 0) == (f != NULL));
  int rc_u32 = fedc_st_decode_ex(data, size, FEDC_ST_ALLOW_U32, &g);
  FUZZ_CHECK(FUZZ_ONE_OF(rc_u32, 0, FEDC_EFORMAT, FEDC_ECHECKSUM, FEDC_ETOOBIG, FEDC_ENOMEM));
  FUZZ_CHECK((rc_u32 == 0) == (g != NULL));
  if (rc == 0) {
    FUZZ_CHECK(rc_u32 == 0);
    check_same(f, g);
    for (size_t i = 0; i < fedc_st_count(f); i++)
      FUZZ_CHECK(strcmp(fedc_st_dtype(f, i), "F32") == 0);
  }
  if (rc_u32 == 0 && rc != 0 && rc != FEDC_ENOMEM) {
    /* only a U32 tensor may tell the two decoders apart */
    int any_u32 = 0;
    for (size_t i = 0; i < fedc_st_count(g); i++)
      any_u32 |= strcmp(fedc_st_dtype(g, i), "U32") == 0;
    FUZZ_CHECK(any_u32);
  }
  if (rc_u32 == 0) {
    size_t bytes = check_file(g);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
      hlen = (hlen << 8) | data[i];
    FUZZ_CHECK(bytes == size - 8 - hlen);
    const char *sha = fedc_st_meta_get(g, "sha256");
    FUZZ_CHECK(sha == NULL || strlen(sha) == 64);
  }

  /* Round trip: re-encode the F32 file with its metadata and decode. */
  if (rc == 0) {
    size_t n = fedc_st_count(f);
    fedc_st_tensor *t = fedc_calloc(n ? n : 1, sizeof *t);
    fedc_st_meta *meta = NULL;
    cJSON *tree = NULL;
    FUZZ_CHECK(t != NULL);
    for (size_t i = 0; i < n; i++)
      fedc_st_get(f, i, &t[i]);
    size_t n_meta = meta_of(f, data, &tree, &meta);
    uint8_t *buf = NULL;
    size_t len = 0;
    int erc = fedc_st_encode(t, n, meta, n_meta, &buf, &len);
    FUZZ_CHECK(erc == 0 || erc == FEDC_ENOMEM);
    if (erc == 0) {
      fedc_st_file *h = NULL;
      int drc = fedc_st_decode(buf, len, &h);
      FUZZ_CHECK(drc == 0 || drc == FEDC_ENOMEM);
      if (drc == 0) {
        check_same(f, h);
        for (size_t k = 0; k < n_meta; k++) {
          const char *v = fedc_st_meta_get(h, meta[k].key);
          FUZZ_CHECK(v != NULL && strcmp(v, meta[k].value) == 0);
        }
        FUZZ_CHECK(fedc_st_meta_get(h, "sha256") != NULL);
        fedc_st_free(h);
      }
      fedc_free(buf);
    }
    cJSON_Delete(tree);
    fedc_free(meta);
    fedc_free(t);
  }

  /* A lone 1-D U32 tensor goes through its own encoder. */
  if (rc_u32 == 0 && fedc_st_count(g) == 1 && strcmp(fedc_st_dtype(g, 0), "U32") == 0) {
    fedc_st_tensor t;
    fedc_st_get(g, 0, &t);
    const uint32_t *words = NULL;
    size_t nw = 0;
    FUZZ_CHECK(fedc_st_find_u32(g, t.name, &words, &nw) == 0);
    FUZZ_CHECK(nw == elements(&t));
    if (t.ndim == 1) {
      uint8_t *buf = NULL;
      size_t len = 0;
      int erc = fedc_st_encode_u32(t.name, words, nw, NULL, 0, &buf, &len);
      FUZZ_CHECK(erc == 0 || erc == FEDC_ENOMEM);
      if (erc == 0) {
        fedc_st_file *h = NULL;
        FUZZ_CHECK(fedc_st_decode(buf, len, &h) == FEDC_EFORMAT);
        int drc = fedc_st_decode_ex(buf, len, FEDC_ST_ALLOW_U32, &h);
        FUZZ_CHECK(drc == 0 || drc == FEDC_ENOMEM);
        if (drc == 0) {
          check_same(g, h);
          fedc_st_free(h);
        }
        fedc_free(buf);
      }
    }
  }
  fedc_st_free(f);
  fedc_st_free(g);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
