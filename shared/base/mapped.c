/*
 * mapped.c - the table of droppable read-only file mappings (mapped.h): a
 * few entries (one per fold under way), searched under a mutex.
 */
#include "base/mapped.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"

#define MAX_MAPS 16

static struct {
  const char *addr;
  size_t len;
} maps[MAX_MAPS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int fedc__mapped_register(const void *addr, size_t len) {
  int rc = fedc_error_set(FEDC_ENOMEM, "mapped: %d mappings registered already", MAX_MAPS);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_MAPS; i++)
    if (maps[i].addr == NULL) {
      maps[i].addr = addr;
      maps[i].len = len;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&mu);
  return rc;
}

void fedc__mapped_unregister(const void *addr) {
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_MAPS; i++)
    if (maps[i].addr == addr) maps[i].addr = NULL;
  pthread_mutex_unlock(&mu);
}

/* Only the pages wholly inside [p, p + len): a neighbour's bytes on a
 * shared page are never dropped while another slice may still read them
 * (they would only be read again, but that costs a fault). */
void fedc__mapped_drop(const void *p, size_t len) {
  const char *b = p;
  int hit = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_MAPS && !hit; i++)
    hit = maps[i].addr && b >= maps[i].addr && len <= maps[i].len &&
          (size_t)(b - maps[i].addr) <= maps[i].len - len;
  pthread_mutex_unlock(&mu);
  if (!hit) return;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = ((uintptr_t)b + page - 1) & ~(page - 1);
  uintptr_t hi = ((uintptr_t)b + len) & ~(page - 1);
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
