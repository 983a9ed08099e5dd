/*
 * stats_secagg.c - a site's part of the statistics phase under secure
 * aggregation, apart from the exchanges (secagg_client.c): its statistics
 * (the trainer's fedc_stats_to_json text) as the 32-bit words the session
 * sums (data/schema.h, stats_words.c), and, once the federation's
 * statistics come back, the site's own comparison with them: the
 * coordinator never sees one site's statistics, so the "far" warning
 * (an input whose site mean is more than 3 federation standard deviations
 * from the federation's) is the site's to make, and to report with POST
 * /v1/warn {"kind": "far"}. That tells the coordinator one bit about the
 * site, and the input it names (docs/privacy.md).
 */
#include <stdio.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "data/schema.h"

#define FAR_Z 3.0

int fedc__client_stats_words(const char *json, uint32_t **words, size_t *n) {
  *words = NULL;
  *n = 0;
  fedc_stats st;
  int rc = fedc_stats_from_json(json, &st);
  if (rc != 0) return rc;
  size_t len = fedc_stats_n_words(st.d, st.n_classes);
  uint32_t *w = fedc_malloc_array(len, sizeof *w);
  if (w == NULL) {
    fedc_stats_free(&st);
    return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  }
  fedc_stats_to_words(&st, w);
  fedc_stats_free(&st);
  *words = w;
  *n = len;
  return 0;
}

int fedc__client_stats_far(const char *own_json, const char *fed_json, const char *schema_json,
                           char *detail, size_t cap) {
  fedc_stats own = {0}, fed = {0};
  fedc_schema *s = fedc_malloc(sizeof *s);
  int far = 0;
  if (s && fedc_schema_from_json(schema_json, s) == 0 &&
      fedc_stats_from_json(own_json, &own) == 0 && fedc_stats_from_json(fed_json, &fed) == 0) {
    double z;
    int32_t j;
    fedc_stats_distance(&own, &fed, &z, &j);
    if (z > FAR_Z && j >= 0) {
      char name[FEDC_SCHEMA_NAME * 2];
      fedc_schema_input_name(s, j, name, sizeof name);
      snprintf(detail, cap, "input '%s': site mean %.1f federation std from the federation's",
               name, z);
      far = 1;
    }
  }
  fedc_stats_free(&own);
  fedc_stats_free(&fed);
  fedc_free(s);
  return far;
}
