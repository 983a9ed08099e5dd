/*
 * alloc.h - the one replaceable allocator (the public <fedc/alloc.h>), as
 * the library's own files include it.
 */
#ifndef FEDC_ALLOC_H
#define FEDC_ALLOC_H

#include <fedc/alloc.h>

#endif
