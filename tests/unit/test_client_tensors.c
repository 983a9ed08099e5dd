/*
 * test_client_tensors.c - the client's containers of any dtype
 * (client/tensor_update.c, over the wire layer's reader and writer) and
 * the tensor job's join: a container of F32, F16, BF16 and I64 tensors
 * read; an update compared with
 * the model (a missing, extra, retyped or reshaped tensor each named);
 * non-finite F32, F16 and BF16 values found, integers never; encoding
 * again with new metadata keeps every data byte and adds a correct
 * sha256; damaged containers refused; a join whose model type is
 * "tensors" parsed without inputs or classes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"

static int64_t live_at_start;

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

static void assert_msg_has(const char *needle) {
  const char *msg = fedc_error_msg();
  if (strstr(msg, needle) == NULL)
    fail_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* A container from a header (without its length) and data bytes. */
static size_t make(uint8_t *out, const char *header, const uint8_t *data, size_t data_len) {
  size_t n = strlen(header);
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)n >> (8 * i));
  memcpy(out + 8, header, n);
  memcpy(out + 8 + n, data, data_len);
  return 8 + n + data_len;
}

/* w: F32 [2] (1, 2); h: F16 [2] (1, -2); b: BF16 [1] (1); n: I64 [] (7) */
static const uint8_t data[] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, /* w */
                               0x00, 0x3c, 0x00, 0xc0,         /* h */
                               0x80, 0x3f,                     /* b */
                               7, 0, 0, 0, 0, 0, 0, 0};        /* n */
static const char model_header[] =
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
    "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[14,22]}}";

static void test_view(void **state) {
  uint8_t buf[1024];
  size_t len = make(buf, model_header, data, sizeof data);
  fedc_client_st_view v;
  assert_int_equal(fedc__client_st_view(buf, len, &v), 0);
  assert_int_equal(v.n, 4);
  assert_string_equal(v.t[1].name, "h");
  assert_string_equal(v.t[1].dtype, "F16");
  assert_int_equal(v.t[1].elem, 2);
  assert_int_equal(v.t[3].ndim, 0);
  assert_int_equal(v.t[3].count, 1);
  size_t bytes = 0;
  for (size_t i = 0; i < v.n; i++) bytes += v.t[i].count * (size_t)v.t[i].elem;
  assert_int_equal(bytes, sizeof data);
  assert_memory_equal(v.t[1].data, data + 8, 4);
  assert_null(fedc__client_st_meta(&v, "sha256"));
  assert_int_equal(fedc__client_st_finite(&v, 1), 0);
  fedc__client_st_view_free(&v);
}

static void test_refused(void **state) {
  uint8_t buf[1024];
  const char *bad[][2] = {
      {"{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,22]}}", "dtype Q7 unknown"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,22]}}", "do not match shape [3] of F32"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "trailing bytes"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[22],\"data_offsets\":[0,22]},"
       "\"v\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}",
       "overlapping tensors"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[22],\"data_offsets\":[0,23]}}", "[0,23] do not match"},
      {"[1, 2]", "does not start with '{'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t len = make(buf, bad[i][0], data, sizeof data);
    fedc_client_st_view v;
    fedc_error_clear();
    if (fedc__client_st_view(buf, len, &v) != FEDC_EFORMAT) fail_msg("case %zu accepted", i);
    assert_msg_has(bad[i][1]);
  }
  fedc_client_st_view v;
  assert_int_equal(fedc__client_st_view(buf, 5, &v), FEDC_EFORMAT);
  /* a sha256 that is not the data's */
  size_t len = make(buf,
                    "{\"__metadata__\":{\"sha256\":\"00000000000000000000000000000000000000000000"
                    "00000000000000000000\"},"
                    "\"w\":{\"dtype\":\"U8\",\"shape\":[22],\"data_offsets\":[0,22]}}",
                    data, sizeof data);
  assert_int_equal(fedc__client_st_view(buf, len, &v), FEDC_ECHECKSUM);
}

