/*
 * le.h - little-endian integers in byte buffers, the byte order of every
 * fixed-width field fedc writes (safetensors' header length, the model
 * delta's and the partial sum's headers, the coded updates' fields).
 * Written byte by byte, so any alignment and any host order give the same
 * bytes.
 */
#ifndef FEDC_WIRE_LE_H
#define FEDC_WIRE_LE_H

#include <stdint.h>

static inline void fedc_le_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void fedc_le_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t fedc_le_get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t fedc_le_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

#endif
