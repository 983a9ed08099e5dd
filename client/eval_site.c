/*
 * eval_site.c - the client's side of federated evaluation: a trainer's
 * report (ml/eval_report.h's JSON) checked with the library's strict
 * reader, its metrics for the site's own log, and the body of
 * POST /v1/eval. The report is re-encoded from the parsed struct, so what
 * leaves the site is exactly counts and sums, nothing a trainer added.
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/eval_report.h"

int fedc__client_eval_body(const char *report, int32_t round, const char *sha, char **body,
                           char **metrics) {
  *body = *metrics = NULL;
  fedc_eval_report *r = fedc_malloc(sizeof *r);
  if (r == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  char *clean = NULL;
  fedc_eval_metrics m;
  int rc = fedc_eval_report_from_json(report, strlen(report), r);
  if (rc == 0) rc = fedc_eval_metrics_compute(r, &m);
  if (rc == 0) rc = fedc_eval_metrics_to_json(&m, r, 1, metrics);
  if (rc == 0) rc = fedc_eval_report_to_json(r, &clean);
  if (rc == 0) {
    size_t n = strlen(clean) + 160;
    *body = fedc_malloc(n);
    if (*body == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
    else
      snprintf(*body, n, "{\"round\":%d,\"model_sha256\":\"%s\",\"report\":%s}", (int)round, sha,
               clean);
  }
  fedc_free(clean);
  fedc_free(r);
  if (rc != 0) {
    fedc_free(*metrics);
    *metrics = NULL;
  }
  return rc;
}
