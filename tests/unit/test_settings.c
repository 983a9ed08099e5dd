/*
 * test_settings.c - the public settings object (fedc/settings.h): defaults,
 * overrides, files, reading values back, refusing bad input unchanged, and
 * writing an INI file that reads back to the same settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <fedc/error.h>
#include <fedc/settings.h>

static void get(const fedc_settings *s, const char *key, char *buf, size_t n) {
  assert_int_equal(fedc_settings_get(s, key, buf, n), 0);
}

static void set_and_get(void **state) {
  fedc_settings *s;
  char v[256];
  assert_int_equal(fedc_settings_new(&s), 0);
  get(s, "job.rounds", v, sizeof v);
  char def[256];
  snprintf(def, sizeof def, "%s", v);
  assert_string_equal(fedc_settings_origin(s, "job.rounds"), "default");
  assert_int_equal(fedc_settings_set(s, "job.rounds=37"), 0);
  get(s, "job.rounds", v, sizeof v);
  assert_string_equal(v, "37");
  assert_string_equal(fedc_settings_origin(s, "job.rounds"), "--set");
  assert_int_equal(fedc_settings_set(s, "model.type=mlp"), 0);
  get(s, "model.type", v, sizeof v);
  assert_string_equal(v, "mlp");
  /* a bad value is refused, names the key, and changes nothing */
  assert_int_equal(fedc_settings_set(s, "job.rounds=-3"), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "rounds"));
  get(s, "job.rounds", v, sizeof v);
  assert_string_equal(v, "37");
  assert_int_equal(fedc_settings_set(s, "job.nosuchkey=1"), FEDC_ECONFIG);
  assert_int_equal(fedc_settings_get(s, "job.nosuchkey", v, sizeof v), FEDC_ENOTFOUND);
  assert_int_equal(fedc_settings_get(s, "nodot", v, sizeof v), FEDC_EINVAL);
  assert_int_equal(fedc_settings_get(s, "job.rounds", v, 2), FEDC_ERANGE);
  assert_null(fedc_settings_origin(s, "job.nosuchkey"));
  fedc_settings_free(s);
}

static void file_and_write_back(void **state) {
  char path[] = "/tmp/fedc-settings-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "[job]\nrounds = 12\nseed = 99\n[train]\nlr = 0.25\n");
  fclose(f);
  fedc_settings *s, *copy, *back;
  char v[256], w[256];
  assert_int_equal(fedc_settings_new(&s), 0);
  assert_int_equal(fedc_settings_load(s, path), 0);
  get(s, "job.rounds", v, sizeof v);
  assert_string_equal(v, "12");
  assert_non_null(strstr(fedc_settings_origin(s, "train.lr"), ":5"));
  assert_int_equal(fedc_settings_clone(s, &copy), 0);
  assert_int_equal(fedc_settings_set(copy, "job.rounds=13"), 0);
  get(s, "job.rounds", v, sizeof v);
  assert_string_equal(v, "12"); /* the clone is a copy */
  /* write every setting, read it back: same values */
  f = fopen(path, "w");
  assert_int_equal(fedc_settings_write(s, f), 0);
  fclose(f);
  assert_int_equal(fedc_settings_new(&back), 0);
  assert_int_equal(fedc_settings_load(back, path), 0);
  const char *keys[] = {"job.rounds", "job.seed", "train.lr", "model.type", "strategy.name"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    get(s, keys[i], v, sizeof v);
    get(back, keys[i], w, sizeof w);
    assert_string_equal(v, w);
  }
  /* a missing file is an I/O error and changes nothing */
  assert_int_equal(fedc_settings_load(back, "/nonexistent/x.ini"), FEDC_EIO);
  get(back, "job.rounds", v, sizeof v);
  assert_string_equal(v, "12");
  unlink(path);
  fedc_settings_free(s);
  fedc_settings_free(copy);
  fedc_settings_free(back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(set_and_get),
      cmocka_unit_test(file_and_write_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
