/*
 * log.c - timestamps in UTC with milliseconds, one write() per line so that
 * lines from different threads never interleave.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int level = -1; /* -1: not yet read from the environment */

static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int fedc_log_level_parse(const char *s) {
  if (s == NULL) return -1;
  if (strcmp(s, "error") == 0) return FEDC_LOG_ERROR;
  if (strcmp(s, "warn") == 0) return FEDC_LOG_WARN;
  if (strcmp(s, "info") == 0) return FEDC_LOG_INFO;
  if (strcmp(s, "debug") == 0) return FEDC_LOG_DEBUG;
  return -1;
}

fedc_log_level fedc_log_get_level(void) {
  if (level < 0) {
    int l = fedc_log_level_parse(getenv("FEDC_LOG"));
    level = l < 0 ? FEDC_LOG_WARN : l;
  }
  return (fedc_log_level)level;
}

void fedc_log_set_level(fedc_log_level l) { level = (int)l; }

void fedc_log(fedc_log_level l, const char *fmt, ...) {
  if ((int)l > (int)fedc_log_get_level()) return;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s ",
                ts.tv_nsec / 1000000, names[l]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  n = (m < 0 || (size_t)(n + m) >= sizeof line - 1) ? (int)sizeof line - 2 : n + m;
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}
