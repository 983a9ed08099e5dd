/*
 * client_lookup.c - fedc-bench-lookup: the coordinator's client lookup by
 * certificate fingerprint, the one every request makes (api.c), in
 * lookups per second at 10, 1,000 and 10,000 clients: the linear scan it
 * used to be (a strcmp per client over the clients array) against the
 * fingerprint index (client_index.c) through fedc__coord_client_by_fpr.
 *
 * Both run over the same coordinator clients array, filled through
 * fedc__coord_client_add as a running coordinator fills it; the keys asked
 * are enrolled fingerprints in a pseudo-random order. Times are this
 * thread's CPU time, the median of 5 runs of each.
 *
 *   fedc-bench-lookup
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "coord_internal.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the lookup as it was before the index */
static coord_client *by_fpr_scan(fedc_coord *c, const char *fpr) {
  for (int32_t i = 0; i < c->n_clients; i++)
    if (strcmp(c->clients[i].fingerprint, fpr) == 0) return &c->clients[i];
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Lookups per second of `lookups` asks, median of 5; found counts hits
 * (all of them, else the run is wrong). */
static double rate(fedc_coord *c, char (*keys)[65], int32_t n, int64_t lookups, int scan,
                   int64_t *found) {
  double r[5];
  for (int k = 0; k < 5; k++) {
    int64_t hits = 0;
    uint32_t s = 12345;
    double t0 = cpu_now();
    for (int64_t i = 0; i < lookups; i++) {
      s = s * 1664525u + 1013904223u;
      const char *f = keys[(s >> 8) % (uint32_t)n];
      hits += (scan ? by_fpr_scan(c, f) : fedc__coord_client_by_fpr(c, f)) != NULL;
    }
    double dt = cpu_now() - t0;
    r[k] = (double)lookups / (dt > 0 ? dt : 1e-9);
    *found = hits;
  }
  qsort(r, 5, sizeof r[0], cmp_double);
  return r[2];
}

int main(void) {
  const int32_t sizes[] = {10, 1000, 10000};
  printf("%8s %16s %16s %8s\n", "clients", "scan lookups/s", "index lookups/s", "speedup");
  for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
    int32_t n = sizes[z];
    fedc_coord *c = fedc_calloc(1, sizeof *c);
    char (*keys)[65] = fedc_malloc_array((size_t)n, sizeof *keys);
    if (c == NULL || keys == NULL) return 1;
    for (int32_t i = 0; i < n; i++) {
      fedc_store_client sc = {.id = i + 1};
      for (int k = 0; k < 8; k++)
        snprintf(sc.fingerprint + 8 * k, 9, "%08x", (unsigned)((uint32_t)i * 2654435761u + (uint32_t)k));
      memcpy(keys[i], sc.fingerprint, 65);
      coord_client *cl;
      if (fedc__coord_client_add(c, &sc, &cl) != 0) return 1;
    }
    /* about 0.2 s of the scan at each size */
    int64_t scan_n = n >= 10000 ? 20000 : n >= 1000 ? 200000 : 5000000;
    int64_t found_s = 0, found_i = 0;
    double rs = rate(c, keys, n, scan_n, 1, &found_s);
    double ri = rate(c, keys, n, 5000000, 0, &found_i);
    if (found_s != scan_n || found_i != 5000000) {
      fprintf(stderr, "lookup missed a client\n");
      return 1;
    }
    printf("%8d %16.3g %16.3g %7.2fx\n", (int)n, rs, ri, ri / rs);
    fedc__client_index_free(&c->clients_by_fpr);
    fedc_free(c->clients);
    fedc_free(keys);
    fedc_free(c);
  }
  return 0;
}
