/*
 * test_safetensors.c - the safetensors container: round trips, the exact
 * bytes of a small file against the spec, refusal of every kind of
 * malformed input a peer could send (each with the right code and a
 * message naming the problem), atomic file writes, and allocation-failure
 * loops showing that every out-of-memory path returns FEDC_ENOMEM and
 * leaks nothing. Every test also checks that it leaked no fedc block.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/safetensors.h"

static int64_t live_at_start;

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

/* The message of the last error must mention what went wrong. */
static void assert_msg_has(const char *needle) {
  const char *msg = fedc_error_msg();
  if (strstr(msg, needle) == NULL)
    fail_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* ---- fixtures -------------------------------------------------------- */

static float w2[3 * 4];
static float b1[5];
static float s0[1];

static void fill(void) {
  for (int i = 0; i < 12; i++) w2[i] = (float)i * 0.25f - 1.0f;
  w2[3] = -0.0f;
  w2[7] = 1e-45f; /* a denormal */
  w2[11] = 3.0e38f;
  for (int i = 0; i < 5; i++) b1[i] = (float)(i * i) + 0.5f;
  s0[0] = 42.125f;
}

static size_t three_tensors(fedc_st_tensor *t) {
  fill();
  memset(t, 0, 4 * sizeof *t);
  t[0].name = "layers.0.weight";
  t[0].ndim = 2;
  t[0].shape[0] = 3;
  t[0].shape[1] = 4;
  t[0].data = w2;
  t[1].name = "layers.0.bias";
  t[1].ndim = 1;
  t[1].shape[0] = 5;
  t[1].data = b1;
  t[2].name = "scale";
  t[2].ndim = 0;
  t[2].data = s0;
  t[3].name = "empty";
  t[3].ndim = 2;
  t[3].shape[0] = 0;
  t[3].shape[1] = 7;
  t[3].data = NULL;
  return 4;
}

static const fedc_st_meta two_meta[] = {{"round", "7"},
                                        {"samples", "1234"}};

/* Header json (padded to a multiple of 8 with spaces) plus data, in a
 * malloc'd buffer of exactly the right size so ASan sees any overread. */
static uint8_t *raw_file(const char *json, const void *data, size_t dlen,
                         size_t *len) {
  size_t h = strlen(json);
  size_t hp = (h + 7) & ~(size_t)7;
  *len = 8 + hp + dlen;
  uint8_t *buf = malloc(*len);
  assert_non_null(buf);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hp >> (8 * i));
  memcpy(buf + 8, json, h);
  memset(buf + 8 + h, ' ', hp - h);
  if (dlen) memcpy(buf + 8 + hp, data, dlen);
  return buf;
}

/* Decode a hand-made file and expect the code and a message naming it. */
static void expect_refused(const char *json, size_t dlen, int code,
                           const char *needle) {
  static const uint8_t zeros[256];
  assert_true(dlen <= sizeof zeros);
  size_t len;
  uint8_t *buf = raw_file(json, zeros, dlen, &len);
  fedc_st_file *f = (fedc_st_file *)&f; /* must be reset to NULL */
  fedc_error_clear();
  int rc = fedc_st_decode(buf, len, &f);
  if (rc != code)
    fail_msg("header %s: got %s (%s), want %s", json, fedc_err_name(rc),
             fedc_error_msg(), fedc_err_name(code));
  assert_null(f);
  assert_msg_has(needle);
  free(buf);
}

/* ---- round trips ------------------------------------------------------ */

