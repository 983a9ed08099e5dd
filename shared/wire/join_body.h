/*
 * join_body.h - the body of POST /v1/join (docs/protocol.md), read and
 * checked in one pure function: the coordinator calls it, the fuzz target
 * drives it.
 *
 * The body is optional. When present it is one JSON object, nothing but
 * white space around it; its optional member "name" is a string of at most
 * name_size - 1 bytes of valid UTF-8 without control or bidirectional-text
 * characters (fedc_join_name_check; it ends up
 * in the store, the logs and the dashboard). Other members are ignored, so
 * that a newer client can say more; "name" given twice is refused.
 *
 *     char name[128];
 *     if (fedc_join_body_parse(req->body, req->body_len, name, sizeof name))
 *       ... 400 bad_request with fedc_error_msg() ...
 */
#ifndef FEDC_JOIN_BODY_H
#define FEDC_JOIN_BODY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse body (len bytes, need not be NUL-terminated; NULL when len is 0)
 * and copy the name into name (NUL-terminated; "" when absent). Errors:
 * FEDC_EFORMAT with the reason (name is then ""), FEDC_ENOMEM, FEDC_EINVAL
 * (name NULL or name_size 0).
 */
int fedc_join_body_parse(const uint8_t *body, size_t len, char *name, size_t name_size);

/* The rules a name follows (also for a certificate's common name used as
 * one): valid UTF-8, no control, bidi or mark character. 0 or
 * FEDC_EFORMAT with the reason. */
int fedc_join_name_check(const char *s, size_t len);

#endif
