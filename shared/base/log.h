/*
 * log.h - leveled, structured logging to stderr.
 *
 * A line reads:  2026-11-22T11:49:50.123Z INFO round=3 msg="committed"
 * The level comes from fedc_log_set_level() or the FEDC_LOG environment
 * variable (error, warn, info, debug). Safe to call from any thread.
 */
#ifndef FEDC_LOG_H
#define FEDC_LOG_H

typedef enum {
  FEDC_LOG_ERROR = 0,
  FEDC_LOG_WARN = 1,
  FEDC_LOG_INFO = 2,
  FEDC_LOG_DEBUG = 3
} fedc_log_level;

void fedc_log_set_level(fedc_log_level level);
fedc_log_level fedc_log_get_level(void);
/* Parse "error", "warn", "info", "debug"; returns -1 for anything else. */
int fedc_log_level_parse(const char *s);
void fedc_log(fedc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define fedc_log_error(...) fedc_log(FEDC_LOG_ERROR, __VA_ARGS__)
#define fedc_log_warn(...) fedc_log(FEDC_LOG_WARN, __VA_ARGS__)
#define fedc_log_info(...) fedc_log(FEDC_LOG_INFO, __VA_ARGS__)
#define fedc_log_debug(...) fedc_log(FEDC_LOG_DEBUG, __VA_ARGS__)

#endif
