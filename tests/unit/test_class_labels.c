/*
 * test_class_labels.c - class labels that are strings in a CSV
 * (shared/data/schema.c, loader_schema.c): the declared labels' parsing and
 * refusals, their JSON form in the job's schema, the loader's mapping of
 * "B"/"M" to classes 0/1 and its refusal of a label outside them, naming
 * the file, the line and the column.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

static fedc_schema *make(void) {
  fedc_schema *s = fedc_malloc(sizeof *s);
  assert_non_null(s);
  assert_int_equal(fedc_schema_make("a,b", NULL, "diagnosis", "id", "", FEDC_MISSING_REFUSE, s), 0);
  return s;
}

static void test_parse(void **state) {
  (void)state;
  fedc_schema *s = make();
  assert_int_equal(fedc_schema_set_class_labels(s, " B | M "), 0);
  assert_int_equal(s->n_label_vocab, 2);
  assert_int_equal(fedc_schema_class_of(s, "B"), 0);
  assert_int_equal(fedc_schema_class_of(s, "M"), 1);
  assert_int_equal(fedc_schema_class_of(s, "X"), -1);
  assert_int_equal(fedc_schema_set_class_labels(s, "low,mid,high"), 0);
  assert_int_equal(fedc_schema_class_of(s, "high"), 2);
  assert_int_equal(fedc_schema_set_class_labels(s, "B|B"), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "'B' named twice"));
  assert_int_equal(fedc_schema_set_class_labels(s, "B"), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "at least two"));
  assert_int_equal(fedc_schema_set_class_labels(s, "B||M"), FEDC_ECONFIG);
  fedc_free(s);
}

static void test_json(void **state) {
  (void)state;
  fedc_schema *s = make(), *back = fedc_malloc(sizeof *back);
  assert_non_null(back);
  assert_int_equal(fedc_schema_set_class_labels(s, "B|M"), 0);
  char *t = fedc_schema_to_json(s);
  assert_non_null(strstr(t, "\"class_labels\":[\"B\",\"M\"]"));
  assert_int_equal(fedc_schema_from_json(t, back), 0);
  assert_int_equal(back->n_label_vocab, 2);
  assert_string_equal(back->label_vocab, "B|M");
  fedc_free(t);
  fedc_free(s);
  fedc_free(back);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_load(void **state) {
  (void)state;
  char path[] = "/tmp/fedc-cl-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  fedc_schema *s = make();
  assert_int_equal(fedc_schema_set_class_labels(s, "B|M"), 0);
  write_file(path, "diagnosis,b,id,a\nM,1,0,2\nB,3,1,4\nM,5,2,6\n");
  fedc_dataset ds;
  assert_int_equal(fedc_load_csv_schema(path, s, 1, &ds), 0);
  assert_int_equal(ds.n, 3);
  assert_int_equal(ds.n_classes, 2);
  assert_true(ds.y[0] == 1 && ds.y[1] == 0 && ds.y[2] == 1);
  assert_true(ds.x[0] == 2 && ds.x[1] == 1); /* a, b by name */
  fedc_dataset_free(&ds);
  /* all one class at this site: still the job's two classes */
  write_file(path, "diagnosis,b,id,a\nB,1,0,2\n");
  assert_int_equal(fedc_load_csv_schema(path, s, 1, &ds), 0);
  assert_int_equal(ds.n_classes, 2);
  fedc_dataset_free(&ds);
  write_file(path, "diagnosis,b,id,a\nM,1,0,2\nX,3,1,4\n");
  assert_int_equal(fedc_load_csv_schema(path, s, 1, &ds), FEDC_EFORMAT);
  const char *msg = fedc_error_msg();
  if (!strstr(msg, ":3:") || !strstr(msg, "'diagnosis'") ||
      !strstr(msg, "not one of the job's class labels"))
    fail_msg("%s", msg);
  /* without declared labels a string label is not a number */
  fedc_schema *plain = make();
  write_file(path, "diagnosis,b,id,a\nM,1,0,2\n");
  assert_int_equal(fedc_load_csv_schema(path, plain, 1, &ds), FEDC_EFORMAT);
  assert_non_null(strstr(fedc_error_msg(), "is not a number"));
  unlink(path);
  fedc_free(s);
  fedc_free(plain);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