static void test_round_trip(void **state) {
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, n, two_meta, 2, &buf, &len), 0);

  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  assert_int_equal(fedc_st_count(f), n);
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor g;
    fedc_st_get(f, i, &g);
    assert_string_equal(g.name, t[i].name);
    assert_int_equal(g.ndim, t[i].ndim);
    size_t elems = 1;
    for (int d = 0; d < g.ndim; d++) {
      assert_int_equal(g.shape[d], t[i].shape[d]);
      elems *= (size_t)g.shape[d];
    }
    assert_true(((uintptr_t)g.data & 63) == 0);
    if (elems) assert_memory_equal(g.data, t[i].data, elems * sizeof(float));

    fedc_st_tensor h;
    assert_int_equal(fedc_st_find(f, t[i].name, &h), 0);
    assert_ptr_equal(h.data, g.data);
  }
  fedc_st_tensor none;
  assert_int_equal(fedc_st_find(f, "layers.1.weight", &none), FEDC_ENOTFOUND);
  assert_msg_has("layers.1.weight");

  assert_string_equal(fedc_st_meta_get(f, "round"), "7");
  assert_string_equal(fedc_st_meta_get(f, "samples"), "1234");
  assert_null(fedc_st_meta_get(f, "absent"));
  const char *sha = fedc_st_meta_get(f, "sha256");
  assert_non_null(sha);
  assert_int_equal(strlen(sha), 64);
  for (const char *p = sha; *p; p++)
    assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
  /* Data starts 8-byte aligned; the section is exactly the tensors. */
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  assert_int_equal((8 + hlen) % 8, 0);
  assert_int_equal(len - 8 - hlen, (12 + 5 + 1) * 4);

  fedc_st_free(f);
  fedc_free(buf);
}

static void test_empty_container(void **state) {
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(NULL, 0, NULL, 0, &buf, &len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  assert_int_equal(fedc_st_count(f), 0);
  assert_non_null(fedc_st_meta_get(f, "sha256"));
  fedc_st_free(f);
  fedc_free(buf);
}

/* A tiny file, byte for byte, as the spec describes it. */
static void test_exact_bytes(void **state) {
  static const float v[2] = {1.0f, -2.0f};
  fedc_st_tensor t = {"w", 1, {2, 0, 0, 0}, v};
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(&t, 1, NULL, 0, &buf, &len), 0);

  static const char json[] =
      "{\"__metadata__\":{\"sha256\":\"ee4ac73c2bd27756ab82780f27c73a7bc4d3f0b"
      "b6acb37e008bc27eccd7e588b\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,8]}}";
  assert_int_equal(strlen(json), 147);
  /* u64 LE header size: 147 padded with spaces to 152 = 0x98. */
  static const uint8_t size_field[8] = {0x98, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(len, 8 + 152 + 8);
  assert_memory_equal(buf, size_field, 8);
  assert_memory_equal(buf + 8, json, 147);
  for (size_t i = 8 + 147; i < 8 + 152; i++) assert_int_equal(buf[i], ' ');
  /* 1.0f = 0x3f800000 and -2.0f = 0xc0000000, little-endian. */
  static const uint8_t data[8] = {0x00, 0x00, 0x80, 0x3f,
                                  0x00, 0x00, 0x00, 0xc0};
  assert_memory_equal(buf + 160, data, 8);

  /* And the header parses to the expected fields. */
  cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, 152);
  assert_non_null(root);
  cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "w");
  assert_string_equal(
      cJSON_GetObjectItemCaseSensitive(w, "dtype")->valuestring, "F32");
  cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
  assert_int_equal(cJSON_GetArraySize(shape), 1);
  assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 2);
  cJSON *offs = cJSON_GetObjectItemCaseSensitive(w, "data_offsets");
  assert_int_equal(cJSON_GetArrayItem(offs, 0)->valueint, 0);
  assert_int_equal(cJSON_GetArrayItem(offs, 1)->valueint, 8);
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
  assert_int_equal(cJSON_GetArraySize(meta), 1);
  assert_int_equal(cJSON_GetArraySize(root), 2);
  cJSON_Delete(root);
  fedc_free(buf);
}

