/*
 * fedc/alloc.h - the one replaceable allocator.
 *
 * All of fedc allocates through these functions. A program may install its
 * own with fedc_alloc_set() before it calls anything else; memory that fedc
 * hands to a program (an encoded model, say) is released with fedc_free().
 * Tests make the Nth allocation fail with fedc_alloc_fail_after() and check
 * that every path returns FEDC_ENOMEM and leaks nothing (fedc_alloc_live()).
 */
#ifndef FEDC_PUBLIC_ALLOC_H
#define FEDC_PUBLIC_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedc_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*calloc_fn)(size_t count, size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} fedc_allocator;

/* Install an allocator; NULL restores the C library's. Not thread-safe:
 * call before any other fedc function. */
void fedc_alloc_set(const fedc_allocator *a);

void *fedc_malloc(size_t size);
void *fedc_calloc(size_t count, size_t size);
void *fedc_realloc(void *ptr, size_t size);
void fedc_free(void *ptr);
/* Overflow-checked count * size allocation. */
void *fedc_malloc_array(size_t count, size_t size);
/* 64-byte aligned block for SIMD buffers; free with fedc_free_aligned. */
void *fedc_malloc_aligned(size_t size);
void fedc_free_aligned(void *ptr);
char *fedc_strdup(const char *s);

/* Test hooks: fail the nth allocation from now (1 = the next one), and every
 * one after it while sticky is set; n = 0 turns failure off. */
void fedc_alloc_fail_after(int64_t n, int sticky);
/* Blocks allocated and not yet freed through this allocator. */
int64_t fedc_alloc_live(void);

#ifdef __cplusplus
}
#endif

#endif
