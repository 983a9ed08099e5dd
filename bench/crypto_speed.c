/*
 * crypto_speed.c - the per-byte ceilings a coordinator round runs into, as
 * mbedTLS does them on this machine: AES-128-GCM and ChaCha20-Poly1305
 * (the TLS record ciphers fedc offers) and SHA-256 (the container
 * checksum, through fedc's 2.28/3.x shim, built beside it). Prints one JSON line of MB/s (median of 5 passes over 64 MiB).
 */
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "base/mbedtls_compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE (64u << 20)
#define PASSES 5

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Records of 16 KiB, as TLS sends them. */
static double gcm(unsigned char *in, unsigned char *out) {
  unsigned char key[16] = {1}, iv[12] = {2}, tag[16];
  mbedtls_gcm_context g;
  mbedtls_gcm_init(&g);
  mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128);
  double t = now();
  for (size_t off = 0; off < SIZE; off += 16384)
    mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, 16384, iv, 12, NULL, 0,
                              in + off, out + off, 16, tag);
  t = now() - t;
  mbedtls_gcm_free(&g);
  return SIZE / t / 1e6;
}

static double chacha(unsigned char *in, unsigned char *out) {
  unsigned char key[32] = {1}, iv[12] = {2}, tag[16];
  mbedtls_chachapoly_context c;
  mbedtls_chachapoly_init(&c);
  mbedtls_chachapoly_setkey(&c, key);
  double t = now();
  for (size_t off = 0; off < SIZE; off += 16384)
    mbedtls_chachapoly_encrypt_and_tag(&c, 16384, iv, NULL, 0, in + off, out + off, tag);
  t = now() - t;
  mbedtls_chachapoly_free(&c);
  return SIZE / t / 1e6;
}

static double sha(unsigned char *in, unsigned char *out) {
  double t = now();
  fedc__sha256(in, SIZE, out);
  return SIZE / (now() - t) / 1e6;
}

int main(void) {
  unsigned char *in = malloc(SIZE), *out = malloc(SIZE + 64);
  if (!in || !out) return 1;
  memset(in, 0x5a, SIZE);
  double (*fn[3])(unsigned char *, unsigned char *) = {gcm, chacha, sha};
  double med[3];
  for (int f = 0; f < 3; f++) {
    double r[PASSES];
    for (int p = 0; p < PASSES; p++) r[p] = fn[f](in, out);
    qsort(r, PASSES, sizeof r[0], cmp);
    med[f] = r[PASSES / 2];
  }
  printf("{\"aes128_gcm_MBps\":%.0f,\"chacha20_poly1305_MBps\":%.0f,\"sha256_MBps\":%.0f}\n",
         med[0], med[1], med[2]);
  free(in);
  free(out);
  return 0;
}
