/*
 * leak_check.h - a per-test leak check for cmocka unit tests: leak_setup
 * notes how many fedc_malloc blocks are live before a test, leak_check
 * fails the test (after it passed its own assertions) if a different
 * number is live after it, and says by how many. Use them as the setup
 * and teardown of a case:
 *
 *   cmocka_unit_test_setup_teardown(some_case, leak_setup, leak_check)
 *
 * Include after <cmocka.h>.
 */
#ifndef FEDC_TESTS_LEAK_CHECK_H
#define FEDC_TESTS_LEAK_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "base/alloc.h"

static inline int leak_setup(void **state) {
  *state = (void *)(intptr_t)fedc_alloc_live();
  return 0;
}

static inline int leak_check(void **state) {
  int64_t before = (int64_t)(intptr_t)*state, now = fedc_alloc_live();
  if (now == before) return 0;
  fprintf(stderr, "leak_check: %lld allocation(s) live after the test, %lld before\n",
          (long long)now, (long long)before);
  return -1;
}

#endif
