/*
 * test_upload_ledger.c - the bookkeeping of chunked uploads
 * (coordinator/upload_ledger.c) on its own: where a chunk falls against
 * the accepted bytes (next, a resend, a gap, past the end, too big), the
 * query strings, a spool file built chunk by chunk that refuses a chunk
 * with a wrong checksum without writing it and checks the whole against
 * the announced SHA-256, the table of uploads (one per client, stale
 * rounds swept, busy ones kept), the sweep of an earlier run's files, the
 * client's copy of a pending update in state_dir (client/upload_client.c:
 * found again only for its job, round and model), and nothing left
 * allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "upload_client.h"
#include "upload_ledger.h"

static int64_t live_at_start;
static char tmp[256];

static int setup(void **state) {
  (void)state;
  live_at_start = fedc_alloc_live();
  snprintf(tmp, sizeof tmp, "/tmp/fedc-upload-ledger-XXXXXX");
  assert_non_null(mkdtemp(tmp));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static void test_place(void **state) {
  (void)state;
  const uint64_t C = FEDC_UPLOAD_CHUNK;
  assert_int_equal(fedc__upload_chunk_place(10 * C, 0, 0, C), FEDC_CHUNK_NEXT);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 3 * C, 3 * C, C), FEDC_CHUNK_NEXT);
  /* the last, short chunk */
  assert_int_equal(fedc__upload_chunk_place(10 * C + 5, 10 * C, 10 * C, 5), FEDC_CHUNK_NEXT);
  /* a resend of accepted bytes (the answer was lost) */
  assert_int_equal(fedc__upload_chunk_place(10 * C, 3 * C, 2 * C, C), FEDC_CHUNK_HAVE);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 3 * C, 0, C), FEDC_CHUNK_HAVE);
  /* a gap, and an overlap that reaches past the accepted bytes */
  assert_int_equal(fedc__upload_chunk_place(10 * C, 3 * C, 4 * C, C), FEDC_CHUNK_GAP);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 3 * C, 3 * C - 1, C), FEDC_CHUNK_GAP);
  /* past the end, empty, an offset past the end, wrap-around */
  assert_int_equal(fedc__upload_chunk_place(10 * C, 9 * C, 9 * C, C + 1), FEDC_CHUNK_OVER);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 0, 0, 0), FEDC_CHUNK_OVER);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 0, 11 * C, 1), FEDC_CHUNK_OVER);
  assert_int_equal(fedc__upload_chunk_place(10 * C, 0, UINT64_MAX, 2), FEDC_CHUNK_OVER);
  assert_int_equal(fedc__upload_chunk_place(UINT64_MAX, 0, 0, FEDC_UPLOAD_CHUNK_MAX + 1),
                   FEDC_CHUNK_BIG);
}

static void test_query(void **state) {
  (void)state;
  char v[80];
  uint64_t x = 0;
  const char *q = "round=7&size=123456789012&sha256=ABCDEF&offset=&roundx=3";
  assert_int_equal(fedc__upload_query_u64(q, "round", &x), 1);
  assert_int_equal(x, 7);
  assert_int_equal(fedc__upload_query_u64(q, "size", &x), 1);
  assert_true(x == 123456789012ULL);
  assert_int_equal(fedc__upload_query_u64(q, "offset", &x), -1); /* empty: malformed */
  assert_int_equal(fedc__upload_query_u64(q, "chunk", &x), 0);
  assert_int_equal(fedc__upload_query_u64("round=-1", "round", &x), -1);
  assert_int_equal(fedc__upload_query_u64("round=1e3", "round", &x), -1);
  assert_int_equal(fedc__upload_query_u64("round=99999999999999999999", "round", &x), -1);
  assert_int_equal(fedc__upload_query_str(q, "sha256", v, sizeof v), 1);
  assert_string_equal(v, "ABCDEF");
  assert_int_equal(fedc__upload_query_str(q, "sha256", v, 4), -1);
  char sha[80];
  snprintf(sha, sizeof sha, "%064d", 0);
  sha[3] = 'A';
  assert_int_equal(fedc__upload_sha_ok(sha), 1);
  assert_int_equal(sha[3], 'a'); /* lower-cased */
  sha[5] = 'g';
  assert_int_equal(fedc__upload_sha_ok(sha), 0);
  snprintf(sha, sizeof sha, "abc");
  assert_int_equal(fedc__upload_sha_ok(sha), 0);
}

static void hex_of(const uint8_t *b, size_t n, char out[65]) {
  assert_int_equal(fedc__sha256_hex(b, n, out), 0);
}

