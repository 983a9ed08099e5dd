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

/* The code point of the valid sequence of k bytes at p (k from
 * fedc_utf8_seq). */
uint32_t fedc_utf8_decode(const uint8_t *p, size_t k);

/* Is code point cp one that changes how the text around it is shown
 * rather than a character: C0 and C1 controls, DEL, the bidirectional
 * embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) and
 * the implicit marks (U+200E, U+200F, U+061C)? Names must not hold any. */
int fedc_utf8_is_display_control(uint32_t cp);

#endif
