/*
 * model_delta.c - fedc-bench-delta: the size of a global model sent as a
 * lossless delta from the previous one (wire/model_delta.h), and the time
 * to encode it (the coordinator, once per commit) and decode it (a
 * client), for consecutive models saved as safetensors files.
 *
 *   fedc-bench-delta A.safetensors B.safetensors [C.safetensors ...]
 *
 * prints one line per consecutive pair: the whole body's bytes, the
 * delta's, their ratio, and the median encode and decode times of 5 runs:
 * encode as the coordinator does it (the bodies' SHA-256 known), decode
 * as a client does (hashing its base and the rebuilt body).
 * bench/compression.sh runs it on models of the Fashion-MNIST MLP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/model_delta.h"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = n > 0 ? fedc_malloc((size_t)n) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    fedc_free(b);
    b = NULL;
  }
  fclose(f);
  *len = b ? (size_t)n : 0;
  return b;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: fedc-bench-delta A.safetensors B.safetensors [...]\n");
    return 2;
  }
  printf("%-28s %10s %10s %7s %9s %9s\n", "models", "whole", "delta", "x fewer", "encode ms",
         "decode ms");
  for (int i = 1; i + 1 < argc; i++) {
    size_t alen, blen;
    uint8_t *a = slurp(argv[i], &alen), *b = slurp(argv[i + 1], &blen);
    if (a == NULL || b == NULL) {
      fprintf(stderr, "cannot read %s or %s\n", argv[i], argv[i + 1]);
      return 1;
    }
    /* the coordinator has both bodies' SHA-256 already (http_body.h) */
    char sa[FEDC__SHA256_HEX_LEN + 1], sb[FEDC__SHA256_HEX_LEN + 1];
    if (fedc__sha256_hex(a, alen, sa) != 0 || fedc__sha256_hex(b, blen, sb) != 0) return 1;
    double te[5], td[5];
    size_t dlen = 0;
    for (int t = 0; t < 5; t++) {
      uint8_t *d, *out;
      size_t olen;
      double t0 = now();
      if (fedc_model_delta_encode(a, alen, 1, sa, b, blen, 2, sb, &d, &dlen) != 0) {
        fprintf(stderr, "%s\n", fedc_error_msg());
        return 1;
      }
      double t1 = now();
      if (fedc_model_delta_decode(d, dlen, a, alen, NULL, blen, &out, &olen) != 0 ||
          olen != blen || memcmp(out, b, blen) != 0) {
        fprintf(stderr, "round trip failed: %s\n", fedc_error_msg());
        return 1;
      }
      te[t] = 1e3 * (t1 - t0);
      td[t] = 1e3 * (now() - t1);
      fedc_free(d);
      fedc_free(out);
    }
    qsort(te, 5, sizeof te[0], cmp);
    qsort(td, 5, sizeof td[0], cmp);
    const char *na = strrchr(argv[i], '/'), *nb = strrchr(argv[i + 1], '/');
    char name[64];
    snprintf(name, sizeof name, "%s -> %s", na ? na + 1 : argv[i], nb ? nb + 1 : argv[i + 1]);
    printf("%-28s %10zu %10zu %7.2f %9.2f %9.2f\n", name, blen, dlen, (double)blen / (double)dlen,
           te[2], td[2]);
    fedc_free(a);
    fedc_free(b);
  }
  return 0;
}
