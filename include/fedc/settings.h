/*
 * fedc/settings.h - a job's settings, as the programs read them from INI
 * files and `--set section.key=value`, for programs that embed fedc.
 *
 *     fedc_settings *s;
 *     if (fedc_settings_new(&s) != 0) ...;                 // every default
 *     if (fedc_settings_load(s, "job.ini") != 0 ||         // a file, then
 *         fedc_settings_set(s, "job.rounds=20") != 0)      // overrides
 *       fprintf(stderr, "%s\n", fedc_error_msg());         // "job.ini:12: ..."
 *     ... give s to fedc_coordinator_start, fedc_sim_new, ... (copied there)
 *     fedc_settings_free(s);
 *
 * The sections and keys are those of docs/config.md; a wrong key, type or
 * value is FEDC_ECONFIG naming the file and line (or "--set") and the key,
 * and leaves the settings as they were. Whether the keys fit together is
 * checked by the object that uses them (a coordinator needs [tls], a
 * simulation needs [sim]), with the same kind of message.
 *
 * A settings object is not thread-safe; it may be used from any one thread
 * at a time. The objects it is given to copy what they need.
 */
#ifndef FEDC_PUBLIC_SETTINGS_H
#define FEDC_PUBLIC_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedc_settings fedc_settings;

/* New settings holding every documented default. FEDC_ENOMEM. */
int fedc_settings_new(fedc_settings **out);
/* A copy of s. FEDC_ENOMEM. */
int fedc_settings_clone(const fedc_settings *s, fedc_settings **out);
void fedc_settings_free(fedc_settings *s);
/* Read an INI file over s. FEDC_ECONFIG (naming file:line and key) or
 * FEDC_EIO (unreadable); on error s is unchanged. */
int fedc_settings_load(fedc_settings *s, const char *path);
/* Apply one "section.key=value". FEDC_ECONFIG; on error s is unchanged. */
int fedc_settings_set(fedc_settings *s, const char *assignment);
/* The value of "section.key" as it would be written back to an INI file,
 * into buf (size bytes, NUL-terminated). FEDC_ENOTFOUND for an unknown
 * key, FEDC_ERANGE if buf is too small. */
int fedc_settings_get(const fedc_settings *s, const char *key, char *buf, size_t size);
/* Where "section.key" was last set: "file:line", "--set" or "default";
 * NULL for an unknown key. Points into s. */
const char *fedc_settings_origin(const fedc_settings *s, const char *key);
/* Every setting as an INI file that fedc_settings_load reads back to the
 * same values. FEDC_EIO if writing fails. */
int fedc_settings_write(const fedc_settings *s, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
