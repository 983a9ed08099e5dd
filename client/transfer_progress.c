/*
 * transfer_progress.c - rate-limited progress lines for long transfers
 * (see transfer_progress.h). The clock is CLOCK_MONOTONIC, so a wall-clock
 * step cannot make a rate negative; nothing is printed for a transfer
 * below FEDC_PROGRESS_MIN_BYTES, whose size is known.
 */
#include "transfer_progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One line: what, how much of how much, and the rate of this attempt. */
static void emit(const fedc_progress *p, const char *verb) {
  double mib = 1048576.0, dt = mono_s() - p->t0;
  double rate = dt > 0 ? (double)(p->done - p->start_at) / mib / dt : 0.0;
  if (p->total)
    fedc_log_info("msg=\"%s%s: %.1f of %.1f MiB (%.0f%%), %.1f MiB/s\"", p->what, verb,
                  p->done / mib, p->total / mib, 100.0 * (double)p->done / (double)p->total,
                  rate);
  else
    fedc_log_info("msg=\"%s%s: %.1f MiB, %.1f MiB/s\"", p->what, verb, p->done / mib, rate);
}

void fedc__progress_start(fedc_progress *p, const char *what, uint64_t start_at,
                          uint64_t total) {
  memset(p, 0, sizeof *p);
  snprintf(p->what, sizeof p->what, "%s", what ? what : "transfer");
  p->start_at = p->done = start_at;
  p->total = total;
  p->t0 = p->last = mono_s();
  p->on = total == 0 || total >= FEDC_PROGRESS_MIN_BYTES;
}

void fedc__progress_update(fedc_progress *p, uint64_t done, uint64_t total) {
  if (total && !p->total) {
    p->total = total;
    p->on = total >= FEDC_PROGRESS_MIN_BYTES;
  }
  p->done = done;
  if (!p->on || done < FEDC_PROGRESS_MIN_BYTES) return;
  double now = mono_s();
  if (now - p->last < FEDC_PROGRESS_EVERY_S) return;
  p->last = now;
  emit(p, "");
}

void fedc__progress_end(fedc_progress *p, int ok) {
  if (!p->on || p->done < FEDC_PROGRESS_MIN_BYTES) return;
  emit(p, ok ? " done" : " stopped");
}
