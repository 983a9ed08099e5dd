/*
 * test_client_index.c - the coordinator's clients by fingerprint
 * (coordinator/client_index.c) on its own: put and get through growth,
 * replacement, fingerprints cut to 64 characters as the clients array
 * stores them, removal that keeps every other key reachable (colliding
 * runs included), refused arguments, and nothing left allocated; and the
 * coordinator's lookups through its clients array, by fingerprint and by id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client_index.h"
#include "coord_internal.h"

static int64_t live_at_start;

static int setup(void **state) {
  (void)state;
  live_at_start = fedc_alloc_live();
  return 0;
}

/* A 64-hex fingerprint made from i. */
static void fpr_of(int i, char out[65]) {
  for (int k = 0; k < 8; k++) snprintf(out + 8 * k, 9, "%08x", (unsigned)(i * 2654435761u + k));
}

/* 10,000 keys through several growths: each found at its slot, others not. */
static void test_put_get_grow(void **state) {
  (void)state;
  fedc__client_index ix = {0};
  char f[65];
  assert_int_equal(fedc__client_index_get(&ix, "abc"), -1); /* empty, no table */
  for (int i = 0; i < 10000; i++) {
    fpr_of(i, f);
    assert_int_equal(fedc__client_index_put(&ix, f, i), 0);
  }
  assert_int_equal(ix.n, 10000);
  assert_true(2 * ix.n <= ix.cap);
  for (int i = 0; i < 10000; i++) {
    fpr_of(i, f);
    assert_int_equal(fedc__client_index_get(&ix, f), i);
  }
  fpr_of(10000, f);
  assert_int_equal(fedc__client_index_get(&ix, f), -1);
  assert_int_equal(fedc__client_index_get(&ix, NULL), -1);
  assert_int_equal(fedc__client_index_get(&ix, ""), -1);
  /* a put of a known key replaces its slot, adds nothing */
  fpr_of(7, f);
  assert_int_equal(fedc__client_index_put(&ix, f, 123456), 0);
  assert_int_equal(fedc__client_index_get(&ix, f), 123456);
  assert_int_equal(ix.n, 10000);
  fedc__client_index_free(&ix);
  assert_int_equal(fedc__client_index_get(&ix, f), -1);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

/* A key longer than 64 characters is stored cut, as coord_client keeps it:
 * the cut key finds it, the long one does not. */
static void test_long_key(void **state) {
  (void)state;
  fedc__client_index ix = {0};
  char longk[80], cut[65];
  memset(longk, 'a', 79);
  longk[79] = '\0';
  memcpy(cut, longk, 64);
  cut[64] = '\0';
  assert_int_equal(fedc__client_index_put(&ix, longk, 3), 0);
  assert_int_equal(fedc__client_index_get(&ix, cut), 3);
  assert_int_equal(fedc__client_index_get(&ix, longk), -1);
  fedc__client_index_free(&ix);
}

/* Removing keys from the middle of probe runs: with the table small (64
 * entries, 31 keys) runs are long; every survivor stays reachable after
 * each removal, and removed keys are gone. */
static void test_remove(void **state) {
  (void)state;
  fedc__client_index ix = {0};
  char f[65];
  for (int i = 0; i < 31; i++) {
    fpr_of(i, f);
    assert_int_equal(fedc__client_index_put(&ix, f, i), 0);
  }
  assert_int_equal(ix.cap, 64);
  for (int r = 0; r < 31; r += 2) {
    fpr_of(r, f);
    assert_int_equal(fedc__client_index_remove(&ix, f), 0);
    assert_int_equal(fedc__client_index_remove(&ix, f), FEDC_ENOTFOUND);
    for (int i = 0; i < 31; i++) {
      fpr_of(i, f);
      int gone = i % 2 == 0 && i <= r;
      assert_int_equal(fedc__client_index_get(&ix, f), gone ? -1 : i);
    }
  }
  assert_int_equal(ix.n, 15);
  /* keys that differ in one character only (same run for FNV more often
   * than not) */
  for (int i = 0; i < 20; i++) {
    fpr_of(0, f);
    f[63] = "0123456789abcdefghij"[i];
    assert_int_equal(fedc__client_index_put(&ix, f, 100 + i), 0);
  }
  for (int i = 0; i < 20; i += 3) {
    fpr_of(0, f);
    f[63] = "0123456789abcdefghij"[i];
    assert_int_equal(fedc__client_index_remove(&ix, f), 0);
  }
  for (int i = 0; i < 20; i++) {
    fpr_of(0, f);
    f[63] = "0123456789abcdefghij"[i];
    assert_int_equal(fedc__client_index_get(&ix, f), i % 3 == 0 ? -1 : 100 + i);
  }
  fedc__client_index_free(&ix);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

static void test_refused(void **state) {
  (void)state;
  fedc__client_index ix = {0};
  assert_int_equal(fedc__client_index_put(&ix, NULL, 0), FEDC_EINVAL);
  assert_int_equal(fedc__client_index_put(&ix, "", 0), FEDC_EINVAL);
  assert_int_equal(fedc__client_index_put(&ix, "ab", -1), FEDC_EINVAL);
  assert_int_equal(fedc__client_index_remove(&ix, "ab"), FEDC_ENOTFOUND);
  assert_int_equal(ix.n, 0);
  fedc__client_index_free(&ix);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

/* The coordinator's lookups through its clients array: by fingerprint (the
 * index) and by id (a binary search while ids were appended in order, a
 * scan once one came out of order). */
static void test_coordinator_lookups(void **state) {
  (void)state;
  fedc_coord *c = fedc_calloc(1, sizeof *c);
  assert_non_null(c);
  char f[65];
  for (int i = 0; i < 40; i++) {
    fedc_store_client sc = {0};
    sc.id = 5 + 3 * i; /* increasing, not dense */
    fpr_of(i, f);
    snprintf(sc.fingerprint, sizeof sc.fingerprint, "%s", f);
    coord_client *cl;
    assert_int_equal(fedc__coord_client_add(c, &sc, &cl), 0);
  }
  assert_int_equal(c->clients_unsorted, 0);
  for (int i = 0; i < 40; i++) {
    coord_client *cl = fedc__coord_client_by_id(c, 5 + 3 * i);
    assert_non_null(cl);
    assert_int_equal(cl->id, 5 + 3 * i);
    fpr_of(i, f);
    assert_ptr_equal(fedc__coord_client_by_fpr(c, f), cl);
    assert_null(fedc__coord_client_by_id(c, 6 + 3 * i)); /* between two ids */
  }
  assert_null(fedc__coord_client_by_id(c, 0));
  assert_null(fedc__coord_client_by_id(c, 1000));
  fedc_store_client late = {0};
  late.id = 7; /* below the last id appended */
  fpr_of(99, f);
  snprintf(late.fingerprint, sizeof late.fingerprint, "%s", f);
  coord_client *cl;
  assert_int_equal(fedc__coord_client_add(c, &late, &cl), 0);
  assert_int_equal(c->clients_unsorted, 1);
  assert_ptr_equal(fedc__coord_client_by_id(c, 7), cl);
  assert_int_equal(fedc__coord_client_by_id(c, 5 + 3 * 39)->id, 5 + 3 * 39);
  fedc__client_index_free(&c->clients_by_fpr);
  fedc_free(c->clients);
  fedc_free(c);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_put_get_grow, setup),
      cmocka_unit_test_setup(test_long_key, setup),
      cmocka_unit_test_setup(test_remove, setup),
      cmocka_unit_test_setup(test_refused, setup),
      cmocka_unit_test_setup(test_coordinator_lookups, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