/* Names with quotes, backslashes, control bytes and UTF-8 survive. */
static void test_names_escaped(void **state) {
  static const float v[1] = {3.0f};
  fedc_st_tensor t[2] = {{"a\"b\\c\n\x01", 0, {0}, v},
                         {"caf\xc3\xa9.\xe2\x82\xac", 0, {0}, v}};
  fedc_st_meta m[1] = {{"note", "line1\nline2 \"q\""}};
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, 2, m, 1, &buf, &len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  fedc_st_tensor g;
  assert_int_equal(fedc_st_find(f, t[0].name, &g), 0);
  assert_int_equal(fedc_st_find(f, t[1].name, &g), 0);
  assert_string_equal(fedc_st_meta_get(f, "note"), m[0].value);
  fedc_st_free(f);
  fedc_free(buf);
}

/* ---- encode refusals ---------------------------------------------------- */

static void expect_encode_refused(const fedc_st_tensor *t, size_t n,
                                  const fedc_st_meta *m, size_t nm,
                                  const char *needle) {
  uint8_t *buf = (uint8_t *)&buf;
  size_t len = 99;
  fedc_error_clear();
  assert_int_equal(fedc_st_encode(t, n, m, nm, &buf, &len), FEDC_EINVAL);
  assert_null(buf);
  assert_int_equal(len, 0);
  assert_msg_has(needle);
}

static void test_encode_refuses(void **state) {
  static const float v[4] = {0};
  char longname[300];
  memset(longname, 'x', 256);
  longname[256] = '\0';
  fedc_st_tensor t[2] = {{"a", 1, {4}, v}, {"b", 1, {4}, v}};

  t[1].name = "";
  expect_encode_refused(t, 2, NULL, 0, "no name");
  t[1].name = longname;
  expect_encode_refused(t, 2, NULL, 0, "longer than 255");
  longname[255] = '\0'; /* exactly 255 is fine */
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, 2, NULL, 0, &buf, &len), 0);
  fedc_free(buf);
  t[1].name = "a";
  expect_encode_refused(t, 2, NULL, 0, "duplicate tensor name 'a'");
  t[1].name = "__metadata__";
  expect_encode_refused(t, 2, NULL, 0, "__metadata__");
  t[1].name = "bad\xff";
  expect_encode_refused(t, 2, NULL, 0, "UTF-8");
  t[1].name = "b";
  t[1].ndim = 5;
  expect_encode_refused(t, 2, NULL, 0, "5 dims");
  t[1].ndim = 2;
  t[1].shape[1] = -1;
  expect_encode_refused(t, 2, NULL, 0, "negative dim");
  t[1].ndim = 1;
  t[1].data = NULL;
  expect_encode_refused(t, 2, NULL, 0, "no data");
  t[1].data = v;

  fedc_st_meta m[2] = {{"k", "1"}, {"k", "2"}};
  expect_encode_refused(t, 2, m, 2, "duplicate metadata key 'k'");
  m[1].key = "sha256";
  expect_encode_refused(t, 2, m, 2, "sha256");
  m[1].key = "j";
  m[1].value = NULL;
  expect_encode_refused(t, 2, m, 2, "metadata");
}

/* ---- decode refusals ---------------------------------------------------- */

static void test_truncated_everywhere(void **state) {
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  uint8_t *full;
  size_t len;
  assert_int_equal(fedc_st_encode(t, n, two_meta, 2, &full, &len), 0);
  for (size_t cut = 0; cut < len; cut++) {
    uint8_t *buf = malloc(cut ? cut : 1);
    memcpy(buf, full, cut);
    fedc_st_file *f = NULL;
    fedc_error_clear();
    int rc = fedc_st_decode(buf, cut, &f);
    if (rc != FEDC_EFORMAT)
      fail_msg("cut at %zu: got %s (%s)", cut, fedc_err_name(rc),
               fedc_error_msg());
    assert_null(f);
    assert_true(strlen(fedc_error_msg()) > 12);
    free(buf);
  }
  fedc_free(full);
}

