/*
 * fuzz_eval_json.c - fuzz target for an evaluation report as a client sends
 * it in POST /v1/eval (fedc_eval_report_from_json, ml/eval_report.h).
 *
 * The input is the report's JSON. Checked: only FEDC_EFORMAT or
 * FEDC_ENOMEM on refusal, and then a zeroed report; an accepted report
 * adds up (the confusion matrix to n, each label's bins to its row), its
 * metrics compute with rates in [0, 1] and bounds >= 0, it merges into a
 * copy of itself to twice its counts, and its JSON form reads back to the
 * same counts. Every fedc block allocated is freed before the input is done.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "ml/eval_report.h"

static fedc_eval_report r, twice, back;

static int rate_ok(double v) { return isnan(v) || (v >= -1e-12 && v <= 1 + 1e-12); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  int rc = fedc_eval_report_from_json((const char *)data, size, &r);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EFORMAT || rc == FEDC_ENOMEM);
  if (rc != 0) {
    FUZZ_CHECK(r.task == 0 && r.n == 0);
    FUZZ_CHECK(fedc_alloc_live() == live);
    return 0;
  }
  int64_t total = 0;
  for (int i = 0; i < FEDC_EVAL_MAX_CLASSES; i++)
    for (int j = 0; j < FEDC_EVAL_MAX_CLASSES; j++) total += r.confusion[i][j];
  FUZZ_CHECK(r.task == FEDC_EVAL_REGRESSION || total == r.n);
  fedc_eval_metrics m;
  FUZZ_CHECK(fedc_eval_metrics_compute(&r, &m) == 0);
  FUZZ_CHECK(rate_ok(m.accuracy) && rate_ok(m.auc) && rate_ok(m.pr_auc) && rate_ok(m.recall) &&
             rate_ok(m.precision) && rate_ok(m.f1) && rate_ok(m.macro_f1));
  FUZZ_CHECK(isnan(m.auc_bound) || m.auc_bound >= 0);
  twice = r;
  rc = fedc_eval_report_merge(&twice, &r);
  FUZZ_CHECK(rc == 0 || rc == FEDC_ERANGE);
  if (rc == 0) FUZZ_CHECK(twice.n == 2 * r.n && twice.confusion[0][0] == 2 * r.confusion[0][0]);
  char *text = NULL;
  rc = fedc_eval_report_to_json(&r, &text);
  FUZZ_CHECK(rc == 0 || rc == FEDC_ENOMEM);
  if (rc == 0) {
    FUZZ_CHECK(fedc_eval_report_from_json(text, strlen(text), &back) == 0);
    FUZZ_CHECK(memcmp(back.confusion, r.confusion, sizeof r.confusion) == 0);
    FUZZ_CHECK(memcmp(back.hist, r.hist, sizeof r.hist) == 0 && back.n == r.n);
    fedc_free(text);
  }
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
