/*
 * error.c - the error code table and the thread-local message buffer.
 */
#include "error.h"

#include <stdio.h>

static _Thread_local char errmsg[512];

const char *fedc_strerror(int err) {
  switch (err) {
  case FEDC_OK: return "success";
#define X(name, val, msg) case FEDC_E##name: return msg;
    FEDC_ERRNO_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *fedc_err_name(int err) {
  switch (err) {
  case FEDC_OK: return "FEDC_OK";
#define X(name, val, msg) case FEDC_E##name: return "FEDC_E" #name;
    FEDC_ERRNO_MAP(X)
#undef X
  }
  return "FEDC_EUNKNOWN";
}

int fedc_error_setv(int err, const char *fmt, va_list ap) {
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  return err;
}

int fedc_error_set(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fedc_error_setv(err, fmt, ap);
  va_end(ap);
  return err;
}

const char *fedc_error_msg(void) {
  return errmsg[0] ? errmsg : "no error message recorded";
}

void fedc_error_clear(void) { errmsg[0] = '\0'; }