static void test_header_length_too_large(void **state) {
  size_t len;
  uint8_t *buf = raw_file("{}", NULL, 0, &len);
  buf[0] = 200; /* more than the 8 bytes that follow */
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), FEDC_EFORMAT);
  assert_msg_has("exceeds");
  /* Over the hard limit: too big, whatever the buffer holds. */
  memset(buf, 0, 8);
  buf[3] = 0x10; /* 0x10000000 = 256 MiB */
  assert_int_equal(fedc_st_decode(buf, len, &f), FEDC_ETOOBIG);
  assert_msg_has("limit");
  memset(buf, 0xff, 8);
  assert_int_equal(fedc_st_decode(buf, len, &f), FEDC_ETOOBIG);
  free(buf);
}

static void test_not_json(void **state) {
  expect_refused("{this is not json}", 0, FEDC_EFORMAT, "not valid JSON");
  expect_refused("{\"a\":{\"dtype\":\"F32\"", 0, FEDC_EFORMAT,
                 "not valid JSON");
  expect_refused("[1,2]", 0, FEDC_EFORMAT, "'{'");
  expect_refused("{}x", 0, FEDC_EFORMAT, "after the JSON object");
  expect_refused("{}\n", 0, FEDC_EFORMAT, "after the JSON object");
  expect_refused("{\"a\x01\":1}", 0, FEDC_EFORMAT, "control byte");
  expect_refused("{\"a\xc0\xaf\":1}", 0, FEDC_EFORMAT, "UTF-8");
  expect_refused("{\"a\xed\xa0\x80\":1}", 0, FEDC_EFORMAT, "UTF-8");
  expect_refused("{\"a\\u0000b\":1}", 0, FEDC_EFORMAT, "\\u0000");
  expect_refused("{\"a\":{\"b\":{\"c\":[1]}}}", 0, FEDC_EFORMAT, "deeper");
  expect_refused("{\"a\":1}", 0, FEDC_EFORMAT, "not an object");
}

static void test_dtype_refused(void **state) {
  expect_refused(
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
      FEDC_EFORMAT, "dtype F16 not supported");
  expect_refused(
      "{\"h\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
      FEDC_EFORMAT, "dtype F31 unknown");
  expect_refused("{\"h\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "dtype is not a string");
}

static void test_fields_refused(void **state) {
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, FEDC_EFORMAT,
                 "missing field 'data_offsets'");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8],\"extra\":1}}",
                 8, FEDC_EFORMAT, "unknown field 'extra'");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],"
                 "\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "field 'shape' repeated");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":"
                 "[0,8]}}",
                 8, FEDC_EFORMAT, "shape is not an array");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],"
                 "\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "5 dims");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":"
                 "[0,8]}}",
                 8, FEDC_EFORMAT, "'2.5'");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":"
                 "[0,8]}}",
                 8, FEDC_EFORMAT, "not a plain integer");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[\"2\"],"
                 "\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "shape[0]");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
                 "4294967296],\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "overflows");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],"
                 "\"data_offsets\":[0,8]}}",
                 8, FEDC_EFORMAT, "below 2^53");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8,8]}}",
                 8, FEDC_EFORMAT, "data_offsets is not two");
  expect_refused("{\"h\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[8,0]}}",
                 8, FEDC_EFORMAT, "do not match shape");
  expect_refused("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]}}",
                 8, FEDC_EFORMAT, "empty name");
}

static void test_shape_offset_mismatch(void **state) {
  expect_refused("{\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                 "\"data_offsets\":[0,12]}}",
                 12, FEDC_EFORMAT,
                 "tensor 'layers.0.weight': data_offsets [0,12] do not match "
                 "shape [2,2] of F32");
}

