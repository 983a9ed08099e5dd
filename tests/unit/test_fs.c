/*
 * test_fs.c - fedc__mkdirs: a missing parent is made, an existing folder is
 * fine, a path through a file or an empty one is refused with errno set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_mkdirs(void **state) {
  (void)state;
  char root[] = "/tmp/fedc-fs-XXXXXX";
  assert_non_null(mkdtemp(root));
  char p[512], f[512];
  snprintf(p, sizeof p, "%s/a/b/c", root);
  assert_int_equal(fedc__mkdirs(p, 0700), 0);
  assert_true(is_dir(p));
  assert_int_equal(fedc__mkdirs(p, 0700), 0); /* again: exists, fine */
  snprintf(p, sizeof p, "%s/a/b/c/", root);    /* a trailing slash */
  assert_int_equal(fedc__mkdirs(p, 0700), 0);
  snprintf(f, sizeof f, "%s/file", root);
  FILE *fp = fopen(f, "w");
  assert_non_null(fp);
  fclose(fp);
  assert_int_equal(fedc__mkdirs(f, 0700), -1);
  assert_int_equal(errno, ENOTDIR);
  snprintf(p, sizeof p, "%s/file/x", root);
  assert_int_equal(fedc__mkdirs(p, 0700), -1);
  assert_int_equal(fedc__mkdirs("", 0700), -1);
  unlink(f);
  const char *rm[] = {"a/b/c", "a/b", "a"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", root, rm[i]);
    rmdir(p);
  }
  rmdir(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_mkdirs)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
