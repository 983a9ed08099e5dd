/*
 * stats_site.c - a site's statistics for a job with a schema, computed by
 * fedc-client itself from a CSV ([data] train) read by the job's schema
 * with the library's loader and statistics code (data/schema.h): what an
 * external-trainer site sends in the statistics phase, so that it takes
 * part in such a job without its trainer knowing the phase exists. Only
 * counts, sums, minima, maxima and label counts leave the site.
 */
#include <stdio.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "data/schema.h"

/* The label classes a job's model has (its statistics' label counts). */
static int32_t classes_of(const fedc_client_job *job) {
  int t = fedc_model_type_parse(job->type);
  return t == FEDC_MODEL_LOGREG ? 2 : t == FEDC_MODEL_LINREG ? 0 : job->classes;
}

int fedc__client_csv_stats(const char *path, const fedc_client_job *job, char **json) {
  *json = NULL;
  if (job->schema_json == NULL)
    return fedc_error_set(FEDC_ESTATE, "statistics asked for a job without a schema");
  if (job->stats_json != NULL)
    return fedc_error_set(FEDC_ESTATE, "statistics asked for a job that already has them");
  if (path == NULL || path[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG,
                          "the job has a schema and asks for this site's statistics: set "
                          "[data] train to the site's training CSV (fedc-client reads it by "
                          "the job's schema; the trainer is not run for this)");
  fedc_schema *s = fedc_malloc(sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  fedc_dataset ds = {0};
  int rc = fedc_schema_from_json(job->schema_json, s);
  if (rc == 0) {
    rc = fedc_load_csv_schema(path, s, 1, &ds);
    if (rc != 0) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(rc, "[data] train: %s", msg);
    }
  }
  fedc_stats st = {0};
  int have = 0;
  if (rc == 0) have = (rc = fedc_stats_compute(&ds, classes_of(job), &st)) == 0;
  if (rc == 0 && (*json = fedc_stats_to_json(&st)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  if (have) fedc_stats_free(&st);
  fedc_dataset_free(&ds);
  fedc_free(s);
  return rc;
}