static void test_overlap_gap_trailing(void **state) {
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                 "\"data_offsets\":[4,12]}}",
                 12, FEDC_EFORMAT, "overlapping");
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                 "\"data_offsets\":[12,20]}}",
                 20, FEDC_EFORMAT, "gap between tensors");
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[4,12]}}",
                 12, FEDC_EFORMAT, "gap between tensors");
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]}}",
                 12, FEDC_EFORMAT, "trailing bytes");
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]}}",
                 4, FEDC_EFORMAT, "truncated data");
  /* Out of order in the header but contiguous: accepted, header order kept. */
  static const float v[3] = {1, 2, 3};
  size_t len;
  uint8_t *buf = raw_file(
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
      v, sizeof v, &len);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  fedc_st_tensor g;
  fedc_st_get(f, 0, &g);
  assert_string_equal(g.name, "b");
  assert_true(g.data[0] == 3.0f);
  fedc_st_get(f, 1, &g);
  assert_string_equal(g.name, "a");
  assert_true(g.data[0] == 1.0f && g.data[1] == 2.0f);
  fedc_st_get(f, 2, &g);
  assert_null(g.name);
  fedc_st_free(f);
  free(buf);
}

static void test_negative_dim(void **state) {
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":"
                 "[0,8]}}",
                 8, FEDC_EFORMAT, "tensor 'a': shape[0] is a negative dim");
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[-8,0]}}",
                 8, FEDC_EFORMAT, "data_offsets is not two");
}

static void test_checksum(void **state) {
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, n, two_meta, 2, &buf, &len), 0);
  fedc_st_file *f = NULL;
  for (size_t i = len - 72; i < len; i += 7) {
    buf[i] ^= 0x01;
    assert_int_equal(fedc_st_decode(buf, len, &f), FEDC_ECHECKSUM);
    assert_null(f);
    assert_msg_has("sha256");
    buf[i] ^= 0x01;
  }
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  fedc_st_free(f);
  fedc_free(buf);

  expect_refused("{\"__metadata__\":{\"sha256\":\"abc\"}}", 0, FEDC_EFORMAT,
                 "sha256 is not 64 hex digits");
}

static void test_duplicates(void **state) {
  expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
                 "[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                 "\"data_offsets\":[4,8]}}",
                 8, FEDC_EFORMAT, "duplicate key 'a'");
  expect_refused("{\"__metadata__\":{},\"__metadata__\":{}}", 0, FEDC_EFORMAT,
                 "duplicate key '__metadata__'");
  expect_refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
                 FEDC_EFORMAT, "duplicate metadata key 'k'");
}

static void test_metadata_refused(void **state) {
  expect_refused("{\"__metadata__\":{\"round\":7}}", 0, FEDC_EFORMAT,
                 "metadata 'round' is not a string");
  expect_refused("{\"__metadata__\":[\"x\"]}", 0, FEDC_EFORMAT,
                 "__metadata__ is not an object");
}

/* Hostile text in a name cannot forge the message. */
static void test_message_sanitised(void **state) {
  expect_refused("{\"evil\\nINFO x\":{\"dtype\":\"F16\",\"shape\":[2],"
                 "\"data_offsets\":[0,4]}}",
                 4, FEDC_EFORMAT, "evil?INFO x");
}

/* ---- files -------------------------------------------------------------- */

