/*
 * client_index.h - the coordinator's clients by certificate fingerprint: a
 * hash table from a fingerprint (64 hex digits) to the client's position
 * in the coordinator's clients array (coordinator.c), so that the lookup
 * every request makes (api.c) and the per-certificate gauges of /metrics
 * (status.c) cost one hash instead of a scan over every client.
 *
 * The table keeps its own copy of each key and maps it to a position, not
 * a pointer, so growing the clients array (realloc) leaves it valid. Open
 * addressing with linear probing, at most half full; removal shifts the
 * following entries back (no tombstones). Loop thread only, like the
 * clients array it indexes. A zeroed struct is an empty index.
 */
#ifndef FEDC_CLIENT_INDEX_H
#define FEDC_CLIENT_INDEX_H

#include <stdint.h>

#define FEDC_CLIENT_INDEX_KEY 65 /* a fingerprint and its NUL */

typedef struct fedc__client_index_entry {
  char key[FEDC_CLIENT_INDEX_KEY];
  int32_t slot; /* position in the clients array; -1 = empty entry */
} fedc__client_index_entry;

typedef struct fedc__client_index {
  fedc__client_index_entry *e;
  int32_t cap; /* a power of two, or 0 */
  int32_t n;
} fedc__client_index;

/* Map fpr (cut to 64 characters, as the clients array stores it) to slot,
 * replacing any earlier mapping. 0, FEDC_EINVAL (NULL or empty fpr,
 * negative slot) or FEDC_ENOMEM (the index unchanged). */
int fedc__client_index_put(fedc__client_index *ix, const char *fpr, int32_t slot);
/* The slot of fpr, or -1 when it is not indexed (NULL and "" are not). */
int32_t fedc__client_index_get(const fedc__client_index *ix, const char *fpr);
/* Forget fpr: 0, or FEDC_ENOTFOUND. */
int fedc__client_index_remove(fedc__client_index *ix, const char *fpr);
/* Release the table; the index is empty (and usable) again. */
void fedc__client_index_free(fedc__client_index *ix);

#endif
