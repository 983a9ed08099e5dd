/*
 * error.c - the error code tables and the thread-local message and
 * sub-code.
 */
#include "base/error.h"

#include <stdio.h>

static _Thread_local char errmsg[512];
static _Thread_local int errsub;

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

const char *fedc_sub_name(int sub) {
  switch (sub) {
#define X(name, val, msg) case FEDC_SUB_##name: return "FEDC_SUB_" #name;
    FEDC_SUBCODE_MAP(X)
#undef X
  }
  return "FEDC_SUB_UNKNOWN";
}

int fedc_error_setv(int err, const char *fmt, va_list ap) {
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  errsub = FEDC_SUB_NONE;
  return err;
}

int fedc_error_set(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fedc_error_setv(err, fmt, ap);
  va_end(ap);
  return err;
}

int fedc_error_set_sub(int err, int sub, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fedc_error_setv(err, fmt, ap);
  va_end(ap);
  errsub = sub;
  return err;
}

const char *fedc_error_msg(void) {
  return errmsg[0] ? errmsg : "no error message recorded";
}

int fedc_error_sub(void) { return errsub; }

void fedc_error_clear(void) {
  errmsg[0] = '\0';
  errsub = FEDC_SUB_NONE;
}
