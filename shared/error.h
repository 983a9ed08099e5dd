/*
 * error.h - fedc's error codes and the per-thread error message.
 *
 * Every fallible function returns int: 0 on success, a negative FEDC_E* code
 * on failure. The codes come from one X-macro list that also generates
 * fedc_strerror() and fedc_err_name(). Codes are appended, never renumbered:
 * they reach exit codes, logs and the wire.
 *
 * Where a person needs more than the code ("train.csv:17: column 'age' is not
 * a number"), the failing function records it with fedc_error_set(); the
 * caller reads it with fedc_error_msg(). The buffer is thread-local.
 */
#ifndef FEDC_ERROR_H
#define FEDC_ERROR_H

#include <stdarg.h>

#define FEDC_ERRNO_MAP(X)                                              \
  X(NOMEM, -1, "out of memory")                                        \
  X(INVAL, -2, "invalid argument")                                     \
  X(IO, -3, "input/output error")                                      \
  X(FORMAT, -4, "malformed data")                                      \
  X(RANGE, -5, "value out of range")                                   \
  X(CONFIG, -6, "configuration error")                                 \
  X(NOTFOUND, -7, "not found")                                         \
  X(SHAPE, -8, "shape mismatch")                                       \
  X(NONFINITE, -9, "non-finite value")                                 \
  X(STATE, -10, "operation not valid in this state")                   \
  X(DUPLICATE, -11, "duplicate")                                       \
  X(UNSUPPORTED, -12, "operation not supported")                       \
  X(BACKEND, -13, "compute backend error")                             \
  X(CHECKSUM, -14, "checksum mismatch")                                \
  X(STALE, -15, "stale or unknown round")                              \
  X(QUORUM, -16, "too few updates for quorum")                         \
  X(TOOBIG, -17, "payload too large")                                 \
  X(BUDGET, -18, "privacy budget exhausted")

enum {
  FEDC_OK = 0,
#define FEDC__ERRNO_ENUM(name, val, msg) FEDC_E##name = (val),
  FEDC_ERRNO_MAP(FEDC__ERRNO_ENUM)
#undef FEDC__ERRNO_ENUM
};

/* Short human text of a code ("out of memory"); never NULL. */
const char *fedc_strerror(int err);
/* Name of a code ("FEDC_ENOMEM"); never NULL. */
const char *fedc_err_name(int err);

/*
 * Record a detailed message for the current thread and return err, so that
 * error sites read:  return fedc_error_set(FEDC_EFORMAT, "%s: bad magic", path);
 */
int fedc_error_set(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int fedc_error_setv(int err, const char *fmt, va_list ap);
/* The last message set on this thread, or fedc_strerror(err) if none. */
const char *fedc_error_msg(void);
void fedc_error_clear(void);

#endif
