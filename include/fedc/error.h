/*
 * fedc/error.h - error codes, sub-codes and the per-thread message.
 *
 * Every fallible fedc function returns int: 0 on success, a negative
 * FEDC_E* code on failure. The codes come from one X-macro list that also
 * generates fedc_strerror() and fedc_err_name(); they are appended, never
 * renumbered, since they reach exit codes, logs and the wire.
 *
 * Where a program must tell apart failures that share a code (a TLS
 * handshake refused because the peer's certificate is not trusted, or
 * because its name does not match), the failing function also records a
 * sub-code, read with fedc_error_sub(): programs branch on codes and
 * sub-codes, never on message text. The message, for a person, is
 * fedc_error_msg(). Message and sub-code are kept per thread and describe
 * the last failure on that thread.
 *
 * A callback that a program gives fedc (a trainer, a strategy) reports its
 * own failure the same way: return fedc_error_set(FEDC_EINVAL, "...").
 */
#ifndef FEDC_PUBLIC_ERROR_H
#define FEDC_PUBLIC_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

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
  X(TOOBIG, -17, "payload too large")                                  \
  X(BUDGET, -18, "privacy budget exhausted")                           \
  X(NETWORK, -19, "network or TLS failure")                            \
  X(REFUSED, -20, "refused by the peer")                               \
  X(CANCELED, -21, "canceled")

enum {
  FEDC_OK = 0,
#define FEDC__ERRNO_ENUM(name, val, msg) FEDC_E##name = (val),
  FEDC_ERRNO_MAP(FEDC__ERRNO_ENUM)
#undef FEDC__ERRNO_ENUM
  FEDC__ERRNO_LAST
};

/*
 * Sub-codes: which of the failures that share a code this one was. 0 means
 * none was recorded. Appended, never renumbered.
 */
#define FEDC_SUBCODE_MAP(X)                                                      \
  X(NONE, 0, "no detail")                                                        \
  X(TLS_PEER_UNTRUSTED, 1, "the peer's certificate does not chain to the CA")    \
  X(TLS_PEER_NAME, 2, "the peer's certificate does not match its host name")     \
  X(TLS_REFUSED_BY_PEER, 3, "the peer refused our certificate")                  \
  X(HTTP_STATUS, 4, "the peer answered with an error status")                    \
  X(CONNECT, 5, "could not connect")                                             \
  X(TIMEOUT, 6, "timed out")                                                     \
  X(BODY_TOO_LONG, 7, "the body is longer than it announced")                    \
  X(NOT_ALLOWED, 8, "not on the allow list")                                     \
  X(REVOKED, 9, "revoked")                                                       \
  X(JOB_FINISHED, 10, "the job has finished") \
  X(TLS_OWN_CERT_EXPIRED, 11, "the peer says our certificate has expired")      \
  X(TRAINER_FAILED, 12, "the trainer failed this round; the client goes on")

enum {
#define FEDC__SUBCODE_ENUM(name, val, msg) FEDC_SUB_##name = (val),
  FEDC_SUBCODE_MAP(FEDC__SUBCODE_ENUM)
#undef FEDC__SUBCODE_ENUM
  FEDC__SUB_LAST
};

/* Short human text of a code ("out of memory"); never NULL. Any thread. */
const char *fedc_strerror(int err);
/* Name of a code ("FEDC_ENOMEM"); never NULL. Any thread. */
const char *fedc_err_name(int err);
/* Name of a sub-code ("FEDC_SUB_TLS_PEER_NAME"); never NULL. */
const char *fedc_sub_name(int sub);

/*
 * Record a message for the current thread (and clear its sub-code) and
 * return err, so that an error site reads
 *     return fedc_error_set(FEDC_EFORMAT, "%s: bad magic", path);
 */
int fedc_error_set(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int fedc_error_setv(int err, const char *fmt, va_list ap);
/* The same with a sub-code. */
int fedc_error_set_sub(int err, int sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The last message set on this thread; a fixed text if none. Valid until
 * the next fedc call on this thread. */
const char *fedc_error_msg(void);
/* The last sub-code set on this thread (FEDC_SUB_NONE if none). */
int fedc_error_sub(void);
void fedc_error_clear(void);

#ifdef __cplusplus
}
#endif

#endif
