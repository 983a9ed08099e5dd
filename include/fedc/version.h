/*
 * fedc/version.h - the version of the headers, and of the library at run
 * time.
 *
 *     #if FEDC_VERSION_NUMBER >= FEDC_VERSION_ENCODE(0, 2, 0)
 *     ...
 *     #endif
 *     printf("built with %s, running %s\n", FEDC_VERSION, fedc_version());
 *
 * fedc_version() may be called from any thread; it returns static storage.
 */
#ifndef FEDC_PUBLIC_VERSION_H
#define FEDC_PUBLIC_VERSION_H

#define FEDC_VERSION_MAJOR 0
#define FEDC_VERSION_MINOR 2
#define FEDC_VERSION_PATCH 0
#define FEDC_VERSION "0.2.0"
#define FEDC_VERSION_ENCODE(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define FEDC_VERSION_NUMBER \
  FEDC_VERSION_ENCODE(FEDC_VERSION_MAJOR, FEDC_VERSION_MINOR, FEDC_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string ("0.2.0"), which may differ from the
 * headers' FEDC_VERSION when a program runs against a newer libfedc.so. */
const char *fedc_version(void);
/* The same as FEDC_VERSION_NUMBER, of the library. */
unsigned fedc_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
