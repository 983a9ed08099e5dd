/* version.h - fedc's version (the public <fedc/version.h>), reported by
 * every binary's --version and by fedc_version(). */
#ifndef FEDC_VERSION_H
#define FEDC_VERSION_H
#include <fedc/version.h>
#endif
