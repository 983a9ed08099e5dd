/*
 * client_index.c - the coordinator's clients by certificate fingerprint
 * (client_index.h): an open-addressing hash table, FNV-1a over the key,
 * linear probing, grown to keep it at most half full, backward-shift
 * removal.
 */
#include "client_index.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

static uint32_t hash_key(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* The entry holding key, or the empty entry where it would go. */
static fedc__client_index_entry *probe(const fedc__client_index *ix, const char *key) {
  uint32_t mask = (uint32_t)ix->cap - 1;
  for (uint32_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
    fedc__client_index_entry *e = &ix->e[i];
    if (e->slot < 0 || strcmp(e->key, key) == 0) return e;
  }
}

/*
 * Rehash every entry into a table of cap entries. On failure the old
 * table stays as it was.
 */
static int grow(fedc__client_index *ix, int32_t cap) {
  fedc__client_index_entry *ne = fedc_malloc_array((size_t)cap, sizeof *ne);
  if (ne == NULL) return fedc_error_set(FEDC_ENOMEM, "client index: out of memory");
  for (int32_t i = 0; i < cap; i++) ne[i].slot = -1;
  fedc__client_index old = *ix;
  ix->e = ne;
  ix->cap = cap;
  for (int32_t i = 0; i < old.cap; i++)
    if (old.e[i].slot >= 0) *probe(ix, old.e[i].key) = old.e[i];
  fedc_free(old.e);
  return 0;
}

int fedc__client_index_put(fedc__client_index *ix, const char *fpr, int32_t slot) {
  if (fpr == NULL || fpr[0] == '\0' || slot < 0)
    return fedc_error_set(FEDC_EINVAL, "client index: no fingerprint or a negative slot");
  char key[FEDC_CLIENT_INDEX_KEY];
  size_t len = strnlen(fpr, sizeof key - 1);
  memcpy(key, fpr, len);
  key[len] = '\0';
  if (2 * (ix->n + 1) > ix->cap) {
    if (ix->cap > INT32_MAX / 4) return fedc_error_set(FEDC_ENOMEM, "client index: too many");
    int rc = grow(ix, ix->cap ? 2 * ix->cap : 64);
    if (rc != 0) return rc;
  }
  fedc__client_index_entry *e = probe(ix, key);
  if (e->slot < 0) {
    memcpy(e->key, key, len + 1);
    ix->n++;
  }
  e->slot = slot;
  return 0;
}

int32_t fedc__client_index_get(const fedc__client_index *ix, const char *fpr) {
  if (ix->cap == 0 || fpr == NULL || fpr[0] == '\0') return -1;
  return probe(ix, fpr)->slot;
}

/*
 * Remove by backward shift: after emptying the entry, each following entry
 * of the run moves into the hole if its home position does not lie
 * (cyclically) between the hole and itself, so every remaining key is
 * still reachable from its home without tombstones.
 */
int fedc__client_index_remove(fedc__client_index *ix, const char *fpr) {
  if (fedc__client_index_get(ix, fpr) < 0)
    return fedc_error_set(FEDC_ENOTFOUND, "client index: fingerprint not indexed");
  uint32_t mask = (uint32_t)ix->cap - 1;
  uint32_t hole = (uint32_t)(probe(ix, fpr) - ix->e);
  ix->e[hole].slot = -1;
  ix->n--;
  for (uint32_t j = (hole + 1) & mask; ix->e[j].slot >= 0; j = (j + 1) & mask) {
    uint32_t home = hash_key(ix->e[j].key) & mask;
    /* home in (hole, j] cyclically: the entry stays */
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    ix->e[hole] = ix->e[j];
    ix->e[j].slot = -1;
    hole = j;
  }
  return 0;
}

void fedc__client_index_free(fedc__client_index *ix) {
  fedc_free(ix->e);
  ix->e = NULL;
  ix->cap = 0;
  ix->n = 0;
}