/* The update against the model: each difference named. */
static void test_same_layout(void **state) {
  uint8_t mb[1024], ub[1024];
  fedc_client_st_view m, u;
  assert_int_equal(fedc__client_st_view(mb, make(mb, model_header, data, sizeof data), &m), 0);
  struct {
    const char *header, *says;
  } cases[] = {
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
       "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
       "\"x\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[14,22]}}",
       "no tensor 'n'"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"h\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
       "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
       "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[14,22]}}",
       "tensor 'h' is F32 in the update, F16 in the global model"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
       "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
       "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
       "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[14,22]}}",
       "tensor 'w' has shape [1, 2] in the update, [2] in the global model"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
       "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
       "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[14,22]},"
       "\"extra\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[22,22]}}",
       "tensor 'extra' of the update is not in the global model"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(fedc__client_st_view(ub, make(ub, cases[i].header, data, sizeof data), &u), 0);
    fedc_error_clear();
    assert_int_not_equal(fedc__client_st_same_layout(&m, &u, 3), 0);
    assert_int_equal(fedc_error_sub(), FEDC_SUB_TRAINER_FAILED);
    assert_msg_has(cases[i].says);
    assert_msg_has("round 3");
    fedc__client_st_view_free(&u);
  }
  assert_int_equal(fedc__client_st_view(ub, make(ub, model_header, data, sizeof data), &u), 0);
  assert_int_equal(fedc__client_st_same_layout(&m, &u, 3), 0);
  fedc__client_st_view_free(&u);
  fedc__client_st_view_free(&m);
}

/* NaN and infinity in each float dtype; integers are never "not finite". */
static void test_finite(void **state) {
  struct {
    size_t at;
    uint8_t lo, hi;
    const char *says;
  } cases[] = {
      {6, 0xc0, 0x7f, "'w'[1]"}, /* F32 NaN: 0x7fc00000 */
      {6, 0x80, 0xff, "'w'[1]"}, /* F32 -inf: 0xff800000 */
      {10, 0x00, 0x7c, "'h'[1]"}, /* F16 +inf */
      {12, 0xc0, 0x7f, "'b'[0]"}, /* BF16 NaN */
  };
  uint8_t buf[1024], d[sizeof data];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(d, data, sizeof d);
    d[cases[i].at] = cases[i].lo;
    d[cases[i].at + 1] = cases[i].hi;
    fedc_client_st_view v;
    assert_int_equal(fedc__client_st_view(buf, make(buf, model_header, d, sizeof d), &v), 0);
    fedc_error_clear();
    assert_int_equal(fedc__client_st_finite(&v, 2), FEDC_ENONFINITE);
    assert_msg_has(cases[i].says);
    fedc__client_st_view_free(&v);
  }
  memcpy(d, data, sizeof d);
  memset(d + 14, 0xff, 8); /* I64 -1: all ones, still a number */
  fedc_client_st_view v;
  assert_int_equal(fedc__client_st_view(buf, make(buf, model_header, d, sizeof d), &v), 0);
  assert_int_equal(fedc__client_st_finite(&v, 2), 0);
  fedc__client_st_view_free(&v);
}

/* Encoding again: the data bytes as they were, the new metadata and a
 * sha256 that the reader checks. */
static void test_reencode(void **state) {
  uint8_t buf[1024];
  fedc_client_st_view v, back;
  assert_int_equal(fedc__client_st_view(buf, make(buf, model_header, data, sizeof data), &v), 0);
  fedc_st_meta meta[] = {{"round", "5"}, {"num_samples", "120"}, {"train_loss", "0.25"}};
  uint8_t *out;
  size_t len;
  assert_int_equal(fedc__client_st_reencode(&v, meta, 3, &out, &len), 0);
  assert_int_equal((len - sizeof data) % 8, 0); /* the data stays 8-byte aligned */
  assert_int_equal(fedc__client_st_view(out, len, &back), 0);
  assert_int_equal(back.n, 4);
  for (size_t i = 0, at = 0; i < back.n; i++) { /* in header order, each as it was */
    size_t nb = back.t[i].count * (size_t)back.t[i].elem;
    assert_memory_equal(back.t[i].data, data + at, nb);
    at += nb;
  }
  assert_string_equal(fedc__client_st_meta(&back, "num_samples"), "120");
  assert_string_equal(fedc__client_st_meta(&back, "round"), "5");
  assert_non_null(fedc__client_st_meta(&back, "sha256"));
  assert_int_equal(fedc__client_st_same_layout(&v, &back, 5), 0);
  /* a flipped data byte now fails the checksum */
  out[len - 1] ^= 1;
  fedc_client_st_view bad;
  assert_int_equal(fedc__client_st_view(out, len, &bad), FEDC_ECHECKSUM);
  fedc__client_st_view_free(&back);
  fedc__client_st_view_free(&v);
  fedc_free(out);
}

