/*
 * settings.h - the public settings object (fedc/settings.h) is a config
 * (config.h) behind an opaque handle; the library's drivers read the config
 * inside it.
 */
#ifndef FEDC_SETTINGS_H
#define FEDC_SETTINGS_H

#include <fedc/settings.h>

#include "config/config.h"

struct fedc_settings {
  fedc_config cfg;
};

/* The config inside s; valid as long as s. */
static inline const fedc_config *fedc__settings_config(const fedc_settings *s) { return &s->cfg; }

#endif
