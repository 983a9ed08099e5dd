/*
 * site_policy.c - a site's policy on jobs (site_policy.h).
 *
 * The job object of the coordinator's join answer carries what the policy
 * decides on: model.type, rounds, train.epochs, privacy.noise_multiplier,
 * privacy.secure_aggregation and dataset (docs/protocol.md). A field an
 * older coordinator does not send counts as its default (no DP, no secure
 * aggregation, the default data set), so a site that requires them
 * declines such a job. The rules are checked in the order of the [policy]
 * keys and the first one broken is the reason given.
 */
#include "site_policy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include <fedc/client.h>

#include "base/error.h"

/* Is name one of the comma-separated items of list (spaces ignored)? */
static int in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == n && strncmp(p, name, n) == 0) return 1;
    p = e;
  }
  return 0;
}

/* The entry "NAME:TRAIN[:LABELS]" of [data] sets: train and labels copied
 * out. 0 found, FEDC_ENOTFOUND else. */
static int find_set(const char *sets, const char *name, char *train, size_t tcap, char *labels,
                    size_t lcap) {
  size_t n = strlen(name);
  for (const char *p = sets; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (colon && (size_t)(colon - p) == n && strncmp(p, name, n) == 0) {
      const char *c2 = memchr(colon + 1, ':', (size_t)(e - colon - 1));
      const char *tend = c2 ? c2 : e;
      snprintf(train, tcap, "%.*s", (int)(tend - colon - 1), colon + 1);
      snprintf(labels, lcap, "%.*s", c2 ? (int)(e - c2 - 1) : 0, c2 ? c2 + 1 : "");
      return 0;
    }
    p = e;
  }
  return FEDC_ENOTFOUND;
}

int fedc__site_data_config(const fedc_config *cfg, const char *set, fedc_config *out) {
  *out = *cfg;
  if (set == NULL || set[0] == '\0' || strcmp(set, "default") == 0) return 0;
  char train[FEDC_CONFIG_PATH_MAX], labels[FEDC_CONFIG_PATH_MAX];
  if (find_set(cfg->data_sets, set, train, sizeof train, labels, sizeof labels) != 0)
    return fedc_error_set(FEDC_ENOTFOUND, "this site holds no data set named \"%s\" ([data] sets)",
                          set);
  snprintf(out->train, sizeof out->train, "%s", train);
  if (labels[0]) snprintf(out->train_labels, sizeof out->train_labels, "%s", labels);
  return 0;
}

static double num(const cJSON *o, const char *a, const char *b, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *a, const char *b) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* The policy's verdict on job j: 1 with reason written when it is broken. */
static int broken(const fedc_config *cfg, const cJSON *j, char *reason, size_t cap) {
  const char *type = str(j, "model", "type");
  if (cfg->policy_model_types[0] && !in_list(cfg->policy_model_types, type)) {
    snprintf(reason, cap, "model type %s is not in [policy] model_types = %s", type,
             cfg->policy_model_types);
    return 1;
  }
  /* the trainer this site would run the job with: its [trainer] command
   * when it has one, else fedc's own, which a tensor job cannot use */
  int tensors = strcmp(type, "tensors") == 0;
  if (tensors && cfg->trainer_command[0] == '\0') {
    snprintf(reason, cap, "a tensor job needs an external trainer and this site has no "
                          "[trainer] command");
    return 1;
  }
  const char *trainer = cfg->trainer_command[0] ? "external" : "builtin";
  if (!in_list(cfg->policy_trainers, trainer)) {
    snprintf(reason, cap, "the job needs the %s trainer, not in [policy] trainers = %s", trainer,
             cfg->policy_trainers);
    return 1;
  }
  double rounds = num(j, "rounds", NULL, 0);
  if (cfg->policy_max_rounds > 0 && rounds > cfg->policy_max_rounds) {
    snprintf(reason, cap, "%.0f rounds is more than [policy] max_rounds = %d", rounds,
             (int)cfg->policy_max_rounds);
    return 1;
  }
  double epochs = num(j, "train", "epochs", 0);
  if (cfg->policy_max_epochs > 0 && epochs > cfg->policy_max_epochs) {
    snprintf(reason, cap, "%.0f local epochs is more than [policy] max_epochs = %d", epochs,
             (int)cfg->policy_max_epochs);
    return 1;
  }
  double noise = num(j, "privacy", "noise_multiplier", 0);
  if (cfg->policy_min_noise > 0 && noise < cfg->policy_min_noise) {
    snprintf(reason, cap, "DP noise multiplier %g is below [policy] min_noise_multiplier = %g",
             noise, cfg->policy_min_noise);
    return 1;
  }
  const cJSON *sa = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(j, "privacy"), "secure_aggregation");
  if (cfg->policy_require_secagg && !cJSON_IsTrue(sa)) {
    snprintf(reason, cap, "the job has no secure aggregation, which [policy] require_secagg asks");
    return 1;
  }
  const char *set = str(j, "dataset", NULL);
  if (set[0] == '\0') set = "default";
  if (cfg->policy_datasets[0] && !in_list(cfg->policy_datasets, set)) {
    snprintf(reason, cap, "data set \"%s\" is not in [policy] datasets = %s", set,
             cfg->policy_datasets);
    return 1;
  }
  fedc_config probe;
  if (fedc__site_data_config(cfg, set, &probe) != 0) {
    snprintf(reason, cap, "this site holds no data set named \"%s\" ([data] sets)", set);
    return 1;
  }
  return 0;
}

int fedc__site_filter(void *ud, const char *job_json, char *reason, size_t cap) {
  fedc_site *s = ud;
  cJSON *j = cJSON_Parse(job_json);
  if (j == NULL) {
    snprintf(reason, cap, "the job object is not JSON");
    return FEDC_CLIENT_JOB_DECLINE;
  }
  int verdict = FEDC_CLIENT_JOB_ACCEPT;
  const char *id = str(j, "id", NULL);
  if (s->done_job[0] && strcmp(id, s->done_job) == 0) {
    verdict = FEDC_CLIENT_JOB_SKIP;
  } else if (broken(s->cfg, j, reason, cap)) {
    verdict = FEDC_CLIENT_JOB_DECLINE;
  } else {
    const char *set = str(j, "dataset", NULL);
    if (set[0] == '\0') set = "default";
    if (strcmp(set, s->loaded_set) != 0) {
      snprintf(s->want_set, sizeof s->want_set, "%s", set);
      verdict = FEDC_CLIENT_JOB_SKIP; /* load it, then join again */
    }
  }
  cJSON_Delete(j);
  return verdict;
}
