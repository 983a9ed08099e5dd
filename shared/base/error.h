/*
 * error.h - fedc's error codes and the per-thread message (the public
 * <fedc/error.h>), as the library's own files include them.
 *
 * Every fallible function returns int: 0 on success, a negative FEDC_E* code
 * on failure. Where a person needs more than the code ("train.csv:17: column
 * 'age' is not a number"), the failing function records it with
 * fedc_error_set(); where a program must branch on the kind of failure, it
 * records a sub-code too (fedc_error_set_sub). Nothing compares message
 * text.
 */
#ifndef FEDC_ERROR_H
#define FEDC_ERROR_H

#include <fedc/error.h>

#endif