/*
 * Encoding again in place (the client's path for a trainer's update): the
 * header lists the tensors in another order than their data, padded to
 * `pad` bytes (a header that grows and one that shrinks); the result is the
 * new metadata over the very same data section, byte for byte (the data not
 * re-laid in header order: it was not copied), a valid container with each
 * tensor's bytes as they were.
 */
static void reencode_in_place(size_t pad) {
  /* the tensors of `data`, laid n, w, h, b (each aligned for its elements,
   * so that the view borrows) and listed w, b, n, h */
  static const uint8_t laid[] = {7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40,
                                 0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f};
  static const char header[] =
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[20,22]},"
      "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]}}";
  char padded[1024];
  size_t hl = strlen(header);
  assert_true(pad >= hl && pad % 8 == 0 && pad < sizeof padded);
  memcpy(padded, header, hl);
  memset(padded + hl, ' ', pad - hl);
  padded[pad] = '\0';
  uint8_t *buf = fedc_malloc(8 + pad + sizeof laid);
  assert_non_null(buf);
  size_t len = make(buf, padded, laid, sizeof laid);
  fedc_client_st_view v, back, orig;
  assert_int_equal(fedc__client_st_view(buf, len, &v), 0);
  fedc_st_meta meta[] = {{"round", "5"}, {"num_samples", "120"}, {"train_loss", "0.25"}};
  assert_int_equal(fedc__client_st_reencode_in_place(&v, meta, 3, &buf, &len), 0);
  assert_null(v.f); /* freed */
  assert_int_equal((len - sizeof laid) % 8, 0);
  assert_memory_equal(buf + len - sizeof laid, laid, sizeof laid);
  assert_int_equal(fedc__client_st_view(buf, len, &back), 0);
  assert_int_equal(back.n, 4);
  uint8_t first[1024];
  assert_int_equal(fedc__client_st_view(first, make(first, model_header, data, sizeof data),
                                        &orig), 0);
  assert_int_equal(fedc__client_st_same_layout(&orig, &back, 5), 0);
  for (size_t i = 0; i < orig.n; i++)
    for (size_t k = 0; k < back.n; k++)
      if (strcmp(orig.t[i].name, back.t[k].name) == 0)
        assert_memory_equal(orig.t[i].data, back.t[k].data,
                            orig.t[i].count * (size_t)orig.t[i].elem);
  assert_string_equal(fedc__client_st_meta(&back, "train_loss"), "0.25");
  assert_non_null(fedc__client_st_meta(&back, "sha256"));
  fedc__client_st_view_free(&orig);
  fedc__client_st_view_free(&back);
  fedc_free(buf);
}

static void test_reencode_in_place(void **state) {
  reencode_in_place(256); /* the new header is longer */
  reencode_in_place(512); /* shorter */
}

static void test_tensor_job_parse(void **state) {
  static const char body[] =
      "{\"client_id\": 2, \"job\": {\"id\": \"t1\", \"rounds\": 5, \"round\": 1, \"seed\": 3, "
      "\"model\": {\"type\": \"tensors\", \"tensors\": [{\"name\": \"w\", \"dtype\": \"F16\", "
      "\"shape\": [2]}]}, \"train\": {\"epochs\": 1, \"batch_size\": 32, \"lr\": 0.1}}}";
  fedc_client_job j;
  assert_int_equal(fedc_client_job_parse(body, strlen(body), &j), 0);
  assert_string_equal(j.type, "tensors");
  assert_int_equal(j.inputs, 0);
  assert_int_equal(j.classes, 0);
  assert_int_equal(j.rounds, 5);
  /* not a built-in layout: no spec for it */
  fedc_model_spec spec;
  assert_int_not_equal(fedc_client_job_spec(&j, &spec), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_view, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_layout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_finite, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reencode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reencode_in_place, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tensor_job_parse, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