static void test_file_round_trip(void **state) {
  char dir[] = "/tmp/fedc_st_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);

  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  assert_int_equal(fedc_st_write_file(path, t, n, two_meta, 2), 0);
  /* Writing again replaces the file atomically. */
  assert_int_equal(fedc_st_write_file(path, t, n, two_meta, 2), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_read_file(path, &f), 0);
  assert_int_equal(fedc_st_count(f), n);
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor g;
    assert_int_equal(fedc_st_find(f, t[i].name, &g), 0);
    assert_int_equal(g.ndim, t[i].ndim);
    size_t elems = 1;
    for (int d = 0; d < g.ndim; d++) elems *= (size_t)g.shape[d];
    if (elems) assert_memory_equal(g.data, t[i].data, elems * 4);
  }
  assert_string_equal(fedc_st_meta_get(f, "round"), "7");
  fedc_st_free(f);

  /* Only the file itself is left in the directory. */
  DIR *d = opendir(dir);
  assert_non_null(d);
  int entries = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') entries++;
  closedir(d);
  assert_int_equal(entries, 1);

  /* A damaged file names itself in the error. */
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  fseek(fp, -1, SEEK_END);
  fputc(0x55, fp);
  fclose(fp);
  assert_int_equal(fedc_st_read_file(path, &f), FEDC_ECHECKSUM);
  assert_null(f);
  assert_msg_has(path);

  unlink(path);
  assert_int_equal(fedc_st_read_file(path, &f), FEDC_EIO);
  assert_msg_has(path);
  rmdir(dir);
}

static void test_write_missing_dir(void **state) {
  char dir[] = "/tmp/fedc_st_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/missing/model.safetensors", dir);
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  assert_int_equal(fedc_st_write_file(path, t, n, NULL, 0), FEDC_EIO);
  assert_msg_has(path);
  assert_msg_has("No such file");

  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  assert_int_not_equal(access(tmp, F_OK), 0);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') fail_msg("left behind: %s", e->d_name);
  closedir(d);
  assert_int_equal(rmdir(dir), 0);
}

/* ---- allocation failure ------------------------------------------------ */

static void test_alloc_failure_encode(void **state) {
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  int64_t live0 = fedc_alloc_live();
  int64_t k;
  for (k = 1;; k++) {
    uint8_t *buf = NULL;
    size_t len;
    fedc_alloc_fail_after(k, 1);
    int rc = fedc_st_encode(t, n, two_meta, 2, &buf, &len);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      fedc_free(buf);
      break;
    }
    assert_int_equal(rc, FEDC_ENOMEM);
    assert_null(buf);
    assert_int_equal(fedc_alloc_live(), live0);
  }
  assert_true(k > 2);
}

static void test_alloc_failure_decode(void **state) {
  fedc_st_tensor t[4];
  size_t n = three_tensors(t);
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(t, n, two_meta, 2, &buf, &len), 0);
  int64_t live0 = fedc_alloc_live();
  int64_t k;
  for (k = 1;; k++) {
    fedc_st_file *f = NULL;
    fedc_alloc_fail_after(k, 1);
    int rc = fedc_st_decode(buf, len, &f);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) {
      assert_int_equal(fedc_st_count(f), n);
      fedc_st_free(f);
      break;
    }
    if (rc != FEDC_ENOMEM)
      fail_msg("allocation %lld failing gave %s (%s)", (long long)k,
               fedc_err_name(rc), fedc_error_msg());
    assert_null(f);
    assert_int_equal(fedc_alloc_live(), live0);
  }
  /* Every one of the decoder's own allocations (the header copy, the
   * entries, the result's parts) failed once; cJSON allocates with the C
   * library's malloc, which no hook redirects (no process-global state). */
  fedc_free(buf);
  fprintf(stderr, "decode: %lld allocations\n", (long long)k - 1);
  assert_true(k > 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_round_trip),
      T(test_empty_container),
      T(test_exact_bytes),
      T(test_names_escaped),
      T(test_encode_refuses),
      T(test_truncated_everywhere),
      T(test_header_length_too_large),
      T(test_not_json),
      T(test_dtype_refused),
      T(test_fields_refused),
      T(test_shape_offset_mismatch),
      T(test_overlap_gap_trailing),
      T(test_negative_dim),
      T(test_checksum),
      T(test_duplicates),
      T(test_metadata_refused),
      T(test_message_sanitised),
      T(test_file_round_trip),
      T(test_write_missing_dir),
      T(test_alloc_failure_encode),
      T(test_alloc_failure_decode),
#undef T
  };
  return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
