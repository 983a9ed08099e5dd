/*
 * settings.c - the public settings object (fedc/settings.h): a config with
 * its defaults, read from INI files and "section.key=value" overrides, for
 * programs that embed fedc. Every check and message is config.c's.
 */
#include "config/settings.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

int fedc_settings_new(fedc_settings **out) {
  if (out == NULL) return fedc_error_set(FEDC_EINVAL, "fedc_settings_new: NULL argument");
  fedc_settings *s = fedc_malloc(sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "settings: out of memory");
  fedc_config_defaults(&s->cfg);
  *out = s;
  return 0;
}

int fedc_settings_clone(const fedc_settings *s, fedc_settings **out) {
  if (s == NULL || out == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_settings_clone: NULL argument");
  fedc_settings *c = fedc_malloc(sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "settings: out of memory");
  memcpy(c, s, sizeof *c);
  *out = c;
  return 0;
}

void fedc_settings_free(fedc_settings *s) { fedc_free(s); }

int fedc_settings_load(fedc_settings *s, const char *path) {
  if (s == NULL || path == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_settings_load: NULL argument");
  return fedc_config_load(&s->cfg, path);
}

int fedc_settings_set(fedc_settings *s, const char *assignment) {
  if (s == NULL || assignment == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_settings_set: NULL argument");
  return fedc_config_set(&s->cfg, assignment);
}

/* "section.key" -> its two halves; FEDC_EINVAL when there is no dot. */
static int split_key(const char *key, char *section, size_t n, const char **name) {
  const char *dot = key ? strchr(key, '.') : NULL;
  if (dot == NULL || (size_t)(dot - key) >= n)
    return fedc_error_set(FEDC_EINVAL, "\"%s\": a setting is named section.key", key ? key : "");
  memcpy(section, key, (size_t)(dot - key));
  section[dot - key] = '\0';
  *name = dot + 1;
  return 0;
}

int fedc_settings_get(const fedc_settings *s, const char *key, char *buf, size_t size) {
  if (s == NULL || buf == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_settings_get: NULL argument");
  char section[64];
  const char *name = NULL;
  int rc = split_key(key, section, sizeof section, &name);
  if (rc != 0) return rc;
  return fedc_config_value(&s->cfg, section, name, buf, size);
}

const char *fedc_settings_origin(const fedc_settings *s, const char *key) {
  char section[64];
  const char *name = NULL;
  if (s == NULL || split_key(key, section, sizeof section, &name) != 0) return NULL;
  return fedc_config_origin(&s->cfg, section, name);
}

int fedc_settings_write(const fedc_settings *s, FILE *f) {
  if (s == NULL || f == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_settings_write: NULL argument");
  return fedc_config_dump(&s->cfg, f);
}