static void test_spool(void **state) {
  (void)state;
  const size_t n = 3 * 1000 + 17, step = 1000;
  uint8_t *body = fedc_malloc(n);
  assert_non_null(body);
  for (size_t i = 0; i < n; i++) body[i] = (uint8_t)(i * 131 + 7);
  char sha[65], csha[65], dir[300];
  hex_of(body, n, sha);
  assert_int_equal(fedc__upload_dir(tmp, 1, dir, sizeof dir), 0);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));

  fedc_upload u = {.fd = -1};
  assert_int_equal(fedc__upload_open(&u, dir, "job1", 4, 2, n, sha), 0);
  assert_non_null(strstr(u.path, "/job1-r2-c4.part"));
  /* a chunk whose checksum is wrong: refused, nothing written */
  hex_of(body + step, step, csha);
  assert_int_equal(fedc__upload_append(&u, body, step, csha), FEDC_ECHECKSUM);
  assert_non_null(strstr(fedc_error_msg(), "SHA-256"));
  assert_int_equal(u.accepted, 0);
  assert_int_equal(stat(u.path, &st), 0);
  assert_int_equal(st.st_size, 0);
  for (size_t off = 0; off < n; off += step) {
    size_t len = n - off < step ? n - off : step;
    hex_of(body + off, len, csha);
    assert_int_equal(fedc__upload_append(&u, body + off, len, csha), 0);
    assert_int_equal(u.accepted, off + len);
  }
  assert_int_equal(fedc__upload_finish_hash(&u), 0);
  /* the file is the body, byte for byte */
  FILE *f = fopen(u.path, "rb");
  assert_non_null(f);
  uint8_t *back = fedc_malloc(n + 1);
  assert_int_equal(fread(back, 1, n + 1, f), n);
  fclose(f);
  assert_memory_equal(back, body, n);
  char path[512];
  snprintf(path, sizeof path, "%s", u.path);
  fedc__upload_discard(&u);
  assert_int_equal(stat(path, &st), -1);

  /* every chunk good, the whole not the announced update */
  char wrong[65];
  snprintf(wrong, sizeof wrong, "%064d", 0);
  assert_int_equal(fedc__upload_open(&u, dir, "job1", 4, 3, step, wrong), 0);
  hex_of(body, step, csha);
  assert_int_equal(fedc__upload_append(&u, body, step, csha), 0);
  assert_int_equal(fedc__upload_finish_hash(&u), FEDC_ECHECKSUM);
  assert_non_null(strstr(fedc_error_msg(), "not the"));
  fedc__upload_discard(&u);

  /* an earlier run's files of this job go, another job's stay */
  char other[600];
  snprintf(path, sizeof path, "%s/job1-r9-c1.part", dir);
  snprintf(other, sizeof other, "%s/job2-r9-c1.part", dir);
  fclose(fopen(path, "wb"));
  fclose(fopen(other, "wb"));
  assert_int_equal(fedc__upload_dir_sweep(dir, "job1"), 1);
  assert_int_equal(stat(path, &st), -1);
  assert_int_equal(stat(other, &st), 0);
  fedc_free(back);
  fedc_free(body);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

static void test_table(void **state) {
  (void)state;
  char dir[300], sha[65];
  snprintf(sha, sizeof sha, "%064d", 0);
  assert_int_equal(fedc__upload_dir(tmp, 1, dir, sizeof dir), 0);
  fedc_upload_table t = {0};
  for (int32_t id = 1; id <= 20; id++) {
    fedc_upload *u = fedc__upload_add(&t, id);
    assert_non_null(u);
    assert_int_equal(fedc__upload_open(u, dir, "j", id, id <= 10 ? 4 : 5, 100, sha), 0);
  }
  assert_int_equal(t.n, 20);
  assert_non_null(fedc__upload_find(&t, 7));
  assert_null(fedc__upload_find(&t, 21));
  fedc__upload_find(&t, 3)->busy = 1; /* a chunk on a worker: kept */
  assert_int_equal(fedc__upload_sweep_stale(&t, 5), 9);
  assert_int_equal(t.n, 11);
  assert_non_null(fedc__upload_find(&t, 3));
  assert_null(fedc__upload_find(&t, 4));
  assert_non_null(fedc__upload_find(&t, 15));
  fedc__upload_find(&t, 3)->busy = 0;
  fedc__upload_remove(&t, fedc__upload_find(&t, 15));
  assert_int_equal(t.n, 10);
  fedc__upload_table_free(&t);
  assert_int_equal(t.n, 0);
  assert_int_equal(fedc__upload_dir_sweep(dir, "j"), 0); /* every file went */
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

static void test_pending(void **state) {
  (void)state;
  const char *model = "aa11bb22cc33dd44ee55ff6600112233aa11bb22cc33dd44ee55ff6600112233";
  uint8_t body[5000];
  for (size_t i = 0; i < sizeof body; i++) body[i] = (uint8_t)(i ^ (i >> 3));
  uint8_t *got = NULL;
  size_t len = 0;
  assert_int_equal(fedc__client_pending_keep(tmp, "job-1", 3, model, body, sizeof body), 0);
  assert_int_equal(fedc__client_pending_load(tmp, "job-1", 3, model, &got, &len), 1);
  assert_int_equal(len, sizeof body);
  assert_memory_equal(got, body, sizeof body);
  fedc_free(got);
  /* another round, another model, another job: not this update */
  assert_int_equal(fedc__client_pending_load(tmp, "job-1", 4, model, &got, &len), 0);
  assert_int_equal(fedc__client_pending_load(tmp, "job-1", 3, "00", &got, &len), 0);
  assert_int_equal(fedc__client_pending_load(tmp, "job-2", 3, model, &got, &len), 0);
  assert_null(got);
  /* a cut-short file is not loaded */
  char bin[400];
  snprintf(bin, sizeof bin, "%s/upload-job-1.bin", tmp);
  assert_int_equal(truncate(bin, 100), 0);
  assert_int_equal(fedc__client_pending_load(tmp, "job-1", 3, model, &got, &len), 0);
  fedc__client_pending_drop(tmp, "job-1");
  struct stat st;
  assert_int_equal(stat(bin, &st), -1);
  /* no state_dir, or a job id that cannot name a file: nothing kept */
  assert_int_equal(fedc__client_pending_keep("", "job-1", 3, model, body, sizeof body), 0);
  assert_int_equal(fedc__client_pending_load("", "job-1", 3, model, &got, &len), 0);
  assert_int_equal(fedc__client_pending_keep(tmp, "../x", 3, model, body, sizeof body), 0);
  assert_int_equal(fedc__client_pending_load(tmp, "../x", 3, model, &got, &len), 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_place),
      cmocka_unit_test(test_query),
      cmocka_unit_test_setup_teardown(test_spool, setup, teardown),
      cmocka_unit_test_setup_teardown(test_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
