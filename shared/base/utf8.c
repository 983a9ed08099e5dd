/*
 * utf8.c - strict UTF-8 sequence validation (see utf8.h), from the table of
 * well-formed byte sequences in the Unicode Standard, section 3.9.
 */
#include "base/utf8.h"

size_t fedc_utf8_seq(const uint8_t *p, size_t avail) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0; /* no overlong 3-byte forms */
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90; /* no overlong 4-byte forms */
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    return 0;
  }
  if (avail < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return n;
}

uint32_t fedc_utf8_decode(const uint8_t *p, size_t k) {
  if (k <= 1) return p[0];
  uint32_t cp = p[0] & (0x7Fu >> k);
  for (size_t i = 1; i < k; i++) cp = (cp << 6) | (p[i] & 0x3Fu);
  return cp;
}

int fedc_utf8_is_display_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C;
}
