/*
 * version.c - the library's version at run time (fedc/version.h), which a
 * program compares with the headers' FEDC_VERSION it was built with.
 */
#include "base/version.h"

const char *fedc_version(void) { return FEDC_VERSION; }

unsigned fedc_version_number(void) { return FEDC_VERSION_NUMBER; }
