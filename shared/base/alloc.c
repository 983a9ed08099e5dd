/*
 * alloc.c - the replaceable allocator with failure injection and a live
 * block counter (for leak checks in tests). Counters are atomic: clients
 * train on a thread pool.
 */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static fedc_allocator current = {malloc, calloc, realloc, free};
static _Atomic int64_t fail_countdown;  /* 0 = off */
static _Atomic int fail_sticky;
static _Atomic int64_t live_blocks;

void fedc_alloc_set(const fedc_allocator *a) {
  if (a == NULL) {
    fedc_allocator def = {malloc, calloc, realloc, free};
    current = def;
  } else {
    current = *a;
  }
}

void fedc_alloc_fail_after(int64_t n, int sticky) {
  atomic_store(&fail_sticky, sticky);
  atomic_store(&fail_countdown, n);
}

int64_t fedc_alloc_live(void) { return atomic_load(&live_blocks); }

/* Returns 1 when this allocation must fail. */
static int should_fail(void) {
  int64_t c = atomic_load(&fail_countdown);
  if (c <= 0) return 0;
  if (c == 1) {
    if (!atomic_load(&fail_sticky)) atomic_store(&fail_countdown, 0);
    return 1;
  }
  atomic_fetch_sub(&fail_countdown, 1);
  return 0;
}

void *fedc_malloc(size_t size) {
  if (should_fail()) return NULL;
  void *p = current.malloc_fn(size ? size : 1);
  if (p) atomic_fetch_add(&live_blocks, 1);
  return p;
}

void *fedc_calloc(size_t count, size_t size) {
  if (should_fail()) return NULL;
  void *p = current.calloc_fn(count ? count : 1, size ? size : 1);
  if (p) atomic_fetch_add(&live_blocks, 1);
  return p;
}

void *fedc_realloc(void *ptr, size_t size) {
  if (ptr == NULL) return fedc_malloc(size);
  if (should_fail()) return NULL;
  return current.realloc_fn(ptr, size ? size : 1);
}

void fedc_free(void *ptr) {
  if (ptr == NULL) return;
  atomic_fetch_sub(&live_blocks, 1);
  current.free_fn(ptr);
}

void *fedc_malloc_array(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return NULL;
  return fedc_malloc(count * size);
}

/* Over-allocate and stash the original pointer just below the aligned one,
 * so that a replaced allocator need not offer aligned allocation. */
void *fedc_malloc_aligned(size_t size) {
  if (size > SIZE_MAX - 64 - sizeof(void *)) return NULL;
  unsigned char *raw = fedc_malloc(size + 64 + sizeof(void *));
  if (raw == NULL) return NULL;
  uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
  ((void **)p)[-1] = raw;
  /* Large buffers (data sets, big models) are read in random row order:
   * ask for transparent huge pages so that TLB misses do not dominate. A
   * hint only; where the kernel says no, nothing changes. */
  if (size >= ((size_t)8 << 20)) {
    uintptr_t lo = (p + 0x1fffff) & ~(uintptr_t)0x1fffff;
    uintptr_t hi = (p + size) & ~(uintptr_t)0x1fffff;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
  }
  return (void *)p;
}

void fedc_free_aligned(void *ptr) {
  if (ptr) fedc_free(((void **)ptr)[-1]);
}

char *fedc_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = fedc_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}
