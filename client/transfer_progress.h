/*
 * transfer_progress.h - progress lines for the client's long transfers.
 *
 * A model download or an update upload of many megabytes over a slow link
 * (a hospital VPN) can take minutes; the operator should see it moving. A
 * transfer of at least FEDC_PROGRESS_MIN_BYTES logs one INFO line at most
 * every FEDC_PROGRESS_EVERY_S seconds and one when it ends:
 *
 *     INFO msg="download model round 5: 312.0 of 1024.0 MiB (30%), 85.2 MiB/s"
 *
 * Smaller transfers log nothing. A resumed transfer starts from the offset
 * already on hand, and its rate counts only the bytes moved this time.
 *
 *     fedc_progress p;
 *     fedc__progress_start(&p, "download model round 5", offset, total);
 *     ... fedc__progress_update(&p, bytes_done_so_far); ...
 *     fedc__progress_end(&p, ok);
 */
#ifndef FEDC_CLIENT_TRANSFER_PROGRESS_H
#define FEDC_CLIENT_TRANSFER_PROGRESS_H

#include <stdint.h>

#define FEDC_PROGRESS_MIN_BYTES ((uint64_t)16 << 20)
#define FEDC_PROGRESS_EVERY_S 2.0

typedef struct fedc_progress {
  char what[96];
  uint64_t start_at; /* bytes on hand when this attempt began */
  uint64_t total;    /* 0: unknown */
  uint64_t done;
  double t0, last;
  int on;
} fedc_progress;

/* Begin reporting a transfer of total bytes (0 if unknown) of which
 * start_at are already on hand (a resume). */
void fedc__progress_start(fedc_progress *p, const char *what, uint64_t start_at,
                          uint64_t total);
/* done bytes are now on hand (counting start_at); the total may be learnt
 * late (pass it, or 0 to keep the one known). */
void fedc__progress_update(fedc_progress *p, uint64_t done, uint64_t total);
/* The last line: "done" or "stopped at". */
void fedc__progress_end(fedc_progress *p, int ok);

#endif
