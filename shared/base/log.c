/*
 * log.c - timestamps in UTC with milliseconds, one write() per line so that
 * lines from different threads never interleave.
 *
 * Every string argument (%s) is escaped as it goes into the line: a '"' or
 * '\\' gets a backslash, a newline, tab or other control byte (and DEL)
 * becomes \n, \t or \xNN. A value from a peer (a client's name, an error
 * message quoting one) written as name="%s" then stays one field: it cannot
 * close its quotes to forge another field nor start a new line. The format
 * itself is the program's and is written as it is.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* Append s, escaped (see above) and cut at prec bytes of s, to buf. */
static size_t put_escaped(char *buf, size_t at, size_t cap, const char *s, int prec) {
  static const char hex[] = "0123456789abcdef";
  if (s == NULL) s = "(null)";
  for (size_t i = 0; s[i] != '\0' && (prec < 0 || i < (size_t)prec) && at + 4 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      buf[at++] = '\\';
      buf[at++] = (char)ch;
    } else if (ch == '\n' || ch == '\t' || ch == '\r') {
      buf[at++] = '\\';
      buf[at++] = ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r';
    } else if (ch < 0x20 || ch == 0x7f) {
      buf[at++] = '\\';
      buf[at++] = 'x';
      buf[at++] = hex[ch >> 4];
      buf[at++] = hex[ch & 15];
    } else {
      buf[at++] = (char)ch;
    }
  }
  return at;
}

/*
 * vsnprintf with %s arguments escaped: walk fmt, copy its text, and format
 * each conversion alone with the argument it takes (its length modifier
 * says which type to pull from ap); a %s goes through put_escaped instead.
 * Handles the conversions printf does but %n. Returns the length written.
 */
static size_t format_escaped(char *buf, size_t cap, const char *fmt, va_list ap) {
  size_t at = 0;
  for (const char *f = fmt; *f != '\0' && at + 1 < cap;) {
    if (*f != '%') {
      buf[at++] = *f++;
      continue;
    }
    const char *start = f++;
    char spec[32];
    int width = 0, prec = -1, star_w = 0, star_p = 0, has_w = 0;
    while (*f && strchr("-+ #0", *f)) f++;
    if (*f == '*') {
      star_w = 1;
      width = va_arg(ap, int);
      f++;
    } else {
      while (*f >= '0' && *f <= '9') f++;
    }
    has_w = star_w;
    if (*f == '.') {
      f++;
      if (*f == '*') {
        star_p = 1;
        prec = va_arg(ap, int);
        f++;
      } else {
        prec = 0;
        while (*f >= '0' && *f <= '9') prec = prec * 10 + (*f++ - '0');
      }
    }
    char len[3] = "";
    while (*f && strchr("hlLqjzt", *f) && strlen(len) < 2) {
      len[strlen(len)] = *f;
      f++;
    }
    char conv = *f ? *f++ : '\0';
    size_t sl = (size_t)(f - start);
    if (sl >= sizeof spec) sl = sizeof spec - 1;
    memcpy(spec, start, sl);
    spec[sl] = '\0';
    size_t room = cap - at;
    int m = 0;
    (void)has_w;
    switch (conv) {
    case '%':
      buf[at++] = '%';
      continue;
    case 's':
      at = put_escaped(buf, at, cap - 1, va_arg(ap, const char *), prec);
      continue;
    case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c':
#define FMT1(T)                                                              \
  do {                                                                       \
    T v_ = va_arg(ap, T);                                                    \
    if (star_w && star_p) m = snprintf(buf + at, room, spec, width, prec, v_); \
    else if (star_w) m = snprintf(buf + at, room, spec, width, v_);          \
    else if (star_p) m = snprintf(buf + at, room, spec, prec, v_);           \
    else m = snprintf(buf + at, room, spec, v_);                             \
  } while (0)
      if (strcmp(len, "ll") == 0 || strcmp(len, "q") == 0) FMT1(long long);
      else if (strcmp(len, "l") == 0) FMT1(long);
      else if (strcmp(len, "z") == 0) FMT1(size_t);
      else if (strcmp(len, "j") == 0) FMT1(intmax_t);
      else if (strcmp(len, "t") == 0) FMT1(ptrdiff_t);
      else FMT1(int);
      break;
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A':
      if (strcmp(len, "L") == 0) FMT1(long double);
      else FMT1(double);
      break;
    case 'p':
      FMT1(void *);
      break;
#undef FMT1
    default: /* nothing else is printf's; write it as it is */
      m = snprintf(buf + at, room, "%s", spec);
      break;
    }
    if (m < 0) m = 0;
    at += (size_t)m < room ? (size_t)m : room - 1;
  }
  buf[at < cap ? at : cap - 1] = '\0';
  return at < cap ? at : cap - 1;
}

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
  size_t m = format_escaped(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
  va_end(ap);
  n += (int)m;
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}
