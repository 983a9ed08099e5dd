/*
 * test_job_queue.c - the job queue in a store (coordinator/job_queue.c) and
 * a site's policy on jobs (client/site_policy.c): submission order, the
 * job to run next (a crashed running job first), cancel rules, declines,
 * the allow list copied into a job's store; each [policy] rule declining a
 * job that breaks it and accepting one that does not, and the named data
 * sets.
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

#include <fedc/client.h>

#include "base/alloc.h"
#include "base/error.h"
#include "config/config.h"
#include "job_queue.h"
#include "site_policy.h"
#include "store.h"

static char dir[64];
static char path[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/fedc-jobq-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/fedc.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_queue_order_and_states(void **state) {
  (void)state;
  fedc_jobq *q;
  assert_int_equal(fedc__jobq_open(path, &q), 0);
  int32_t a, b, c, next;
  assert_int_equal(fedc__jobq_submit(q, "[job]\nrounds = 3\n", "a", 3, &a), 0);
  assert_int_equal(fedc__jobq_submit(q, "[job]\nrounds = 4\n", "b", 4, &b), 0);
  assert_int_equal(fedc__jobq_submit(q, "[job]\nrounds = 5\n", "c", 5, &c), 0);
  assert_int_equal(a, 1);
  assert_int_equal(c, 3);
  assert_int_equal(fedc__jobq_next(q, &next), 0);
  assert_int_equal(next, 1);
  /* a running job (left by a crash) comes before an older queued one */
  assert_int_equal(fedc__jobq_set_state(q, b, "running", NULL), 0);
  assert_int_equal(fedc__jobq_next(q, &next), 0);
  assert_int_equal(next, 2);
  assert_int_equal(fedc__jobq_set_state(q, b, "finished", NULL), 0);
  assert_int_equal(fedc__jobq_cancel(q, b), FEDC_ESTATE);
  assert_int_equal(fedc__jobq_cancel(q, 99), FEDC_ENOTFOUND);
  assert_int_equal(fedc__jobq_cancel(q, a), 0);
  assert_int_equal(fedc__jobq_next(q, &next), 0);
  assert_int_equal(next, 3);
  fedc_jobq_job j;
  char *ini = NULL;
  assert_int_equal(fedc__jobq_get(q, b, &j, &ini), 0);
  assert_string_equal(j.state, "finished");
  assert_true(j.finished_at > 0 && j.started_at > 0);
  assert_string_equal(ini, "[job]\nrounds = 4\n");
  fedc_free(ini);
  assert_int_equal(fedc__jobq_get(q, a, &j, NULL), 0);
  assert_string_equal(j.state, "cancelled");
  /* a site declines job 3 twice: one row, the latest reason */
  assert_int_equal(fedc__jobq_decline(q, c, "ab", "site-3", "first"), 0);
  assert_int_equal(fedc__jobq_decline(q, c, "ab", "site-3", "max_epochs"), 0);
  fedc_jobq_decline *d;
  int32_t nd;
  assert_int_equal(fedc__jobq_declines(q, c, &d, &nd), 0);
  assert_int_equal(nd, 1);
  assert_string_equal(d[0].reason, "max_epochs");
  fedc_free(d);
  fedc_jobq_job *list;
  int32_t n;
  assert_int_equal(fedc__jobq_list(q, &list, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(list[2].declined, 1);
  assert_int_equal(list[1].rounds, 4);
  fedc_free(list);
  fedc__jobq_close(q);
  /* the store itself is still a store of the known schema */
  fedc_store *st;
  assert_int_equal(fedc_store_open(path, &st), 0);
  fedc_store_close(st);
}

static void test_sync_clients(void **state) {
  (void)state;
  fedc_store *main_st, *job;
  char jp[256];
  assert_int_equal(fedc_store_open(path, &main_st), 0);
  assert_int_equal(fedc__jobq_path(path, 1, "db", jp, sizeof jp), 0);
  assert_int_equal(fedc_store_open(jp, &job), 0);
  char f1[65], f2[65];
  memset(f1, 'a', 64);
  memset(f2, 'b', 64);
  f1[64] = f2[64] = '\0';
  int32_t id;
  assert_int_equal(fedc_store_client_allow(main_st, f1, "site-a", &id), 0);
  assert_int_equal(fedc_store_client_allow(main_st, f2, "site-b", &id), 0);
  assert_int_equal(fedc__jobq_sync_clients(main_st, job), 0);
  fedc_store_client c;
  assert_int_equal(fedc_store_client_find(job, f2, &c), 0);
  assert_int_equal(c.status, FEDC_CLIENT_ALLOWED);
  assert_string_equal(c.name, "site-b");
  assert_int_equal(fedc_store_client_revoke(main_st, f2), 0);
  assert_int_equal(fedc__jobq_sync_clients(main_st, job), 0);
  assert_int_equal(fedc_store_client_find(job, f2, &c), 0);
  assert_int_equal(c.status, FEDC_CLIENT_REVOKED);
  fedc_store_close(job);
  fedc_store_close(main_st);
}

static const char JOB[] =
    "{\"id\":\"j1\",\"rounds\":%d,\"model\":{\"type\":\"%s\"},\"train\":{\"epochs\":%d},"
    "\"dataset\":\"%s\",\"privacy\":{\"noise_multiplier\":%g,\"secure_aggregation\":%s}}";

static int verdict(fedc_site *s, int rounds, const char *type, int epochs, const char *set,
                   double noise, const char *secagg, char *reason) {
  char j[512];
  snprintf(j, sizeof j, JOB, rounds, type, epochs, set, noise, secagg);
  reason[0] = '\0';
  return fedc__site_filter(s, j, reason, 256);
}

static void test_site_policy(void **state) {
  (void)state;
  fedc_config cfg;
  fedc_config_defaults(&cfg);
  snprintf(cfg.train, sizeof cfg.train, "/main.idx");
  fedc_site s = {.cfg = &cfg};
  snprintf(s.loaded_set, sizeof s.loaded_set, "default");
  char r[256];
  /* no policy: everything with a built-in model on the default data */
  assert_int_equal(verdict(&s, 100, "mlp", 9, "", 0, "false", r), FEDC_CLIENT_JOB_ACCEPT);
  /* a tensor job needs the external trainer */
  snprintf(cfg.policy_trainers, sizeof cfg.policy_trainers, "builtin");
  assert_int_equal(verdict(&s, 1, "tensors", 1, "", 0, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "external"));
  snprintf(cfg.policy_model_types, sizeof cfg.policy_model_types, "softmax, logreg");
  assert_int_equal(verdict(&s, 1, "mlp", 1, "", 0, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "model_types"));
  assert_int_equal(verdict(&s, 1, "logreg", 1, "", 0, "false", r), FEDC_CLIENT_JOB_ACCEPT);
  cfg.policy_max_rounds = 10;
  assert_int_equal(verdict(&s, 11, "softmax", 1, "", 0, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "max_rounds = 10"));
  cfg.policy_max_epochs = 2;
  assert_int_equal(verdict(&s, 10, "softmax", 3, "", 0, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "max_epochs = 2"));
  cfg.policy_min_noise = 0.8;
  assert_int_equal(verdict(&s, 10, "softmax", 2, "", 0.5, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "min_noise_multiplier"));
  cfg.policy_require_secagg = 1;
  assert_int_equal(verdict(&s, 10, "softmax", 2, "", 1.0, "false", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "secure aggregation"));
  assert_int_equal(verdict(&s, 10, "softmax", 2, "", 1.0, "true", r), FEDC_CLIENT_JOB_ACCEPT);
  /* named data sets: unknown declined, known but other than loaded: reload */
  snprintf(cfg.data_sets, sizeof cfg.data_sets, "c23:/c23.idx:/c23-labels.idx, pub:/pub.csv");
  assert_int_equal(verdict(&s, 10, "softmax", 2, "nope", 1.0, "true", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "no data set named \"nope\""));
  assert_int_equal(verdict(&s, 10, "softmax", 2, "c23", 1.0, "true", r), FEDC_CLIENT_JOB_SKIP);
  assert_string_equal(s.want_set, "c23");
  snprintf(cfg.policy_datasets, sizeof cfg.policy_datasets, "default,pub");
  assert_int_equal(verdict(&s, 10, "softmax", 2, "c23", 1.0, "true", r), FEDC_CLIENT_JOB_DECLINE);
  assert_non_null(strstr(r, "[policy] datasets"));
  fedc_config out;
  assert_int_equal(fedc__site_data_config(&cfg, "c23", &out), 0);
  assert_string_equal(out.train, "/c23.idx");
  assert_string_equal(out.train_labels, "/c23-labels.idx");
  assert_int_equal(fedc__site_data_config(&cfg, "pub", &out), 0);
  assert_string_equal(out.train, "/pub.csv");
  assert_int_equal(fedc__site_data_config(&cfg, "default", &out), 0);
  assert_string_equal(out.train, "/main.idx");
  assert_int_equal(fedc__site_data_config(&cfg, "zz", &out), FEDC_ENOTFOUND);
  /* a job this site finished is skipped, not declined */
  snprintf(s.done_job, sizeof s.done_job, "j1");
  assert_int_equal(verdict(&s, 10, "softmax", 2, "", 1.0, "true", r), FEDC_CLIENT_JOB_SKIP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_queue_order_and_states, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_clients, setup, teardown),
      cmocka_unit_test(test_site_policy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
