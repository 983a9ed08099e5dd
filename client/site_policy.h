/*
 * site_policy.h - a site's policy on the jobs it takes part in ([policy]
 * of the site's config) and its named data sets ([data] sets), for
 * fedc-client as a site service (--serve). See docs/operations.md.
 */
#ifndef FEDC_SITE_POLICY_H
#define FEDC_SITE_POLICY_H

#include <stddef.h>

#include <fedc/client.h>

#include "config/config.h"

typedef struct fedc_site {
  const fedc_config *cfg;
  char loaded_set[128]; /* the data set the trainer was made with */
  char want_set[128];   /* a job asked for this one: reload, then join again */
  char done_job[128];   /* a job this site finished: skipped while it is the one */
} fedc_site;

/*
 * The job filter (fedc_client_params.job_filter) of a site: decline a job
 * that breaks [policy] (model type, trainer, rounds, epochs, DP noise,
 * secure aggregation, data set), naming the rule and the values in reason;
 * skip the job it already finished; skip, with want_set set, a job that
 * needs another of the site's data sets than the one loaded.
 */
int fedc__site_filter(void *site, const char *job_json, char *reason, size_t cap);

/*
 * out = cfg with [data] train (and train_labels) taken from the named set
 * of [data] sets ("default" or "": cfg's own). FEDC_ENOTFOUND when the site
 * holds no set of that name.
 */
int fedc__site_data_config(const fedc_config *cfg, const char *set, fedc_config *out);

#endif
