/*
 * utf8.h - strict UTF-8, as every parser of outside text in fedc checks it
 * (safetensors headers, join bodies): no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */
#ifndef FEDC_UTF8_H
#define FEDC_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at p (1..4; avail bytes readable), or
 * 0 if the bytes there are not one. */
size_t fedc_utf8_seq(const uint8_t *p, size_t avail);

#endif
