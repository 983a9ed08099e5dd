/*
 * mapped.h - read-only file mappings whose pages a reader may drop.
 *
 * A large update arrives as a spool file that the coordinator maps
 * read-only (coordinator/upload_api.c). Every page of the mapping that a
 * reader touches counts in the process's resident set until it is
 * unmapped, so a model-sized update read front to back would add a model's
 * size to the coordinator's memory. The readers that walk such a buffer
 * once (the container's checksum, FedAvg's fold) call fedc__mapped_drop on
 * each slice they are done with: when the slice lies inside a registered
 * mapping, its whole pages are dropped from the process (MADV_DONTNEED;
 * the file's bytes stay in the page cache, and a later read maps them
 * again); for any other memory it does nothing, so the readers need not
 * know where their buffer came from.
 *
 * Only MAP_PRIVATE read-only mappings of files may be registered: dropping
 * their pages never loses data. Thread-safe.
 */
#ifndef FEDC_MAPPED_H
#define FEDC_MAPPED_H

#include <stddef.h>

/* Register [addr, addr + len) (FEDC_ENOMEM when the table is full: the
 * mapping then simply is not dropped from). */
int fedc__mapped_register(const void *addr, size_t len);
/* Forget a registered mapping (before it is unmapped). */
void fedc__mapped_unregister(const void *addr);
/* Drop the whole pages of [p, p + len) when they lie in a registered
 * mapping; a no-op otherwise. */
void fedc__mapped_drop(const void *p, size_t len);

#endif
