/*
 * test_hostile_values.c - values a hostile peer chooses, checked where they
 * enter: an update's train_loss is a decimal number only (no hexadecimal
 * float, no inf or nan); a client's name holds no control or
 * bidirectional-text character; a string written into a log line cannot
 * close its quotes or start a new line; a round whose finite losses times
 * sample counts overflow stores a finite (or NAN) mean, never inf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "fedc/tensors.h"
#include "round/engine.h"
#include "wire/join_body.h"
#include "wire/update_meta.h"

/* The update metadata parse of a container with this train_loss. */
static int parse_loss(const char *loss, double *out) {
  float w = 1;
  fedc_st_tensor t = {.name = "w", .ndim = 1, .shape = {1}, .data = &w};
  fedc_st_meta m[3] = {{"round", "1"}, {"num_samples", "10"}, {"train_loss", loss}};
  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_st_encode(&t, 1, m, 3, &buf, &len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  fedc_update_meta meta;
  int rc = fedc_update_meta_parse(f, &meta);
  *out = meta.train_loss;
  fedc_st_free(f);
  fedc_free(buf);
  return rc;
}

static void loss_is_decimal_only(void **st) {
  (void)st;
  double v;
  const char *bad[] = {"0x1p3", "0X10", "inf", "-inf", "nan", "infinity", " 1", "1 ",
                       "", "-", ".", "1e", "1e+", "e5", "1..2", "0x.8p1", "1e999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (parse_loss(bad[i], &v) != FEDC_EFORMAT) fail_msg("accepted \"%s\"", bad[i]);
    assert_non_null(strstr(fedc_error_msg(), "train_loss"));
  }
  const char *good[] = {"0.5", "-1.25", "3", "1e-3", "2.5E+2", ".5", "7.", "+1"};
  double want[] = {0.5, -1.25, 3, 1e-3, 250, 0.5, 7, 1};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    assert_int_equal(parse_loss(good[i], &v), 0);
    assert_true(v == want[i]);
  }
}

static int join_name(const char *json, char *name) {
  return fedc_join_body_parse((const uint8_t *)json, strlen(json), name, 128);
}

static void names_hold_no_display_controls(void **st) {
  (void)st;
  char name[128];
  const char *bad[] = {
      "{\"name\":\"a\\u202Eb\"}",       /* right-to-left override */
      "{\"name\":\"a\\u202Ab\"}",       /* left-to-right embedding */
      "{\"name\":\"a\\u2066b\"}",       /* isolate */
      "{\"name\":\"a\\u2069b\"}",       /* pop isolate */
      "{\"name\":\"a\\u200Fb\"}",       /* right-to-left mark */
      "{\"name\":\"a\\u0085b\"}",       /* C1 control (next line) */
      "{\"name\":\"a\\nb\"}",           /* C0 */
      "{\"name\":\"a\xe2\x80\xaeq\"}", /* raw U+202E */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (join_name(bad[i], name) != FEDC_EFORMAT) fail_msg("accepted name %zu", i);
  assert_int_equal(join_name("{\"name\":\"h\\u00f4pital \\u6771\\u4eac \\\"q\\\"\"}", name), 0);
  assert_string_equal(name, "h\xc3\xb4pital \xe6\x9d\xb1\xe4\xba\xac \"q\"");
  assert_int_equal(fedc_join_name_check("site-1", 6), 0);
  assert_int_equal(fedc_join_name_check("a\xe2\x81\xa6" "b", 5), FEDC_EFORMAT);
}

/* What fedc_log writes for one call, stderr caught in a file. */
static void log_line(char *out, size_t cap, const char *name, int id) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  dup2(fileno(tmp), STDERR_FILENO);
  fedc_log_set_level(FEDC_LOG_INFO);
  fedc_log_info("client=%d name=\"%s\" msg=\"%s\" x=%.2f z=%zu %.3s", id, name, "joined",
                1.5, (size_t)7, "abcdef");
  dup2(saved, STDERR_FILENO);
  close(saved);
  rewind(tmp);
  size_t n = fread(out, 1, cap - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
}

static void log_values_cannot_forge_fields(void **st) {
  (void)st;
  char line[2048];
  log_line(line, sizeof line, "evil\" admin=\"yes\nFAKE ERROR line\x1b[2J\\", 3);
  const char *body = strstr(line, "INFO ");
  assert_non_null(body);
  assert_string_equal(body, "INFO client=3 name=\"evil\\\" admin=\\\"yes\\nFAKE ERROR "
                            "line\\x1b[2J\\\\\" msg=\"joined\" x=1.50 z=7 abc\n");
  /* exactly one line */
  assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

/* Finite losses whose products with sample counts overflow still give the
 * round a finite mean loss. */
static void round_loss_never_inf(void **st) {
  (void)st;
  float x[2] = {0, 0};
  fedc_engine_params ep = {.rounds = 2, .clients_per_round = 2, .min_clients = 1, .seed = 1};
  fedc_engine *e;
  assert_int_equal(fedc_engine_new(&ep, 2, x, &e), 0);
  int32_t el[2] = {0, 1}, sel[2], n;
  assert_int_equal(fedc_engine_open(e, el, 2, 2, sel, &n), 0);
  assert_int_equal(fedc_engine_submit(e, 1, 0, x, 2, 1000000, 1e308), 0);
  assert_int_equal(fedc_engine_submit(e, 1, 1, x, 2, 1000000, 1e308), 0);
  fedc_round_metrics m;
  assert_int_equal(fedc_engine_close(e, &m), 0);
  assert_true(isfinite(m.train_loss));
  assert_true(m.train_loss > 9e307);
  fedc_engine_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(loss_is_decimal_only),
      cmocka_unit_test(names_hold_no_display_controls),
      cmocka_unit_test(log_values_cannot_forge_fields),
      cmocka_unit_test(round_loss_never_inf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
